package tracestore

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// The Grafana request corpus: testdata/grafana-corpus.json holds the HTTP requests that Grafana's Tempo data
// source and the Traces Drilldown app send, each naming the file it comes from. TestGrafanaCorpus replays it
// against Sprout; TestPeerTempoCorpus (peer_tempo_test.go) replays it against Tempo and Sprout side by side.

type corpusEntry = testutil.CorpusEntry

func loadCorpus(t *testing.T) []corpusEntry {
	return testutil.LoadCorpus(t, "testdata/grafana-corpus.json")
}

// corpusVars are the values of the corpus' placeholders.
type corpusVars struct {
	now, start, end int64 // Unix seconds
	traceID         string
}

func (v corpusVars) expand(s string) string {
	return strings.NewReplacer("${START}", strconv.FormatInt(v.start, 10), "${END}", strconv.FormatInt(v.end, 10),
		"${NOW}", strconv.FormatInt(v.now, 10), "${TRACE_ID}", v.traceID).Replace(s)
}

// corpusFixture is peerFixture (12 traces of a frontend root and four backend children, started in the three
// minutes before now) with what the Drilldown's tabs look for: the roots of traces 4, 8 and 12 fail, and every
// failed span carries an exception event.
func corpusFixture(now time.Time) ptrace.Traces {
	td, _ := peerFixture(now)
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				if sp.ParentSpanID().IsEmpty() && sp.TraceID()[15]%4 == 0 {
					sp.Status().SetCode(ptrace.StatusCodeError)
					sp.Status().SetMessage("checkout failed")
				}
				if sp.Status().Code() != ptrace.StatusCodeError {
					continue
				}
				ev := sp.Events().AppendEmpty()
				ev.SetName("exception")
				ev.SetTimestamp(pcommon.NewTimestampFromTime(sp.StartTimestamp().AsTime().Add(time.Millisecond)))
				ev.Attributes().PutStr("exception.type", "CheckoutError")
				ev.Attributes().PutStr("exception.message", "card declined")
				ev.Attributes().PutStr("exception.stacktrace", "at checkout (checkout.go:42)")
			}
		}
	}
	return td
}

func corpusRequest(t *testing.T, base string, e corpusEntry, v corpusVars) (int, string, []byte) {
	t.Helper()
	u := base + v.expand(e.Path)
	if q := v.expand(e.Query); q != "" {
		u += "?" + q
	}
	method := e.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if e.Body != "" {
		body = strings.NewReader(v.expand(e.Body))
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatalf("%s: %v", e.Name, err)
	}
	for k, h := range e.Headers {
		req.Header.Set(k, h)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", e.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// jsonNonEmpty says whether path (dot-separated keys; "x[]" steps into every element of array x) leads to a
// non-empty value in doc: an array or object with members, a non-empty string, any number or boolean. Through
// arrays it is enough that one element leads to one.
func jsonNonEmpty(doc any, path string) bool {
	if path == "" {
		switch x := doc.(type) {
		case nil:
			return false
		case []any:
			return len(x) > 0
		case map[string]any:
			return len(x) > 0
		case string:
			return x != ""
		}
		return true
	}
	key, rest, _ := strings.Cut(path, ".")
	each := strings.HasSuffix(key, "[]")
	key = strings.TrimSuffix(key, "[]")
	m, ok := doc.(map[string]any)
	if !ok {
		return false
	}
	v, ok := m[key]
	if !ok {
		return false
	}
	if !each {
		return jsonNonEmpty(v, rest)
	}
	arr, _ := v.([]any)
	for _, el := range arr {
		if jsonNonEmpty(el, rest) {
			return true
		}
	}
	return false
}

func TestJSONNonEmpty(t *testing.T) {
	doc := map[string]any{}
	_ = json.Unmarshal([]byte(`{"a":[],"b":[{"c":[]},{"c":[1]}],"d":"","e":{"f":"x"},"g":[{"h":{}}]}`), &doc)
	for path, want := range map[string]bool{"a": false, "b": true, "b[].c": true, "d": false, "e.f": true, "e.g": false,
		"g[].h": false, "x": false, "b[].x": false} {
		if got := jsonNonEmpty(doc, path); got != want {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}

// TestGrafanaCorpus replays every request of the corpus against Sprout on the corpus fixture and checks the
// status and the paths that must not be empty.
func TestGrafanaCorpus(t *testing.T) {
	corpus := loadCorpus(t)
	s, srv := newAPI(t)
	now := time.Now().Truncate(time.Second)
	if err := s.Push(context.Background(), tn, corpusFixture(now)); err != nil {
		t.Fatal(err)
	}
	v := corpusVars{now: now.Unix(), start: now.Add(-10 * time.Minute).Unix(), end: now.Add(time.Minute).Unix(), traceID: tid(4).String()}
	for _, e := range corpus {
		t.Run(e.Name, func(t *testing.T) {
			code, ctype, body := corpusRequest(t, srv.URL, e, v)
			if code != e.Expect.Status {
				t.Fatalf("%s (%s): status %d, want %d: %.400s", e.Name, e.Source, code, e.Expect.Status, body)
			}
			if len(e.Expect.NonEmpty) == 0 {
				return
			}
			if !strings.Contains(ctype, "json") {
				t.Fatalf("content type %q, want JSON", ctype)
			}
			var doc any
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if os.Getenv("SPROUT_CORPUS_VERBOSE") != "" {
				t.Logf("%.1500s", body)
			}
			for _, p := range e.Expect.NonEmpty {
				if !jsonNonEmpty(doc, p) {
					t.Errorf("%s is empty in %.600s", p, body)
				}
			}
		})
	}
}
