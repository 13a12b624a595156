package logstore

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// corpusEntry is one request of testdata/grafana-corpus.json: a request Grafana's Loki data source or Logs
// Drilldown sends in its main flows (source names the file it comes from), and what its answer must hold.
type corpusEntry = testutil.CorpusEntry

func loadCorpus(t *testing.T) []corpusEntry {
	return testutil.LoadCorpus(t, "testdata/grafana-corpus.json")
}

// corpusVars are the placeholders of the corpus for data pushed around base: ${START} and ${END} (unix ns,
// as Grafana's backend sends them), ${START_ISO} and ${END_ISO} (RFC 3339, as Logs Drilldown sends them),
// ${NOW} and ${TRACE_ID}.
func corpusVars(base time.Time, traceID string) *strings.Replacer {
	start, end := base.Add(-15*time.Minute), base.Add(time.Minute)
	return strings.NewReplacer(
		"${START}", strconv.FormatInt(start.UnixNano(), 10),
		"${END}", strconv.FormatInt(end.UnixNano(), 10),
		"${START_ISO}", start.UTC().Format("2006-01-02T15:04:05.000Z"),
		"${END_ISO}", end.UTC().Format("2006-01-02T15:04:05.000Z"),
		"${NOW}", strconv.FormatInt(end.UnixNano(), 10),
		"${TRACE_ID}", traceID,
	)
}

// corpusPush is the data the corpus is replayed on, ending at base: a logfmt service (checkout: info and error
// streams, trace context in structured metadata, a numeric build label that detected_labels leaves out) and a
// JSON service (payments, with nested keys and a UUID label). It returns the push body and one trace id.
func corpusPush(base time.Time) ([]byte, string) {
	var info, errs, pay []string
	traceID := ""
	for i := 0; i < 30; i++ {
		ts := base.Add(-10*time.Minute + time.Duration(i)*20*time.Second).UnixNano()
		tid := fmt.Sprintf("%032x", 0xabc000+i)
		if i == 4 {
			traceID = tid
		}
		md := fmt.Sprintf(`{"trace_id":%q,"span_id":"%016x"}`, tid, 0xdef000+i)
		if i%3 == 2 {
			line := fmt.Sprintf(`level=error msg="payment declined" order_id=%d code=%d took=%dms`, 1000+i, 400+i%5, 3+i)
			errs = append(errs, fmt.Sprintf(`["%d",%q,%s]`, ts, line, md))
		} else {
			line := fmt.Sprintf(`level=info msg="order placed" order_id=%d user=user%d took=%dms`, 1000+i, i%4, 10+i)
			info = append(info, fmt.Sprintf(`["%d",%q,%s]`, ts, line, md))
		}
		tier := []string{"gold", "silver", "bronze"}[i%3]
		line := fmt.Sprintf(`{"level":"info","msg":"charge ok","user":{"id":"u-%d","tier":%q},"amount":%d.5,"took":"%dms"}`, i, tier, 10+i, 5+i)
		pay = append(pay, fmt.Sprintf(`["%d",%q]`, ts+1, line))
	}
	return jsonPush(
		fmt.Sprintf(`{"stream":{"service_name":"checkout","job":"shop/checkout","namespace":"shop","pod":"checkout-7d9f","level":"info","build":"101"},"values":[%s]}`, strings.Join(info, ",")),
		fmt.Sprintf(`{"stream":{"service_name":"checkout","job":"shop/checkout","namespace":"shop","pod":"checkout-7d9f","level":"error","build":"102"},"values":[%s]}`, strings.Join(errs, ",")),
		fmt.Sprintf(`{"stream":{"service_name":"payments","job":"shop/payments","namespace":"shop","pod":"payments-1","instance_id":"3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b"},"values":[%s]}`, strings.Join(pay, ",")),
	), traceID
}

// doEntry sends one corpus entry to the server at base.
func doEntry(t *testing.T, c corpusEntry, base string, vars *strings.Replacer) (int, []byte) {
	t.Helper()
	method := c.Method
	if method == "" {
		method = "GET"
	}
	u := base + c.Path
	if q := vars.Replace(c.Query); q != "" {
		u += "?" + q
	}
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(vars.Replace(c.Body))
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	if c.Body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestGrafanaCorpus replays every request of testdata/grafana-corpus.json against Sprout on corpusPush's data
// and checks the status and that the paths the app decodes are not empty.
func TestGrafanaCorpus(t *testing.T) {
	e := newEnv(t, nil)
	base := testNow.Add(-time.Minute)
	body, traceID := corpusPush(base)
	if code, msg := e.post("/loki/api/v1/push", "application/json", body); code != 204 {
		t.Fatalf("push: %d %s", code, msg)
	}
	vars := corpusVars(base, traceID)
	for _, c := range loadCorpus(t) {
		t.Run(c.Name, func(t *testing.T) {
			code, b := doEntry(t, c, e.srv.URL, vars)
			if code != c.Expect.Status {
				t.Fatalf("%s (%s): status %d, want %d: %s", c.Path, c.Source, code, c.Expect.Status, b)
			}
			if len(c.Expect.NonEmpty) == 0 {
				return
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("%s: not JSON: %v: %s", c.Path, err, b)
			}
			for _, p := range c.Expect.NonEmpty {
				if x, ok := testutil.Lookup(v, p); !ok || !testutil.NonEmpty(x) {
					t.Errorf("%s (%s): %s is empty: %s", c.Path, c.Source, p, b)
				}
			}
		})
	}
}
