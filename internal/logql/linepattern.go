package logql

import (
	"errors"
	"fmt"
	"strings"
)

// linePattern is the pattern of a pattern line filter (`|> "<_> level=error <_>"`, `!> ...`), as Logs
// Drilldown adds it from its Patterns tab: literal text and captures (<_> or <name>; the names are not kept).
// A line matches when the literals appear in it in order with something (not nothing) in each capture between
// them, the line ending with the last literal unless the pattern ends with a capture.
type linePattern struct {
	// lits are the literals in order; a capture sits between each two of them.
	lits []string
	// startsWithCapture and endsWithCapture say whether a capture comes before the first and after the last
	// literal.
	startsWithCapture, endsWithCapture bool
}

func parseLinePattern(s string) (linePattern, error) {
	var lp linePattern
	if s == "" {
		return lp, errors.New("empty pattern")
	}
	var cur strings.Builder
	lastCapture := false
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			cur.WriteString(s)
			break
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 || !validCaptureName(s[i+1:i+j]) {
			// '<' that opens no capture is literal text.
			cur.WriteString(s[:i+1])
			s = s[i+1:]
			continue
		}
		cur.WriteString(s[:i])
		if cur.Len() > 0 {
			lp.lits = append(lp.lits, cur.String())
			cur.Reset()
			lastCapture = false
		}
		if lastCapture {
			return lp, fmt.Errorf("consecutive captures are not allowed at %q", s[i:])
		}
		if len(lp.lits) == 0 {
			lp.startsWithCapture = true
		}
		lastCapture = true
		s = s[i+j+1:]
	}
	if cur.Len() > 0 {
		lp.lits = append(lp.lits, cur.String())
		lastCapture = false
	}
	lp.endsWithCapture = lastCapture
	return lp, nil
}

func (lp linePattern) test(line string) bool {
	if line == "" {
		return len(lp.lits) == 0 && !lp.startsWithCapture
	}
	off := 0
	for i, lit := range lp.lits {
		j := strings.Index(line[off:], lit)
		if j < 0 {
			return false
		}
		// A capture before this literal must hold something.
		if j == 0 && (i > 0 || lp.startsWithCapture) {
			return false
		}
		off += j + len(lit)
	}
	if len(lp.lits) == 0 {
		return true
	}
	return lp.endsWithCapture == (off != len(line))
}
