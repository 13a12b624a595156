package tracestore

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sprout-otel/sprout/internal/grpcwire"
	"github.com/sprout-otel/sprout/internal/testutil"
	"github.com/sprout-otel/sprout/internal/tracestore/tempopb"
)

// TestPeerTempoCLIGRPC runs tempo-cli's --use-grpc commands against Sprout's streaming API, served as the API
// port serves it (plaintext HTTP/2 next to HTTP/1.1, gRPC calls through grpc.Server.ServeHTTP). tempo-cli
// decodes each streamed message with Tempo's own generated types and prints it as JSON, so a field number or
// wire type Sprout gets wrong shows up as a decode error or a missing field.
//
//	SPROUT_PEER_TEMPO_CLI=/path/to/tempo-cli go test -count=1 -run PeerTempoCLIGRPC -v ./internal/tracestore/
func TestPeerTempoCLIGRPC(t *testing.T) {
	bin := testutil.PeerBinary(t, "SPROUT_PEER_TEMPO_CLI")
	s := openStore(t, testConfig(t.TempDir()))
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	now := time.Now().Truncate(time.Second)
	td, _ := peerFixture(now)
	if err := s.Push(context.Background(), tn, td); err != nil {
		t.Fatal(err)
	}
	if err := s.CutAndFlush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	hostport := serveGRPCH2C(t, s)
	start, end := now.Add(-10*time.Minute).UTC().Format(time.RFC3339), now.Add(time.Minute).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the output
	}{
		{"search", []string{"query", "api", "search", hostport, `{ resource.service.name = "backend" && status = error }`, start, end, "--limit", "3", "--spss", "2", "--use-grpc"},
			[]string{`"rootServiceName":"frontend"`, `"spanSets"`, `"completedJobs"`, `"inspectedTraces"`}},
		{"search select", []string{"query", "api", "search", hostport, `{ resource.service.name = "backend" } | select(span.step)`, start, end, "--use-grpc"},
			[]string{`"key":"step"`, `"stringValue"`}},
		{"search-tags", []string{"query", "api", "search-tags", hostport, "--use-grpc"}, []string{`"name":"resource"`, `"service.name"`, `"intrinsic"`}},
		{"search-tag-values", []string{"query", "api", "search-tag-values", hostport, "resource.service.name", "--use-grpc"}, []string{`"value":"backend"`, `"type":"string"`}},
		{"search-tag-values with query", []string{"query", "api", "search-tag-values", hostport, "name", "--query", `{ status = error }`, "--use-grpc"}, []string{`"value":"step-3"`}},
		{"metrics range", []string{"query", "api", "metrics", hostport, `{ } | rate() by (resource.service.name)`, start, end, "--use-grpc"},
			[]string{`"series"`, `"backend"`, `"samples"`, `"timestampMs"`}},
		{"metrics instant", []string{"query", "api", "metrics", "--instant", hostport, `{ } | count_over_time() by (kind)`, start, end, "--use-grpc"},
			[]string{`"series"`, `"value"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(bin, tc.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("tempo-cli %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
			text := string(out)
			if os.Getenv("SPROUT_PEER_VERBOSE") != "" {
				t.Logf("%s", text)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %s:\n%.3000s", w, text)
				}
			}
		})
	}
	// A bad query: tempo-cli exits with the gRPC status.
	out, err := exec.Command(bin, "query", "api", "search", hostport, `{ .a = }`, start, end, "--use-grpc").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "InvalidArgument") {
		t.Fatalf("bad query: %v\n%s", err, out)
	}
}

// serveGRPCH2C serves the store's GRPCAPI as the API port does: plaintext HTTP/2 next to HTTP/1.1, gRPC calls
// through grpc.Server.ServeHTTP. It returns host:port.
func serveGRPCH2C(t *testing.T, s *Store) string {
	t.Helper()
	g := grpc.NewServer(grpc.ForceServerCodecV2(grpcwire.Codec{}))
	g.RegisterService(&tempopb.ServiceDesc, &GRPCAPI{Store: s, Tenant: func(context.Context) (string, error) { return tn, nil }})
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}
