package logql

import (
	"bufio"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

func TestIPPattern(t *testing.T) {
	for _, tc := range []struct {
		pat     string
		ok      bool
		in, out []string
	}{
		{"192.168.0.1", true, []string{"192.168.0.1"}, []string{"192.168.0.2", "::ffff:192.168.0.1"}},
		{"::1", true, []string{"::1", "0::1"}, []string{"::2", "0.0.0.1"}},
		{"192.168.4.5/16", true, []string{"192.168.0.0", "192.168.255.255"}, []string{"192.169.0.0", "::ffff:192.168.0.1"}},
		{"2001:db8::/32", true, []string{"2001:db8::1", "2001:db8:ffff::"}, []string{"2001:db9::", "10.0.0.1"}},
		{"::ffff:0:0/96", true, []string{"::ffff:1.2.3.4"}, []string{"1.2.3.4"}},
		{"10.0.0.1-10.0.0.9", true, []string{"10.0.0.1", "10.0.0.9", "10.0.0.5"}, []string{"10.0.0.0", "10.0.0.10", "::ffff:10.0.0.5"}},
		{"2001:db8::1-2001:db8::8", true, []string{"2001:db8::2"}, []string{"2001:db8::9"}},
		{"10.0.0.1-10.0.0.1", true, []string{"10.0.0.1"}, []string{"10.0.0.2"}},
		{"fe80::1-fe80::2%eth0", true, []string{"fe80::2"}, []string{"fe80::3"}}, // a zone on a range's end is dropped
		{"fe80::1%eth0", true, nil, []string{"fe80::1"}},                         // an address with a zone matches none
		{"fe80::1%eth0-fe80::2", true, nil, []string{"fe80::2"}},                 // one address, zone "eth0-fe80::2"
		{"10.0.0.9-10.0.0.1", false, nil, nil},
		{"10.0.0.1-::1", false, nil, nil},
		{"10.0.0.1 - 10.0.0.9", false, nil, nil},
		{"10.0.0.1/33", false, nil, nil},
		{"010.0.0.1", false, nil, nil},
		{"", false, nil, nil},
		{"bad", false, nil, nil},
		{"-", false, nil, nil},
	} {
		p, err := parseIPPattern(tc.pat)
		if (err == nil) != tc.ok {
			t.Errorf("parseIPPattern(%q) error %v, want ok=%v", tc.pat, err, tc.ok)
			continue
		}
		if err != nil {
			if want := `ip: invalid pattern: "` + tc.pat + `"`; err.Error() != want {
				t.Errorf("parseIPPattern(%q) = %q, want %q", tc.pat, err, want)
			}
			continue
		}
		for _, a := range tc.in {
			if !p.contains(netip.MustParseAddr(a)) {
				t.Errorf("%q does not contain %s", tc.pat, a)
			}
		}
		for _, a := range tc.out {
			if p.contains(netip.MustParseAddr(a)) {
				t.Errorf("%q contains %s", tc.pat, a)
			}
		}
	}
}

// TestIPMatchText: what counts as an address in a line (the scan's boundaries, as Loki's).
func TestIPMatchText(t *testing.T) {
	for _, tc := range []struct {
		pat, line string
		want      bool
	}{
		{"10.0.0.1", "from 10.0.0.1 to", true},
		{"10.0.0.1", "10.0.0.1", true},
		{"10.0.0.1", "x10.0.0.1y", true},        // nothing is checked before or after the run
		{"10.0.0.1", "10.0.0.1:8080", true},     // a port ends the run
		{"10.0.0.1", "[10.0.0.1]", true},        // so does a bracket
		{"10.0.0.1", "10.0.0.10", false},        // the whole run is the address
		{"10.0.0.1", "10.0.0.1.5", false},       // five parts: no address
		{"10.0.0.1", "010.0.0.1", false},        // leading zero: no address, and the run is skipped whole
		{"234.5.6.7", "1234.5.6.7", true},       // the start is found one digit in
		{"10.0.0.1", "10.0.0.2,10.0.0.1", true}, // the second address after a comma
		{"10.0.0.1", "ab12:10.0.0.1", false},    // an IPv6-like run swallows it
		{"10.0.0.1", "a:b 10.0.0.1", true},
		{"1.2.3.4", "1.2.3", false},
		{"::1", "::1", false}, // too short for the scan's five-byte look-ahead
		{"::1", "::1 ", false},
		{"::1", "at ::1", false},
		{"::1", "at ::1 x", true},
		{"2001:db8::a", "2001:DB8::A", true},
		{"2001:db8::7", "[2001:db8::7]:443", true},
		{"fe80::1", "fe80::1%eth0", true}, // the zone ends the run
		{"::ffff:10.0.0.1", "::ffff:10.0.0.1 x", true},
		{"10.0.0.0/8", "::ffff:10.0.0.1 x", false}, // mapped addresses are IPv6
		{"::ffff:0:0/96", "::ffff:10.0.0.1 x", true},
		{"10.0.0.1", "", false},
		{"10.0.0.1", "10.0.0", false},
		{"10.0.0.1", "☕10.0.0.1☕", true},
		{"0.0.0.0/0", "no address here, 1.2 or 3:4", false},
	} {
		p, err := parseIPPattern(tc.pat)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.matchText(tc.line); got != tc.want {
			t.Errorf("ip(%q) on %q = %v, want %v", tc.pat, tc.line, got, tc.want)
		}
	}
}

// lokiIPCase is one line of testdata/ip_loki.jsonl: a query and Loki 3.7.6's answer over testdata/ip_lines.txt
// (pushed with the structured metadata addr = the line's first field), recorded with tests/diff's peer.
type lokiIPCase struct {
	Query string   `json:"query"`
	Code  int      `json:"code"`
	Lines []string `json:"lines"`
	Type  string   `json:"type"`
	Error string   `json:"error"`
}

// TestIPAsLoki runs every recorded query on the engine and compares the lines kept, or the error.
func TestIPAsLoki(t *testing.T) {
	raw, err := os.ReadFile("testdata/ip_lines.txt")
	if err != nil {
		t.Fatal(err)
	}
	st := memStream{lbs: labels.FromStrings("service_name", "probe")}
	for i, l := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		st.entries = append(st.entries, Entry{Timestamp: t0 + int64(i)*int64(time.Second), Line: l,
			Metadata: labels.FromStrings("addr", strings.Fields(l + " x")[0])})
	}
	q := &memQuerier{streams: []memStream{st}}
	f, err := os.Open("testdata/ip_loki.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var c lokiIPCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		n++
		e, err := ParseExpr(c.Query)
		if c.Code != 200 {
			switch {
			case err == nil:
				t.Errorf("%s: no error, Loki: %s", c.Query, c.Error)
			case strings.Contains(c.Error, "stage '") && err.Error() != c.Error:
				t.Errorf("%s:\n  error %s\n  Loki  %s", c.Query, err, c.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.Query, err)
			continue
		}
		sel, ok := e.(*LogSelectorExpr)
		if !ok {
			continue
		}
		res, err := (&Engine{}).SelectLogs(context.Background(), q, LogQuery{Expr: sel, Start: t0, End: t0 + int64(time.Hour), Limit: 1000, Direction: Forward}, &Stats{})
		if err != nil {
			t.Errorf("%s: %v", c.Query, err)
			continue
		}
		var got []string
		for _, s := range res {
			for _, e := range s.Entries {
				got = append(got, e.Line)
			}
		}
		slices.Sort(got)
		if c.Lines == nil {
			c.Lines = []string{}
		}
		if got == nil {
			got = []string{}
		}
		if !slices.Equal(got, c.Lines) {
			t.Errorf("%s:\n  got  %q\n  Loki %q", c.Query, got, c.Lines)
		}
	}
	if n < 90 {
		t.Fatalf("read %d cases", n)
	}
}

// TestIPMetric: ip() filters in a metric query count what the log query keeps.
func TestIPMetric(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want float64
	}{
		{`sum(count_over_time({app="lb"} |= ip("10.0.0.0/30") [1h]))`, 2},
		{`sum(count_over_time({app="lb"} |= ip("10.0.0.2") [1h]))`, 1},
		{`sum(count_over_time({app="lb"} != ip("10.0.0.2") [1h]))`, 1},
		{`sum(count_over_time({app="lb"} | regexp "^(?P<client>\\S+)" | client = ip("10.0.0.1-10.0.0.1") [1h]))`, 1},
		{`sum(count_over_time({app=~".+"} |= "GET" or "POST" | regexp "^(?P<client>\\S+)" | client != ip("10.0.0.1") [1h]))`, 1},
	} {
		e, err := ParseSampleExpr(tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		at := t0 + int64(30*time.Minute)
		m, _, err := (&Engine{}).EvalRange(context.Background(), testData(), e, at, at, 0, &Stats{})
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		if len(m) != 1 || len(m[0].Points) != 1 || m[0].Points[0].V != tc.want {
			t.Errorf("%s = %v, want %v", tc.q, m, tc.want)
		}
	}
}

// TestIPString: a parsed ip() filter prints as it is written.
func TestIPString(t *testing.T) {
	for _, q := range []string{
		`{a="b"} |= ip("10.0.0.0/8")`,
		`{a="b"} != "x" or ip("::1")`,
		`{a="b"} | addr=ip("1.2.3.4")`,
		`{a="b"} | addr!=ip("1.2.3.4-1.2.3.9")`,
	} {
		e, err := ParseExpr(q)
		if err != nil {
			t.Fatal(err)
		}
		if e.String() != q {
			t.Errorf("%s prints as %s", q, e.String())
		}
	}
}

// FuzzIPPattern: a pattern either fails with Loki's error or matches what it holds; the scan never panics, and
// whatever it matches is an address of the line that the pattern contains.
func FuzzIPPattern(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8|x10.0.0.1y", "0.0.0.0/0|at 12:30:45 took 1.204s", "::/0|1:2:3:4:5:6:1.2.3.4 x", "::1|at ::1 ", "1.2.3.4-1.2.3.9|1.2.3.5,1.2.3.4", "::ffff:0:0/96|::ffff:1.2.3.4 x",
		"fe80::1|fe80::1%eth0", "2001:db8::/32|[2001:db8::7]:443", "bad|", "0.0.0.0/0|1234.5.6.7"} {
		pat, line, _ := strings.Cut(s, "|")
		f.Add(pat, line)
	}
	f.Fuzz(func(t *testing.T, pat, line string) {
		p, err := parseIPPattern(pat)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ip: invalid pattern: ") {
				t.Fatalf("error %v", err)
			}
			return
		}
		if p.single && !p.contains(p.lo) && p.lo.Zone() == "" {
			t.Fatalf("%q does not contain itself", pat)
		}
		got := p.matchText(line)
		if want := matchTextParsingEveryRun(p, line); got != want {
			t.Fatalf("ip(%q) on %q: %v, parsing every run gives %v", pat, line, got, want)
		}
		if !got {
			return
		}
		for i := 0; i < len(line); i++ {
			for j := i + 1; j <= len(line) && j-i <= 45; j++ { // 45: the longest address, IPv6 ending in IPv4
				if a, err := netip.ParseAddr(line[i:j]); err == nil && p.contains(a) {
					return
				}
			}
		}
		t.Fatalf("ip(%q) matched %q, which holds no address it contains", pat, line)
	})
}

// BenchmarkIPLineFilter: the scan over access-log lines, most of which hold an address outside the pattern.
func BenchmarkIPLineFilter(b *testing.B) {
	p, err := parseIPPattern("10.0.1.0/24")
	if err != nil {
		b.Fatal(err)
	}
	lines := []string{
		`10.0.3.17 - - "GET /api/orders HTTP/1.1" 200 1532 0.041 INFO placed order`,
		`2001:db8:2::a7 - - "POST /api/pay HTTP/1.1" 500 83 1.204 ERROR payment failed`,
		`level=info msg="cache miss" user=u12 method=GET path=/api/cart status=200 duration=12ms`,
		`10.0.1.9 - - "DELETE /api/cart HTTP/1.1" 204 0 0.003 DEBUG ok`,
	}
	var n int
	for _, l := range lines {
		n += len(l)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			p.matchText(l)
		}
	}
}

// matchTextParsingEveryRun is matchText without its pre-check of a run's dots and colons.
func matchTextParsingEveryRun(p *ipPattern, s string) bool {
	for i := 0; i < len(s); i++ {
		var run int
		switch {
		case i+3 < len(s) && ipv4Start(s[i:i+4]):
			run = spanOf(s[i:], ipv4Chars)
		case i+4 < len(s) && ipv6Start(s[i:i+5]):
			run = spanOf(s[i:], ipv6Chars)
		default:
			continue
		}
		if a, err := netip.ParseAddr(s[i : i+run]); err == nil && p.contains(a) {
			return true
		}
		i += run
	}
	return false
}
