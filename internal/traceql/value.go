package traceql

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Type is the type of a TraceQL value.
type Type uint8

// Value types.
const (
	TypeNil Type = iota
	TypeInt
	TypeFloat
	TypeString
	TypeBool
	TypeDuration
	TypeStatus
	TypeKind
)

func (t Type) String() string {
	switch t {
	case TypeNil:
		return "nil"
	case TypeInt:
		return "int"
	case TypeFloat:
		return "float"
	case TypeString:
		return "string"
	case TypeBool:
		return "bool"
	case TypeDuration:
		return "duration"
	case TypeStatus:
		return "status"
	case TypeKind:
		return "kind"
	}
	return "unknown"
}

func (t Type) numeric() bool { return t == TypeInt || t == TypeFloat || t == TypeDuration }

// Static is a TraceQL value: a literal in a query or a field of a span.
type Static struct {
	Type Type
	N    int64 // int, duration (nanoseconds), status code, kind
	F    float64
	S    string
	B    bool
}

// Constructors.
func NewInt(n int64) Static                { return Static{Type: TypeInt, N: n} }
func NewFloat(f float64) Static            { return Static{Type: TypeFloat, F: f} }
func NewString(s string) Static            { return Static{Type: TypeString, S: s} }
func NewBool(b bool) Static                { return Static{Type: TypeBool, B: b} }
func NewDuration(d time.Duration) Static   { return Static{Type: TypeDuration, N: int64(d)} }
func NewStatus(c ptrace.StatusCode) Static { return Static{Type: TypeStatus, N: int64(c)} }
func NewKind(k ptrace.SpanKind) Static     { return Static{Type: TypeKind, N: int64(k)} }

// Float returns the numeric value as float64 (durations in nanoseconds).
func (v Static) Float() float64 {
	switch v.Type {
	case TypeFloat:
		return v.F
	case TypeInt, TypeDuration:
		return float64(v.N)
	}
	return math.NaN()
}

// String renders the value as TraceQL would print it.
func (v Static) String() string {
	switch v.Type {
	case TypeNil:
		return "nil"
	case TypeInt:
		return strconv.FormatInt(v.N, 10)
	case TypeFloat:
		return strconv.FormatFloat(v.F, 'g', -1, 64)
	case TypeString:
		return strconv.Quote(v.S)
	case TypeBool:
		return strconv.FormatBool(v.B)
	case TypeDuration:
		return time.Duration(v.N).String()
	case TypeStatus:
		return statusName(ptrace.StatusCode(v.N))
	case TypeKind:
		return kindName(ptrace.SpanKind(v.N))
	}
	return "?"
}

// AsAny converts the value to a plain Go value, for JSON answers.
func (v Static) AsAny() any {
	switch v.Type {
	case TypeInt, TypeDuration:
		return v.N
	case TypeFloat:
		return v.F
	case TypeString:
		return v.S
	case TypeBool:
		return v.B
	case TypeStatus, TypeKind:
		return v.String()
	}
	return nil
}

func statusName(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "ok"
	case ptrace.StatusCodeError:
		return "error"
	}
	return "unset"
}

func kindName(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	case ptrace.SpanKindInternal:
		return "internal"
	}
	return "unspecified"
}

// FromPdata converts an attribute value. Slices, maps and bytes become their JSON text, so that they can still
// be matched with =~.
func FromPdata(v pcommon.Value) Static {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return NewString(v.Str())
	case pcommon.ValueTypeInt:
		return NewInt(v.Int())
	case pcommon.ValueTypeDouble:
		return NewFloat(v.Double())
	case pcommon.ValueTypeBool:
		return NewBool(v.Bool())
	case pcommon.ValueTypeEmpty:
		return Static{}
	}
	return NewString(v.AsString())
}

// Equal reports whether two values are equal under TraceQL's rules (ints and floats compare numerically).
func (v Static) Equal(o Static) bool {
	c, ok := compare(v, o)
	return ok && c == 0
}

// compare orders two values; ok is false when they are not comparable (different types, nil).
func compare(a, b Static) (int, bool) {
	if a.Type.numeric() && b.Type.numeric() {
		if (a.Type == TypeDuration) != (b.Type == TypeDuration) {
			// a duration compares with a duration; a bare number is taken as nanoseconds only when it is an int
			if a.Type == TypeFloat || b.Type == TypeFloat {
				return 0, false
			}
		}
		if a.Type == TypeFloat || b.Type == TypeFloat {
			x, y := a.Float(), b.Float()
			switch {
			case x < y:
				return -1, true
			case x > y:
				return 1, true
			case x == y:
				return 0, true
			}
			return 0, false
		}
		switch {
		case a.N < b.N:
			return -1, true
		case a.N > b.N:
			return 1, true
		}
		return 0, true
	}
	if a.Type != b.Type || a.Type == TypeNil {
		return 0, false
	}
	switch a.Type {
	case TypeString:
		switch {
		case a.S < b.S:
			return -1, true
		case a.S > b.S:
			return 1, true
		}
		return 0, true
	case TypeBool:
		if a.B == b.B {
			return 0, true
		}
		if !a.B {
			return -1, true
		}
		return 1, true
	case TypeStatus, TypeKind:
		switch {
		case a.N < b.N:
			return -1, true
		case a.N > b.N:
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func (v Static) key() string { return fmt.Sprintf("%d:%d:%g:%s:%t", v.Type, v.N, v.F, v.S, v.B) }
