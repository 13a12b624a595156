package tracestore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// A query whose context is cancelled (the client left) stops and returns the context's error, for search and
// for TraceQL metrics alike.
func TestQueriesStopWhenCancelled(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(context.Background())
	if err := s.Push(context.Background(), tn, batch(1, 50, 3)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Search(ctx, tn, SearchRequest{Query: mustQuery(t, `{ }`)}); !errors.Is(err, context.Canceled) {
		t.Errorf("search: err = %v, want context.Canceled", err)
	}
	_, err := s.QueryRange(ctx, tn, MetricsRequest{Query: mustQuery(t, `{ } | rate()`), Start: baseTime, End: baseTime.Add(time.Minute), Step: time.Second})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("metrics: err = %v, want context.Canceled", err)
	}
}

func TestMetricsQueryBudgets(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Limits.MaxResponseSeries = 2
	cfg.Limits.MaxSpansPerSpanSet = 5
	s := openStore(t, cfg)
	defer s.Close(context.Background())
	if err := s.Push(context.Background(), tn, batch(1, 3, 3)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		q          string
		start, end time.Time
		step       time.Duration
		limit      string
	}{
		// Sub saturates for a range of millions of years: the step count must not wrap negative.
		{"centuries at 1s", `{ } | rate()`, time.Unix(1, 0), time.Unix(1e14, 0), time.Second, "max_points_per_series"},
		{"11001 steps", `{ } | rate()`, baseTime, baseTime.Add(11001 * time.Second), time.Second, "max_points_per_series"},
		{"11000 steps", `{ } | rate()`, baseTime, baseTime.Add(11000 * time.Second), time.Second, ""},
		{"three span names, two series allowed", `{ } | rate() by (name)`, baseTime, baseTime.Add(time.Minute), time.Second, "max_response_series"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.QueryRange(context.Background(), tn, MetricsRequest{Query: mustQuery(t, tc.q), Start: tc.start, End: tc.end, Step: tc.step})
			le, refused := refusal.As(err)
			switch {
			case tc.limit == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.limit != "" && (!refused || le.Limit != tc.limit || le.Reason != refusal.OverLimit):
				t.Fatalf("err = %v, want the %s limit", err, tc.limit)
			}
		})
	}
	_, err := s.Search(context.Background(), tn, SearchRequest{Query: mustQuery(t, `{ }`), SpansPerSpanSet: 6})
	if le, ok := refusal.As(err); !ok || le.Limit != "max_spans_per_span_set" {
		t.Fatalf("spss 6 over a cap of 5: err = %v", err)
	}
}
