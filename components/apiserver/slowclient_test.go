package apiserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/memguard"
)

// TestTrickledBodyIsCut: a body sent slower than read_timeout fails the handler's read and the connection is
// closed; a request whose body arrived in time keeps its context for as long as its handler runs.
func TestTrickledBodyIsCut(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	handlerErr := make(chan error, 1)
	released := make(chan struct{})
	s := start(t, func(c *Config) { c.ReadTimeout = readTimeout })
	s.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		handlerErr <- err
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		}
	})
	s.HandleFunc("POST /long", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		// A long query: runs past read_timeout after its body was read; its context must stay alive.
		select {
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusInternalServerError)
		case <-released:
			_, _ = io.WriteString(w, "done")
		}
	})

	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Header announces 100 bytes; one is sent, the rest never comes.
	fmt.Fprintf(conn, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx")
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a bound for the test, not the measure
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	if err := <-handlerErr; err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the handler's read ended with %v, want a timeout", err)
	}

	// The long request: its context is alive well after read_timeout.
	done := make(chan string, 1)
	go func() {
		resp, err := http.Post("http://"+s.Addr()+"/long", "text/plain", strings.NewReader("q"))
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	select {
	case got := <-done:
		t.Fatalf("the long request ended early: %q", got)
	case <-time.After(4 * readTimeout):
	}
	close(released)
	if got := <-done; got != "done" {
		t.Fatalf("the long request answered %q, want done", got)
	}
}

// TestGovernorInContext: handlers on the port find the governor and the body limit in the request context.
func TestGovernorInContext(t *testing.T) {
	s := start(t, func(c *Config) { c.MaxRequestBodySize = 1 << 20 })
	s.HandleFunc("POST /push", func(w http.ResponseWriter, r *http.Request) {
		if memguard.FromContext(r.Context()) != s.Governor() || s.Governor() == nil {
			http.Error(w, "no governor", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, memguard.DecodedLimit(r.Context(), 32<<20))
	})
	resp, err := http.Post("http://"+s.Addr()+"/push", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != fmt.Sprint(1<<20) {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	ingest, query := s.Governor().Budget(memguard.Ingest), s.Governor().Budget(memguard.Query)
	if ingest.Heap <= query.Heap || ingest.InFlight <= query.InFlight || s.Governor().Limit() <= 0 {
		t.Fatalf("budgets ingest %+v query %+v limit %d", ingest, query, s.Governor().Limit())
	}
	if MemoryGovernor(host{ext: nil}) != nil {
		t.Fatal("a host without sprout_api has a governor")
	}
}

func TestValidateTimeoutsAndMemory(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"negative read_timeout", func(c *Config) { c.ReadTimeout = -time.Second }, "read_timeout"},
		{"negative write_timeout", func(c *Config) { c.WriteTimeout = -time.Second }, "write_timeout"},
		{"query above ingest", func(c *Config) { c.Memory.QueryLimitPercentage = 95 }, "memory.query_limit_percentage"},
		{"percentage over 100", func(c *Config) { c.Memory.IngestInflightPercentage = 150 }, "memory.ingest_inflight_percentage"},
		{"grpc recv size", func(c *Config) { c.GRPCServerMaxRecvMsgSize = 0 }, "grpc_server_max_recv_msg_size"},
		{"grpc send size", func(c *Config) { c.GRPCServerMaxSendMsgSize = -1 }, "grpc_server_max_send_msg_size"},
		{"grpc streams", func(c *Config) { c.GRPCServerMaxConcurrentStreams = 0 }, "grpc_server_max_concurrent_streams"},
		{"grpc off ignores its sizes", func(c *Config) { c.StreamOverHTTPEnabled = false; c.GRPCServerMaxRecvMsgSize = 0 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			tc.mod(cfg)
			err := cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
