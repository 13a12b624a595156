package logql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
)

// Entry is one log line with its nanosecond timestamp and its structured metadata (trace_id, span_id, ...).
type Entry struct {
	Timestamp int64
	Line      string
	Metadata  labels.Labels
}

// Error label names and values, as Loki sets them.
const (
	ErrorLabel        = "__error__"
	ErrorDetailsLabel = "__error_details__"
	errJSON           = "JSONParserErr"
	errLogfmt         = "LogfmtParserErr"
	errLabelFilter    = "LabelFilterErr"
	errTemplate       = "TemplateFormatErr"
	errSample         = "SampleExtractionErr"
)

// LabelsBuilder holds one line's labels in Loki's three categories: stream labels, structured metadata and
// labels parsed from the line. Later categories shadow earlier ones.
type LabelsBuilder struct {
	stream  labels.Labels
	meta    labels.Labels
	parsed  []labels.Label
	deleted []string
}

// Reset starts a new line.
func (b *LabelsBuilder) Reset(stream, meta labels.Labels) {
	b.stream, b.meta = stream, meta
	b.parsed = b.parsed[:0]
	b.deleted = b.deleted[:0]
}

func (b *LabelsBuilder) isDeleted(n string) bool {
	for _, d := range b.deleted {
		if d == n {
			return true
		}
	}
	return false
}

// Get returns a label's value from any category.
func (b *LabelsBuilder) Get(n string) (string, bool) {
	for i := len(b.parsed) - 1; i >= 0; i-- {
		if b.parsed[i].Name == n {
			return b.parsed[i].Value, true
		}
	}
	if len(b.deleted) > 0 && b.isDeleted(n) {
		return "", false
	}
	if v := b.meta.Get(n); v != "" {
		return v, true
	}
	if v := b.stream.Get(n); v != "" {
		return v, true
	}
	return "", false
}

// Set sets a parsed label.
func (b *LabelsBuilder) Set(n, v string) {
	for i := range b.parsed {
		if b.parsed[i].Name == n {
			b.parsed[i].Value = v
			return
		}
	}
	b.parsed = append(b.parsed, labels.Label{Name: n, Value: v})
}

// Del removes a label from every category.
func (b *LabelsBuilder) Del(n string) {
	for i := 0; i < len(b.parsed); i++ {
		if b.parsed[i].Name == n {
			b.parsed = append(b.parsed[:i], b.parsed[i+1:]...)
			i--
		}
	}
	if !b.isDeleted(n) {
		b.deleted = append(b.deleted, n)
	}
}

// HasErr reports whether a stage has set __error__.
func (b *LabelsBuilder) HasErr() bool { _, ok := b.Get(ErrorLabel); return ok }

func (b *LabelsBuilder) setErr(kind, details string) {
	if b.HasErr() {
		return
	}
	b.Set(ErrorLabel, kind)
	if details != "" {
		b.Set(ErrorDetailsLabel, details)
	}
}

func (b *LabelsBuilder) inParsed(n string) bool {
	for _, l := range b.parsed {
		if l.Name == n {
			return true
		}
	}
	return false
}

// Labels returns every label of the line, merged.
func (b *LabelsBuilder) Labels() labels.Labels {
	if len(b.parsed) == 0 && len(b.deleted) == 0 && b.meta.IsEmpty() {
		return b.stream
	}
	lb := labels.NewScratchBuilder(b.stream.Len() + b.meta.Len() + len(b.parsed))
	seen := map[string]bool{}
	for _, l := range b.parsed {
		lb.Add(l.Name, l.Value)
		seen[l.Name] = true
	}
	b.meta.Range(func(l labels.Label) {
		if !seen[l.Name] && !b.isDeleted(l.Name) {
			lb.Add(l.Name, l.Value)
			seen[l.Name] = true
		}
	})
	b.stream.Range(func(l labels.Label) {
		if !seen[l.Name] && !b.isDeleted(l.Name) {
			lb.Add(l.Name, l.Value)
		}
	})
	lb.Sort()
	return lb.Labels()
}

// Categorized returns the labels split into stream labels, structured metadata and parsed labels, the shape of
// Loki's `categorize-labels` response encoding.
func (b *LabelsBuilder) Categorized() (stream, meta, parsed labels.Labels) {
	stream = b.stream
	if len(b.deleted) > 0 || len(b.parsed) > 0 {
		sb := labels.NewScratchBuilder(b.stream.Len())
		b.stream.Range(func(l labels.Label) {
			if !b.isDeleted(l.Name) && !b.inParsed(l.Name) {
				sb.Add(l.Name, l.Value)
			}
		})
		stream = sb.Labels()
	}
	mb := labels.NewScratchBuilder(b.meta.Len())
	b.meta.Range(func(l labels.Label) {
		if !b.isDeleted(l.Name) && !b.inParsed(l.Name) {
			mb.Add(l.Name, l.Value)
		}
	})
	meta = mb.Labels()
	pb := labels.NewScratchBuilder(len(b.parsed))
	for _, l := range b.parsed {
		pb.Add(l.Name, l.Value)
	}
	pb.Sort()
	parsed = pb.Labels()
	return stream, meta, parsed
}

func (b *LabelsBuilder) names() []string {
	var ns []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] && !b.isDeleted(n) {
			seen[n] = true
			ns = append(ns, n)
		}
	}
	for _, l := range b.parsed {
		add(l.Name)
	}
	b.meta.Range(func(l labels.Label) { add(l.Name) })
	b.stream.Range(func(l labels.Label) { add(l.Name) })
	return ns
}

func (b *LabelsBuilder) templateData() map[string]string {
	m := make(map[string]string, 8)
	for _, n := range b.names() {
		m[n], _ = b.Get(n)
	}
	return m
}

// stageFn processes one line; it returns the (possibly rewritten) line and whether to keep it.
type stageFn func(ts int64, line string, b *LabelsBuilder) (string, bool)

// Pipeline runs a log query's stages over lines. A Pipeline is not safe for concurrent use: build one per
// goroutine with NewPipeline.
type Pipeline struct {
	fns []stageFn
	// NoLabels is true when no stage reads or writes labels, so callers may skip building them.
	NoLabels bool
	b        LabelsBuilder
	tstate   *templateState
}

// NewPipeline compiles stages for one goroutine's use.
func NewPipeline(stages []Stage) *Pipeline {
	p := &Pipeline{NoLabels: true, tstate: &templateState{}}
	for _, st := range stages {
		switch s := st.(type) {
		case *LineFilter:
			p.fns = append(p.fns, lineFilterFn(s))
		default:
			p.NoLabels = false
			p.fns = append(p.fns, p.stageFn(st))
		}
	}
	return p
}

// Process runs the pipeline over one line. It returns the output line and whether the line is kept; the line's
// labels are in Builder() until the next call.
func (p *Pipeline) Process(ts int64, line string, stream, meta labels.Labels) (string, bool) {
	p.b.Reset(stream, meta)
	for _, f := range p.fns {
		var keep bool
		line, keep = f(ts, line, &p.b)
		if !keep {
			return "", false
		}
	}
	return line, true
}

// Builder gives the labels of the line last processed.
func (p *Pipeline) Builder() *LabelsBuilder { return &p.b }

func lineFilterFn(f *LineFilter) stageFn {
	if len(f.alts) == 1 && f.alts[0].asIP && f.alts[0].ip != nil {
		ip, want := f.alts[0].ip, f.Op == tPipeEq
		return func(_ int64, line string, _ *LabelsBuilder) (string, bool) { return line, ip.matchText(line) == want }
	}
	vals := make([]string, len(f.alts))
	for i, a := range f.alts {
		vals[i] = a.text
	}
	switch f.Op {
	case tPipeEq:
		if len(vals) == 1 {
			v := vals[0]
			return func(_ int64, line string, _ *LabelsBuilder) (string, bool) { return line, strings.Contains(line, v) }
		}
		return func(_ int64, line string, _ *LabelsBuilder) (string, bool) {
			for _, v := range vals {
				if strings.Contains(line, v) {
					return line, true
				}
			}
			return line, false
		}
	case tNeq:
		alts := f.alts
		return func(_ int64, line string, _ *LabelsBuilder) (string, bool) {
			for _, a := range alts {
				if a.asIP && a.ip != nil && a.ip.matchText(line) || !a.asIP && strings.Contains(line, a.text) {
					return line, false
				}
			}
			return line, true
		}
	case tPipeRe:
		return func(_ int64, line string, _ *LabelsBuilder) (string, bool) {
			for _, re := range f.res {
				if re.MatchString(line) {
					return line, true
				}
			}
			return line, false
		}
	case tPipePat, tNpat:
		want := f.Op == tPipePat
		return func(_ int64, line string, _ *LabelsBuilder) (string, bool) {
			for _, m := range f.pats {
				if m.test(line) {
					return line, want
				}
			}
			return line, !want
		}
	default: // !~
		return func(_ int64, line string, _ *LabelsBuilder) (string, bool) {
			for _, re := range f.res {
				if re.MatchString(line) {
					return line, false
				}
			}
			return line, true
		}
	}
}

var ansiRe = regexp.MustCompile(`\x1b\[[0-9;]*[a-zA-Z]`)

func (p *Pipeline) stageFn(st Stage) stageFn {
	switch s := st.(type) {
	case *ParserStage:
		return parserFn(s)
	case *LabelFilterStage:
		return func(_ int64, line string, b *LabelsBuilder) (string, bool) { return line, evalLabelFilter(s.Filter, b) }
	case *LineFormatStage:
		t := p.tstate.bind(s.tmpl)
		return func(ts int64, line string, b *LabelsBuilder) (string, bool) {
			p.tstate.line, p.tstate.ts = line, ts
			out, err := execTemplate(t, b.templateData())
			if err != nil {
				b.setErr(errTemplate, err.Error())
				return line, true
			}
			return out, true
		}
	case *LabelFormatStage:
		tmpls := make([]*template.Template, len(s.Items))
		for i, it := range s.Items {
			if it.tmpl != nil {
				tmpls[i] = p.tstate.bind(it.tmpl)
			}
		}
		return func(ts int64, line string, b *LabelsBuilder) (string, bool) {
			p.tstate.line, p.tstate.ts = line, ts
			var data map[string]string
			for i, it := range s.Items {
				if it.Rename {
					v, ok := b.Get(it.Src)
					if ok {
						b.Del(it.Src)
						b.Set(it.Dst, v)
					}
					continue
				}
				if data == nil {
					data = b.templateData()
				}
				out, err := execTemplate(tmpls[i], data)
				if err != nil {
					b.setErr(errTemplate, err.Error())
					continue
				}
				b.Set(it.Dst, out)
			}
			return line, true
		}
	case *DropKeepStage:
		return func(_ int64, line string, b *LabelsBuilder) (string, bool) {
			if s.Keep {
				for _, n := range b.names() {
					// As Loki, keep never removes the error labels: a failed line stays failed.
					keep := n == ErrorLabel || n == ErrorDetailsLabel || n == preserveErrorLabel
					for _, k := range s.Names {
						keep = keep || k == n
					}
					for _, m := range s.Ms {
						if m.Name == n {
							v, _ := b.Get(n)
							keep = keep || m.Matches(v)
						}
					}
					if !keep {
						b.Del(n)
					}
				}
				return line, true
			}
			for _, n := range s.Names {
				b.Del(n)
			}
			for _, m := range s.Ms {
				if v, ok := b.Get(m.Name); ok && m.Matches(v) {
					b.Del(m.Name)
				}
			}
			return line, true
		}
	case DecolorizeStage:
		return func(_ int64, line string, _ *LabelsBuilder) (string, bool) {
			return ansiRe.ReplaceAllString(line, ""), true
		}
	}
	return func(_ int64, line string, _ *LabelsBuilder) (string, bool) { return line, true }
}

func evalLabelFilter(f LabelFilter, b *LabelsBuilder) bool {
	switch f := f.(type) {
	case *BinaryLabelFilter:
		l := evalLabelFilter(f.Left, b)
		if f.And {
			return l && evalLabelFilter(f.Right, b)
		}
		return l || evalLabelFilter(f.Right, b)
	case *StringLabelFilter:
		v, _ := b.Get(f.M.Name)
		return f.M.Matches(v)
	case *IPLabelFilter:
		return f.match(b)
	case *NumericLabelFilter:
		// As Loki 3: a missing label fails the filter (also on a line that failed a parser); a value that does
		// not convert keeps the line and marks it, unless an earlier stage's error is already there.
		v, ok := b.Get(f.Name)
		if !ok {
			return false
		}
		x, err := convertValue(v, f.Kind)
		if err != nil {
			if !b.HasErr() {
				b.setErr(errLabelFilter, err.Error())
			}
			return true
		}
		return compareNum(f.Op, x, f.Value)
	}
	return true
}

func convertValue(v string, kind int) (float64, error) {
	switch kind {
	case kindDuration:
		d, err := parseDuration(v)
		if err != nil {
			return 0, err
		}
		return d.Seconds(), nil
	case kindBytes:
		n, err := parseBytes(v)
		return float64(n), err
	}
	return strconv.ParseFloat(v, 64)
}

func compareNum(op tokKind, a, b float64) bool {
	switch op {
	case tEqEq, tEq:
		return a == b
	case tNeq:
		return a != b
	case tGt:
		return a > b
	case tGte:
		return a >= b
	case tLt:
		return a < b
	case tLte:
		return a <= b
	}
	return false
}

// sanitizeLabelName turns a key into a valid label name (invalid characters become '_').
func sanitizeLabelName(s string) string {
	ok := true
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			ok = false
			break
		}
	}
	if ok && s != "" {
		return s
	}
	var sb strings.Builder
	for i, r := range s {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	if sb.Len() == 0 {
		return "_"
	}
	return sb.String()
}

func setExtracted(b *LabelsBuilder, name, val string) {
	name = sanitizeLabelName(name)
	if b.stream.Has(name) {
		name += "_extracted"
	}
	b.Set(name, val)
}

func parserFn(s *ParserStage) stageFn {
	switch s.Kind {
	case "json", "unpack":
		var paths [][]string
		for _, e := range s.Params {
			paths = append(paths, splitJSONPath(e.Path))
		}
		return func(_ int64, line string, b *LabelsBuilder) (string, bool) {
			var v any
			d := json.NewDecoder(strings.NewReader(line))
			d.UseNumber()
			if err := d.Decode(&v); err != nil {
				b.setErr(errJSON, err.Error())
				return line, true
			}
			obj, ok := v.(map[string]any)
			if !ok {
				b.setErr(errJSON, "line is not a JSON object")
				return line, true
			}
			if len(s.Params) > 0 {
				for i, e := range s.Params {
					if val, ok := jsonPath(obj, paths[i]); ok {
						setExtracted(b, e.Name, val)
					}
				}
				return line, true
			}
			if s.Kind == "unpack" {
				for k, val := range obj {
					if k == "_entry" {
						line = jsonScalar(val)
						continue
					}
					setExtracted(b, k, jsonScalar(val))
				}
				return line, true
			}
			flattenJSON(b, "", obj)
			return line, true
		}
	case "logfmt":
		return func(_ int64, line string, b *LabelsBuilder) (string, bool) {
			want := map[string]string{}
			for _, e := range s.Params {
				want[e.Path] = e.Name
			}
			err := parseLogfmt(line, func(k, v string) {
				if v == "" && !s.KeepEmpty {
					// As Loki: a key without a value sets nothing unless --keep-empty.
					return
				}
				if len(want) > 0 {
					if n, ok := want[k]; ok {
						setExtracted(b, n, v)
					}
					return
				}
				setExtracted(b, k, v)
			})
			if err != nil && s.Strict {
				b.setErr(errLogfmt, err.Error())
			}
			return line, true
		}
	case "regexp":
		names := s.re.SubexpNames()
		return func(_ int64, line string, b *LabelsBuilder) (string, bool) {
			m := s.re.FindStringSubmatch(line)
			for i, n := range names {
				if i > 0 && n != "" && m != nil {
					setExtracted(b, n, m[i])
				}
			}
			return line, true
		}
	case "pattern":
		return func(_ int64, line string, b *LabelsBuilder) (string, bool) {
			s.pat.match(line, func(n, v string) { setExtracted(b, n, v) })
			return line, true
		}
	}
	return func(_ int64, line string, _ *LabelsBuilder) (string, bool) { return line, true }
}

func jsonScalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	default:
		bs, _ := json.Marshal(x)
		return string(bs)
	}
}

func flattenJSON(b *LabelsBuilder, prefix string, obj map[string]any) {
	for k, v := range obj {
		name := k
		if prefix != "" {
			name = prefix + "_" + k
		}
		switch x := v.(type) {
		case map[string]any:
			flattenJSON(b, name, x)
		case []any:
			// Arrays are skipped, as Loki's json parser does without parameters.
		default:
			setExtracted(b, name, jsonScalar(x))
		}
	}
}

func splitJSONPath(p string) []string {
	var parts []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			parts = append(parts, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '.':
			flush()
		case '[':
			flush()
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				cur.WriteString(p[i:])
				i = len(p)
				continue
			}
			parts = append(parts, strings.Trim(p[i+1:i+j], `"'`))
			i += j
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return parts
}

func jsonPath(v any, path []string) (string, bool) {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				return "", false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return "", false
			}
			v = x[i]
		default:
			return "", false
		}
	}
	return jsonScalar(v), true
}

// parseLogfmt calls fn for each key=value pair. It tolerates malformed input the way Loki's non-strict
// parser does and reports the first problem.
func parseLogfmt(line string, fn func(k, v string)) error {
	var firstErr error
	i := 0
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		ks := i
		for i < len(line) && line[i] != '=' && line[i] != ' ' && line[i] != '\t' && line[i] != '"' {
			i++
		}
		key := line[ks:i]
		if i < len(line) && line[i] == '"' {
			// A quote inside a key (a JSON line, say): as Loki's decoder, the rest of the token is skipped.
			if firstErr == nil {
				firstErr = fmt.Errorf("unexpected '\"' at %d", i)
			}
			for i < len(line) && line[i] != ' ' && line[i] != '\t' {
				i++
			}
			continue
		}
		if key == "" {
			if i < len(line) {
				i++
			}
			continue
		}
		if i >= len(line) || line[i] != '=' {
			fn(key, "")
			continue
		}
		i++ // '='
		if i < len(line) && line[i] == '"' {
			j := i + 1
			esc := false
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					esc = true
					j++
				}
				j++
			}
			if j >= len(line) {
				if firstErr == nil {
					firstErr = fmt.Errorf("unterminated quoted value for key %q", key)
				}
				fn(key, line[i+1:])
				return firstErr
			}
			v := line[i+1 : j]
			if esc {
				if u, err := strconv.Unquote(line[i : j+1]); err == nil {
					v = u
				}
			}
			fn(key, v)
			i = j + 1
			continue
		}
		vs := i
		bad := false
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			bad = bad || line[i] == '=' || line[i] == '"'
			i++
		}
		if bad {
			// An unquoted value holding '=' or '"' is malformed; Loki's decoder skips it.
			if firstErr == nil {
				firstErr = fmt.Errorf("unexpected '=' or '\"' in the value of key %q", key)
			}
			continue
		}
		fn(key, line[vs:i])
	}
	return firstErr
}

type pattern struct {
	parts []patPart
}

type patPart struct {
	lit     string
	capture string // "" for literal; "_" for unnamed
}

func compilePattern(s string) (*pattern, error) {
	p := &pattern{}
	names := map[string]bool{}
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			p.parts = append(p.parts, patPart{lit: s})
			break
		}
		j := strings.IndexByte(s[i:], '>')
		name := ""
		if j > 0 {
			name = s[i+1 : i+j]
		}
		if j < 0 || !validCaptureName(name) {
			// Not a capture: keep '<' as literal text.
			p.parts = append(p.parts, patPart{lit: s[:i+1]})
			s = s[i+1:]
			continue
		}
		if i > 0 {
			p.parts = append(p.parts, patPart{lit: s[:i]})
		}
		if n := len(p.parts); n > 0 && p.parts[n-1].capture != "" {
			return nil, fmt.Errorf("consecutive captures <%s><%s> are not allowed", p.parts[n-1].capture, name)
		}
		if name != "_" && names[name] {
			return nil, fmt.Errorf("duplicate capture <%s>", name)
		}
		names[name] = true
		p.parts = append(p.parts, patPart{capture: name})
		s = s[i+j+1:]
	}
	// Merge adjacent literals.
	var merged []patPart
	for _, pp := range p.parts {
		if n := len(merged); n > 0 && pp.capture == "" && merged[n-1].capture == "" {
			merged[n-1].lit += pp.lit
			continue
		}
		merged = append(merged, pp)
	}
	p.parts = merged
	named := false
	for _, pp := range p.parts {
		named = named || pp.capture != "" && pp.capture != "_"
	}
	if !named {
		return nil, fmt.Errorf("at least one named capture is required")
	}
	return p, nil
}

func validCaptureName(n string) bool {
	if n == "" {
		return false
	}
	for i, r := range n {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func (p *pattern) match(line string, fn func(n, v string)) {
	type capt struct{ name, val string }
	var caps []capt
	pos := 0
	pending := ""
	hasPending := false
	for i, pp := range p.parts {
		if pp.capture != "" {
			pending, hasPending = pp.capture, true
			continue
		}
		if i == 0 {
			if !strings.HasPrefix(line, pp.lit) {
				return
			}
			pos = len(pp.lit)
			continue
		}
		j := strings.Index(line[pos:], pp.lit)
		if j < 0 {
			return
		}
		if hasPending {
			caps = append(caps, capt{pending, line[pos : pos+j]})
			hasPending = false
		}
		pos += j + len(pp.lit)
	}
	if hasPending {
		caps = append(caps, capt{pending, line[pos:]})
	}
	for _, c := range caps {
		if c.name != "_" {
			fn(c.name, c.val)
		}
	}
}

// templateState carries the current line and timestamp into __line__ and __timestamp__.
type templateState struct {
	line string
	ts   int64
}

const maxTemplateOutput = 64 << 10

var reCache sync.Map

func cachedRegexp(s string) (*regexp.Regexp, error) {
	if r, ok := reCache.Load(s); ok {
		return r.(*regexp.Regexp), nil
	}
	r, err := regexp.Compile(s)
	if err != nil {
		return nil, err
	}
	reCache.Store(s, r)
	return r, nil
}

// templateFuncs is the safe subset of template functions: string handling, arithmetic and time formatting. No
// function reads files, the environment or the network.
func templateFuncs(st *templateState) template.FuncMap {
	toF := func(v any) float64 {
		switch x := v.(type) {
		case string:
			f, _ := strconv.ParseFloat(x, 64)
			return f
		case int:
			return float64(x)
		case int64:
			return float64(x)
		case float64:
			return x
		}
		return 0
	}
	toI := func(v any) int64 { return int64(toF(v)) }
	return template.FuncMap{
		"__line__":      func() string { return st.line },
		"__timestamp__": func() time.Time { return time.Unix(0, st.ts).UTC() },
		"ToLower":       strings.ToLower, "ToUpper": strings.ToUpper, "lower": strings.ToLower, "upper": strings.ToUpper,
		"title":      strings.ToTitle,
		"TrimSpace":  strings.TrimSpace,
		"trim":       strings.TrimSpace,
		"trimAll":    func(cut, s string) string { return strings.Trim(s, cut) },
		"trimPrefix": func(p, s string) string { return strings.TrimPrefix(s, p) },
		"trimSuffix": func(p, s string) string { return strings.TrimSuffix(s, p) },
		"TrimPrefix": strings.TrimPrefix, "TrimSuffix": strings.TrimSuffix,
		"Replace":   strings.Replace,
		"replace":   func(old, nw, s string) string { return strings.ReplaceAll(s, old, nw) },
		"contains":  func(sub, s string) bool { return strings.Contains(s, sub) },
		"hasPrefix": func(p, s string) bool { return strings.HasPrefix(s, p) },
		"hasSuffix": func(p, s string) bool { return strings.HasSuffix(s, p) },
		"default": func(d string, v ...string) string {
			if len(v) == 0 || v[0] == "" {
				return d
			}
			return v[0]
		},
		"substr": func(start, end int, s string) string {
			if start < 0 {
				start = 0
			}
			if end > len(s) || end < 0 {
				end = len(s)
			}
			if start > end {
				return ""
			}
			return s[start:end]
		},
		"repeat": func(n int, s string) string {
			if n < 0 || n*len(s) > maxTemplateOutput {
				return s
			}
			return strings.Repeat(s, n)
		},
		"regexReplaceAll": func(re, s, repl string) (string, error) {
			r, err := cachedRegexp(re)
			if err != nil {
				return "", err
			}
			return r.ReplaceAllString(s, repl), nil
		},
		"regexReplaceAllLiteral": func(re, s, repl string) (string, error) {
			r, err := cachedRegexp(re)
			if err != nil {
				return "", err
			}
			return r.ReplaceAllLiteralString(s, repl), nil
		},
		"count": func(re, s string) (int, error) {
			r, err := cachedRegexp(re)
			if err != nil {
				return 0, err
			}
			return len(r.FindAllStringIndex(s, -1)), nil
		},
		"add": func(a, b any) int64 { return toI(a) + toI(b) },
		"sub": func(a, b any) int64 { return toI(a) - toI(b) },
		"mul": func(a, b any) int64 { return toI(a) * toI(b) },
		"div": func(a, b any) int64 {
			d := toI(b)
			if d == 0 {
				return 0
			}
			return toI(a) / d
		},
		"mod": func(a, b any) int64 {
			d := toI(b)
			if d == 0 {
				return 0
			}
			return toI(a) % d
		},
		"addf":            func(a, b any) float64 { return toF(a) + toF(b) },
		"subf":            func(a, b any) float64 { return toF(a) - toF(b) },
		"mulf":            func(a, b any) float64 { return toF(a) * toF(b) },
		"divf":            func(a, b any) float64 { return toF(a) / toF(b) },
		"int":             toI,
		"float64":         toF,
		"unixEpoch":       func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) },
		"unixEpochMillis": func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) },
		"unixEpochNanos":  func(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) },
		"date":            func(layout string, t time.Time) string { return t.Format(layout) },
		"toDate":          func(layout, s string) time.Time { t, _ := time.Parse(layout, s); return t },
		"now":             func() time.Time { return time.Now() },
		"alignLeft": func(n int, s string) string {
			if utf8.RuneCountInString(s) >= n {
				return string([]rune(s)[:n])
			}
			return s + strings.Repeat(" ", n-utf8.RuneCountInString(s))
		},
		"alignRight": func(n int, s string) string {
			if utf8.RuneCountInString(s) >= n {
				r := []rune(s)
				return string(r[len(r)-n:])
			}
			return strings.Repeat(" ", n-utf8.RuneCountInString(s)) + s
		},
	}
}

func compileTemplate(src string) (*template.Template, error) {
	return template.New("").Option("missingkey=zero").Funcs(templateFuncs(&templateState{})).Parse(src)
}

func (st *templateState) bind(t *template.Template) *template.Template {
	c, err := t.Clone()
	if err != nil {
		return t
	}
	return c.Funcs(templateFuncs(st))
}

func execTemplate(t *template.Template, data map[string]string) (string, error) {
	var buf bytes.Buffer
	if err := t.Execute(&limitedWriter{w: &buf, n: maxTemplateOutput}, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("template output exceeds %d bytes", maxTemplateOutput)
	}
	l.n -= len(p)
	return l.w.Write(p)
}
