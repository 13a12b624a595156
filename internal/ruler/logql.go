package ruler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/sprout-otel/sprout/internal/logql"
)

// Lang is the query language of a rule group's expressions.
type Lang string

// The languages a rule group can be written in. PromQL groups are evaluated against the metrics store (Mimir's
// ruler); LogQL groups against the log store (Loki's ruler). Both write recording rule results and the ALERTS
// series into the metrics store and send alerts to the same Alertmanager.
const (
	PromQL Lang = "promql"
	LogQL  Lang = "logql"
)

// Langs lists the languages in a fixed order.
var Langs = []Lang{PromQL, LogQL}

// LogStore is what LogQL rules need from the log store: its LogQL engine and a tenant's querier.
// *logstore.Store implements it.
type LogStore interface {
	Querier(tenantID string) logql.Querier
	Engine() *logql.Engine
}

// errNoLogStore is what a LogQL rule reports when the ruler runs without a log store.
var errNoLogStore = errors.New("no log store is configured: LogQL rules cannot be evaluated")

// logqlParser validates a rule's expression as a LogQL metric query. The Prometheus rules engine wants a PromQL
// AST; a LogQL rule's expression travels through it as a string literal holding the query, which the LogQL
// query function below takes back out. A string literal is a leaf the engine knows how to walk (its rule
// dependency analysis visits every node), so nothing in the engine ever treats the query as PromQL.
type logqlParser struct{ parser.Parser }

func (logqlParser) ParseExpr(q string) (parser.Expr, error) {
	if _, err := logql.ParseSampleExpr(q); err != nil {
		return nil, err
	}
	return &parser.StringLiteral{Val: q}, nil
}

var logqlRuleParser parser.Parser = logqlParser{promqlParser}

func parserFor(l Lang) parser.Parser {
	if l == LogQL {
		return logqlRuleParser
	}
	return promqlParser
}

// RuleQuery is the query text of a rule as the user wrote it.
func RuleQuery(r rules.Rule) string {
	if s, ok := r.Query().(*parser.StringLiteral); ok {
		return s.Val
	}
	return r.Query().String()
}

// unquoteLogQL undoes the quoting StringLiteral.String applies.
func unquoteLogQL(qs string) string {
	if q, err := strconv.Unquote(qs); err == nil {
		return q
	}
	return qs
}

// logqlQueryTimeout bounds one LogQL rule evaluation when the log store names no query_timeout, as the PromQL
// engine's query timeout (2m by default) bounds a PromQL one, so that one heavy query cannot hold its group
// forever.
const logqlQueryTimeout = 2 * time.Minute

// logqlQueryFunc evaluates LogQL rules: an instant metric query at the evaluation time, with the log store's
// engine over the tenant's logs, its result as a PromQL vector (a scalar becomes one sample without labels, as
// Prometheus' own query function does).
func logqlQueryFunc(store LogStore, tenantID string) rules.QueryFunc {
	return func(ctx context.Context, qs string, t time.Time) (promql.Vector, error) {
		if store == nil {
			return nil, errNoLogStore
		}
		expr, err := logql.ParseSampleExpr(unquoteLogQL(qs))
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, logqlTimeout(store))
		defer cancel()
		var st logql.Stats
		ns := t.UnixNano()
		res, scalar, err := store.Engine().EvalRange(ctx, store.Querier(tenantID), expr, ns, ns, 0, &st)
		if err != nil {
			return nil, fmt.Errorf("logql: %w", err)
		}
		ms := t.UnixMilli()
		if scalar {
			v := 0.0
			if len(res) > 0 && len(res[0].Points) > 0 {
				v = res[0].Points[0].V
			}
			return promql.Vector{{T: ms, F: v, Metric: labels.EmptyLabels()}}, nil
		}
		vec := make(promql.Vector, 0, len(res))
		for _, s := range res {
			if len(s.Points) == 0 {
				continue
			}
			vec = append(vec, promql.Sample{Metric: s.Labels, T: ms, F: s.Points[len(s.Points)-1].V})
		}
		return vec, nil
	}
}
