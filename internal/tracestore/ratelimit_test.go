package tracestore

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// TestIngestionRateLimit: within the burst a batch is taken; past the rate it is refused as retryable naming
// limits.ingestion_rate_limit_bytes (and nothing of it is stored); a batch larger than the burst is refused for
// good naming limits.ingestion_burst_size_bytes; 0 means unlimited.
func TestIngestionRateLimit(t *testing.T) {
	size := len(mustMarshal(t, batch(1, 1, 5)))
	for _, tc := range []struct {
		name        string
		rate, burst int64
		pushes      int
		wantLast    string // "" ok, "busy", "bad"
		wantLimit   string
		wantStoredN int // traces of the pushes found afterwards
	}{
		{name: "unlimited", pushes: 5, wantStoredN: 5},
		{name: "within the burst", rate: 1, burst: int64(3 * size), pushes: 3, wantStoredN: 3},
		{name: "over the rate", rate: 1, burst: int64(2 * size), pushes: 3, wantLast: "busy", wantLimit: "ingestion_rate_limit_bytes", wantStoredN: 2},
		{name: "batch larger than the burst", rate: 1, burst: int64(size / 2), pushes: 1, wantLast: "bad", wantLimit: "ingestion_burst_size_bytes", wantStoredN: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := testConfig(t.TempDir())
			cfg.Limits.IngestionRateLimitBytes, cfg.Limits.IngestionBurstSizeBytes = tc.rate, tc.burst
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, cfg)
			defer s.Close(ctx)
			var last error
			for i := 0; i < tc.pushes; i++ {
				last = s.Push(ctx, tn, batch(100+i, 1, 5))
				if last != nil && i < tc.pushes-1 {
					t.Fatalf("push %d: %v", i, last)
				}
			}
			ref, refused := refusal.As(last)
			switch tc.wantLast {
			case "":
				if last != nil {
					t.Fatalf("last push: %v", last)
				}
			case "busy":
				if !refused || !ref.Retryable() || ref.Limit != tc.wantLimit {
					t.Fatalf("last push: %v, want a retryable refusal naming %s", last, tc.wantLimit)
				}
			case "bad":
				if !refused || ref.Retryable() || !strings.Contains(last.Error(), tc.wantLimit) {
					t.Fatalf("last push: %v, want a permanent refusal naming %s", last, tc.wantLimit)
				}
			}
			found := 0
			for i := 0; i < tc.pushes; i++ {
				if countSpans(t, s, 100+i) > 0 {
					found++
				}
			}
			if found != tc.wantStoredN {
				t.Fatalf("%d of %d pushed traces stored, want %d", found, tc.pushes, tc.wantStoredN)
			}
		})
	}
	cfg := testConfig(t.TempDir())
	cfg.Limits.IngestionRateLimitBytes = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ingestion_rate_limit_bytes") {
		t.Fatalf("negative rate: %v", err)
	}
}

func mustMarshal(t *testing.T, td ptrace.Traces) []byte {
	t.Helper()
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
