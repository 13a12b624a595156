package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TargetError is a request a target refused or that did not reach it. Retryable says whether sending the same
// batch again may succeed (the target was down, overloaded or rate limiting); the others (a malformed batch, a
// wrong tenant or credential) stop the migration with the target's own message.
type TargetError struct {
	Target     string // "tempo http://…", "loki http://…"
	Status     string // "429 Too Many Requests", "Unavailable", or "" when no answer came
	Msg        string
	Retryable  bool
	RetryAfter time.Duration
	Err        error
}

func (e *TargetError) Error() string {
	var b strings.Builder
	b.WriteString(e.Target)
	if e.Status != "" {
		b.WriteString(": " + e.Status)
	}
	if e.Msg != "" {
		b.WriteString(": " + e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if !e.Retryable && (strings.HasPrefix(e.Status, "401") || strings.HasPrefix(e.Status, "403") || e.Status == codes.Unauthenticated.String() ||
		e.Status == codes.PermissionDenied.String() || tenantRefused(e.Msg)) {
		b.WriteString(" (check the target tenant and credentials: --target-tenant, --header, --basic-auth, --bearer-token-file)")
	}
	return b.String()
}

func (e *TargetError) Unwrap() error { return e.Err }

// tenantRefused reports whether a refusal's words are about the tenant: Tempo's OTLP/HTTP receiver answers a
// missing X-Scope-OrgID with 400 "no org id", and Tempo and Loki refuse a malformed one with 400 "tenant ID …".
func tenantRefused(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "no org id") || strings.Contains(m, "tenant id")
}

// httpError classifies an HTTP answer that is not 2xx. 408, 429 and 5xx but 501 and 505 are worth retrying,
// as the Collector's exporters and Prometheus' remote write do; other 4xx are not.
func httpError(target string, resp *http.Response) *TargetError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	msg := string(body)
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/x-protobuf") || strings.HasPrefix(ct, "application/protobuf") {
		// An OTLP/HTTP server answers a protobuf request's failure with a google.rpc.Status (Tempo's "no org id",
		// Loki's tenant refusals): its message is the words to show, not the bytes.
		var st spb.Status
		if proto.Unmarshal(body, &st) == nil && st.GetMessage() != "" {
			msg = st.GetMessage()
		}
	}
	e := &TargetError{Target: target, Status: resp.Status, Msg: strings.TrimSpace(msg)}
	switch c := resp.StatusCode; {
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		e.Retryable = true
	case c >= 500 && c != http.StatusNotImplemented && c != http.StatusHTTPVersionNotSupported:
		e.Retryable = true
	}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			e.RetryAfter = time.Until(t)
		}
	}
	return e
}

// transportError is a request that got no answer: connection refused, reset, timed out. Always retryable.
func transportError(target string, err error) *TargetError {
	return &TargetError{Target: target, Msg: "unreachable", Retryable: true, Err: err}
}

// grpcError classifies a gRPC status as the OTLP specification does: Unavailable, ResourceExhausted (with
// retry information), Aborted, DeadlineExceeded, OutOfRange and DataLoss are retryable.
func grpcError(target string, err error) *TargetError {
	st, ok := status.FromError(err)
	if !ok {
		return transportError(target, err)
	}
	e := &TargetError{Target: target, Status: st.Code().String(), Msg: st.Message()}
	switch st.Code() {
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded, codes.OutOfRange, codes.DataLoss, codes.Canceled:
		e.Retryable = true
	case codes.ResourceExhausted:
		// Without RetryInfo the server says the request can never fit (a size limit): not retryable.
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				e.Retryable = true
				if ri.GetRetryDelay() != nil {
					e.RetryAfter = ri.GetRetryDelay().AsDuration()
				}
			}
		}
	}
	return e
}

// RetryPolicy bounds retries of one batch: waits start at Initial and double up to Max (or what the target asks
// in Retry-After / RetryInfo, if longer), until MaxElapsed has passed since the first failure.
type RetryPolicy struct {
	Initial    time.Duration
	Max        time.Duration
	MaxElapsed time.Duration
}

// DefaultRetry is the Collector exporters' default backoff.
var DefaultRetry = RetryPolicy{Initial: 5 * time.Second, Max: 30 * time.Second, MaxElapsed: 5 * time.Minute}

// withRetry runs send until it succeeds, fails for good, or the policy runs out. onRetry hears each retry.
func withRetry(ctx context.Context, p RetryPolicy, sleep func(context.Context, time.Duration) error, now func() time.Time,
	send func(context.Context) error, onRetry func(err error, wait time.Duration)) error {
	start := now()
	wait := p.Initial
	for {
		err := send(ctx)
		if err == nil {
			return nil
		}
		var te *TargetError
		if !errors.As(err, &te) || !te.Retryable {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := wait
		if te.RetryAfter > d {
			d = te.RetryAfter
		}
		if now().Add(d).Sub(start) > p.MaxElapsed {
			return fmt.Errorf("%w (gave up after retrying for %s)", err, now().Sub(start).Round(time.Second))
		}
		if onRetry != nil {
			onRetry(err, d)
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
		wait *= 2
		if wait > p.Max {
			wait = p.Max
		}
	}
}
