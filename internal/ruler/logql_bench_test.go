package ruler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

// memLogs is an in-memory log store: streams of entries, filtered by matchers and time only.
type memLogs struct {
	streams map[string][]logql.Entry
	lbs     map[string]labels.Labels
}

func (m *memLogs) Querier(string) logql.Querier { return m }
func (m *memLogs) Engine() *logql.Engine        { return &logql.Engine{} }

func (m *memLogs) SelectLogs(_ context.Context, p logql.SelectParams, fn func(labels.Labels, logql.Entry) error) error {
	for k, es := range m.streams {
		lbs := m.lbs[k]
		ok := true
		for _, mt := range p.Matchers {
			if !mt.Matches(lbs.Get(mt.Name)) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		for _, e := range es {
			if e.Timestamp >= p.Start && e.Timestamp < p.End {
				if err := fn(lbs, e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// BenchmarkLogQLRuleEval is one evaluation of a LogQL alerting rule's query over 10 services × 1,000 lines in
// the last five minutes, a tenth of them errors.
func BenchmarkLogQLRuleEval(b *testing.B) {
	now := time.Now()
	m := &memLogs{streams: map[string][]logql.Entry{}, lbs: map[string]labels.Labels{}}
	for s := range 10 {
		k := fmt.Sprintf("svc-%d", s)
		m.lbs[k] = labels.FromStrings("service_name", k)
		for i := range 1000 {
			line := "GET /api/items 200"
			if i%10 == 0 {
				line = "POST /api/pay 500 error: card declined"
			}
			m.streams[k] = append(m.streams[k], logql.Entry{Timestamp: now.Add(-time.Duration(i) * 250 * time.Millisecond).UnixNano(), Line: line})
		}
	}
	q := logqlQueryFunc(m, "t")
	expr := (&logqlParser{promqlParser}).mustParse(`sum by (service_name) (rate({service_name=~"svc-.*"} |= "error" [5m])) > 0`)
	b.ReportAllocs()
	for b.Loop() {
		v, err := q(context.Background(), expr, now)
		if err != nil || len(v) != 10 {
			b.Fatalf("got %d samples, %v", len(v), err)
		}
	}
}

func (p *logqlParser) mustParse(q string) string {
	e, err := p.ParseExpr(q)
	if err != nil {
		panic(err)
	}
	return e.String()
}
