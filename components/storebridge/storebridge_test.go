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
	"go.uber.org/zap/zaptest/observer"
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
	if h.Get() != nil {
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
	if h.Get() != nil {
		t.Fatal("a store after a failed open")
	}

	ext, st := startedExt(t)
	if got := ext.h.Get(); got != st || st.started != 1 {
		t.Fatalf("Get = %v; started %d", got, st.started)
	}
	// Readers and Shutdown at once: every read is under the lock (run with -race).
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if s := ext.h.Get(); s != nil && s != st {
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
	if ext.h.Get() != nil {
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
			x := NewExporter[*fakeStore](NewExporterConfig(typ), zap.NewNop())
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
	x := NewExporter[*fakeStore](NewExporterConfig(typ), zap.NewNop())
	if err := x.Start(context.Background(), host{extID: ext}); err != nil {
		t.Fatal(err)
	}
	var next error // what the store's write answers
	push := Consume(x, func(_ *fakeStore, _ context.Context, tenantID string, batch string) error {
		if tenantID != tenant.Default || batch != "batch" {
			t.Errorf("wrote %q for tenant %q", batch, tenantID)
		}
		return next
	})
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
			next = tc.err
			err := push(context.Background(), "batch")
			if status.Code(err) != tc.code || consumererror.IsPermanent(err) != tc.permanent {
				t.Fatalf("Push = %v (%v, permanent %v), want %v, permanent %v", err, status.Code(err), consumererror.IsPermanent(err), tc.code, tc.permanent)
			}
		})
	}
	_ = ext.h.Shutdown(func(*fakeStore) error { return nil })
	next = errors.New("written after Shutdown")
	err := push(context.Background(), "batch")
	if err == nil || err == next || consumererror.IsPermanent(err) {
		t.Fatalf("Push after Shutdown = %v, want a retryable error", err)
	}
	if st.maxTenants != 0 {
		t.Errorf("max_tenants %d without a sprout_api, want 0", st.maxTenants)
	}
}

// TestUnmarshalAlias: an exporter's earlier spelling of store sets it, the rest of the configuration is read
// as usual, and the exporter warns at start; both spellings at once are refused.
func TestUnmarshalAlias(t *testing.T) {
	type config struct {
		ExporterConfig `mapstructure:",squash"`
		Other          int `mapstructure:"other"`
	}
	for _, tc := range []struct {
		name    string
		in      map[string]any
		want    component.ID
		warned  bool
		wantErr string
	}{
		{"old spelling", map[string]any{"old_store": "sprout_fake/a", "other": 1}, component.MustNewIDWithName("sprout_fake", "a"), true, ""},
		{"new spelling", map[string]any{"store": "sprout_fake/b", "other": 1}, component.MustNewIDWithName("sprout_fake", "b"), false, ""},
		{"neither", map[string]any{"other": 1}, extID, false, ""},
		{"both", map[string]any{"store": "sprout_fake", "old_store": "sprout_fake"}, extID, false, "old_store: deprecated spelling of store; set only store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config{ExporterConfig: NewExporterConfig(typ)}
			err := cfg.UnmarshalAlias(confmap.NewFromStringMap(tc.in), "old_store", cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || cfg.Store != tc.want || cfg.Other != 1 {
				t.Fatalf("%+v, %v", cfg, err)
			}
			core, logs := observer.New(zap.WarnLevel)
			if err := NewExporter[*fakeStore](cfg.ExporterConfig, zap.New(core)).Start(context.Background(), host{cfg.Store: &fakeExt{}}); err != nil {
				t.Fatal(err)
			}
			if warned := logs.FilterMessage("The sprout_fake exporter's key old_store is deprecated; call it store").Len() == 1; warned != tc.warned {
				t.Errorf("warned %v, want %v", warned, tc.warned)
			}
		})
	}
}

func TestExporterConfigValidate(t *testing.T) {
	cfg := NewExporterConfig(typ)
	if err := cfg.Validate(); err != nil || cfg.Store != extID {
		t.Fatalf("default %v: %v", cfg.Store, err)
	}
	cfg.Store = component.MustNewIDWithName("sprout_other", "x")
	if err := cfg.Validate(); err == nil || err.Error() != `store: "sprout_other/x" is not a sprout_fake extension` {
		t.Fatalf("another type: %v", err)
	}
}
