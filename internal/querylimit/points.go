package querylimit

import (
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// Defaults of the points budgets.
const (
	// DefaultMaxPointsPerSeries is the most steps a range query may have: Prometheus' API refuses
	// (end-start)/step above 11,000, and Loki and Tempo do the same.
	DefaultMaxPointsPerSeries = 11000
	// DefaultMaxSubqueryPointsPerSeries is the most points one subquery may compute per series over the whole
	// query: `max_over_time(x[30d:1m])` (43,200) passes, `x[1d:1ms]` does not.
	DefaultMaxSubqueryPointsPerSeries = 100000
	// DefaultSubqueryStep is the step of a subquery that names none (Prometheus: the global evaluation
	// interval, 1m by default).
	DefaultSubqueryStep = time.Minute
)

// PointsError is a query refused because it would compute too many points per series. It is the client's
// query that is too large: a 400 (Prometheus: errorType bad_data), never worth retrying as it is.
type PointsError struct {
	Limit string // the configuration key
	Msg   string
}

func (e *PointsError) Error() string { return e.Msg + " (limit: " + e.Limit + ")" }

// PromQLBudget bounds the points a PromQL query computes per series, before it is evaluated.
type PromQLBudget struct {
	// MaxPoints bounds the steps of a range query (0: DefaultMaxPointsPerSeries).
	MaxPoints int
	// MaxSubqueryPoints bounds the points of each subquery (0: DefaultMaxSubqueryPointsPerSeries).
	MaxSubqueryPoints int
	// SubqueryStep is the step of subqueries that name none (0: DefaultSubqueryStep).
	SubqueryStep time.Duration
}

// SubqueryPoints is what one subquery of a query computes per series.
type SubqueryPoints struct {
	Expr   string
	Span   time.Duration // the range it is evaluated over: its own range plus its parents' span
	Step   time.Duration
	Points int64
}

// PromQLSubqueries walks expr, evaluated over [start, end] (an instant query has start == end), and returns the
// points per series of every subquery, outermost first. A subquery is evaluated at every step of its parent
// over its range, so its span is the parent's span plus its range; nested subqueries add up. Offsets move a
// span without widening it; an `@` modifier pins a subquery to one evaluation time, so its span is its range
// alone.
func PromQLSubqueries(expr parser.Expr, start, end time.Time, defaultStep time.Duration) []SubqueryPoints {
	if defaultStep <= 0 {
		defaultStep = DefaultSubqueryStep
	}
	var out []SubqueryPoints
	var walk func(e parser.Node, span time.Duration)
	walk = func(e parser.Node, span time.Duration) {
		if e == nil {
			return
		}
		if sq, ok := e.(*parser.SubqueryExpr); ok {
			if sq.Timestamp != nil || sq.StartOrEnd != 0 {
				span = 0
			}
			step := sq.Step
			if step == 0 {
				step = defaultStep
			}
			inner := addSat(span, sq.Range)
			p := SubqueryPoints{Expr: sq.String(), Span: inner, Step: step}
			if step < time.Millisecond {
				p.Points = -1 // below the engine's resolution: refused on its own
			} else {
				p.Points = int64(inner/step) + 1
			}
			out = append(out, p)
			walk(sq.Expr, inner)
			return
		}
		for _, c := range parser.Children(e) {
			walk(c, span)
		}
	}
	span := end.Sub(start)
	if span < 0 {
		span = 0
	}
	walk(expr, span)
	return out
}

func addSat(a, b time.Duration) time.Duration {
	if s := a + b; s >= a {
		return s
	}
	return time.Duration(1<<63 - 1)
}

// Check refuses expr over [start, end] at step (0 for an instant query) when the query or any of its subqueries
// would compute more points per series than the budget allows. It runs before evaluation: the engine
// allocates per-step arrays for a subquery before any sample limit applies.
func (b PromQLBudget) Check(expr parser.Expr, start, end time.Time, step time.Duration) error {
	maxPts := b.MaxPoints
	if maxPts <= 0 {
		maxPts = DefaultMaxPointsPerSeries
	}
	maxSub := b.MaxSubqueryPoints
	if maxSub <= 0 {
		maxSub = DefaultMaxSubqueryPointsPerSeries
	}
	if step > 0 {
		// As Prometheus' API: (end-start)/step steps after the first.
		if n := int64(end.Sub(start) / step); n > int64(maxPts) {
			return &PointsError{Limit: "max_points_per_series", Msg: fmt.Sprintf(
				"exceeded maximum resolution of %d points per timeseries (this query: %d); try decreasing the query resolution (?step=XX)", maxPts, n)}
		}
	}
	for _, sq := range PromQLSubqueries(expr, start, end, b.SubqueryStep) {
		if sq.Points < 0 {
			return &PointsError{Limit: "subquery step", Msg: fmt.Sprintf("subquery %s: step %s is below the engine's resolution of 1ms", sq.Expr, sq.Step)}
		}
		if sq.Points > int64(maxSub) {
			return &PointsError{Limit: "max_subquery_points_per_series", Msg: fmt.Sprintf(
				"subquery %s would compute %d points per series over %s at step %s, more than %d; use a larger subquery step or a shorter range",
				sq.Expr, sq.Points, sq.Span, sq.Step, maxSub)}
		}
	}
	return nil
}

// CheckString parses q with Prometheus' default parser options and checks it; a query that does not parse is
// left to the engine, which answers its own parse error.
func (b PromQLBudget) CheckString(q string, start, end time.Time, step time.Duration) error {
	expr, err := promqlParser.ParseExpr(q)
	if err != nil {
		return nil
	}
	return b.Check(expr, start, end, step)
}

var promqlParser = parser.NewParser(parser.Options{})
