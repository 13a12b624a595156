// Package refusal is Sprout's one way to say no. A store, the tenant policy, the memory governor or a query
// limiter that refuses a write or a query returns an *Error: what was refused and why (its Reason), the
// configuration key that set the limit, and whether and when to try again. The edges map it, each in one place:
//
//   - HTTP APIs: HTTPStatus and SetHeaders (status code and Retry-After); each API writes its own body
//     (Prometheus' JSON envelope, Loki's and Tempo's plain text), always err.Error().
//   - gRPC: *Error is a gRPC status error itself (GRPCStatus), with a RetryInfo detail when it is retryable, so
//     the Collector's OTLP receivers and Sprout's gRPC services answer it without help (OTLP HTTP turns the
//     RetryInfo into Retry-After).
//   - Collector pipelines: Consumer marks the refusals that must not be retried as consumererror permanent.
//
// It decides nothing: when to refuse is the caller's business. It must not know any API's body format.
package refusal

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Reason is why something was refused. It alone decides the answer on every protocol (see the table in
// answers), so that one refusal gets the same answer on every path it can take.
type Reason uint8

const (
	// Invalid is a request or data that is malformed or not allowed; sending it again cannot succeed.
	Invalid Reason = iota + 1
	// OverLimit is data or a query that a configured limit refuses whatever the moment (labels per series,
	// bytes per trace, a search window): sending it again cannot succeed until an operator raises the limit.
	OverLimit
	// TooManyTenants is a new tenant beyond max_tenants. HTTP 400, as Mimir's other per-tenant limits on push;
	// gRPC ResourceExhausted without RetryInfo, which OTLP clients do not retry.
	TooManyTenants
	// Unauthenticated is a request that does not say who it is (no or an invalid X-Scope-OrgID).
	Unauthenticated
	// Forbidden is a tenant the authenticated user may not act as.
	Forbidden
	// RateLimited is a tenant over a limit that clears with time (ingestion rate, memory it holds, its own
	// queries): retryable after RetryAfter.
	RateLimited
	// Overloaded is the process as a whole short of memory or query slots for now: retryable after RetryAfter.
	Overloaded
	// Timeout is a query that ran out of its time.
	Timeout
	// Partial is a write of which a per-tenant limit refused a part while the rest may have been stored (Loki's
	// stream limit): HTTP 429, as Loki answers, but not retryable through the pipelines, where resending the
	// whole batch would store its accepted part twice (gRPC InvalidArgument, consumererror permanent).
	Partial
)

// answer is how a Reason is answered on each protocol.
type answer struct {
	name      string
	http      int
	code      codes.Code
	retryable bool
}

var answers = [...]answer{
	Invalid:         {"invalid", http.StatusBadRequest, codes.InvalidArgument, false},
	OverLimit:       {"over_limit", http.StatusBadRequest, codes.InvalidArgument, false},
	TooManyTenants:  {"too_many_tenants", http.StatusBadRequest, codes.ResourceExhausted, false},
	Unauthenticated: {"unauthenticated", http.StatusUnauthorized, codes.Unauthenticated, false},
	Forbidden:       {"forbidden", http.StatusForbidden, codes.PermissionDenied, false},
	RateLimited:     {"rate_limited", http.StatusTooManyRequests, codes.ResourceExhausted, true},
	Overloaded:      {"overloaded", http.StatusServiceUnavailable, codes.Unavailable, true},
	Timeout:         {"timeout", http.StatusGatewayTimeout, codes.DeadlineExceeded, false},
	Partial:         {"partial", http.StatusTooManyRequests, codes.InvalidArgument, false},
}

func (r Reason) answer() answer {
	if int(r) < len(answers) && answers[r].http != 0 {
		return answers[r]
	}
	return answer{"unknown", http.StatusInternalServerError, codes.Internal, false}
}

// String is the reason's name, for logs and metrics labels.
func (r Reason) String() string { return r.answer().name }

// DefaultRetryAfter is the wait asked of a refused client when the refusal names none. Every per-tenant limit
// refills per second, and the memory a store holds drains within seconds once flushed, so one second is worth
// waiting for without leaving a client idle long; OTLP exporters and Prometheus' remote write back off further
// on repeats.
const DefaultRetryAfter = time.Second

// Error is a refusal. Msg is what the client reads, whole: it names the limit (callers build it with New, or
// write it out themselves when the key belongs inside the sentence).
type Error struct {
	Reason Reason
	// Limit is the configuration key that refused ("ingestion_rate", "max_tenants"), "" when none did.
	Limit string
	// RetryAfter is the wait asked of the client when the reason is retryable; 0 means DefaultRetryAfter.
	RetryAfter time.Duration
	Msg        string
	// Err is the cause, when the refusal has one of its own.
	Err error
}

// New is a refusal whose message ends with the limit's key, "(limit: key)", when limit is set.
func New(r Reason, limit, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if limit != "" {
		msg += " (limit: " + limit + ")"
	}
	return &Error{Reason: r, Limit: limit, Msg: msg}
}

func (e *Error) Error() string {
	if e.Msg == "" && e.Err != nil {
		return e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether sending the same request later may succeed.
func (e *Error) Retryable() bool { return e.Reason.answer().retryable }

// Wait is the wait to ask of the client: RetryAfter, or DefaultRetryAfter; 0 when it is not retryable.
func (e *Error) Wait() time.Duration {
	if !e.Retryable() {
		return 0
	}
	if e.RetryAfter > 0 {
		return e.RetryAfter
	}
	return DefaultRetryAfter
}

// HTTPStatus is the status code an HTTP API answers the refusal with.
func (e *Error) HTTPStatus() int { return e.Reason.answer().http }

// GRPCStatus makes the refusal a gRPC status error (status.FromError and status.Code find it, also wrapped):
// its code, and a RetryInfo detail when it is retryable.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.Reason.answer().code, e.Error())
	if d := e.Wait(); d > 0 {
		if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)}); err == nil {
			st = withInfo
		}
	}
	return st
}

// RetryDelay returns the RetryInfo delay a gRPC status error carries (as a client reads it), and whether it has
// one.
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

// As returns the refusal err is or wraps.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Is reports whether err is or wraps a refusal for reason r.
func Is(err error, r Reason) bool {
	e, ok := As(err)
	return ok && e.Reason == r
}

// HTTPStatus is the status an HTTP API answers err with: the refusal's when err is or wraps one, fallback
// otherwise.
func HTTPStatus(err error, fallback int) int {
	if e, ok := As(err); ok {
		return e.HTTPStatus()
	}
	return fallback
}

// SetHeaders sets Retry-After for a retryable refusal (err is or wraps one); it leaves other errors alone.
func SetHeaders(h http.Header, err error) {
	if e, ok := As(err); ok && e.Retryable() {
		SetRetryAfter(h, e.Wait())
	}
}

// SetRetryAfter sets Retry-After to d in whole seconds (at least 1), unless the header is set already.
func SetRetryAfter(h http.Header, d time.Duration) {
	if h.Get("Retry-After") != "" {
		return
	}
	s := int64((d + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.FormatInt(max(s, 1), 10))
}

// Consumer is the error a Collector component (a store exporter, a connector) returns for err: a refusal that
// retrying cannot fix is marked consumererror permanent, so that neither the exporter helper's retry nor the
// client tries again; a retryable one stays as it is (its gRPC status carries RetryInfo, which the OTLP
// receivers answer as RESOURCE_EXHAUSTED or UNAVAILABLE with RetryInfo, HTTP 429 or 503 with Retry-After).
// Errors that are no refusal are left as they are: the receivers answer them as retryable.
func Consumer(err error) error {
	if err == nil || consumererror.IsPermanent(err) {
		return err
	}
	if e, ok := As(err); ok && !e.Retryable() {
		return consumererror.NewPermanent(err)
	}
	return err
}
