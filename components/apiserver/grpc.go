package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"

	"go.opentelemetry.io/collector/client"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/internal/grpcwire"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// gRPC on the API port. Tempo, with stream_over_http_enabled, serves its streaming query API (the service
// tempopb.StreamingQuerier) on its HTTP port: plaintext HTTP/2 (h2c, with prior knowledge) next to HTTP/1.1,
// a request with a gRPC content type going to the gRPC server. Grafana's Tempo data source dials that port when
// its streaming switches are on. Sprout does the same: the listener speaks both protocols (net/http's
// unencrypted HTTP/2, no Upgrade dance), and gRPC requests take the same road through the handler chain as every
// other request (authentication, body limit, browser walls, memory governor, panic recovery) before the mux
// would see them; the stores register their services here as they mount their routes.

// DefaultGRPCMaxMsgSize is the default of grpc_server_max_recv_msg_size and grpc_server_max_send_msg_size:
// Tempo's (16 MiB), larger than gRPC's 4 MiB because a search response of many spansets easily outgrows that.
const DefaultGRPCMaxMsgSize = 16 << 20

// DefaultGRPCMaxConcurrentStreams is the default of grpc_server_max_concurrent_streams, the HTTP/2 streams one
// connection may have open at once (Tempo's default, as gRPC servers commonly set it).
const DefaultGRPCMaxConcurrentStreams = 100

// RegisterService adds a gRPC service to the API port, served when stream_over_http_enabled is on (without it,
// the call does nothing). Call it from a component's Start, as the stores do: gRPC calls are answered
// Unavailable until every component has started (Ready), so that the service table never changes under a call.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	if s.grpc == nil {
		return
	}
	s.grpc.RegisterService(desc, impl)
}

// GRPCEnabled reports whether the API port serves gRPC.
func (s *Server) GRPCEnabled() bool { return s.grpc != nil }

// TenantFromContext resolves the tenant of a gRPC call served on this port: X-Scope-OrgID from the call's
// metadata, and the authenticated user the Collector's HTTP server put into the context. The error carries the
// gRPC code (Unauthenticated, PermissionDenied, InvalidArgument).
func (s *Server) TenantFromContext(ctx context.Context) (string, error) {
	var header string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(tenant.Header); len(v) > 0 {
			header = v[0]
		}
	}
	id, err := s.cfg.Policy().Resolve(header, client.FromContext(ctx))
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return "", err
		}
		return "", status.Error(codes.InvalidArgument, err.Error())
	}
	return id, nil
}

func (s *Server) newGRPC() *grpc.Server {
	return grpc.NewServer(
		grpc.ForceServerCodecV2(grpcwire.Codec{}),
		grpc.MaxRecvMsgSize(s.cfg.GRPCServerMaxRecvMsgSize),
		grpc.MaxSendMsgSize(s.cfg.GRPCServerMaxSendMsgSize),
		grpc.MaxConcurrentStreams(s.cfg.GRPCServerMaxConcurrentStreams),
		grpc.ChainUnaryInterceptor(s.unaryRecover),
		grpc.ChainStreamInterceptor(s.streamRecover),
	)
}

// isGRPC reports whether r is a gRPC call: HTTP/2 and a gRPC content type, as gRPC's own ServeHTTP requires.
func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// routeGRPC sends gRPC calls to the gRPC server and everything else to h. It sits inside the handler chain, so
// whatever refuses an HTTP request refuses a gRPC call too.
func (s *Server) routeGRPC(h http.Handler) http.Handler {
	if s.grpc == nil {
		return h
	}
	g := s.instrument("grpc", s.grpc)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isGRPC(r) {
			if !s.grpcServing.Load() {
				grpcAwareError(w, r, "Sprout is starting: its gRPC services are not registered yet", http.StatusServiceUnavailable)
				return
			}
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// grpcAwareError answers a refusal of the Collector's middleware (authentication) to a gRPC call as a gRPC
// status, so that the client sees Unauthenticated with the reason rather than an HTTP status it has to guess
// from; other requests get the plain-text answer as before.
func grpcAwareError(w http.ResponseWriter, r *http.Request, msg string, code int) {
	if !isGRPC(r) {
		http.Error(w, msg, code)
		return
	}
	c := codes.Unknown
	switch code {
	case http.StatusUnauthorized:
		c = codes.Unauthenticated
	case http.StatusForbidden:
		c = codes.PermissionDenied
	case http.StatusRequestEntityTooLarge:
		c = codes.ResourceExhausted
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		c = codes.InvalidArgument
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		c = codes.Unavailable
	}
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", fmt.Sprint(int(c)))
	h.Set("Grpc-Message", encodeGRPCMessage(msg))
	w.WriteHeader(http.StatusOK)
}

// encodeGRPCMessage percent-encodes a grpc-message value as the gRPC HTTP/2 protocol asks.
func encodeGRPCMessage(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func (s *Server) streamRecover(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer s.recoverGRPC(info.FullMethod, &err)
	return handler(srv, ss)
}

func (s *Server) unaryRecover(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer s.recoverGRPC(info.FullMethod, &err)
	return handler(ctx, req)
}

// recoverGRPC turns a handler panic into Internal, as recoverer does for HTTP handlers.
func (s *Server) recoverGRPC(method string, err *error) {
	v := recover()
	if v == nil {
		return
	}
	if e, ok := v.(error); ok && errors.Is(e, http.ErrAbortHandler) {
		panic(v)
	}
	s.logger.Error("panic in gRPC handler", zap.String("method", method), zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
	*err = status.Errorf(codes.Internal, "internal error: %v", v)
}

// enableH2C lets the listener speak plaintext HTTP/2 with prior knowledge next to HTTP/1.1, with HTTP/2's own
// bounds: the streams one connection may hold open. The server's timeouts
// keep applying: the preface is read under read_header_timeout as any request line, a connection without open
// streams is closed after idle_timeout, each stream's body is held to read_timeout (bodyDeadline) and its
// answer to write_timeout.
func (s *Server) enableH2C(srv *http.Server) {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	if s.cfg.TLS.HasValue() {
		p.SetHTTP2(true) // over TLS, HTTP/2 is negotiated by ALPN as before
	}
	srv.Protocols = &p
	// Frame sizes, header table and flow-control windows stay net/http's defaults.
	srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: int(s.cfg.GRPCServerMaxConcurrentStreams)}
}
