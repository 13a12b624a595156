package logstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// With one processor for every query (a one-core machine, or two while data arrives), a query whose chunks are
// decoded by helper goroutines still completes: the consumer gives its processor back while it waits for them.
func TestQueriesOnOneProcessor(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.ChunkTargetSize = 4096
		c.Limits.QueryTimeout = 30 * time.Second // a deadlock would show as a timeout
	})
	procs := querylimit.NewProcessors(1)
	e.store.QueryLimiter().SetProcessors(procs)
	var streams []PushStream
	for s := 0; s < 4; s++ {
		ps := PushStream{Labels: labels.FromStrings("app", fmt.Sprint("a", s))}
		for i := 0; i < 400; i++ {
			ps.Entries = append(ps.Entries, logql.Entry{Timestamp: ts(i), Line: fmt.Sprintf("request %d from stream %d status=%d", i, s, 200+i%4)})
		}
		streams = append(streams, ps)
	}
	if err := e.store.Push(context.Background(), tenant.Default, streams); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`{app=~"a.+"} |= "status=201"`, `{app=~"a.+"}`} {
		want := 400
		if q == `{app=~"a.+"}` {
			want = 1000 // the query's limit
		}
		if _, sr := e.queryRange(q); countLines(sr) != want {
			t.Fatalf("%s: %d lines, want %d", q, countLines(sr), want)
		}
	}
	r, _ := e.queryRange(`sum(count_over_time({app=~"a.+"}[1h]))`)
	if r.Data.ResultType != "matrix" {
		t.Fatalf("count: result type %q", r.Data.ResultType)
	}
	// Helpers that were reading ahead when a query ended give theirs back as they stop.
	for deadline := time.Now().Add(10 * time.Second); procs.Busy() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d processors still held after the queries", procs.Busy())
		}
	}
}
