package logql

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ip("…") filters. A line filter `|= ip("10.0.0.0/8")` keeps a line when any IPv4 or IPv6 address found in it
// lies in the pattern; a label filter `| addr = ip("…")` does the same over one label's value. The pattern is
// one address, an inclusive range of one family (`a-b`, no spaces) or a CIDR prefix. What counts as an address
// in a line, and the errors, are Loki 3's, so that the same query keeps the same lines:
//   - the scan looks for a start by a short prefix (a digit followed by '.' within three bytes, or an IPv6-like
//     run of hex digits and ':' within five bytes), takes the longest run of address characters from there and
//     parses it; there is no check of what comes before ("x10.0.0.1" holds 10.0.0.1, "1234.5.6.7" holds
//     234.5.6.7) and a run that does not parse is skipped whole;
//   - an IPv4-mapped IPv6 address (::ffff:1.2.3.4) is an IPv6 address: it is not in 1.2.3.0/24;
//   - a zone ends the run (fe80::1%eth0 is read as fe80::1), and a pattern with a zone matches nothing.

var (
	errIPPattern   = errors.New("ip: invalid pattern")
	errIPOperation = errors.New("ip: invalid operation")
)

// ipPattern is a compiled ip("…") argument.
type ipPattern struct {
	lo, hi netip.Addr   // a range, or lo == hi for one address
	prefix netip.Prefix // a CIDR when valid
	single bool
}

// parseIPPattern reads an address, then a prefix, then a range, in the order Loki tries them (so that
// "fe80::1%a-b" is one address with the zone "a-b", not a range).
func parseIPPattern(s string) (*ipPattern, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return &ipPattern{lo: a, hi: a, single: true}, nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return &ipPattern{prefix: p}, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		lo, err1 := netip.ParseAddr(from)
		hi, err2 := netip.ParseAddr(to)
		if err1 == nil && err2 == nil {
			lo, hi = lo.WithZone(""), hi.WithZone("")
			if lo.BitLen() == hi.BitLen() && !hi.Less(lo) {
				return &ipPattern{lo: lo, hi: hi}, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %q", errIPPattern, s)
}

// contains reports whether a is in the pattern. Families never mix: netip orders every IPv4 address before
// every IPv6 one, and a prefix holds only its own family.
func (p *ipPattern) contains(a netip.Addr) bool {
	switch {
	case p.prefix.IsValid():
		return p.prefix.Contains(a)
	case p.single:
		return p.lo.Compare(a) == 0
	}
	return a.Zone() == "" && p.lo.Compare(a) <= 0 && p.hi.Compare(a) >= 0
}

// matchText reports whether any address found in s is in the pattern.
func (p *ipPattern) matchText(s string) bool {
	n := len(s)
	for i := 0; i < n; i++ {
		var run int
		var maybe bool
		switch {
		case i+3 < n && ipv4Start(s[i:i+4]):
			run = spanOf(s[i:], ipv4Chars)
			maybe = strings.Count(s[i:i+run], ".") == 3
		case i+4 < n && ipv6Start(s[i:i+5]):
			run = spanOf(s[i:], ipv6Chars)
			maybe = strings.Contains(s[i:i+run], "::") || strings.Count(s[i:i+run], ":") >= 6
		default:
			continue
		}
		// maybe is a necessary condition of a valid address (three dots; "::" or six colons at least): it
		// spares the parse, and its error's allocation, on the numbers and clock times of a line.
		if maybe {
			if a, err := netip.ParseAddr(s[i : i+run]); err == nil && p.contains(a) {
				return true
			}
		}
		// The run did not match: go on after it (and after the byte that ended it, which is not an address
		// character and so cannot start one).
		i += run
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// ipv4Start: a digit with a '.' in one of the next three bytes.
func ipv4Start(b string) bool {
	return isDigit(b[0]) && (b[1] == '.' || b[2] == '.' || b[3] == '.')
}

// ipv6Start: "::" and a hex digit, or one to four hex digits and a ':'.
func ipv6Start(b string) bool {
	if b[0] == ':' && b[1] == ':' && isHex(b[2]) {
		return true
	}
	for k := 1; k <= 4; k++ {
		if !isHex(b[k-1]) {
			return false
		}
		if b[k] == ':' {
			return true
		}
	}
	return false
}

type charset [256]bool

func newCharset(s string) (c charset) {
	for i := 0; i < len(s); i++ {
		c[s[i]] = true
	}
	return c
}

var (
	ipv4Chars = newCharset("0123456789.")
	ipv6Chars = newCharset("0123456789abcdefABCDEF:.")
)

// spanOf is the length of the prefix of s made of bytes in c.
func spanOf(s string, c charset) int {
	for i := 0; i < len(s); i++ {
		if !c[s[i]] {
			return i
		}
	}
	return len(s)
}

// IPLabelFilter is `| name = ip("…")` or `| name != ip("…")`.
type IPLabelFilter struct {
	Name    string
	Not     bool
	Pattern string
	ip      *ipPattern // nil when Pattern is invalid (see ipFilterErr)
	err     error
}

func (f *IPLabelFilter) String() string {
	op := "="
	if f.Not {
		op = "!="
	}
	return f.Name + op + "ip(" + strconv.Quote(f.Pattern) + ")"
}

// match evaluates the filter as Loki does: a line that already failed a stage passes (only string matchers
// can filter it out), a missing label fails, and so does every line when the pattern is invalid (which is a
// query error unless the filter sits inside `and`/`or`, where Loki does not check it).
func (f *IPLabelFilter) match(b *LabelsBuilder) bool {
	if b.HasErr() {
		return true
	}
	v, ok := b.Get(f.Name)
	if !ok || f.ip == nil {
		return false
	}
	return f.ip.matchText(v) != f.Not
}

func newIPLabelFilter(name, pattern string, not bool) *IPLabelFilter {
	ip, err := parseIPPattern(pattern)
	return &IPLabelFilter{Name: name, Not: not, Pattern: pattern, ip: ip, err: err}
}

// stageError is Loki's wording for a stage that cannot be built: `parse error : stage '<stage>' : <why>`.
func stageError(stage string, err error) error {
	return &ParseError{Msg: "stage '" + stage + "' : " + err.Error()}
}

// checkIPStages finds the first ip() stage that cannot be built, in the order Loki builds stages: it moves the
// line filters of a pipeline to the front of their stretch (a stretch ends at a label filter, a line_format or
// an unpack, which line filters cannot pass), joins them into one chain built from its right end, and names the
// whole chain in its error. A label filter is checked only when it is the whole filter, as in Loki.
func checkIPStages(stages []Stage) error {
	var group []*LineFilter
	flush := func() error {
		defer func() { group = group[:0] }()
		for i := len(group) - 1; i >= 0; i-- {
			if err := group[i].ipErr(); err != nil {
				parts := make([]string, len(group))
				for i, g := range group {
					parts[i] = g.lokiString()
				}
				return stageError(strings.Join(parts, " "), err)
			}
		}
		return nil
	}
	for _, st := range stages {
		switch s := st.(type) {
		case *LineFilter:
			group = append(group, s)
		case *LabelFilterStage:
			if err := flush(); err != nil {
				return err
			}
			if ipf, ok := s.Filter.(*IPLabelFilter); ok && ipf.err != nil {
				return stageError("| "+ipf.String(), ipf.err)
			}
		case *LineFormatStage:
			if err := flush(); err != nil {
				return err
			}
		case *ParserStage:
			if s.Kind == "unpack" {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// effectiveAlts returns the alternatives a line filter evaluates, as Loki's grammar builds them:
//   - a negated filter with alternatives (`!= "a" or ip("b")`) is a chain of separate negated filters, each
//     with its own ip();
//   - a positive one (`|= "a" or "b"`, `|~`, `|>`) is one filter whose alternatives are matched as text by its
//     operator, ip() or not; and an alternative that follows an ip() one starts the chain afresh after the
//     first alternative, dropping those before it (`|= "a" or ip("b") or "c"` is `|= "a" or "c"`).
//
// Only `|=` and `!=` take ip(); on another operator it is an error of the stage.
func (f *LineFilter) effectiveAlts() []lineAlt {
	isIP := func(i int) bool { return i < len(f.IP) && f.IP[i] }
	vals := append([]string{f.Value}, f.Ors...)
	if len(vals) == 1 || f.negated() {
		alts := make([]lineAlt, len(vals))
		for i, v := range vals {
			alts[i] = lineAlt{text: v, isIP: isIP(i)}
			if !alts[i].isIP {
				continue
			}
			alts[i].asIP = true
			if f.Op != tPipeEq && f.Op != tNeq {
				alts[i].ipErr = errIPOperation
				continue
			}
			alts[i].ip, alts[i].ipErr = parseIPPattern(v)
		}
		return alts
	}
	start := 1
	for i := 1; i < len(vals)-1; i++ {
		if isIP(i) {
			start = i + 1
		}
	}
	alts := []lineAlt{{text: vals[0], isIP: isIP(0)}}
	for i := start; i < len(vals); i++ {
		alts = append(alts, lineAlt{text: vals[i], isIP: isIP(i)})
	}
	return alts
}

func (f *LineFilter) negated() bool { return f.Op == tNeq || f.Op == tNre || f.Op == tNpat }

// ipErr is the error of the filter's ip() alternatives; Loki builds a chain from its right end, so the last
// failing alternative is the one named.
func (f *LineFilter) ipErr() error {
	for i := len(f.alts) - 1; i >= 0; i-- {
		if f.alts[i].ipErr != nil {
			return f.alts[i].ipErr
		}
	}
	return nil
}

// lokiString renders the filter as Loki names it in a stage error: a negated chain as separate filters.
func (f *LineFilter) lokiString() string {
	var b strings.Builder
	for i, a := range f.alts {
		switch {
		case i == 0:
			b.WriteString(f.op() + " ")
		case f.negated():
			b.WriteString(" " + f.op() + " ")
		default:
			b.WriteString(" or ")
		}
		if a.isIP {
			b.WriteString("ip(" + strconv.Quote(a.text) + ")")
		} else {
			b.WriteString(strconv.Quote(a.text))
		}
	}
	return b.String()
}

// checkStages runs checkIPStages over every log selector of a parsed query, left to right: Loki builds the
// stages after parsing the whole query, so a syntax error anywhere is reported before a stage error.
func checkStages(e Expr) error {
	switch x := e.(type) {
	case *LogSelectorExpr:
		return checkIPStages(x.Stages)
	case *RangeAggregation:
		return checkIPStages(x.Selector.Stages)
	case *VectorAggregation:
		return checkStages(x.Inner)
	case *LabelReplaceExpr:
		return checkStages(x.Inner)
	case *BinaryExpr:
		if err := checkStages(x.LHS); err != nil {
			return err
		}
		return checkStages(x.RHS)
	}
	return nil
}
