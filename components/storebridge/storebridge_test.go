package storebridge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
)

type fakeStore struct {
	limiter    *querylimit.Limiter
	maxTenants int
	started    int
	closed     int
}

func (s *fakeStore) SetMaxTenants(n int)               { s.maxTenants = n }
func (s *fakeStore) QueryLimiter() *querylimit.Limiter { return s.limiter }
func (s *fakeStore) Start()                            { s.started++ }

// fakeExt is a store extension as the three components write it.
type fakeExt struct {
	component.StartFunc
	component.ShutdownFunc
	h Holder[*fakeStore]
}

func (e *fakeExt) Holder() *Holder[*fakeStore] { return &e.h }

// otherExt is an extension of another store type.
type otherExt struct {
	component.StartFunc
	component.ShutdownFunc
}

type host map[component.ID]component.Component

func (h host) GetExtensions() map[component.ID]component.Component { return h }

var (
	typ   = component.MustNewType("sprout_fake")
	extID = component.NewID(typ)
)

func startedExt(t *testing.T) (*fakeExt, *fakeStore) {
	t.Helper()
	ext := &fakeExt{}
	st := &fakeStore{limiter: querylimit.New(querylimit.Config{})}
	got, srv, err := ext.h.Start(host{}, component.MustNewID("sprout_api"), zap.NewNop(), "fake", func(*apiserver.Server) (*fakeStore, error) { return st, nil })
	if err != nil || got != st || srv != nil {
		t.Fatalf("Start = %v, %v, %v", got, srv, err)
	}
	return ext, st
}

func TestHolder(t *testing.T) {
	var h Holder[*fakeStore]
	if _, ok := h.Get(); ok {
		t.Fatal("a store before Start")
	}
	if err := h.Shutdown(func(*fakeStore) error { t.Fatal("closed a store never opened"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Start(host{}, component.MustNewID("sprout_api"), zap.NewNop(), "fake", func(*apiserver.Server) (*fakeStore, error) {
		return nil, errors.New("disk on fire")
	}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("a failed open: %v", err)
	}
	if _, ok := h.Get(); ok {
		t.Fatal("a store after a failed open")
	}

	ext, st := startedExt(t)
	if got, ok := ext.h.Get(); !ok || got != st || st.started != 1 {
		t.Fatalf("Get = %v, %v; started %d", got, ok, st.started)
	}
	// Readers and Shutdown at once: every read is under the lock (run with -race).
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if s, ok := ext.h.Get(); ok && s != st {
					t.Error("another store")
				}
			}
		}()
	}
	closeFn := func(s *fakeStore) error { s.closed++; return errors.New("flush failed") }
	if err := ext.h.Shutdown(closeFn); err == nil || err.Error() != "flush failed" {
		t.Fatalf("Shutdown = %v, want the close error", err)
	}
	wg.Wait()
	if err := ext.h.Shutdown(closeFn); err != nil || st.closed != 1 {
		t.Fatalf("second Shutdown = %v, closed %d times", err, st.closed)
	}
	if _, ok := ext.h.Get(); ok {
		t.Fatal("a store after Shutdown")
	}
}

func TestExporterStart(t *testing.T) {
	ext, _ := startedExt(t)
	for _, tc := range []struct {
		name string
		h    host
		want string
	}{
		{"found", host{extID: ext}, ""},
		{"not configured", host{}, `store: extension "sprout_fake" is not configured`},
		{"another kind", host{extID: &otherExt{}}, `store: extension "sprout_fake" is not a sprout_fake extension`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := NewExporter[*fakeStore](typ, ExporterConfig{Store: extID})
			err := x.Start(context.Background(), tc.h)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Start = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestExporterPush: the batch reaches the store for its tenant, and the store's errors reach the pipeline as
// refusal.Consumer shapes them.
func TestExporterPush(t *testing.T) {
	ext, st := startedExt(t)
	x := NewExporter[*fakeStore](typ, ExporterConfig{Store: extID})
	if err := x.Start(context.Background(), host{extID: ext}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		err       error
		code      codes.Code
		permanent bool
	}{
		{"written", nil, codes.OK, false},
		{"bad data", refusal.New(refusal.Invalid, "", "malformed"), codes.InvalidArgument, true},
		{"over a limit", refusal.New(refusal.OverLimit, "max_bytes_per_trace", "too big"), codes.InvalidArgument, true},
		{"rate", refusal.New(refusal.RateLimited, "ingestion_rate", "slow down"), codes.ResourceExhausted, false},
		{"disk", errors.New("disk full"), codes.Unknown, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := x.Push(context.Background(), func(s *fakeStore, tenantID string) error {
				if tenantID != tenant.Default {
					t.Errorf("tenant %q", tenantID)
				}
				return tc.err
			})
			if status.Code(err) != tc.code || consumererror.IsPermanent(err) != tc.permanent {
				t.Fatalf("Push = %v (%v, permanent %v), want %v, permanent %v", err, status.Code(err), consumererror.IsPermanent(err), tc.code, tc.permanent)
			}
		})
	}
	_ = ext.h.Shutdown(func(*fakeStore) error { return nil })
	err := x.Push(context.Background(), func(*fakeStore, string) error { t.Fatal("written after Shutdown"); return nil })
	if err == nil || consumererror.IsPermanent(err) {
		t.Fatalf("Push after Shutdown = %v, want a retryable error", err)
	}
	if st.maxTenants != 0 {
		t.Errorf("max_tenants %d without a sprout_api, want 0", st.maxTenants)
	}
}

func TestAlias(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      map[string]any
		want    string // the store key's value after
		used    bool
		wantErr string
	}{
		{"old spelling", map[string]any{"metrics_store": "sprout_metrics/a", "other": 1}, "sprout_metrics/a", true, ""},
		{"new spelling", map[string]any{"store": "sprout_metrics/b"}, "sprout_metrics/b", false, ""},
		{"neither", map[string]any{"other": 1}, "", false, ""},
		{"both", map[string]any{"store": "sprout_metrics", "metrics_store": "sprout_metrics"}, "", false, "metrics_store: deprecated spelling of store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, used, err := Alias(confmap.NewFromStringMap(tc.in), "metrics_store")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || used != tc.used {
				t.Fatalf("used %v, err %v", used, err)
			}
			if got, _ := conf.Get(Key).(string); got != tc.want || conf.IsSet("metrics_store") {
				t.Fatalf("store = %q, conf %v", got, conf.ToStringMap())
			}
		})
	}
}
