package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

func TestProbe(t *testing.T) {
	handler := func(code int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code); _, _ = io.WriteString(w, body) }
	}
	ready := httptest.NewServer(handler(http.StatusOK, "ready\n"))
	defer ready.Close()
	notReady := httptest.NewServer(handler(http.StatusServiceUnavailable, "not ready: traces: replaying WAL"))
	defer notReady.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()

	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{"ready", ready.URL + "/ready", ""},
		{"not ready", notReady.URL + "/ready", "503 Service Unavailable: not ready: traces: replaying WAL"},
		{"nothing listening", fmt.Sprintf("http://127.0.0.1:%d/ready", testutil.FreePort(t)), "connection refused"},
		{"hangs", hang.URL, "deadline exceeded"},
		{"bad url", "http://[::1", "missing ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := probe(context.Background(), tt.url, 500*time.Millisecond, &out)
			if tt.wantErr == "" {
				if err != nil || !strings.Contains(out.String(), "200 OK") {
					t.Fatalf("err %v, output %q", err, out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
