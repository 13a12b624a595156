package logql

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// TestLogfmtAsLoki: the logfmt parser sets what Loki's sets: keys without a value only with --keep-empty, nothing
// from a token with a quote in its key (JSON lines under Logs Drilldown's `| json | logfmt`), nothing from an
// unquoted value holding '=' or '"'.
func TestLogfmtAsLoki(t *testing.T) {
	for _, tc := range []struct{ q, line, want string }{
		{`{a="b"} | logfmt`, `level=info msg="order placed" took=12ms`, `{level="info", msg="order placed", took="12ms"}`},
		{`{a="b"} | logfmt`, `level=info empty= bare`, `{level="info"}`},
		{`{a="b"} | logfmt --keep-empty`, `level=info empty= bare`, `{bare="", empty="", level="info"}`},
		{`{a="b"} | logfmt`, `{"level":"info","msg":"charge ok","user":{"id":"u-1"}}`, `{}`},
		{`{a="b"} | logfmt`, `a=b=c d=e`, `{d="e"}`},
		{`{a="b"} | logfmt`, `k="x\"y" z=1`, `{k="x\"y", z="1"}`},
	} {
		sel, err := ParseLogSelector(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		p := NewPipeline(sel.Stages)
		p.Process(0, tc.line, labels.FromStrings("a", "b"), labels.EmptyLabels())
		_, _, parsed := p.Builder().Categorized()
		var kept []string
		parsed.Range(func(l labels.Label) {
			if l.Name != ErrorLabel && l.Name != ErrorDetailsLabel {
				kept = append(kept, l.Name+"="+strconv.Quote(l.Value))
			}
		})
		if got := "{" + strings.Join(kept, ", ") + "}"; got != tc.want {
			t.Errorf("%s on %q: %s, want %s", tc.q, tc.line, got, tc.want)
		}
	}
}
