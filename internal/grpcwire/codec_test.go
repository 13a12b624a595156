package grpcwire

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type blob struct{ b []byte }

func (m *blob) Marshal() ([]byte, error) { return m.b, nil }
func (m *blob) Unmarshal(b []byte) error {
	if len(b) > 0 && b[0] == 0xff {
		return errors.New("bad first byte")
	}
	m.b = append([]byte(nil), b...)
	return nil
}

func TestCodec(t *testing.T) {
	var c Codec
	if c.Name() != "proto" {
		t.Fatalf("name %q", c.Name())
	}
	// A Message encodes itself; the data may arrive in several buffers.
	out, err := c.Marshal(&blob{b: []byte{1, 2, 3}})
	if err != nil || !bytes.Equal(out.Materialize(), []byte{1, 2, 3}) {
		t.Fatalf("marshal: % x, %v", out.Materialize(), err)
	}
	var got blob
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer{1}, mem.SliceBuffer{2, 3}}, &got); err != nil || !bytes.Equal(got.b, []byte{1, 2, 3}) {
		t.Fatalf("unmarshal: % x, %v", got.b, err)
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer{0xff}}, &got); err == nil {
		t.Fatal("a decode error was lost")
	}
	// Anything else goes to the protobuf codec.
	pb, err := c.Marshal(wrapperspb.String("x"))
	if err != nil {
		t.Fatal(err)
	}
	var s wrapperspb.StringValue
	if err := c.Unmarshal(pb, &s); err != nil || s.GetValue() != "x" {
		t.Fatalf("proto fallback: %q, %v", s.GetValue(), err)
	}
	if _, err := c.Marshal(struct{}{}); err == nil {
		t.Fatal("marshalled a value that is neither")
	}
}
