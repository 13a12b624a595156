package tracestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/internal/tenant"
)

func spansOf(t *testing.T, s *Store, id string, trace int) int {
	t.Helper()
	td, err := s.TraceByID(context.Background(), id, tid(trace), TimeRange{})
	if errors.Is(err, ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return td.SpanCount()
}

// TestEarlierLayoutMoves: WALs of the layout before <data_dir>/tenants (<data_dir>/<id>/wal, tenant "blocks"'
// inside the filesystem bucket's directory, a tenant named "tenants") move at open, and every trace answers;
// a second open moves nothing.
func TestEarlierLayoutMoves(t *testing.T) {
	dir := t.TempDir()
	ids := []string{"team-a", "blocks", "tenants", "wal"}
	s := openStore(t, testConfig(dir))
	for i, id := range ids {
		if err := s.Push(context.Background(), id, batch(i+1, 1, 2)); err != nil {
			t.Fatal(err)
		}
	}
	s.closeNoFlush()
	// Rebuild the earlier layout from the new one.
	old := t.TempDir()
	for _, id := range ids {
		if err := os.MkdirAll(filepath.Join(old, id), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, tenant.LayoutDir, id, "wal"), filepath.Join(old, id, "wal")); err != nil {
			t.Fatal(err)
		}
	}
	// The bucket tenant "tmp" of the earlier layout: <data_dir>/blocks/tmp/blocks/..., not tenant "blocks"'
	// block scratch.
	if err := os.MkdirAll(filepath.Join(old, "blocks", "tmp", "blocks"), 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s2 := openStore(t, testConfig(old))
		for i, id := range ids {
			if n := spansOf(t, s2, id, i+1); n != 2 {
				t.Errorf("tenant %s: trace has %d spans after the move, want 2", id, n)
			}
		}
		s2.closeNoFlush()
		for _, id := range ids {
			if _, err := os.Stat(filepath.Join(old, tenant.LayoutDir, id, "wal")); err != nil {
				t.Errorf("tenant %s: WAL not under tenants/: %v", id, err)
			}
		}
		if _, err := os.Stat(filepath.Join(old, "blocks", "tmp", "blocks")); err != nil {
			t.Errorf("the bucket's own tenant directory moved: %v", err)
		}
	}
}

// TestTenantDoorAndLimit: malformed ids are InvalidArgument and bad data; a new tenant beyond max_tenants is
// ResourceExhausted, known tenants go on; tenants on disk open at start whatever the limit.
func TestTenantDoorAndLimit(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testConfig(dir))
	for _, bad := range []string{".hidden", "...", "../../escape3", "a/b", strings.Repeat("x", 151), "tën"} {
		err := s.Push(context.Background(), bad, batch(1, 1, 1))
		if status.Code(err) != codes.InvalidArgument || !permanent(err) {
			t.Errorf("Push(%q) = %v, want InvalidArgument, not retryable", bad, err)
		}
	}
	s.SetMaxTenants(2)
	for _, id := range []string{"a", "b", "a"} {
		if err := s.Push(context.Background(), id, batch(1, 1, 1)); err != nil {
			t.Fatalf("Push(%q) = %v", id, err)
		}
	}
	err := s.Push(context.Background(), "c", batch(1, 1, 1))
	if status.Code(err) != codes.ResourceExhausted || !permanent(err) || !strings.Contains(err.Error(), "max_tenants") {
		t.Fatalf("third tenant: %v", err)
	}
	s.closeNoFlush()
	s2 := openStore(t, testConfig(dir))
	defer s2.closeNoFlush()
	s2.SetMaxTenants(1)
	if n := spansOf(t, s2, "b", 1); n != 1 {
		t.Errorf("tenant b after a restart under a lower limit: %d spans", n)
	}
}

// TestStartSkipsUnreadableTenant: one tenant whose WAL cannot be read does not keep the store from opening.
func TestStartSkipsUnreadableTenant(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testConfig(dir))
	for i, id := range []string{"good", "bad"} {
		if err := s.Push(context.Background(), id, batch(i+1, 1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	s.closeNoFlush()
	// A WAL that is a file: listing it fails.
	wal := filepath.Join(dir, tenant.LayoutDir, "bad", "wal")
	if err := os.RemoveAll(wal); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wal, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, testConfig(dir))
	defer s2.closeNoFlush()
	if n := spansOf(t, s2, "good", 1); n != 1 {
		t.Errorf("good tenant: %d spans", n)
	}
	if got := testutilCounter(t, s2, "bad"); got != 1 {
		t.Errorf("sprout_traces_tenant_load_failures_total{tenant=bad} = %v, want 1", got)
	}
}

func testutilCounter(t *testing.T, s *Store, id string) float64 {
	t.Helper()
	m := &dto.Metric{}
	if err := s.m.tenantLoadFailures.WithLabelValues(id).Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
