package logstore

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/memguard"
)

// guarded serves the env's API as sprout_api does: the governor and a 20 MiB body limit in the context.
func guarded(e *env, g *memguard.Governor) http.Handler {
	h := e.srv.Config.Handler
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(memguard.NewContext(r.Context(), g, 20<<20)))
	})
}

func serve(h http.Handler, ctype string, body []byte) (int, http.Header, string, uint64) {
	req := httptest.NewRequest(http.MethodPost, "/loki/api/v1/push", bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	rec := httptest.NewRecorder()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h.ServeHTTP(rec, req)
	runtime.ReadMemStats(&after)
	return rec.Code, rec.Header(), rec.Body.String(), after.TotalAlloc - before.TotalAlloc
}

// TestPushSnappyBomb: a protobuf push whose snappy header declares more than the body limit is refused from
// the header, before anything is allocated for it (it used to decode up to 100 MiB).
func TestPushSnappyBomb(t *testing.T) {
	e := newEnv(t, nil)
	g := memguard.New(memguard.Budget{InFlight: 64 << 20}, memguard.Budget{}, memguard.Options{})
	h := guarded(e, g)
	bomb := snappy.Encode(nil, make([]byte, 100<<20)) // 4.9 MB on the wire
	for i := 0; i < 3; i++ {
		code, _, body, alloc := serve(h, "application/x-protobuf", bomb)
		if code != http.StatusBadRequest || !strings.Contains(body, "max_request_body_size") {
			t.Fatalf("status %d %q, want 400 naming the limit", code, body)
		}
		// Only the header is read: neither the body nor its decoding is held in memory.
		if alloc > 1<<20 {
			t.Fatalf("refusing the bomb allocated %d MiB", alloc>>20)
		}
	}
	if g.InFlight(memguard.Ingest) != 0 {
		t.Fatalf("%d bytes still reserved", g.InFlight(memguard.Ingest))
	}
	// A push within the limit is decoded and stored.
	ok := EncodePushProto([]PushStream{{Labels: labels.FromStrings("app", "ok"), Entries: []logql.Entry{{Timestamp: testNow.UnixNano(), Line: "hello"}}}})
	if code, _, body, _ := serve(h, "application/x-protobuf", ok); code != http.StatusNoContent {
		t.Fatalf("a normal push: %d %q", code, body)
	}
}

// TestPushSnappyBombOverTCP: refused from its header, the rest of a bomb is never read; a real client still
// gets the 400 and its message (the server answers "Connection: close" and shuts the connection down
// gracefully), and the next request on a new connection is served.
func TestPushSnappyBombOverTCP(t *testing.T) {
	e := newEnv(t, nil)
	g := memguard.New(memguard.Budget{InFlight: 64 << 20}, memguard.Budget{}, memguard.Options{})
	srv := httptest.NewServer(guarded(e, g))
	defer srv.Close()
	bomb := snappy.Encode(nil, make([]byte, 100<<20))
	for _, chunked := range []bool{false, true} {
		for i := 0; i < 5; i++ {
			var body io.Reader = bytes.NewReader(bomb)
			if chunked {
				body = io.MultiReader(body) // no length: sent chunked
			}
			resp, err := http.Post(srv.URL+"/loki/api/v1/push", "application/x-protobuf", body)
			if err != nil {
				t.Fatalf("chunked=%v: the client got no answer: %v", chunked, err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "max_request_body_size") {
				t.Fatalf("chunked=%v: %d %q, want 400 naming the limit", chunked, resp.StatusCode, msg)
			}
		}
	}
	ok := EncodePushProto([]PushStream{{Labels: labels.FromStrings("app", "ok"), Entries: []logql.Entry{{Timestamp: testNow.UnixNano(), Line: "hello"}}}})
	resp, err := http.Post(srv.URL+"/loki/api/v1/push", "application/x-protobuf", bytes.NewReader(ok))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("a normal push after the bombs: %d", resp.StatusCode)
	}
}

// TestPushRefusedWhenBudgetFull: with the ingest budget taken, a push is refused with a retryable 503 and
// Retry-After before its body is decoded.
func TestPushRefusedWhenBudgetFull(t *testing.T) {
	e := newEnv(t, nil)
	g := memguard.New(memguard.Budget{InFlight: 1 << 20}, memguard.Budget{}, memguard.Options{})
	h := guarded(e, g)
	held := g.Ticket(memguard.Ingest)
	if err := held.Grow(1 << 20); err != nil {
		t.Fatal(err)
	}
	push := EncodePushProto([]PushStream{{Labels: labels.FromStrings("app", "x"), Entries: []logql.Entry{{Timestamp: testNow.UnixNano(), Line: strings.Repeat("y", 1000)}}}})
	code, hdr, body, _ := serve(h, "application/x-protobuf", push)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(body, "sprout_api.memory.ingest_inflight_percentage") {
		t.Fatalf("status %d Retry-After %q %q", code, hdr.Get("Retry-After"), body)
	}
	held.Release()
	if code, _, body, _ := serve(h, "application/x-protobuf", push); code != http.StatusNoContent {
		t.Fatalf("after release: %d %q", code, body)
	}
	if g.InFlight(memguard.Ingest) != 0 {
		t.Fatalf("%d bytes still reserved", g.InFlight(memguard.Ingest))
	}
}

// TestTailRefusesLargeFrame: a 1 GiB WebSocket frame is refused from its header (close 1009) instead of being
// read whole.
func TestTailRefusesLargeFrame(t *testing.T) {
	e := newEnv(t, nil)
	u := "ws" + strings.TrimPrefix(e.srv.URL, "http") + `/loki/api/v1/tail?query={app="tail"}`
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var first map[string]any
	if err := conn.ReadJSON(&first); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// A masked binary frame header announcing 1 GiB, then 64 KiB of it.
	hdr := []byte{0x82, 0x80 | 127}
	hdr = binary.BigEndian.AppendUint64(hdr, 1<<30)
	hdr = append(hdr, 1, 2, 3, 4)
	raw := conn.NetConn()
	if _, err := raw.Write(append(hdr, make([]byte, 64<<10)...)); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err = conn.ReadMessage(); err != nil {
			break
		}
	}
	runtime.ReadMemStats(&after)
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("the server ended the stream with %v, want close 1009 (message too big)", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 8<<20 {
		t.Fatalf("refusing the frame allocated %d MiB", d>>20)
	}
}
