// Package grpcwire is the gRPC codec of the services Sprout serves on its API port: messages that encode
// themselves with protowire (Marshal/Unmarshal, as the peers' gogo-generated types do), and, for anything else,
// the standard protobuf codec. It owns no message types and must not know any store's API.
package grpcwire

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	// the standard codec this one falls back to
	_ "google.golang.org/grpc/encoding/proto"
)

// Message is a message that encodes itself in protobuf's wire format.
type Message interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// Name is the codec's name: it speaks protobuf, so clients see application/grpc+proto (or plain
// application/grpc) as from any gRPC server.
const Name = "proto"

// Codec encodes Message values by hand and hands everything else to the registered proto codec.
type Codec struct{}

// Name implements encoding.CodecV2.
func (Codec) Name() string { return Name }

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(Message)
	if !ok {
		return fallback().Marshal(v)
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal %T: %w", v, err)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(Message)
	if !ok {
		return fallback().Unmarshal(data, v)
	}
	if err := m.Unmarshal(data.Materialize()); err != nil {
		return fmt.Errorf("unmarshal %T: %w", v, err)
	}
	return nil
}

func fallback() encoding.CodecV2 { return encoding.GetCodecV2("proto") }
