package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/snappy"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// The rows of the hostile-input suite: every attack of the review behind issue 17, against the default
// all-in-one config (TestHostileInput) and with multi-tenancy on (TestHostileMultiTenant), each with the steady
// load of hostile_test.go beside it.

// startHostile starts a server for a group of rows, with the steady load running.
func startHostile(t *testing.T, c *client, args ...string) *hostileEnv {
	t.Helper()
	env, api := defaultEnv(t)
	p := startSprout(t, env, append([]string{"--config", "sprout:all-in-one"}, args...)...)
	p.waitHTTP(api+"/ready", 90*time.Second)
	h := &hostileEnv{t: t, env: env, api: api, p: p, c: c, data: envValue(env, "SPROUT_DATA")}
	h.steady = startSteady(t, c, env, api)
	return h
}

// do sends one request with the group's client decorations and extra headers; it returns the status, the
// response headers and the body (at most 1 MiB of it).
func (h *hostileEnv) do(method, u, contentType string, body io.Reader, hdr map[string]string, timeout time.Duration) (int, http.Header, string) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return 0, nil, err.Error()
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	h.c.decorate(req)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	cl := &http.Client{Timeout: timeout}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, string(b)
}

// wantClientError fails unless code is a 4xx (refused, and not worth retrying as it is) or one of also.
func wantClientError(t *testing.T, what string, code int, body string, also ...int) {
	t.Helper()
	for _, a := range also {
		if code == a {
			return
		}
	}
	if code < 400 || code >= 500 {
		t.Errorf("%s: answered %d %s; want a 4xx refusal", what, code, firstLine(body))
	}
}

// snappyBomb is a 4.9 MB snappy block that decodes to 100 MiB. It is encoded once, before the steady load is
// measured: encoding 100 MiB during an attack took the test process's CPU and heap, and the steady load's
// answers, measured in the same process, with them.
var snappyBomb = sync.OnceValue(func() []byte { return snappy.Encode(nil, make([]byte, 100<<20)) })

// zstdWindowBomb is a 10-byte zstd frame that declares a 512 MiB window and holds one byte: a decoder that
// sizes its window from the header allocates half a gigabyte for it.
var zstdWindowBomb = []byte{
	0x28, 0xb5, 0x2f, 0xfd, // magic
	0x00,             // frame header descriptor: no checksum, no dictionary, no content size, not single-segment
	19 << 3,          // window descriptor: exponent 19 → window log 29 = 512 MiB
	0x0b, 0x00, 0x00, // last block, RLE, regenerated size 1
	'x',
}

// bulkLines pushes n logfmt lines with a latency field for {job=<job>}, spread over the last span, in pushes
// of 5,000.
func (h *hostileEnv) bulkLines(t *testing.T, job string, n int, span time.Duration) {
	t.Helper()
	start := time.Now().Add(-span)
	stepNs := span.Nanoseconds() / int64(n)
	for i := 0; i < n; i += 5000 {
		var vals []string
		for k := i; k < i+5000 && k < n; k++ {
			ts := start.UnixNano() + int64(k)*stepNs
			vals = append(vals, fmt.Sprintf(`["%d","level=info msg=bulk latency=%d"]`, ts, k%997))
		}
		body := fmt.Sprintf(`{"streams":[{"stream":{"job":%q},"values":[%s]}]}`, job, strings.Join(vals, ","))
		code, _, resp := h.do(http.MethodPost, h.api+"/loki/api/v1/push", "application/json", strings.NewReader(body), nil, 30*time.Second)
		if code/100 != 2 {
			t.Fatalf("push bulk lines: %d %s", code, firstLine(resp))
		}
	}
}

// wsURL is the tail endpoint's WebSocket address for query q with extra parameters.
func (h *hostileEnv) wsURL(q string, params url.Values) string {
	if params == nil {
		params = url.Values{}
	}
	params.Set("query", q)
	return strings.Replace(h.api, "http://", "ws://", 1) + "/loki/api/v1/tail?" + params.Encode()
}

func (h *hostileEnv) wsHeader(extra map[string]string) http.Header {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	h.c.decorate(req)
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	return req.Header
}

func TestHostileInput(t *testing.T) {
	snappyBomb()
	h := startHostile(t, &client{})
	h.bulkLines(t, "bulk", 50000, 3*time.Hour)
	runHostile(t, h, hostileDefaultRows())
}

// hostileDefaultRows are the attacks on the default config; the server must hold 50,000 lines of
// {job="bulk"} over the last 3 hours (bulkLines).
func hostileDefaultRows() []hostileRow {
	return []hostileRow{
		{name: "promql-subquery-1ms-step", maxRSSMiB: 256, run: func(t *testing.T, h *hostileEnv) {
			for _, q := range []string{"sum_over_time(vector(1)[30d:1ms])", "sum_over_time(vector(1)[1d:1ms])", "count_over_time((rate(sprout_steady[5m])[1d:1ms])[7d:1s])"} {
				code, _, body := h.do(http.MethodGet, h.api+"/api/v1/query?query="+url.QueryEscape(q), "", nil, nil, 60*time.Second)
				wantClientError(t, q, code, body)
			}
		}},
		{name: "logql-11000-steps-client-leaves", maxRSSMiB: 256, run: func(t *testing.T, h *hostileEnv) {
			end := time.Now()
			q := url.Values{
				"query": {`quantile_over_time(0.99, {job="bulk"} | logfmt | unwrap latency [4h])`},
				"start": {strconv.FormatInt(end.Add(-10990*time.Second).UnixNano(), 10)},
				"end":   {strconv.FormatInt(end.UnixNano(), 10)},
				"step":  {"1"},
			}
			idle0 := cpuTicks(h.pid())
			time.Sleep(time.Second)
			idle := cpuTicks(h.pid()) - idle0 // the steady load's own CPU per second
			code, _, body := h.do(http.MethodGet, h.api+"/loki/api/v1/query_range?"+q.Encode(), "", nil, nil, 5*time.Second)
			left := cpuTicks(h.pid())
			time.Sleep(5 * time.Second)
			after := cpuTicks(h.pid()) - left
			t.Logf("FIGURE hostile logql: answer %d %s; CPU in the 5 s after the client left %.2f s (steady load alone %.2f s/s)", code, firstLine(body), float64(after)/100, float64(idle)/100)
			if code >= 500 {
				t.Errorf("answered %d %s", code, firstLine(body))
			}
			// The query must stop when the client leaves: a core kept busy would be ~5 s here.
			if after > 5*idle+150 {
				t.Errorf("the server spent %.2f s of CPU in the 5 s after the client left (steady load alone: %.2f s/s)", float64(after)/100, float64(idle)/100)
			}
		}},
		{name: "tail-limit-1e9", maxRSSMiB: 256, run: func(t *testing.T, h *hostileEnv) {
			conn, resp, err := websocket.DefaultDialer.Dial(h.wsURL(`{job="bulk"}`, url.Values{"limit": {"1000000000"}, "start": {"0"}}), h.wsHeader(nil))
			if err != nil {
				if resp != nil && resp.StatusCode/100 == 4 {
					return // refused at the handshake, as query_range refuses such a limit
				}
				t.Fatalf("tail: %v", err)
			}
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			_, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("tail: first frame: %v", err)
			}
			var f struct {
				Streams []struct {
					Values [][2]string `json:"values"`
				} `json:"streams"`
			}
			_ = json.Unmarshal(msg, &f)
			n := 0
			for _, s := range f.Streams {
				n += len(s.Values)
			}
			if n > 5000 {
				t.Errorf("first tail frame held %d lines; max_entries_limit_per_query is 5000", n)
			}
		}},
		{name: "tail-1GiB-frame", maxRSSMiB: 128, run: func(t *testing.T, h *hostileEnv) {
			conn, _, err := websocket.DefaultDialer.Dial(h.wsURL(`{job="steady"}`, nil), h.wsHeader(nil))
			if err != nil {
				t.Fatalf("tail: %v", err)
			}
			defer conn.Close()
			w, err := conn.NextWriter(websocket.TextMessage)
			if err != nil {
				t.Fatal(err)
			}
			chunk := bytes.Repeat([]byte("a"), 1<<20)
			sent := 0
			for ; sent < 1024; sent++ {
				_ = conn.UnderlyingConn().SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := w.Write(chunk); err != nil {
					break
				}
			}
			t.Logf("FIGURE hostile tail frame: the server stopped reading after %d MiB of a 1 GiB message", sent)
			if sent >= 1024 {
				t.Errorf("the server read a whole 1 GiB WebSocket message")
			}
		}},
		{name: "zstd-512MiB-window-otlp-http", maxRSSMiB: 128, run: func(t *testing.T, h *hostileEnv) {
			u := "http://" + envValue(h.env, "SPROUT_OTLP_HTTP_ENDPOINT") + "/v1/logs"
			deadline := time.Now().Add(4 * time.Second)
			n := 0
			for time.Now().Before(deadline) {
				var wg sync.WaitGroup
				for range 3 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						code, _, body := h.do(http.MethodPost, u, "application/x-protobuf", bytes.NewReader(zstdWindowBomb), map[string]string{"Content-Encoding": "zstd"}, 10*time.Second)
						wantClientError(t, "zstd bomb", code, body)
					}()
				}
				wg.Wait()
				n += 3
				time.Sleep(300 * time.Millisecond)
			}
			// The same on the API port's OTLP path.
			code, _, body := h.do(http.MethodPost, h.api+"/otlp/v1/logs", "application/x-protobuf", bytes.NewReader(zstdWindowBomb), map[string]string{"Content-Encoding": "zstd"}, 10*time.Second)
			wantClientError(t, "zstd bomb on the API port", code, body, http.StatusNotFound)
			t.Logf("FIGURE hostile zstd: %d bombs sent", n+1)
		}},
		// Sent once: 25 bodies of 4.9 MB are 125 MB on the wire, and kept up four times a second they would
		// measure the loopback's copying on the two cores the test shares with the server, not the server.
		{name: "snappy-100MiB-loki-push-x25", maxRSSMiB: 128, once: true, run: func(t *testing.T, h *hostileEnv) {
			bomb := snappyBomb()
			var wg sync.WaitGroup
			for range 25 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, _, body := h.do(http.MethodPost, h.api+"/loki/api/v1/push", "application/x-protobuf", bytes.NewReader(bomb), nil, 30*time.Second)
					wantClientError(t, "snappy bomb", code, body)
				}()
			}
			wg.Wait()
			t.Logf("FIGURE hostile snappy: 25 bodies of %d bytes, each decoding to 100 MiB", len(bomb))
		}},
		{name: "tenant-header-ignored-in-one-tenant-mode", run: func(t *testing.T, h *hostileEnv) {
			for i := range 5 {
				tid := traceID("ghost", i, 0)
				raw, _ := ptraceotlp.NewExportRequestFromTraces(makeTrace(tid, "ghost", nil)).MarshalProto()
				org := fmt.Sprintf("ghost%d", i)
				code, _, body := h.do(http.MethodPost, "http://"+envValue(h.env, "SPROUT_OTLP_HTTP_ENDPOINT")+"/v1/traces", "application/x-protobuf", bytes.NewReader(raw), map[string]string{"X-Scope-OrgID": org}, 10*time.Second)
				if code != 200 {
					t.Errorf("OTLP with X-Scope-OrgID %s in one-tenant mode: %d %s; want it stored as the single tenant", org, code, firstLine(body))
				}
				if err := poll(20*time.Second, func() error {
					if code, body := h.c.get(h.api + "/api/traces/" + fmt.Sprintf("%x", tid[:])); code != 200 {
						return fmt.Errorf("%d %s", code, firstLine(body))
					}
					return nil
				}); err != nil {
					t.Errorf("trace sent with X-Scope-OrgID %s not readable in one-tenant mode: %v", org, err)
				}
			}
			_ = filepath.WalkDir(h.data, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "ghost") {
					t.Errorf("a directory for an invented tenant: %s", p)
				}
				return nil
			})
		}},
		{name: "bad-tenant-ids-one-tenant-mode", run: func(t *testing.T, h *hostileEnv) {
			for _, id := range []string{"../../escape3", "a/b", strings.Repeat("x", 151), "tën"} {
				raw, _ := ptraceotlp.NewExportRequestFromTraces(makeTrace(traceID("badid", 0, 0), "badid", nil)).MarshalProto()
				code, _, body := h.do(http.MethodPost, "http://"+envValue(h.env, "SPROUT_OTLP_HTTP_ENDPOINT")+"/v1/traces", "application/x-protobuf", bytes.NewReader(raw), map[string]string{"X-Scope-OrgID": id}, 10*time.Second)
				if code >= 500 {
					t.Errorf("X-Scope-OrgID %q in one-tenant mode: %d %s (a 5xx is retried for ever)", id, code, firstLine(body))
				}
			}
		}},
		{name: "cors-foreign-origin", run: func(t *testing.T, h *hostileEnv) {
			evil := map[string]string{"Origin": "http://evil.example"}
			for _, p := range []string{"/api/v1/query?query=1", "/prometheus/api/v1/query?query=1", "/loki/api/v1/labels", "/api/search/tags", "/api/v1/labels"} {
				_, hdr, _ := h.do(http.MethodGet, h.api+p, "", nil, evil, 10*time.Second)
				if v := hdr.Get("Access-Control-Allow-Origin"); v != "" {
					t.Errorf("GET %s from a foreign origin: Access-Control-Allow-Origin %q", p, v)
				}
			}
			pre := map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
			for _, p := range []string{"/api/v1/write", "/loki/api/v1/push", "/api/v1/rules/ns", "/api/v1/alerts"} {
				_, hdr, _ := h.do(http.MethodOptions, h.api+p, "", nil, pre, 10*time.Second)
				if v := hdr.Get("Access-Control-Allow-Origin"); v != "" {
					t.Errorf("preflight for POST %s from a foreign origin: Access-Control-Allow-Origin %q", p, v)
				}
			}
		}},
		{name: "cross-site-websocket", run: func(t *testing.T, h *hostileEnv) {
			conn, resp, err := websocket.DefaultDialer.Dial(h.wsURL(`{job="steady"}`, nil), h.wsHeader(map[string]string{"Origin": "http://evil.example"}))
			if err == nil {
				conn.Close()
				t.Fatal("a page on another origin opened the tail WebSocket")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site tail: %v; want 403", err)
			}
			// The same origin and clients that send none (logcli, Grafana's server) still tail.
			for _, o := range []string{h.api, ""} {
				hdr := map[string]string{}
				if o != "" {
					hdr["Origin"] = o
				}
				conn, _, err := websocket.DefaultDialer.Dial(h.wsURL(`{job="steady"}`, nil), h.wsHeader(hdr))
				if err != nil {
					t.Errorf("tail with Origin %q: %v", o, err)
					continue
				}
				conn.Close()
			}
		}},
		{name: "cross-site-text-plain-posts", run: func(t *testing.T, h *hostileEnv) {
			group := "name: csrf\nrules:\n- record: csrf:one\n  expr: vector(1)\n"
			amcfg := "alertmanager_config: |\n  route:\n    receiver: none\n  receivers:\n  - name: none\n"
			for _, c := range []struct{ path, body string }{
				{"/api/v1/rules/csrf", group}, {"/prometheus/config/v1/rules/csrf", group}, {"/loki/api/v1/rules/csrf", "name: csrf\nrules:\n- alert: A\n  expr: 'sum(count_over_time({job=\"x\"}[1m])) > 0'\n"},
				{"/api/v1/alerts", amcfg},
				{"/alertmanager/api/v2/silences", `{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"x","comment":"x"}`},
			} {
				// A page on another origin: refused as cross-origin (403) or for its content type (415).
				code, _, body := h.do(http.MethodPost, h.api+c.path, "text/plain", strings.NewReader(c.body), map[string]string{"Origin": "http://evil.example"}, 10*time.Second)
				if code != http.StatusForbidden && code != http.StatusUnsupportedMediaType {
					t.Errorf("cross-site text/plain POST %s: %d %s; want 403 or 415", c.path, code, firstLine(body))
				}
				// A form or a client that sends no Origin: the content type alone refuses it.
				code, _, body = h.do(http.MethodPost, h.api+c.path, "text/plain", strings.NewReader(c.body), nil, 10*time.Second)
				if code != http.StatusUnsupportedMediaType {
					t.Errorf("text/plain POST %s: %d %s; want 415", c.path, code, firstLine(body))
				}
			}
			if code, _, body := h.do(http.MethodPost, h.api+"/api/v1/rules/csrf", "application/yaml", strings.NewReader(group), nil, 10*time.Second); code/100 != 2 {
				t.Errorf("YAML POST of a rule group: %d %s", code, firstLine(body))
			}
		}},
		{name: "webhook-to-loopback", run: func(t *testing.T, h *hostileEnv) {
			var hits atomic.Int32
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })}
			go srv.Serve(ln)
			defer srv.Close()
			cfg := fmt.Sprintf("alertmanager_config: |\n  route:\n    receiver: hook\n    group_wait: 0s\n  receivers:\n  - name: hook\n    webhook_configs:\n    - url: http://%s/internal-only\n", ln.Addr())
			code, _, body := h.do(http.MethodPost, h.api+"/api/v1/alerts", "application/yaml", strings.NewReader(cfg), nil, 10*time.Second)
			if code != http.StatusBadRequest {
				t.Errorf("Alertmanager config with a loopback webhook: %d %s; want 400", code, firstLine(body))
			}
			alert := `[{"labels":{"alertname":"ssrf"},"startsAt":"` + time.Now().UTC().Format(time.RFC3339) + `"}]`
			h.do(http.MethodPost, h.api+"/alertmanager/api/v2/alerts", "application/json", strings.NewReader(alert), nil, 10*time.Second)
			time.Sleep(2 * time.Second)
			if n := hits.Load(); n > 0 {
				t.Errorf("the loopback listener received %d requests", n)
			}
		}},
	}
}

// TestHostileMultiTenant runs the tenant rows with multi-tenancy on, then restarts the server on the same data:
// no tenant's data or rules may stop the next start, and each tenant's state must come back as its own.
func TestHostileMultiTenant(t *testing.T) {
	mt := "--set=extensions.sprout_api.multitenancy_enabled=true"
	h := startHostile(t, &client{tenant: "steady"}, mt)
	as := func(tenant string) map[string]string { return map[string]string{"X-Scope-OrgID": tenant} }
	silence := func(tenant string) string {
		return fmt.Sprintf(`{"matchers":[{"name":"owner","value":%q,"isRegex":false}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"hostile","comment":"silence of %s"}`, tenant, tenant)
	}
	stateTenants := []string{"silences", "nflog", "blocks", "wal", "team-a"}
	runHostile(t, h, []hostileRow{
		{name: "dot-tenant-rule-upload", run: func(t *testing.T, h *hostileEnv) {
			group := "name: g\nrules:\n- record: r:one\n  expr: vector(1)\n"
			for _, id := range []string{".hidden", "...", ".", ".."} {
				code, _, body := h.do(http.MethodPost, h.api+"/api/v1/rules/ns", "application/yaml", strings.NewReader(group), as(id), 10*time.Second)
				wantClientError(t, "rule group for tenant "+id, code, body)
			}
		}},
		{name: "bad-tenant-ids", run: func(t *testing.T, h *hostileEnv) {
			raw, _ := ptraceotlp.NewExportRequestFromTraces(makeTrace(traceID("badid", 1, 0), "badid", nil)).MarshalProto()
			for _, id := range []string{"../../escape3", "a/b", strings.Repeat("x", 151), "tën", ".hidden"} {
				code, _, body := h.do(http.MethodPost, "http://"+envValue(h.env, "SPROUT_OTLP_HTTP_ENDPOINT")+"/v1/traces", "application/x-protobuf", bytes.NewReader(raw), as(id), 10*time.Second)
				wantClientError(t, "OTLP HTTP as tenant "+id, code, body)
				for _, p := range []string{"/api/v1/query?query=1", "/loki/api/v1/labels", "/api/search/tags"} {
					code, _, body := h.do(http.MethodGet, h.api+p, "", nil, as(id), 10*time.Second)
					wantClientError(t, p+" as tenant "+id, code, body)
				}
			}
		}},
		{name: "tenants-named-like-internal-state", once: true, run: func(t *testing.T, h *hostileEnv) {
			for i, id := range stateTenants {
				code, _, body := h.do(http.MethodPost, h.api+"/alertmanager/api/v2/silences", "application/json", strings.NewReader(silence(id)), as(id), 10*time.Second)
				if code != 200 {
					t.Errorf("silence for tenant %s: %d %s", id, code, firstLine(body))
				}
				tid := traceID("state", i, 0)
				raw, _ := ptraceotlp.NewExportRequestFromTraces(makeTrace(tid, "state-"+id, nil)).MarshalProto()
				code, _, body = h.do(http.MethodPost, "http://"+envValue(h.env, "SPROUT_OTLP_HTTP_ENDPOINT")+"/v1/traces", "application/x-protobuf", bytes.NewReader(raw), as(id), 10*time.Second)
				if code != 200 {
					t.Errorf("trace for tenant %s: %d %s", id, code, firstLine(body))
				}
			}
		}},
	})

	// Restart on the same data directory and ports: the server must start, and each tenant's silence and trace
	// must be its own.
	h.steady.stop()
	if err := h.p.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	p := startSprout(t, h.env, "--config", "sprout:all-in-one", mt)
	p.waitHTTP(h.api+"/ready", 90*time.Second)
	h.p = p
	for i, id := range stateTenants {
		code, _, body := h.do(http.MethodGet, h.api+"/alertmanager/api/v2/silences", "", nil, as(id), 10*time.Second)
		if code != 200 || !strings.Contains(body, "silence of "+id+`"`) || strings.Count(body, `"comment"`) != 1 {
			t.Errorf("after restart, tenant %s's silences: %d %s; want exactly its own", id, code, firstLine(body))
		}
		tid := traceID("state", i, 0)
		if err := poll(20*time.Second, func() error {
			code, _, body := h.do(http.MethodGet, h.api+"/api/traces/"+fmt.Sprintf("%x", tid[:]), "", nil, as(id), 10*time.Second)
			if code != 200 {
				return fmt.Errorf("%d %s", code, firstLine(body))
			}
			return nil
		}); err != nil {
			t.Errorf("after restart, tenant %s's trace: %v", id, err)
		}
	}
}

// TestHostileSoak is run by hand (SPROUT_SOAK=30m): the default config under the steady load, with the rows of
// TestHostileInput repeated for the whole duration. After a warm-up of a fifth of the run, the resident set
// must stay flat: its peak over the last half may exceed its peak over the first half (after warm-up) by at
// most 20 % or 64 MiB.
func TestHostileSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SPROUT_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("SPROUT_SOAK is not set (a duration, e.g. 30m)")
	}
	h := startHostile(t, &client{})
	h.bulkLines(t, "bulk", 50000, 3*time.Hour)
	rows := hostileDefaultRows()
	start := time.Now()
	type sample struct {
		at  time.Duration
		rss int64
	}
	var samples []sample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(5 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				samples = append(samples, sample{time.Since(start), rssKiB(h.pid())})
			}
		}
	}()
	rounds := 0
	for time.Since(start) < d && !t.Failed() {
		runHostile(t, h, rows)
		rounds++
	}
	close(stop)
	wg.Wait()
	warm := d / 5
	mid := warm + (d-warm)/2
	var first, last int64
	for _, s := range samples {
		switch {
		case s.at < warm:
		case s.at < mid:
			first = max(first, s.rss)
		default:
			last = max(last, s.rss)
		}
	}
	t.Logf("FIGURE hostile soak: %s, %d rounds of %d attacks; RSS peak %d MiB in the first half after warm-up, %d MiB in the last; load %s", d, rounds, len(rows), first/1024, last/1024, loadavg())
	if last > first*12/10 && last-first > 64*1024 {
		t.Errorf("resident memory grew over the soak: peak %d MiB, then %d MiB", first/1024, last/1024)
	}
}
