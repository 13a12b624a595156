// Package backpressure shapes Sprout's refusals of writes it could take later (rate limits, a store holding too
// much in memory) so that clients back off instead of hammering: gRPC RESOURCE_EXHAUSTED with a RetryInfo detail,
// and HTTP 429 with Retry-After. It decides nothing itself; the stores decide when to refuse.
package backpressure

import (
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// RetryAfter is the delay Sprout asks a refused writer to wait. Every per-tenant limit refills per second, and the
// memory a store holds drains within seconds once flushed, so one second is enough to be worth waiting for
// without leaving a client idle long; the OTLP exporters and Prometheus' remote write back off further on repeats.
const RetryAfter = time.Second

// Error turns err into a gRPC RESOURCE_EXHAUSTED status with a RetryInfo detail of RetryAfter. The Collector's
// OTLP receivers answer it as gRPC RESOURCE_EXHAUSTED (with the detail) and as HTTP 429 with Retry-After. It is
// retryable: not a consumererror permanent error.
func Error(err error) error {
	st := status.New(codes.ResourceExhausted, err.Error())
	if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(RetryAfter)}); derr == nil {
		st = d
	}
	return st.Err()
}

// RetryDelay returns the RetryInfo delay carried by a gRPC status error, and whether it has one.
func RetryDelay(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// SetRetryAfter sets the Retry-After header (whole seconds, at least 1) unless the handler set one.
func SetRetryAfter(h http.Header) {
	if h.Get("Retry-After") != "" {
		return
	}
	s := int64((RetryAfter + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.FormatInt(max(s, 1), 10))
}
