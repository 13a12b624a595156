package tempopb

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/sprout-otel/sprout/internal/grpcwire"
)

// ServiceName is the full name of Tempo's streaming query service.
const ServiceName = "tempopb.StreamingQuerier"

// StreamingQuerierServer is what serves tempopb.StreamingQuerier. Each method sends its answers on the stream
// (progress first, the final answer last) and returns the call's status.
type StreamingQuerierServer interface {
	Search(*SearchRequest, Sender[*SearchResponse]) error
	SearchTags(*SearchTagsRequest, Sender[*SearchTagsResponse]) error
	SearchTagsV2(*SearchTagsRequest, Sender[*SearchTagsV2Response]) error
	SearchTagValues(*SearchTagValuesRequest, Sender[*SearchTagValuesResponse]) error
	SearchTagValuesV2(*SearchTagValuesRequest, Sender[*SearchTagValuesV2Response]) error
	MetricsQueryRange(*QueryRangeRequest, Sender[*QueryRangeResponse]) error
	MetricsQueryInstant(*QueryInstantRequest, Sender[*QueryInstantResponse]) error
}

// Sender is the server's side of one call: the call's context and where its answers go.
type Sender[T any] interface {
	Context() context.Context
	Send(T) error
}

type sender[T any] struct{ grpc.ServerStream }

func (s sender[T]) Send(m T) error { return s.SendMsg(m) }

// handler decodes the request of a server-streaming method and calls serve with it.
func handler[Req any, Resp any](serve func(StreamingQuerierServer, *Req, Sender[Resp]) error) grpc.StreamHandler {
	return func(srv any, stream grpc.ServerStream) error {
		req := new(Req)
		if err := stream.RecvMsg(req); err != nil {
			return err
		}
		return serve(srv.(StreamingQuerierServer), req, sender[Resp]{stream})
	}
}

func method[Req any, Resp any](name string, serve func(StreamingQuerierServer, *Req, Sender[Resp]) error) grpc.StreamDesc {
	return grpc.StreamDesc{StreamName: name, Handler: handler(serve), ServerStreams: true}
}

// ServiceDesc describes tempopb.StreamingQuerier for grpc.Server.RegisterService.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*StreamingQuerierServer)(nil),
	Streams: []grpc.StreamDesc{
		method("Search", StreamingQuerierServer.Search),
		method("SearchTags", StreamingQuerierServer.SearchTags),
		method("SearchTagsV2", StreamingQuerierServer.SearchTagsV2),
		method("SearchTagValues", StreamingQuerierServer.SearchTagValues),
		method("SearchTagValuesV2", StreamingQuerierServer.SearchTagValuesV2),
		method("MetricsQueryRange", StreamingQuerierServer.MetricsQueryRange),
		method("MetricsQueryInstant", StreamingQuerierServer.MetricsQueryInstant),
	},
	Metadata: "tempo.proto",
}

// Client calls tempopb.StreamingQuerier: Sprout's tests, and any Go program that wants Tempo's streaming
// answers from Sprout or from Tempo.
type Client struct{ cc grpc.ClientConnInterface }

// NewClient returns a client over cc.
func NewClient(cc grpc.ClientConnInterface) *Client { return &Client{cc: cc} }

// Stream is the client's side of one call.
type Stream[T any] struct {
	cs  grpc.ClientStream
	new func() T
}

// Recv returns the next answer, or io.EOF after the last one, or the call's status error.
func (s *Stream[T]) Recv() (T, error) {
	m := s.new()
	if err := s.cs.RecvMsg(m); err != nil {
		var zero T
		return zero, err
	}
	return m, nil
}

// Header returns the call's response metadata.
func (s *Stream[T]) Header() (map[string][]string, error) { return s.cs.Header() }

func call[Resp any](ctx context.Context, c *Client, name string, req grpcwire.Message, newResp func() Resp, opts ...grpc.CallOption) (*Stream[Resp], error) {
	desc := &grpc.StreamDesc{StreamName: name, ServerStreams: true}
	opts = append([]grpc.CallOption{grpc.ForceCodecV2(grpcwire.Codec{})}, opts...)
	cs, err := c.cc.NewStream(ctx, desc, "/"+ServiceName+"/"+name, opts...)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if err := cs.SendMsg(req); err != nil {
		return nil, err
	}
	if err := cs.CloseSend(); err != nil {
		return nil, err
	}
	return &Stream[Resp]{cs: cs, new: newResp}, nil
}

// Search calls Search.
func (c *Client) Search(ctx context.Context, req *SearchRequest, opts ...grpc.CallOption) (*Stream[*SearchResponse], error) {
	return call(ctx, c, "Search", req, func() *SearchResponse { return &SearchResponse{} }, opts...)
}

// SearchTags calls SearchTags.
func (c *Client) SearchTags(ctx context.Context, req *SearchTagsRequest, opts ...grpc.CallOption) (*Stream[*SearchTagsResponse], error) {
	return call(ctx, c, "SearchTags", req, func() *SearchTagsResponse { return &SearchTagsResponse{} }, opts...)
}

// SearchTagsV2 calls SearchTagsV2.
func (c *Client) SearchTagsV2(ctx context.Context, req *SearchTagsRequest, opts ...grpc.CallOption) (*Stream[*SearchTagsV2Response], error) {
	return call(ctx, c, "SearchTagsV2", req, func() *SearchTagsV2Response { return &SearchTagsV2Response{} }, opts...)
}

// SearchTagValues calls SearchTagValues.
func (c *Client) SearchTagValues(ctx context.Context, req *SearchTagValuesRequest, opts ...grpc.CallOption) (*Stream[*SearchTagValuesResponse], error) {
	return call(ctx, c, "SearchTagValues", req, func() *SearchTagValuesResponse { return &SearchTagValuesResponse{} }, opts...)
}

// SearchTagValuesV2 calls SearchTagValuesV2.
func (c *Client) SearchTagValuesV2(ctx context.Context, req *SearchTagValuesRequest, opts ...grpc.CallOption) (*Stream[*SearchTagValuesV2Response], error) {
	return call(ctx, c, "SearchTagValuesV2", req, func() *SearchTagValuesV2Response { return &SearchTagValuesV2Response{} }, opts...)
}

// MetricsQueryRange calls MetricsQueryRange.
func (c *Client) MetricsQueryRange(ctx context.Context, req *QueryRangeRequest, opts ...grpc.CallOption) (*Stream[*QueryRangeResponse], error) {
	return call(ctx, c, "MetricsQueryRange", req, func() *QueryRangeResponse { return &QueryRangeResponse{} }, opts...)
}

// MetricsQueryInstant calls MetricsQueryInstant.
func (c *Client) MetricsQueryInstant(ctx context.Context, req *QueryInstantRequest, opts ...grpc.CallOption) (*Stream[*QueryInstantResponse], error) {
	return call(ctx, c, "MetricsQueryInstant", req, func() *QueryInstantResponse { return &QueryInstantResponse{} }, opts...)
}
