// Package traceql parses and evaluates TraceQL, the trace query language of Tempo, over Sprout's in-memory span
// model. It owns the grammar (lexer, parser, positions in errors), the value types and the evaluation of spanset
// filters, spanset operators (logical and structural), pipelines with aggregates, select, by and coalesce, and
// the parsing of TraceQL metrics functions. It must not know where spans are stored: the trace store builds
// Trace values (from live traces or from blocks) and hands them to Query.Eval one trace at a time.
package traceql

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Resource is the resource shared by the spans of one ResourceSpans; built once per batch or block row group.
type Resource struct {
	Resource    pcommon.Resource
	SchemaURL   string
	Attrs       pcommon.Map
	ServiceName string
}

// NewResource wraps a pdata resource and caches its service.name.
func NewResource(r pcommon.Resource) *Resource {
	res := &Resource{Resource: r, Attrs: r.Attributes()}
	if v, ok := res.Attrs.Get("service.name"); ok {
		res.ServiceName = v.AsString()
	}
	return res
}

// Span is one span as the evaluator sees it: the pdata span plus its resource and scope.
type Span struct {
	Span     ptrace.Span
	Resource *Resource
	Scope    pcommon.InstrumentationScope

	parent int32 // index in Trace.Spans, -1 when the parent is absent
	index  int32

	// The nested set numbering of the trace's tree (see Trace.nestedSets): 0 for spans outside it.
	nsLeft, nsRight, nsParent int32
	children                  int32
}

// StartUnixNano is the span's start time.
func (s *Span) StartUnixNano() uint64 { return uint64(s.Span.StartTimestamp()) }

// DurationNanos is the span's duration; 0 when the end precedes the start.
func (s *Span) DurationNanos() uint64 {
	st, en := uint64(s.Span.StartTimestamp()), uint64(s.Span.EndTimestamp())
	if en < st {
		return 0
	}
	return en - st
}

// Trace is every span known for one trace id, linked to parents so that structural operators can walk the tree.
type Trace struct {
	ID              pcommon.TraceID
	Spans           []Span
	Root            *Span // nil when no span is a root (parent missing everywhere)
	RootName        string
	RootServiceName string
	StartUnixNano   uint64
	EndUnixNano     uint64

	nested bool // the nested set numbering has been computed
}

// NewTrace links spans into a trace. The spans are copied, so that several searches may build traces from the
// same stored spans at once.
func NewTrace(id pcommon.TraceID, spans []Span) *Trace {
	t := &Trace{ID: id, Spans: make([]Span, len(spans))}
	copy(t.Spans, spans)
	byID := make(map[pcommon.SpanID]int32, len(spans))
	for i := range t.Spans {
		s := &t.Spans[i]
		s.index = int32(i)
		byID[s.Span.SpanID()] = int32(i)
		st, en := uint64(s.Span.StartTimestamp()), uint64(s.Span.EndTimestamp())
		if i == 0 || st < t.StartUnixNano {
			t.StartUnixNano = st
		}
		if en > t.EndUnixNano {
			t.EndUnixNano = en
		}
	}
	for i := range t.Spans {
		s := &t.Spans[i]
		s.parent = -1
		p := s.Span.ParentSpanID()
		if p.IsEmpty() {
			if t.Root == nil || s.StartUnixNano() < t.Root.StartUnixNano() {
				t.Root = s
			}
			continue
		}
		if j, ok := byID[p]; ok && j != int32(i) {
			s.parent = j
			t.Spans[j].children++
		}
	}
	if t.Root != nil {
		t.RootName = t.Root.Span.Name()
		t.RootServiceName = t.Root.Resource.ServiceName
	}
	return t
}

// DurationNanos is the time from the first span's start to the last span's end.
func (t *Trace) DurationNanos() uint64 {
	if t.EndUnixNano < t.StartUnixNano {
		return 0
	}
	return t.EndUnixNano - t.StartUnixNano
}

// Parent returns the parent of s within t, or nil.
func (t *Trace) Parent(s *Span) *Span {
	if s.parent < 0 {
		return nil
	}
	return &t.Spans[s.parent]
}

// Spanset is a set of spans of one trace produced by a query, with the value of the last aggregate in the
// pipeline (for count() > 2 and friends), the group-by value and the attributes select() asked for.
type Spanset struct {
	Spans  []*Span
	Scalar Static
	// ScalarName names the aggregate Scalar came from (count(), avg(duration)); "" when none.
	ScalarName string
	GroupBy    []GroupValue
	Select     []Attribute
}

// GroupValue is one by(...) key of a spanset.
type GroupValue struct {
	Name  string
	Value Static
}

// nestedSets numbers the spans as Tempo's nested set model does, the first time a query asks: a depth-first walk
// from each root span (spans without a parent id, in the order they were stored) gives a span its left bound on
// the way down and its right bound on the way up, counting from 1, so that a span's descendants are exactly the
// spans whose bounds lie within its own; nestedSetParent is the parent's left bound, -1 for a root. Spans that
// cannot be reached from a root (their parent was never received) keep 0, 0 and 0. A Trace is used by one
// goroutine at a time, so the lazy computation needs no lock.
func (t *Trace) nestedSets() {
	if t.nested {
		return
	}
	t.nested = true
	kids := make([][]int32, len(t.Spans))
	for i := range t.Spans {
		if p := t.Spans[i].parent; p >= 0 {
			kids[p] = append(kids[p], int32(i))
		}
	}
	bound := int32(1)
	next := make([]int, len(t.Spans))
	for i := range t.Spans {
		r := &t.Spans[i]
		if !r.Span.ParentSpanID().IsEmpty() {
			continue
		}
		r.nsLeft, r.nsParent = bound, -1
		bound++
		cur := int32(i)
		for cur >= 0 {
			c := &t.Spans[cur]
			if next[cur] < len(kids[cur]) {
				k := kids[cur][next[cur]]
				next[cur]++
				ch := &t.Spans[k]
				ch.nsLeft, ch.nsParent = bound, c.nsLeft
				bound++
				cur = k
				continue
			}
			c.nsRight = bound
			bound++
			if cur == int32(i) {
				break
			}
			cur = c.parent
		}
	}
}
