package backpressure

import (
	"errors"
	"net/http"
	"testing"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestError(t *testing.T) {
	err := Error(errors.New("tenant over its ingestion rate"))
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		t.Fatalf("status %v, want RESOURCE_EXHAUSTED", st)
	}
	if st.Message() != "tenant over its ingestion rate" {
		t.Errorf("message %q", st.Message())
	}
	if d, ok := RetryDelay(err); !ok || d != RetryAfter {
		t.Errorf("RetryInfo delay %v (%v), want %v", d, ok, RetryAfter)
	}
	if consumererror.IsPermanent(err) {
		t.Error("a back-pressure refusal must be retryable")
	}
	// Wrapped by the pipeline (e.g. errors.Join in a fan-out), the code and detail must still be found.
	if d, ok := RetryDelay(errors.Join(err, errors.New("other"))); !ok || d != RetryAfter {
		t.Errorf("wrapped: RetryInfo delay %v (%v)", d, ok)
	}
	if _, ok := RetryDelay(errors.New("plain")); ok {
		t.Error("a plain error has no RetryInfo")
	}
}

func TestSetRetryAfter(t *testing.T) {
	h := http.Header{}
	SetRetryAfter(h)
	if got := h.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	h.Set("Retry-After", "30")
	SetRetryAfter(h)
	if got := h.Get("Retry-After"); got != "30" {
		t.Errorf("a handler's own Retry-After was replaced: %q", got)
	}
}
