package tempopb

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxDepth bounds the nesting of AnyValue arrays and key-value lists a decoder follows: a 16 MiB message of
// nested one-byte prefixes must not be able to exhaust the stack.
const maxDepth = 64

var errDepth = errors.New("values nested too deeply")

// enc appends fields. Zero scalars are left out, as proto3 does.
type enc struct{ b []byte }

func (e *enc) tag(n protowire.Number, t protowire.Type) { e.b = protowire.AppendTag(e.b, n, t) }

func (e *enc) str(n protowire.Number, s string) {
	if s != "" {
		e.strAlways(n, s)
	}
}

// strAlways writes s even when empty: an element of a repeated field.
func (e *enc) strAlways(n protowire.Number, s string) {
	e.tag(n, protowire.BytesType)
	e.b = protowire.AppendString(e.b, s)
}

func (e *enc) bytes(n protowire.Number, v []byte) {
	if len(v) > 0 {
		e.tag(n, protowire.BytesType)
		e.b = protowire.AppendBytes(e.b, v)
	}
}

func (e *enc) uvarint(n protowire.Number, v uint64) {
	if v != 0 {
		e.tag(n, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, v)
	}
}

func (e *enc) ivarint(n protowire.Number, v int64) { e.uvarint(n, uint64(v)) }

func (e *enc) boolean(n protowire.Number, v bool) {
	if v {
		e.uvarint(n, 1)
	}
}

func (e *enc) double(n protowire.Number, v float64) {
	if v != 0 || math.Signbit(v) {
		e.tag(n, protowire.Fixed64Type)
		e.b = protowire.AppendFixed64(e.b, math.Float64bits(v))
	}
}

// msg writes a nested message, even an empty one (a present sub-message is not its absence).
func (e *enc) msg(n protowire.Number, m interface{ appendTo([]byte) []byte }) {
	e.tag(n, protowire.BytesType)
	e.b = protowire.AppendBytes(e.b, m.appendTo(nil))
}

// field is one decoded field.
type field struct {
	num protowire.Number
	typ protowire.Type
	x   uint64 // varint, fixed32 and fixed64 values
	buf []byte // length-delimited values
}

func (f field) wrongType(want protowire.Type) error {
	return fmt.Errorf("field %d: wire type %d, want %d", f.num, f.typ, want)
}

func (f field) uint64() (uint64, error) {
	if f.typ != protowire.VarintType {
		return 0, f.wrongType(protowire.VarintType)
	}
	return f.x, nil
}

func (f field) uint32() (uint32, error) { v, err := f.uint64(); return uint32(v), err }

func (f field) int64() (int64, error) { v, err := f.uint64(); return int64(v), err }

func (f field) boolean() (bool, error) { v, err := f.uint64(); return v != 0, err }

func (f field) double() (float64, error) {
	if f.typ != protowire.Fixed64Type {
		return 0, f.wrongType(protowire.Fixed64Type)
	}
	return math.Float64frombits(f.x), nil
}

func (f field) bytes() ([]byte, error) {
	if f.typ != protowire.BytesType {
		return nil, f.wrongType(protowire.BytesType)
	}
	return f.buf, nil
}

func (f field) str() (string, error) { b, err := f.bytes(); return string(b), err }

// walk calls fn for each field of a message; unknown fields are passed too, for fn to ignore.
func walk(b []byte, fn func(field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("read tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			f.x, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.x = uint64(v)
		case protowire.BytesType:
			f.buf, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// sub decodes a nested message into m.
func sub(f field, m interface{ unmarshal([]byte, int) error }, depth int) error {
	b, err := f.bytes()
	if err != nil {
		return err
	}
	if err := m.unmarshal(b, depth); err != nil {
		return fmt.Errorf("field %d: %w", f.num, err)
	}
	return nil
}
