package logql

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// TestVectorMatching: binary operators between vectors match as Loki's (and PromQL's) do: one-to-one with on /
// ignoring narrowing the result's labels, many-to-one and one-to-many with group_left / group_right taking the
// include labels from the "one" side and keeping the operands in the query's order, and the errors for
// ambiguous matches.
func TestVectorMatching(t *testing.T) {
	s := func(v float64, kv ...string) Sample { return Sample{Labels: labels.FromStrings(kv...), V: v} }
	many := []Sample{s(10, "env", "prod", "svc", "a"), s(30, "env", "prod", "svc", "b"), s(5, "env", "dev", "svc", "a")}
	one := []Sample{s(40, "env", "prod", "team", "x"), s(5, "env", "dev", "team", "y")}
	for _, tc := range []struct {
		query   string
		lhs     []Sample
		rhs     []Sample
		want    string
		wantErr string
	}{
		{query: `A / on (env) group_left B`, lhs: many, rhs: one,
			want: `{env="prod", svc="a"} 0.25; {env="prod", svc="b"} 0.75; {env="dev", svc="a"} 1`},
		{query: `A / on (env) group_left (team) B`, lhs: many, rhs: one,
			want: `{env="prod", svc="a", team="x"} 0.25; {env="prod", svc="b", team="x"} 0.75; {env="dev", svc="a", team="y"} 1`},
		{query: `A / ignoring (svc) group_left B`, lhs: many, rhs: []Sample{s(40, "env", "prod"), s(5, "env", "dev")},
			want: `{env="prod", svc="a"} 0.25; {env="prod", svc="b"} 0.75; {env="dev", svc="a"} 1`},
		// one-to-many: B's series are the many, the operands stay B on the right.
		{query: `B - on (env) group_right A`, lhs: one, rhs: many,
			want: `{env="prod", svc="a"} 30; {env="prod", svc="b"} 10; {env="dev", svc="a"} 0`},
		{query: `B > on (env) group_right A`, lhs: one, rhs: many,
			want: `{env="prod", svc="a"} 40; {env="prod", svc="b"} 40`},
		{query: `A + ignoring (team) B`, lhs: []Sample{s(1, "env", "prod", "team", "x")}, rhs: []Sample{s(2, "env", "prod", "team", "z")},
			want: `{env="prod"} 3`},
		{query: `A + on (env) B`, lhs: []Sample{s(1, "env", "prod", "team", "x")}, rhs: []Sample{s(2, "env", "prod", "team", "z")},
			want: `{env="prod"} 3`},
		{query: `A + B`, lhs: []Sample{s(1, "env", "prod")}, rhs: []Sample{s(2, "env", "prod")}, want: `{env="prod"} 3`},
		{query: `A / on (env) B`, lhs: many, rhs: one, wantErr: "many-to-one matching must be explicit"},
		{query: `B / on (env) A`, lhs: one, rhs: many, wantErr: "found duplicate series on the right hand-side"},
		{query: `A / on (env) group_right B`, lhs: many, rhs: one, wantErr: "found duplicate series on the left hand-side"},
		{query: `A / on (env) group_left (team) B`, lhs: []Sample{s(1, "env", "prod", "svc", "a", "team", "1"), s(2, "env", "prod", "svc", "a", "team", "2")}, rhs: one,
			wantErr: "grouping labels must ensure unique matches"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q := strings.NewReplacer("A", `count_over_time({a="b"}[1m])`, "B", `count_over_time({c="d"}[1m])`).Replace(tc.query)
			e, err := ParseExpr(q)
			if err != nil {
				t.Fatal(err)
			}
			be, ok := e.(*BinaryExpr)
			if !ok {
				t.Fatalf("%T", e)
			}
			got, err := vectorBinop(be, tc.lhs, tc.rhs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, x := range got {
				parts = append(parts, fmt.Sprintf("%s %g", x.Labels, x.V))
			}
			if g := strings.Join(parts, "; "); g != tc.want {
				t.Fatalf("got  %s\nwant %s", g, tc.want)
			}
		})
	}
	for q, want := range map[string]string{
		`count_over_time({a="b"}[1m]) and on (x) group_left count_over_time({a="b"}[1m])`:   `no grouping allowed for "and" operation`,
		`count_over_time({a="b"}[1m]) / on (x) group_left (x) count_over_time({a="b"}[1m])`: `label "x" must not occur in ON and GROUP clause at once`,
	} {
		if _, err := ParseExpr(q); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseExpr(%s) = %v, want %q", q, err, want)
		}
	}
}

// TestLabelReplace: label_replace sets dst from the anchored regex's match of src, leaves series whose src does
// not match as they are, removes dst when the replacement is empty, and refuses a bad destination or regex.
func TestLabelReplace(t *testing.T) {
	sec := int64(time.Second)
	for q, want := range map[string]string{
		`label_replace(count_over_time({app="a"}[1m]), "x", "pre-$1", "app", "(.*)")`:       `{app="a", x="pre-a"}`,
		`label_replace(count_over_time({app="a"}[1m]), "x", "$1", "app", "b|(c)")`:          `{app="a"}`,
		`label_replace(count_over_time({app="a"}[1m]), "x", "y", "app", "")`:                `{app="a"}`,
		`label_replace(count_over_time({app="a"}[1m]), "x", "y", "nope", "")`:               `{app="a", x="y"}`,
		`label_replace(count_over_time({app="a"}[1m]), "app", "", "app", "a")`:              `{}`,
		`sum by (x) (label_replace(count_over_time({app="a"}[1m]), "x", "$0", "app", "a"))`: `{x="a"}`,
	} {
		expr, err := ParseSampleExpr(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var st Stats
		res, _, err := (&Engine{}).EvalRange(context.Background(), &manyLines{n: 100}, expr, t0+60*sec, t0+60*sec, 60*sec, &st)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(res) != 1 || res[0].Labels.String() != want {
			t.Errorf("%s: %v, want one series %s", q, res, want)
		}
	}
	for q, want := range map[string]string{
		`label_replace(count_over_time({app="a"}[1m]), "1x", "y", "app", "a")`: "invalid destination label name",
		`label_replace(count_over_time({app="a"}[1m]), "x", "y", "app", "(")`:  "invalid regex",
		`label_replace({app="a"}, "x", "y", "app", "a")`:                       "needs a metric query",
	} {
		if _, err := ParseExpr(q); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseExpr(%s) = %v, want %q", q, err, want)
		}
	}
}
