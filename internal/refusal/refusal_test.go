package refusal

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestAnswers: every reason has one answer on every protocol, and it is the same wrapped or not.
func TestAnswers(t *testing.T) {
	cases := []struct {
		reason     Reason
		retryAfter time.Duration
		http       int
		code       codes.Code
		wait       time.Duration // RetryInfo and Retry-After; 0: none
		permanent  bool
	}{
		{Invalid, 0, 400, codes.InvalidArgument, 0, true},
		{OverLimit, 0, 400, codes.InvalidArgument, 0, true},
		{TooManyTenants, 0, 400, codes.ResourceExhausted, 0, true},
		{Unauthenticated, 0, 401, codes.Unauthenticated, 0, true},
		{Forbidden, 0, 403, codes.PermissionDenied, 0, true},
		{RateLimited, 0, 429, codes.ResourceExhausted, time.Second, false},
		{RateLimited, 2500 * time.Millisecond, 429, codes.ResourceExhausted, 2500 * time.Millisecond, false},
		{Overloaded, 0, 503, codes.Unavailable, time.Second, false},
		{Timeout, 0, 504, codes.DeadlineExceeded, 0, true},
		{Partial, 0, 429, codes.InvalidArgument, 0, true},
		{Reason(200), 0, 500, codes.Internal, 0, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s", tc.reason, tc.retryAfter), func(t *testing.T) {
			ref := New(tc.reason, "some_limit", "refused %d things", 3)
			ref.RetryAfter = tc.retryAfter
			if ref.Error() != "refused 3 things (limit: some_limit)" {
				t.Errorf("message %q", ref.Error())
			}
			for _, err := range []error{ref, fmt.Errorf("push: %w", ref), errors.Join(errors.New("other"), ref)} {
				if got := HTTPStatus(err, 500); got != tc.http {
					t.Errorf("%v: HTTP %d, want %d", err, got, tc.http)
				}
				st, ok := status.FromError(err)
				if !ok || st.Code() != tc.code {
					t.Errorf("%v: gRPC %v, want %v", err, st.Code(), tc.code)
				}
				if st.Message() != err.Error() {
					t.Errorf("gRPC message %q, want the whole error %q", st.Message(), err.Error())
				}
				d, ok := RetryDelay(err)
				if (tc.wait > 0) != ok || d != tc.wait {
					t.Errorf("%v: RetryInfo %v (%v), want %v", err, d, ok, tc.wait)
				}
				h := http.Header{}
				SetHeaders(h, err)
				want := ""
				if tc.wait > 0 {
					want = fmt.Sprint(int((tc.wait + time.Second - 1) / time.Second))
				}
				if got := h.Get("Retry-After"); got != want {
					t.Errorf("%v: Retry-After %q, want %q", err, got, want)
				}
				c := Consumer(err)
				if consumererror.IsPermanent(c) != tc.permanent {
					t.Errorf("%v: permanent %v, want %v", err, consumererror.IsPermanent(c), tc.permanent)
				}
				if status.Code(c) != tc.code {
					t.Errorf("%v: through Consumer, gRPC %v, want %v", err, status.Code(c), tc.code)
				}
			}
		})
	}
}

func TestOthers(t *testing.T) {
	plain := errors.New("disk on fire")
	if HTTPStatus(plain, 500) != 500 {
		t.Error("a plain error must get the fallback")
	}
	h := http.Header{}
	SetHeaders(h, plain)
	if len(h) != 0 {
		t.Errorf("headers for a plain error: %v", h)
	}
	if _, ok := RetryDelay(plain); ok {
		t.Error("a plain error has no RetryInfo")
	}
	if Consumer(plain) != plain || Consumer(nil) != nil {
		t.Error("Consumer must leave plain errors alone")
	}
	if _, ok := As(plain); ok || Is(plain, Invalid) {
		t.Error("a plain error is no refusal")
	}
	cause := errors.New("bad id")
	ref := &Error{Reason: Invalid, Err: cause}
	if ref.Error() != "bad id" || !errors.Is(ref, cause) || !Is(fmt.Errorf("x: %w", ref), Invalid) {
		t.Errorf("cause: %q", ref.Error())
	}
	h.Set("Retry-After", "30")
	SetRetryAfter(h, time.Second)
	if h.Get("Retry-After") != "30" {
		t.Error("a handler's own Retry-After was replaced")
	}
	h = http.Header{}
	SetRetryAfter(h, 10*time.Millisecond)
	if h.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want at least 1", h.Get("Retry-After"))
	}
}
