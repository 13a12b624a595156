package tracestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// The write path keeps every live span as the bytes of its OTLP Span message, sliced out of the WAL record it
// arrived in, plus the few fields that search filters on. This file walks the protobuf wire format of an OTLP
// TracesData message without building pdata: no per-span allocation beyond the liveSpan itself, and block
// writing reuses the bytes instead of encoding the span again.
//
// Field numbers (opentelemetry-proto):
//
//	TracesData    1: ResourceSpans (repeated)
//	ResourceSpans 1: Resource, 2: ScopeSpans (repeated), 3: schema_url
//	ScopeSpans    1: InstrumentationScope, 2: Span (repeated), 3: schema_url
//	Span          1: trace_id, 2: span_id, 4: parent_span_id, 5: name, 6: kind, 7: start (fixed64),
//	              8: end (fixed64), 9: attributes (KeyValue, repeated), 15: status
//	Status        2: message, 3: code
//	Resource      1: attributes (KeyValue, repeated)
//	KeyValue      1: key, 2: value (AnyValue)
//	AnyValue      1: string, 2: bool, 3: int, 4: double, 5: array, 6: kvlist, 7: bytes

var errWire = errors.New("malformed OTLP protobuf")

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// wireField is one field of a message.
type wireField struct {
	num  int
	typ  int
	val  uint64 // varint and fixed values
	data []byte // length-delimited values
}

// nextField reads the field at the start of b and returns it and the rest of b.
func nextField(b []byte) (wireField, []byte, error) {
	var f wireField
	tag, n := binary.Uvarint(b)
	if n <= 0 {
		return f, nil, errWire
	}
	b = b[n:]
	f.num, f.typ = int(tag>>3), int(tag&7)
	if f.num == 0 {
		return f, nil, errWire
	}
	switch f.typ {
	case wireVarint:
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return f, nil, errWire
		}
		f.val, b = v, b[n:]
	case wireFixed64:
		if len(b) < 8 {
			return f, nil, errWire
		}
		f.val, b = binary.LittleEndian.Uint64(b), b[8:]
	case wireFixed32:
		if len(b) < 4 {
			return f, nil, errWire
		}
		f.val, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
	case wireBytes:
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return f, nil, errWire
		}
		f.data, b = b[n:n+int(l)], b[n+int(l):]
	default:
		return f, nil, errWire
	}
	return f, b, nil
}

// eachField calls fn for every field of a message.
func eachField(b []byte, fn func(f wireField) error) error {
	for len(b) > 0 {
		f, rest, err := nextField(b)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// rawResource is a resource shared by the spans of one ResourceSpans of a record: its encoding as the block's
// resource column holds it (a TracesData with one ResourceSpans holding only the resource and schema URL).
type rawResource struct {
	enc     []byte
	attrs   []byte // the Resource message, for attribute keys
	service string
}

// rawScope is an instrumentation scope, encoded as the block's scope column holds it, and the resource of its
// ResourceSpans.
type rawScope struct {
	enc []byte
	res *rawResource
}

// liveSpan is one span in memory: the fields search filters on and where the span's OTLP encoding lies in its
// WAL record. It is kept small (56 bytes) because the live set holds one per span: name and span ids are read
// from the encoding, and resource and scope are shared through one pointer.
type liveSpan struct {
	start   int64
	end     int64
	scope   *rawScope
	raw     *byte  // the first byte of the Span message, inside the record; records are never modified
	rawLen  uint32 // bytes of the Span message
	nameOff uint32 // the name's offset in the Span message
	nameLen uint32
	kind    int32
	status  int32
}

func (s *liveSpan) duration() int64 {
	if s.end < s.start {
		return 0
	}
	return s.end - s.start
}

// rawBytes is the span's OTLP Span message.
func (s *liveSpan) rawBytes() []byte { return unsafe.Slice(s.raw, s.rawLen) }

// name shares the record's memory.
func (s *liveSpan) name() string {
	if s.nameLen == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(s.raw), s.nameOff)), s.nameLen)
}

func (s *liveSpan) res() *rawResource { return s.scope.res }

// ids reads the span id and parent span id from the encoding (their lengths were checked when it was walked).
func (s *liveSpan) ids() (span, parent pcommon.SpanID) {
	_ = eachField(s.rawBytes(), func(f wireField) error {
		switch {
		case f.num == 2 && f.typ == wireBytes:
			copy(span[:], f.data)
		case f.num == 4 && f.typ == wireBytes:
			copy(parent[:], f.data)
		}
		return nil
	})
	return span, parent
}

// size is what the span holds in memory: its bytes and the struct.
func (s *liveSpan) size() int64 { return int64(s.rawLen) + int64(unsafe.Sizeof(liveSpan{})) }

// appendTag appends a length-delimited field header.
func appendTag(dst []byte, num int, l int) []byte {
	dst = binary.AppendUvarint(dst, uint64(num)<<3|wireBytes)
	return binary.AppendUvarint(dst, uint64(l))
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func fieldLen(l int) int { return 1 + uvarintLen(uint64(l)) + l }

// wrapSpan appends the span column encoding of a Span message: TracesData{ResourceSpans{ScopeSpans{Span}}}.
func wrapSpan(dst, span []byte) []byte {
	ss := fieldLen(len(span))
	rs := fieldLen(ss)
	dst = appendTag(dst, 1, rs)
	dst = appendTag(dst, 2, ss)
	dst = appendTag(dst, 2, len(span))
	return append(dst, span...)
}

func wrapResource(res, schema []byte) []byte {
	inner := fieldLen(len(res))
	if len(schema) > 0 {
		inner += fieldLen(len(schema))
	}
	out := make([]byte, 0, fieldLen(inner))
	out = appendTag(out, 1, inner)
	out = appendTag(out, 1, len(res))
	out = append(out, res...)
	if len(schema) > 0 {
		out = appendTag(out, 3, len(schema))
		out = append(out, schema...)
	}
	return out
}

func wrapScope(scope []byte) []byte {
	ss := fieldLen(len(scope))
	out := make([]byte, 0, fieldLen(fieldLen(ss)))
	out = appendTag(out, 1, fieldLen(ss))
	out = appendTag(out, 2, ss)
	out = appendTag(out, 1, len(scope))
	return append(out, scope...)
}

// bytesString makes a string that shares b's memory; b must never change afterwards.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// walkRecord calls fn for every span of an encoded TracesData. Resources and scopes are shared between the
// spans of one ResourceSpans and ScopeSpans. The spans' strings and bytes point into payload.
func walkRecord(payload []byte, fn func(tid pcommon.TraceID, sp *liveSpan)) error {
	return eachField(payload, func(f wireField) error {
		if f.num != 1 {
			return nil
		}
		if f.typ != wireBytes {
			return errWire
		}
		return walkResourceSpans(f.data, fn)
	})
}

func walkResourceSpans(b []byte, fn func(tid pcommon.TraceID, sp *liveSpan)) error {
	var resMsg, schema []byte
	var scopes [][]byte
	err := eachField(b, func(f wireField) error {
		if f.typ != wireBytes {
			return nil
		}
		switch f.num {
		case 1:
			resMsg = f.data
		case 2:
			scopes = append(scopes, f.data)
		case 3:
			schema = f.data
		}
		return nil
	})
	if err != nil {
		return err
	}
	res := &rawResource{enc: wrapResource(resMsg, schema), attrs: resMsg}
	err = eachAttr(resMsg, 1, func(k, v []byte, typ int, num uint64) error {
		if string(k) == "service.name" {
			res.service = anyString(v, typ, num)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, ss := range scopes {
		if err := walkScopeSpans(ss, res, fn); err != nil {
			return err
		}
	}
	return nil
}

func walkScopeSpans(b []byte, res *rawResource, fn func(tid pcommon.TraceID, sp *liveSpan)) error {
	var scopeMsg []byte
	var spans [][]byte
	err := eachField(b, func(f wireField) error {
		if f.typ != wireBytes {
			return nil
		}
		switch f.num {
		case 1:
			scopeMsg = f.data
		case 2:
			spans = append(spans, f.data)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sc := &rawScope{enc: wrapScope(scopeMsg), res: res}
	for _, raw := range spans {
		if len(raw) > math.MaxUint32 {
			return fmt.Errorf("%w: span of %d bytes", errWire, len(raw))
		}
		sp := liveSpan{scope: sc, rawLen: uint32(len(raw))}
		if len(raw) > 0 {
			sp.raw = &raw[0]
		}
		var tid pcommon.TraceID
		err := eachField(raw, func(f wireField) error {
			switch {
			case f.num == 1 && f.typ == wireBytes:
				if len(f.data) != 16 {
					return fmt.Errorf("%w: trace id of %d bytes", errWire, len(f.data))
				}
				copy(tid[:], f.data)
			case f.num == 2 && f.typ == wireBytes:
				if len(f.data) != 8 {
					return fmt.Errorf("%w: span id of %d bytes", errWire, len(f.data))
				}
			case f.num == 4 && f.typ == wireBytes:
				if len(f.data) != 8 && len(f.data) != 0 {
					return fmt.Errorf("%w: parent span id of %d bytes", errWire, len(f.data))
				}
			case f.num == 5 && f.typ == wireBytes:
				sp.nameLen = uint32(len(f.data))
				if len(f.data) > 0 {
					sp.nameOff = uint32(uintptr(unsafe.Pointer(&f.data[0])) - uintptr(unsafe.Pointer(&raw[0])))
				}
			case f.num == 6 && f.typ == wireVarint:
				sp.kind = int32(f.val)
			case f.num == 7 && f.typ == wireFixed64:
				sp.start = int64(f.val)
			case f.num == 8 && f.typ == wireFixed64:
				sp.end = int64(f.val)
			case f.num == 15 && f.typ == wireBytes:
				return eachField(f.data, func(g wireField) error {
					if g.num == 3 && g.typ == wireVarint {
						sp.status = int32(g.val)
					}
					return nil
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		fn(tid, &sp)
	}
	return nil
}

// eachAttr calls fn for every KeyValue in field num of msg with the key and the AnyValue's one set field.
func eachAttr(msg []byte, num int, fn func(k, v []byte, typ int, val uint64) error) error {
	return eachField(msg, func(f wireField) error {
		if f.num != num || f.typ != wireBytes {
			return nil
		}
		var key, val []byte
		anyNum, anyVal := 0, uint64(0)
		err := eachField(f.data, func(g wireField) error {
			if g.typ != wireBytes {
				return nil
			}
			switch g.num {
			case 1:
				key = g.data
			case 2:
				return eachField(g.data, func(h wireField) error {
					anyNum, anyVal, val = h.num, h.val, h.data
					return nil
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		return fn(key, val, anyNum, anyVal)
	})
}

// anyString renders a scalar AnyValue as pdata's AsString does; other kinds give "".
func anyString(data []byte, field int, val uint64) string {
	switch field {
	case 1:
		return string(data)
	case 2:
		return strconv.FormatBool(val != 0)
	case 3:
		return strconv.FormatInt(int64(val), 10)
	case 4:
		return strconv.FormatFloat(math.Float64frombits(val), 'f', -1, 64)
	}
	return ""
}

// countRecordSpans counts the spans of an encoded TracesData without parsing them (0 when malformed).
func countRecordSpans(payload []byte) int {
	n := 0
	_ = eachField(payload, func(f wireField) error {
		if f.num != 1 || f.typ != wireBytes {
			return nil
		}
		return eachField(f.data, func(g wireField) error {
			if g.num != 2 || g.typ != wireBytes {
				return nil
			}
			return eachField(g.data, func(h wireField) error {
				if h.num == 2 && h.typ == wireBytes {
					n++
				}
				return nil
			})
		})
	})
	return n
}
