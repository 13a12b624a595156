package metricstore

import (
	"context"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/querylimit"
)

// With one processor for every query, a sharded query whose legs each compute on a processor of their own still
// completes, with the unsharded answer: the query gives its processor back while it waits for the legs.
func TestShardedOnOneProcessor(t *testing.T) {
	db := openShardFixture(t, false)
	ng := testEngine()
	procs := querylimit.NewProcessors(1)
	se := newShardedEngine(ng, ng, testMaxSamples, 3, 0)
	se.procs = procs
	l := querylimit.New(querylimit.Config{QueryTimeout: 30 * time.Second, MaxConcurrent: 4}) // a deadlock would show as a timeout
	l.SetProcessors(procs)
	q := `sum by (instance) (rate(http_requests_total[1m]))`
	start, end := time.UnixMilli(shardT0), time.UnixMilli(shardT0+shardN*shardStep)
	ctx, release, err := l.Admit(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := querylimit.Checkpoint(ctx); err != nil { // the query holds the only processor, as after reading a series
		t.Fatal(err)
	}
	got, err := se.NewRangeQuery(ctx, db, nil, q, start, end, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	gr := got.Exec(ctx)
	release()
	if gr.Err != nil {
		t.Fatal(gr.Err)
	}
	if got.(*shardQuery).fellBack {
		t.Fatal("the query fell back to the engine; the legs were not exercised")
	}
	want, _ := ng.NewRangeQuery(context.Background(), db, nil, q, start, end, 15*time.Second)
	if d := diffValue(want.Exec(context.Background()).Value, gr.Value, true); d != "" {
		t.Fatal(d)
	}
	if b := procs.Busy(); b != 0 {
		t.Fatalf("%d processors still held after the query", b)
	}
}
