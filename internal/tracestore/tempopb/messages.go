// Package tempopb holds the messages and the gRPC service of Tempo's streaming query API
// (tempopb.StreamingQuerier), written from Tempo's published message format (tempo.proto in this directory
// lists the fields Sprout reads and writes; field numbers and names are Tempo's). Messages encode themselves
// with protowire (grpcwire.Message), as no protoc runs here. The package knows the format only: what a store
// answers is internal/tracestore's business.
package tempopb

import (
	"math"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
)

// ValueKind says which member of AnyValue's oneof is set.
type ValueKind uint8

// The members of AnyValue's oneof, by field number.
const (
	KindNone ValueKind = iota
	KindString
	KindBool
	KindInt
	KindDouble
	KindArray
	KindKVList
	KindBytes
)

// AnyValue is tempopb.common.v1.AnyValue (OTLP's).
type AnyValue struct {
	Kind   ValueKind
	Str    string
	Bool   bool
	Int    int64
	Double float64
	Array  []AnyValue
	KVList []KeyValue
	Bytes  []byte
}

// KeyValue is tempopb.common.v1.KeyValue.
type KeyValue struct {
	Key   string
	Value *AnyValue
}

func (v *AnyValue) appendTo(b []byte) []byte {
	e := enc{b: b}
	switch v.Kind {
	case KindString:
		e.strAlways(1, v.Str)
	case KindBool:
		e.tag(2, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, protowire.EncodeBool(v.Bool))
	case KindInt:
		e.tag(3, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, uint64(v.Int))
	case KindDouble:
		e.tag(4, protowire.Fixed64Type)
		e.b = protowire.AppendFixed64(e.b, math.Float64bits(v.Double))
	case KindArray:
		e.msg(5, valueList(v.Array))
	case KindKVList:
		e.msg(6, kvList(v.KVList))
	case KindBytes:
		e.tag(7, protowire.BytesType)
		e.b = protowire.AppendBytes(e.b, v.Bytes)
	}
	return e.b
}

func (v *AnyValue) unmarshal(b []byte, depth int) error {
	if depth > maxDepth {
		return errDepth
	}
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			v.Kind = KindString
			v.Str, err = f.str()
		case 2:
			v.Kind = KindBool
			v.Bool, err = f.boolean()
		case 3:
			v.Kind = KindInt
			v.Int, err = f.int64()
		case 4:
			v.Kind = KindDouble
			v.Double, err = f.double()
		case 5:
			v.Kind = KindArray
			var l valueList
			err = sub(f, &l, depth+1)
			v.Array = l
		case 6:
			v.Kind = KindKVList
			var l kvList
			err = sub(f, &l, depth+1)
			v.KVList = l
		case 7:
			v.Kind = KindBytes
			var bs []byte
			bs, err = f.bytes()
			v.Bytes = append([]byte(nil), bs...)
		}
		return err
	})
}

// valueList is ArrayValue: repeated AnyValue values = 1.
type valueList []AnyValue

func (l valueList) appendTo(b []byte) []byte {
	e := enc{b: b}
	for i := range l {
		e.msg(1, &l[i])
	}
	return e.b
}

func (l *valueList) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		var v AnyValue
		err := sub(f, &v, depth+1)
		*l = append(*l, v)
		return err
	})
}

// kvList is KeyValueList: repeated KeyValue values = 1.
type kvList []KeyValue

func (l kvList) appendTo(b []byte) []byte {
	e := enc{b: b}
	for i := range l {
		e.msg(1, &l[i])
	}
	return e.b
}

func (l *kvList) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		var kv KeyValue
		err := sub(f, &kv, depth+1)
		*l = append(*l, kv)
		return err
	})
}

func (kv *KeyValue) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, kv.Key)
	if kv.Value != nil {
		e.msg(2, kv.Value)
	}
	return e.b
}

func (kv *KeyValue) unmarshal(b []byte, depth int) error {
	if depth > maxDepth {
		return errDepth
	}
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			kv.Key, err = f.str()
		case 2:
			kv.Value = &AnyValue{}
			err = sub(f, kv.Value, depth+1)
		}
		return err
	})
}

func appendKVs(e *enc, n protowire.Number, kvs []KeyValue) {
	for i := range kvs {
		e.msg(n, &kvs[i])
	}
}

func decodeKV(f field, kvs *[]KeyValue, depth int) error {
	var kv KeyValue
	err := sub(f, &kv, depth+1)
	*kvs = append(*kvs, kv)
	return err
}

// ---- search ----

// SearchRequest is tempopb.SearchRequest. Start and End are unix seconds.
type SearchRequest struct {
	Tags            map[string]string
	MinDurationMs   uint32
	MaxDurationMs   uint32
	Limit           uint32
	Start           uint32
	End             uint32
	Query           string
	SpansPerSpanSet uint32
}

func (m *SearchRequest) appendTo(b []byte) []byte {
	e := enc{b: b}
	keys := make([]string, 0, len(m.Tags))
	for k := range m.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.msg(1, mapEntry{k, m.Tags[k]})
	}
	e.uvarint(2, uint64(m.MinDurationMs))
	e.uvarint(3, uint64(m.MaxDurationMs))
	e.uvarint(4, uint64(m.Limit))
	e.uvarint(5, uint64(m.Start))
	e.uvarint(6, uint64(m.End))
	e.str(8, m.Query)
	e.uvarint(9, uint64(m.SpansPerSpanSet))
	return e.b
}

func (m *SearchRequest) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			var me mapEntry
			if err = sub(f, &me, depth+1); err == nil {
				if m.Tags == nil {
					m.Tags = map[string]string{}
				}
				m.Tags[me.key] = me.value
			}
		case 2:
			m.MinDurationMs, err = f.uint32()
		case 3:
			m.MaxDurationMs, err = f.uint32()
		case 4:
			m.Limit, err = f.uint32()
		case 5:
			m.Start, err = f.uint32()
		case 6:
			m.End, err = f.uint32()
		case 8:
			m.Query, err = f.str()
		case 9:
			m.SpansPerSpanSet, err = f.uint32()
		}
		return err
	})
}

// mapEntry is an entry of map<string, string>.
type mapEntry struct{ key, value string }

func (me mapEntry) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, me.key)
	e.str(2, me.value)
	return e.b
}

func (me *mapEntry) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			me.key, err = f.str()
		case 2:
			me.value, err = f.str()
		}
		return err
	})
}

// SearchResponse is tempopb.SearchResponse.
type SearchResponse struct {
	Traces  []*TraceSearchMetadata
	Metrics *SearchMetrics
}

func (m *SearchResponse) appendTo(b []byte) []byte {
	e := enc{b: b}
	for _, t := range m.Traces {
		e.msg(1, t)
	}
	if m.Metrics != nil {
		e.msg(2, m.Metrics)
	}
	return e.b
}

func (m *SearchResponse) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		switch f.num {
		case 1:
			t := &TraceSearchMetadata{}
			m.Traces = append(m.Traces, t)
			return sub(f, t, depth+1)
		case 2:
			m.Metrics = &SearchMetrics{}
			return sub(f, m.Metrics, depth+1)
		}
		return nil
	})
}

// TraceSearchMetadata is tempopb.TraceSearchMetadata.
type TraceSearchMetadata struct {
	TraceID           string
	RootServiceName   string
	RootTraceName     string
	StartTimeUnixNano uint64
	DurationMs        uint32
	SpanSet           *SpanSet
	SpanSets          []*SpanSet
	ServiceStats      map[string]*ServiceStats
}

func (m *TraceSearchMetadata) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, m.TraceID)
	e.str(2, m.RootServiceName)
	e.str(3, m.RootTraceName)
	e.uvarint(4, m.StartTimeUnixNano)
	e.uvarint(5, uint64(m.DurationMs))
	if m.SpanSet != nil {
		e.msg(6, m.SpanSet)
	}
	for _, ss := range m.SpanSets {
		e.msg(7, ss)
	}
	keys := make([]string, 0, len(m.ServiceStats))
	for k := range m.ServiceStats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.msg(8, statsEntry{k, m.ServiceStats[k]})
	}
	return e.b
}

func (m *TraceSearchMetadata) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.TraceID, err = f.str()
		case 2:
			m.RootServiceName, err = f.str()
		case 3:
			m.RootTraceName, err = f.str()
		case 4:
			m.StartTimeUnixNano, err = f.uint64()
		case 5:
			m.DurationMs, err = f.uint32()
		case 6:
			m.SpanSet = &SpanSet{}
			err = sub(f, m.SpanSet, depth+1)
		case 7:
			ss := &SpanSet{}
			m.SpanSets = append(m.SpanSets, ss)
			err = sub(f, ss, depth+1)
		case 8:
			var se statsEntry
			if err = sub(f, &se, depth+1); err == nil {
				if m.ServiceStats == nil {
					m.ServiceStats = map[string]*ServiceStats{}
				}
				if se.value == nil {
					se.value = &ServiceStats{}
				}
				m.ServiceStats[se.key] = se.value
			}
		}
		return err
	})
}

// statsEntry is an entry of map<string, ServiceStats>.
type statsEntry struct {
	key   string
	value *ServiceStats
}

func (se statsEntry) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, se.key)
	if se.value != nil {
		e.msg(2, se.value)
	}
	return e.b
}

func (se *statsEntry) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			se.key, err = f.str()
		case 2:
			se.value = &ServiceStats{}
			err = sub(f, se.value, depth+1)
		}
		return err
	})
}

// ServiceStats is tempopb.ServiceStats.
type ServiceStats struct {
	SpanCount  uint32
	ErrorCount uint32
}

func (m *ServiceStats) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.uvarint(1, uint64(m.SpanCount))
	e.uvarint(2, uint64(m.ErrorCount))
	return e.b
}

func (m *ServiceStats) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.SpanCount, err = f.uint32()
		case 2:
			m.ErrorCount, err = f.uint32()
		}
		return err
	})
}

// SpanSet is tempopb.SpanSet.
type SpanSet struct {
	Spans      []*Span
	Matched    uint32
	Attributes []KeyValue
}

func (m *SpanSet) appendTo(b []byte) []byte {
	e := enc{b: b}
	for _, s := range m.Spans {
		e.msg(1, s)
	}
	e.uvarint(2, uint64(m.Matched))
	appendKVs(&e, 3, m.Attributes)
	return e.b
}

func (m *SpanSet) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			s := &Span{}
			m.Spans = append(m.Spans, s)
			err = sub(f, s, depth+1)
		case 2:
			m.Matched, err = f.uint32()
		case 3:
			err = decodeKV(f, &m.Attributes, depth)
		}
		return err
	})
}

// Span is tempopb.Span.
type Span struct {
	SpanID            string
	Name              string
	StartTimeUnixNano uint64
	DurationNanos     uint64
	Attributes        []KeyValue
}

func (m *Span) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, m.SpanID)
	e.str(2, m.Name)
	e.uvarint(3, m.StartTimeUnixNano)
	e.uvarint(4, m.DurationNanos)
	appendKVs(&e, 5, m.Attributes)
	return e.b
}

func (m *Span) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.SpanID, err = f.str()
		case 2:
			m.Name, err = f.str()
		case 3:
			m.StartTimeUnixNano, err = f.uint64()
		case 4:
			m.DurationNanos, err = f.uint64()
		case 5:
			err = decodeKV(f, &m.Attributes, depth)
		}
		return err
	})
}

// SearchMetrics is tempopb.SearchMetrics.
type SearchMetrics struct {
	InspectedTraces uint32
	InspectedBytes  uint64
	TotalBlocks     uint32
	CompletedJobs   uint32
	TotalJobs       uint32
	TotalBlockBytes uint64
	InspectedSpans  uint64
}

func (m *SearchMetrics) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.uvarint(1, uint64(m.InspectedTraces))
	e.uvarint(2, m.InspectedBytes)
	e.uvarint(3, uint64(m.TotalBlocks))
	e.uvarint(4, uint64(m.CompletedJobs))
	e.uvarint(5, uint64(m.TotalJobs))
	e.uvarint(6, m.TotalBlockBytes)
	e.uvarint(7, m.InspectedSpans)
	return e.b
}

func (m *SearchMetrics) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.InspectedTraces, err = f.uint32()
		case 2:
			m.InspectedBytes, err = f.uint64()
		case 3:
			m.TotalBlocks, err = f.uint32()
		case 4:
			m.CompletedJobs, err = f.uint32()
		case 5:
			m.TotalJobs, err = f.uint32()
		case 6:
			m.TotalBlockBytes, err = f.uint64()
		case 7:
			m.InspectedSpans, err = f.uint64()
		}
		return err
	})
}

// ---- tags ----

// SearchTagsRequest is tempopb.SearchTagsRequest. Start and End are unix seconds.
type SearchTagsRequest struct {
	Scope           string
	Query           string
	Start           uint32
	End             uint32
	MaxTagsPerScope uint32
}

func (m *SearchTagsRequest) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, m.Scope)
	e.str(2, m.Query)
	e.uvarint(3, uint64(m.Start))
	e.uvarint(4, uint64(m.End))
	e.uvarint(5, uint64(m.MaxTagsPerScope))
	return e.b
}

func (m *SearchTagsRequest) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.Scope, err = f.str()
		case 2:
			m.Query, err = f.str()
		case 3:
			m.Start, err = f.uint32()
		case 4:
			m.End, err = f.uint32()
		case 5:
			m.MaxTagsPerScope, err = f.uint32()
		}
		return err
	})
}

// MetadataMetrics is tempopb.MetadataMetrics.
type MetadataMetrics struct {
	InspectedBytes  uint64
	TotalJobs       uint32
	CompletedJobs   uint32
	TotalBlocks     uint32
	TotalBlockBytes uint64
}

func (m *MetadataMetrics) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.uvarint(1, m.InspectedBytes)
	e.uvarint(2, uint64(m.TotalJobs))
	e.uvarint(3, uint64(m.CompletedJobs))
	e.uvarint(4, uint64(m.TotalBlocks))
	e.uvarint(5, m.TotalBlockBytes)
	return e.b
}

func (m *MetadataMetrics) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.InspectedBytes, err = f.uint64()
		case 2:
			m.TotalJobs, err = f.uint32()
		case 3:
			m.CompletedJobs, err = f.uint32()
		case 4:
			m.TotalBlocks, err = f.uint32()
		case 5:
			m.TotalBlockBytes, err = f.uint64()
		}
		return err
	})
}

// SearchTagsResponse is tempopb.SearchTagsResponse.
type SearchTagsResponse struct {
	TagNames []string
	Metrics  *MetadataMetrics
}

func (m *SearchTagsResponse) appendTo(b []byte) []byte {
	e := enc{b: b}
	for _, s := range m.TagNames {
		e.strAlways(1, s)
	}
	if m.Metrics != nil {
		e.msg(2, m.Metrics)
	}
	return e.b
}

func (m *SearchTagsResponse) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		switch f.num {
		case 1:
			s, err := f.str()
			m.TagNames = append(m.TagNames, s)
			return err
		case 2:
			m.Metrics = &MetadataMetrics{}
			return sub(f, m.Metrics, depth+1)
		}
		return nil
	})
}

// SearchTagsV2Scope is tempopb.SearchTagsV2Scope.
type SearchTagsV2Scope struct {
	Name string
	Tags []string
}

func (m *SearchTagsV2Scope) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, m.Name)
	for _, s := range m.Tags {
		e.strAlways(2, s)
	}
	return e.b
}

func (m *SearchTagsV2Scope) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.Name, err = f.str()
		case 2:
			var s string
			s, err = f.str()
			m.Tags = append(m.Tags, s)
		}
		return err
	})
}

// SearchTagsV2Response is tempopb.SearchTagsV2Response.
type SearchTagsV2Response struct {
	Scopes  []*SearchTagsV2Scope
	Metrics *MetadataMetrics
}

func (m *SearchTagsV2Response) appendTo(b []byte) []byte {
	e := enc{b: b}
	for _, s := range m.Scopes {
		e.msg(1, s)
	}
	if m.Metrics != nil {
		e.msg(2, m.Metrics)
	}
	return e.b
}

func (m *SearchTagsV2Response) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		switch f.num {
		case 1:
			s := &SearchTagsV2Scope{}
			m.Scopes = append(m.Scopes, s)
			return sub(f, s, depth+1)
		case 2:
			m.Metrics = &MetadataMetrics{}
			return sub(f, m.Metrics, depth+1)
		}
		return nil
	})
}

// SearchTagValuesRequest is tempopb.SearchTagValuesRequest. Start and End are unix seconds.
type SearchTagValuesRequest struct {
	TagName      string
	Query        string
	Start        uint32
	End          uint32
	MaxTagValues uint32
}

func (m *SearchTagValuesRequest) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, m.TagName)
	e.str(2, m.Query)
	e.uvarint(4, uint64(m.Start))
	e.uvarint(5, uint64(m.End))
	e.uvarint(6, uint64(m.MaxTagValues))
	return e.b
}

func (m *SearchTagValuesRequest) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.TagName, err = f.str()
		case 2:
			m.Query, err = f.str()
		case 4:
			m.Start, err = f.uint32()
		case 5:
			m.End, err = f.uint32()
		case 6:
			m.MaxTagValues, err = f.uint32()
		}
		return err
	})
}

// SearchTagValuesResponse is tempopb.SearchTagValuesResponse.
type SearchTagValuesResponse struct {
	TagValues []string
	Metrics   *MetadataMetrics
}

func (m *SearchTagValuesResponse) appendTo(b []byte) []byte {
	e := enc{b: b}
	for _, s := range m.TagValues {
		e.strAlways(1, s)
	}
	if m.Metrics != nil {
		e.msg(2, m.Metrics)
	}
	return e.b
}

func (m *SearchTagValuesResponse) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		switch f.num {
		case 1:
			s, err := f.str()
			m.TagValues = append(m.TagValues, s)
			return err
		case 2:
			m.Metrics = &MetadataMetrics{}
			return sub(f, m.Metrics, depth+1)
		}
		return nil
	})
}

// TagValue is tempopb.TagValue.
type TagValue struct {
	Type  string
	Value string
}

func (m *TagValue) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, m.Type)
	e.str(2, m.Value)
	return e.b
}

func (m *TagValue) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.Type, err = f.str()
		case 2:
			m.Value, err = f.str()
		}
		return err
	})
}

// SearchTagValuesV2Response is tempopb.SearchTagValuesV2Response.
type SearchTagValuesV2Response struct {
	TagValues []*TagValue
	Metrics   *MetadataMetrics
}

func (m *SearchTagValuesV2Response) appendTo(b []byte) []byte {
	e := enc{b: b}
	for _, v := range m.TagValues {
		e.msg(1, v)
	}
	if m.Metrics != nil {
		e.msg(2, m.Metrics)
	}
	return e.b
}

func (m *SearchTagValuesV2Response) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		switch f.num {
		case 1:
			v := &TagValue{}
			m.TagValues = append(m.TagValues, v)
			return sub(f, v, depth+1)
		case 2:
			m.Metrics = &MetadataMetrics{}
			return sub(f, m.Metrics, depth+1)
		}
		return nil
	})
}

// ---- metrics ----

// QueryRangeRequest is tempopb.QueryRangeRequest: Start, End and Step in nanoseconds.
type QueryRangeRequest struct {
	Query     string
	Start     uint64
	End       uint64
	Step      uint64
	QueryMode string
	Exemplars uint32
	MaxSeries uint32
	Instant   bool
}

func (m *QueryRangeRequest) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, m.Query)
	e.uvarint(2, m.Start)
	e.uvarint(3, m.End)
	e.uvarint(4, m.Step)
	e.str(7, m.QueryMode)
	e.uvarint(16, uint64(m.Exemplars))
	e.uvarint(17, uint64(m.MaxSeries))
	e.boolean(18, m.Instant)
	return e.b
}

func (m *QueryRangeRequest) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.Query, err = f.str()
		case 2:
			m.Start, err = f.uint64()
		case 3:
			m.End, err = f.uint64()
		case 4:
			m.Step, err = f.uint64()
		case 7:
			m.QueryMode, err = f.str()
		case 16:
			m.Exemplars, err = f.uint32()
		case 17:
			m.MaxSeries, err = f.uint32()
		case 18:
			m.Instant, err = f.boolean()
		}
		return err
	})
}

// PartialStatus is tempopb.PartialStatus.
type PartialStatus int32

// The values of PartialStatus.
const (
	StatusComplete PartialStatus = 0
	StatusPartial  PartialStatus = 1
)

// QueryRangeResponse is tempopb.QueryRangeResponse.
type QueryRangeResponse struct {
	Series  []*TimeSeries
	Metrics *SearchMetrics
	Status  PartialStatus
	Message string
}

func (m *QueryRangeResponse) appendTo(b []byte) []byte {
	e := enc{b: b}
	for _, s := range m.Series {
		e.msg(1, s)
	}
	if m.Metrics != nil {
		e.msg(2, m.Metrics)
	}
	e.uvarint(3, uint64(m.Status))
	e.str(4, m.Message)
	return e.b
}

func (m *QueryRangeResponse) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			s := &TimeSeries{}
			m.Series = append(m.Series, s)
			err = sub(f, s, depth+1)
		case 2:
			m.Metrics = &SearchMetrics{}
			err = sub(f, m.Metrics, depth+1)
		case 3:
			var v uint32
			v, err = f.uint32()
			m.Status = PartialStatus(v)
		case 4:
			m.Message, err = f.str()
		}
		return err
	})
}

// TimeSeries is tempopb.TimeSeries.
type TimeSeries struct {
	Labels    []KeyValue
	Samples   []Sample
	Exemplars []Exemplar
}

func (m *TimeSeries) appendTo(b []byte) []byte {
	e := enc{b: b}
	appendKVs(&e, 1, m.Labels)
	for i := range m.Samples {
		e.msg(2, &m.Samples[i])
	}
	for i := range m.Exemplars {
		e.msg(4, &m.Exemplars[i])
	}
	return e.b
}

func (m *TimeSeries) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		switch f.num {
		case 1:
			return decodeKV(f, &m.Labels, depth)
		case 2:
			var s Sample
			err := sub(f, &s, depth+1)
			m.Samples = append(m.Samples, s)
			return err
		case 4:
			var x Exemplar
			err := sub(f, &x, depth+1)
			m.Exemplars = append(m.Exemplars, x)
			return err
		}
		return nil
	})
}

// Sample is tempopb.Sample.
type Sample struct {
	TimestampMs int64
	Value       float64
}

func (m *Sample) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.double(1, m.Value)
	e.ivarint(2, m.TimestampMs)
	return e.b
}

func (m *Sample) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.Value, err = f.double()
		case 2:
			m.TimestampMs, err = f.int64()
		}
		return err
	})
}

// Exemplar is tempopb.Exemplar.
type Exemplar struct {
	Labels      []KeyValue
	Value       float64
	TimestampMs int64
}

func (m *Exemplar) appendTo(b []byte) []byte {
	e := enc{b: b}
	appendKVs(&e, 1, m.Labels)
	e.double(2, m.Value)
	e.ivarint(3, m.TimestampMs)
	return e.b
}

func (m *Exemplar) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = decodeKV(f, &m.Labels, depth)
		case 2:
			m.Value, err = f.double()
		case 3:
			m.TimestampMs, err = f.int64()
		}
		return err
	})
}

// QueryInstantRequest is tempopb.QueryInstantRequest: Start and End in nanoseconds.
type QueryInstantRequest struct {
	Query string
	Start uint64
	End   uint64
}

func (m *QueryInstantRequest) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.str(1, m.Query)
	e.uvarint(2, m.Start)
	e.uvarint(3, m.End)
	return e.b
}

func (m *QueryInstantRequest) unmarshal(b []byte, _ int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.Query, err = f.str()
		case 2:
			m.Start, err = f.uint64()
		case 3:
			m.End, err = f.uint64()
		}
		return err
	})
}

// QueryInstantResponse is tempopb.QueryInstantResponse.
type QueryInstantResponse struct {
	Series  []*InstantSeries
	Metrics *SearchMetrics
	Status  PartialStatus
	Message string
}

func (m *QueryInstantResponse) appendTo(b []byte) []byte {
	e := enc{b: b}
	for _, s := range m.Series {
		e.msg(1, s)
	}
	if m.Metrics != nil {
		e.msg(2, m.Metrics)
	}
	e.uvarint(3, uint64(m.Status))
	e.str(4, m.Message)
	return e.b
}

func (m *QueryInstantResponse) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			s := &InstantSeries{}
			m.Series = append(m.Series, s)
			err = sub(f, s, depth+1)
		case 2:
			m.Metrics = &SearchMetrics{}
			err = sub(f, m.Metrics, depth+1)
		case 3:
			var v uint32
			v, err = f.uint32()
			m.Status = PartialStatus(v)
		case 4:
			m.Message, err = f.str()
		}
		return err
	})
}

// InstantSeries is tempopb.InstantSeries.
type InstantSeries struct {
	Labels []KeyValue
	Value  float64
}

func (m *InstantSeries) appendTo(b []byte) []byte {
	e := enc{b: b}
	appendKVs(&e, 1, m.Labels)
	e.double(2, m.Value)
	return e.b
}

func (m *InstantSeries) unmarshal(b []byte, depth int) error {
	return walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = decodeKV(f, &m.Labels, depth)
		case 2:
			m.Value, err = f.double()
		}
		return err
	})
}
