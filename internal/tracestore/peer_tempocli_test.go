package tracestore

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// Tempo's own CLI against Sprout's API: tempo-cli decodes every answer into Tempo's protobuf types (JSON with
// gogo's jsonpb, which refuses unknown fields, or protobuf for trace by id), so a field Sprout adds or shapes
// differently makes it fail. Built from Tempo's public source; the binary is named by SPROUT_PEER_TEMPO_CLI.
//
//	SPROUT_PEER_TEMPO_CLI=/path/to/tempo-cli go test -count=1 -run PeerTempoCLI -v ./internal/tracestore/
//
// Not covered: tempo-cli's `query trace-id`, `query trace-summary` and `query search` read Tempo's own block
// format straight from the bucket, which Sprout does not write. The `--use-grpc` forms are in
// TestPeerTempoCLIGRPC.
func TestPeerTempoCLI(t *testing.T) {
	bin := testutil.PeerBinary(t, "SPROUT_PEER_TEMPO_CLI")
	s, srv := newAPI(t)
	now := time.Now().Truncate(time.Second)
	td, _ := peerFixture(now)
	if err := s.Push(context.Background(), tn, td); err != nil {
		t.Fatal(err)
	}
	hostport := strings.TrimPrefix(srv.URL, "http://")
	id := tid(3).String()
	start, end := now.Add(-10*time.Minute).UTC().Format(time.RFC3339), now.Add(time.Minute).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the output
	}{
		{"trace-id v2 (protobuf)", []string{"query", "api", "trace-id", srv.URL, id}, []string{`"spanId"`, `"name":"step-2"`}},
		{"trace-id v1 (protobuf)", []string{"query", "api", "trace-id", "--v1", srv.URL, id}, []string{`"name":"GET /checkout"`}},
		{"search", []string{"query", "api", "search", hostport, `{ resource.service.name = "backend" && status = error }`, start, end, "--limit", "3", "--spss", "2"},
			[]string{`"rootServiceName":"frontend"`, `"spanSets"`}},
		{"search structural", []string{"query", "api", "search", hostport, `{ kind = server } > { name = "step-2" }`, start, end}, []string{`"rootTraceName":"GET /checkout"`}},
		{"search-tags", []string{"query", "api", "search-tags", hostport}, []string{`"name":"resource"`, `"service.name"`}},
		{"search-tags with range", []string{"query", "api", "search-tags", hostport, start, end}, []string{`"http.status_code"`}},
		{"search-tag-values", []string{"query", "api", "search-tag-values", hostport, "resource.service.name"}, []string{`"value":"backend"`}},
		{"search-tag-values with query", []string{"query", "api", "search-tag-values", hostport, "name", "--query", `{ status = error }`}, []string{`"value":"step-3"`}},
		{"metrics range", []string{"query", "api", "metrics", hostport, `{ } | rate() by (resource.service.name)`, start, end}, []string{`"series"`, `"backend"`, `"exemplars"`, `"trace:id"`}},
		{"metrics quantile", []string{"query", "api", "metrics", hostport, `{ } | quantile_over_time(duration, .9)`, start, end}, []string{`"samples"`}},
		{"metrics instant", []string{"query", "api", "metrics", "--instant", hostport, `{ } | count_over_time() by (kind)`, start, end}, []string{`"series"`, `"value"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(bin, tc.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("tempo-cli %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
			text := string(out)
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %s:\n%.2000s", w, text)
				}
			}
		})
	}
}
