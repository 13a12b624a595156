package logstore

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPatternMinerTable(t *testing.T) {
	cases := []struct {
		name  string
		lines []string
		want  []string // "pattern (total)", most frequent first
	}{
		{
			name: "numbers vary",
			lines: []string{
				"GET /api/users/42 200 12ms",
				"GET /api/users/7 200 3ms",
				"GET /api/users/1000 404 1ms",
			},
			want: []string{"GET <_> <_> <_> (3)"},
		},
		{
			name: "words vary within a shape",
			lines: []string{
				"user alice logged in from web",
				"user bob logged in from web",
				"user carol logged in from mobile",
			},
			want: []string{"user <_> logged in from <_> (3)"},
		},
		{
			name: "two shapes",
			lines: []string{
				"connection opened to db-1",
				"cache miss for key orders",
				"connection opened to db-2",
				"cache miss for key users",
				"connection opened to db-3",
			},
			want: []string{"connection opened to <_> (3)", "cache miss for key <_> (2)"},
		},
		{
			name: "logfmt",
			lines: []string{
				`level=info msg="order placed" order_id=17 took=12ms`,
				`level=info msg="order placed" order_id=18 took=9ms`,
			},
			want: []string{`level=info msg="order placed" order_id=<_> took=<_> (2)`},
		},
		{
			name:  "too few tokens are skipped",
			lines: []string{"ok", "ready now", "done"},
			want:  nil,
		},
		{
			name: "different token counts never merge",
			lines: []string{
				"worker started job alpha",
				"worker started job alpha beta",
			},
			want: []string{"worker started job alpha (1)", "worker started job alpha beta (1)"},
		},
		{
			name: "dissimilar lines of one length stay apart",
			lines: []string{
				"alpha beta gamma delta",
				"one two three four",
			},
			want: []string{"alpha beta gamma delta (1)", "one two three four (1)"},
		},
		{
			name: "adjacent placeholders read as one",
			lines: []string{
				"request id=abc(x) done now",
				"request id=def[y] done now",
			},
			want: []string{"request id=<_> done now (2)"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newPatternMiner(0, int64(10e9), 6, 0)
			for i, l := range c.lines {
				m.Add(int64(i)*int64(10e9), "info", l)
			}
			var got []string
			for _, p := range m.Patterns() {
				got = append(got, fmt.Sprintf("%s (%d)", p.Pattern, p.Total))
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("patterns:\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestPatternMinerStepsAndLevels(t *testing.T) {
	step := int64(60e9)
	m := newPatternMiner(0, step, 3, 0)
	for i := 0; i < 5; i++ {
		m.Add(int64(i)*30e9, "info", fmt.Sprintf("served request %d in %dms", i, i*3))
	}
	m.Add(10e9, "error", "served request 9 in 1ms")
	ps := m.Patterns()
	if len(ps) != 2 {
		t.Fatalf("want one pattern per level, got %+v", ps)
	}
	if ps[0].Level != "info" || ps[0].Total != 5 || fmt.Sprint(ps[0].Samples) != "[[0 2] [60 2] [120 1]]" {
		t.Errorf("info pattern: %+v", ps[0])
	}
	if ps[1].Level != "error" || ps[1].Pattern != "served request <_> in <_>" || fmt.Sprint(ps[1].Samples) != "[[0 1]]" {
		t.Errorf("error pattern: %+v", ps[1])
	}
}

func TestPatternMinerBounded(t *testing.T) {
	m := newPatternMiner(0, 1e9, 1, 10)
	for i := 0; i < 1000; i++ {
		// Every line a shape of its own: a different word count.
		m.Add(0, "info", "w"+strings.Repeat(" word", 3+i%70))
	}
	if n := len(m.Patterns()); n != 10 {
		t.Errorf("patterns: %d, want the bound 10", n)
	}
	if m.Dropped == 0 || m.Skipped != 0 {
		t.Errorf("dropped %d skipped %d", m.Dropped, m.Skipped)
	}
	m.Add(0, "info", strings.Repeat("x ", patternMaxLineLength))
	if m.Skipped != 1 {
		t.Errorf("a line over %d bytes is not skipped", patternMaxLineLength)
	}
}

// FuzzPatternMiner: any lines mine without panic into patterns that are valid UTF-8 when the lines are, whose
// samples add up to their totals, and that account for every line (mined, skipped or dropped).
func FuzzPatternMiner(f *testing.F) {
	f.Add("GET /api/users/42 200 12ms", "GET /api/users/7 404 3ms")
	f.Add(`level=info msg="a b" x=1`, `{"level":"info","msg":"hello world","n":3}`)
	f.Add("a(b)c[d]e{f}g <h> i", "\t\t x = = = y")
	f.Add("ünïcödé wörds hère ok", "日本語 の ログ 行")
	f.Fuzz(func(t *testing.T, a, b string) {
		m := newPatternMiner(0, 1e9, 2, 5)
		m.Add(0, "info", a)
		m.Add(1e9, "info", b)
		m.Add(1e9, "warn", a)
		var total int64
		for _, p := range m.Patterns() {
			total += p.Total
			if utf8.ValidString(a) && utf8.ValidString(b) && !utf8.ValidString(p.Pattern) {
				t.Fatalf("pattern %q is not UTF-8", p.Pattern)
			}
			var sum int64
			for _, s := range p.Samples {
				sum += s[1]
			}
			if sum != p.Total {
				t.Fatalf("pattern %q: samples sum %d, total %d", p.Pattern, sum, p.Total)
			}
		}
		if total+m.Skipped+m.Dropped != 3 {
			t.Fatalf("mined %d + skipped %d + dropped %d != 3 lines", total, m.Skipped, m.Dropped)
		}
	})
}
