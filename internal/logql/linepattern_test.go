package logql

import (
	"strings"
	"testing"
)

func TestLinePattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, line string
		want          bool
	}{
		{"<_> bar", "foo bar", true},
		{"<_> bar", "foo bar baz", false}, // ends on a literal: nothing may follow
		{"<_> baz", "foo bar baz", true},
		{"foo <_>", "foo bar baz", true},
		{"foo <_>", "foo ", false}, // a capture is never empty
		{"<_> bar <_>", " bar ", false},
		{"<_>bar<_>", " bar ", true},
		{"level=<_> msg=<_>", "level=info msg=hi", true},
		{"level=<_> msg=<_>", "level= msg=hi", false},
		{"GET <_> <_> <_>", "GET /api/users/42 200 12ms", true},
		{"GET <_> <_> <_>", "POST /api/users/42 200 12ms", false},
		{"request id=<_> done now", "request id=abc(x) done now", true},
		{"<ip> - <_>", "10.0.0.1 - x", true}, // named captures match like <_>
		{"a < b <_>", "a < b c", true},       // '<' that opens no capture is text
		{"plain", "plain", true},
		{"plain", "", false},
	} {
		lp, err := parseLinePattern(tc.pattern)
		if err != nil {
			t.Fatalf("parseLinePattern(%q): %v", tc.pattern, err)
		}
		if got := lp.test(tc.line); got != tc.want {
			t.Errorf("%q |> %q: %v, want %v", tc.line, tc.pattern, got, tc.want)
		}
	}
	for _, bad := range []string{"", "<_><_>", "a <x><_> b"} {
		if _, err := parseLinePattern(bad); err == nil {
			t.Errorf("parseLinePattern(%q): no error", bad)
		}
	}
}

// FuzzLinePattern: any pattern parses or fails without panic; a pattern without captures matches only
// lines ending with it, and lines are tested without panic.
func FuzzLinePattern(f *testing.F) {
	f.Add("<_> level=error <_>", "ts=1 level=error msg=x")
	f.Add("a < b <_>", "a < b c")
	f.Add("<_><_>", "")
	f.Add("<ip> - - \"<method> <_>\" <_>", `10.0.0.1 - - "GET /x" 200`)
	f.Fuzz(func(t *testing.T, pattern, line string) {
		lp, err := parseLinePattern(pattern)
		if err != nil {
			return
		}
		got := lp.test(line)
		if len(lp.lits) == 1 && !lp.startsWithCapture && !lp.endsWithCapture && lp.lits[0] == pattern {
			// A pattern without captures: the line must hold it and end with it.
			if got && !strings.HasSuffix(line, pattern) {
				t.Fatalf("%q |> %q matched, the line does not end with it", line, pattern)
			}
		}
	})
}
