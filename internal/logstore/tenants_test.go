package logstore

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/refusal"
)

// TestPushTenantDoorAndLimit: malformed ids are 400 carrying InvalidArgument, a new tenant beyond max_tenants
// is 400 carrying ResourceExhausted and naming the limit (not 429: retrying cannot help), known tenants go on.
func TestPushTenantDoorAndLimit(t *testing.T) {
	e := newEnv(t, nil)
	push := func(id string) error {
		return e.store.Push(context.Background(), id, []PushStream{{Labels: labels.FromStrings("job", "j"),
			Entries: []logql.Entry{{Timestamp: testNow.UnixNano(), Line: "line of " + id}}}})
	}
	check := func(id string, code codes.Code, msg string) {
		t.Helper()
		err := push(id)
		pe, ok := refusal.As(err)
		if !ok || pe.HTTPStatus() != http.StatusBadRequest || pe.Retryable() || status.Code(err) != code || !strings.Contains(err.Error(), msg) {
			t.Errorf("Push(%q) = %v, want 400 with %v naming %q", id, err, code, msg)
		}
	}
	for _, bad := range []string{".hidden", "...", "../../escape3", "a/b", strings.Repeat("x", 151), "tën"} {
		check(bad, codes.InvalidArgument, "tenant id")
	}
	e.store.SetMaxTenants(2)
	for _, id := range []string{"a", "b", "a"} {
		if err := push(id); err != nil {
			t.Fatalf("Push(%q) = %v", id, err)
		}
	}
	check("c", codes.ResourceExhausted, "max_tenants")
}

// TestStartSkipsUnreadableIndex: a tenant's chunk index file that cannot be read does not keep the store from
// starting; it is counted in sprout_logs_index_load_failures_total and every other tenant's chunks load.
func TestStartSkipsUnreadableIndex(t *testing.T) {
	e := newEnv(t, nil)
	for _, id := range []string{"good", "bad"} {
		if err := e.store.Push(context.Background(), id, []PushStream{{Labels: labels.FromStrings("job", "j"),
			Entries: []logql.Entry{{Timestamp: testNow.UnixNano(), Line: "line of " + id}}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	e.close()
	files, err := filepath.Glob(filepath.Join(e.bcfg.Filesystem.Dir, "bad", "index", "*.json*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("bad tenant's index files: %v %v", files, err)
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte("{not json"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The WAL would bring the lines back on its own: without it, only the bucket's index can.
	if err := os.RemoveAll(e.cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	e.open()
	defer e.close()
	if got := promtestutil.ToFloat64(e.store.m.indexLoadFailures.WithLabelValues("bad")); got != float64(len(files)) {
		t.Errorf("sprout_logs_index_load_failures_total{tenant=bad} = %v, want %d", got, len(files))
	}
	_, streams := e.queryRange(`{job="j"}`, "X-Scope-OrgID", "good")
	if len(streams) != 1 || len(streams[0].Values) != 1 {
		t.Errorf("good tenant after the restart: %v", streams)
	}
}
