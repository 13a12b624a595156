package metricstore

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestTenantDoorAndLimit: malformed ids are InvalidArgument (HTTP 400), a new tenant beyond max_tenants is
// ResourceExhausted (HTTP 400) naming the limit, known tenants go on, and tenants on disk open at start
// whatever the limit.
func TestTenantDoorAndLimit(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	for _, bad := range []string{".hidden", "...", "..", "../../escape3", "a/b", strings.Repeat("x", 151), "tën"} {
		if _, err := s.Tenant(context.Background(), bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Tenant(%q) = %v, want InvalidArgument", bad, err)
		}
	}
	s.SetMaxTenants(2)
	for _, id := range []string{"a", "b", "a"} {
		if _, err := s.Tenant(context.Background(), id); err != nil {
			t.Fatalf("Tenant(%q) = %v", id, err)
		}
	}
	_, err := s.Tenant(context.Background(), "c")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max_tenants") {
		t.Fatalf("third tenant: %v", err)
	}
	srv := httptest.NewServer(s.Handler(func(_ http.ResponseWriter, r *http.Request) (string, bool) {
		return r.Header.Get("X-Scope-OrgID"), true
	}))
	defer srv.Close()
	for id, want := range map[string]int{"c": 400, ".hidden": 400, "a": 200} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/query?query=1", nil)
		req.Header.Set("X-Scope-OrgID", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("query as %q: %d, want %d", id, resp.StatusCode, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A tenant that cannot open (its WAL is a file) does not keep the others from starting.
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, "b", "wal")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "b", "wal"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, cfg)
	if got := s2.Tenants(); len(got) != 1 || got[0] != "a" {
		t.Errorf("tenants after a restart with b unreadable: %v, want [a]", got)
	}
}

// TestStartSkipsUnreadableTenant: one tenant whose TSDB cannot be opened does not keep the store from starting;
// it is counted in sprout_metrics_tenant_load_failures_total and every other tenant opens.
func TestStartSkipsUnreadableTenant(t *testing.T) {
	cfg := testConfig(t)
	s, err := Open(context.Background(), cfg, Options{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"good", "bad"} {
		if _, err := s.Tenant(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A WAL that is a file: the TSDB cannot open.
	wal := filepath.Join(cfg.DataDir, "bad", "wal")
	if err := os.RemoveAll(wal); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wal, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s2, err := Open(context.Background(), cfg, Options{Logger: zap.NewNop(), Registerer: reg})
	if err != nil {
		t.Fatalf("one unreadable tenant kept the store from opening: %v", err)
	}
	defer s2.Close()
	if got := s2.Tenants(); len(got) != 1 || got[0] != "good" {
		t.Errorf("tenants open after start: %v, want [good]", got)
	}
	if got := promtestutil.ToFloat64(s2.tenantLoadFailures.WithLabelValues("bad")); got != 1 {
		t.Errorf("sprout_metrics_tenant_load_failures_total{tenant=bad} = %v, want 1", got)
	}
}

// TestAPIMadeAtFirstQuery: a tenant only written to through remote write does not make Prometheus' API (which
// renders its OpenAPI documents, about 0.1 s of CPU); its first query makes it and is answered.
func TestAPIMadeAtFirstQuery(t *testing.T) {
	s := openStore(t, testConfig(t))
	srv := httptest.NewServer(s.Handler(func(_ http.ResponseWriter, r *http.Request) (string, bool) {
		return r.Header.Get("X-Scope-OrgID"), true
	}))
	defer srv.Close()
	now := time.Now().UnixMilli()
	body := encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: series("up", "job", "api"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}},
	}})
	if code, msg := post(t, srv.URL+"/api/v1/write", contentTypeV1, body, "X-Scope-OrgID", "w"); code != http.StatusNoContent {
		t.Fatalf("remote write: %d %s", code, msg)
	}
	tn, err := s.Tenant(context.Background(), "w")
	if err != nil {
		t.Fatal(err)
	}
	if tn.router != nil {
		t.Fatal("a tenant only written to made Prometheus' API")
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/query?query=up&time="+strconv.FormatInt(now/1000+1, 10), nil)
	req.Header.Set("X-Scope-OrgID", "w")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"job":"api"`) {
		t.Fatalf("first query: %d %s", resp.StatusCode, b)
	}
}
