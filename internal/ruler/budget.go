package ruler

import (
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/querylimit"
)

// promQLBudgeter is a metrics store whose queries have a points budget (components/metricstoreext).
type promQLBudgeter interface {
	PromQLBudget() querylimit.PromQLBudget
}

// logQLLimiter is a log store with query limits (*logstore.Store).
type logQLLimiter interface {
	MaxQueryLength() time.Duration
	QueryTimeout() time.Duration
}

// checkBudget refuses a group whose rules could never run within the query budgets of the store they query: a
// rule is evaluated as an instant query at every interval, so an expression whose subqueries exceed the points
// budget (PromQL) or whose range exceeds max_query_length (LogQL) would fail, or exhaust the process, every
// time. The error names the rule and the limit.
func (r *Ruler) checkBudget(lang Lang, g rulefmt.RuleGroup) error {
	for i, rule := range g.Rules {
		name := rule.Record
		if name == "" {
			name = rule.Alert
		}
		var err error
		switch lang {
		case LogQL:
			err = r.checkLogQL(rule.Expr)
		default:
			err = r.checkPromQL(rule.Expr)
		}
		if err != nil {
			return fmt.Errorf("invalid rule group %q: rule %d (%s): %w", g.Name, i, name, err)
		}
	}
	return nil
}

func (r *Ruler) checkPromQL(expr string) error {
	b := querylimit.PromQLBudget{}
	if s, ok := r.opts.Store.(promQLBudgeter); ok {
		b = s.PromQLBudget()
	}
	now := time.Now()
	return b.CheckString(expr, now, now, 0)
}

func (r *Ruler) checkLogQL(expr string) error {
	e, err := logql.ParseSampleExpr(expr)
	if err != nil {
		return err
	}
	l, ok := r.opts.Logs.(logQLLimiter)
	if !ok {
		return nil
	}
	if m := l.MaxQueryLength(); m > 0 && logql.Lookback(e) > m {
		return fmt.Errorf("the query time range exceeds the limit (query length: %s, limit: %s) (limit: max_query_length)", logql.Lookback(e), m)
	}
	return nil
}

// logqlTimeout is how long one LogQL rule evaluation may run: the log store's query_timeout, as the PromQL
// engine's timeout bounds a PromQL rule.
func logqlTimeout(store LogStore) time.Duration {
	if l, ok := store.(logQLLimiter); ok && l.QueryTimeout() > 0 {
		return l.QueryTimeout()
	}
	return logqlQueryTimeout
}
