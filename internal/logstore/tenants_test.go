package logstore

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/internal/logql"
)

// TestPushTenantDoorAndLimit: malformed ids are 400 carrying InvalidArgument, a new tenant beyond max_tenants
// is 400 carrying ResourceExhausted and naming the limit (not 429: retrying cannot help), known tenants go on.
func TestPushTenantDoorAndLimit(t *testing.T) {
	e := newEnv(t, nil)
	push := func(id string) error {
		return e.store.Push(context.Background(), id, []PushStream{{Labels: labels.FromStrings("job", "j"),
			Entries: []logql.Entry{{Timestamp: testNow.UnixNano(), Line: "line of " + id}}}})
	}
	check := func(id string, code codes.Code, msg string) {
		t.Helper()
		err := push(id)
		var pe *PushError
		if !errors.As(err, &pe) || pe.Status != http.StatusBadRequest || pe.Retryable || status.Code(err) != code || !strings.Contains(err.Error(), msg) {
			t.Errorf("Push(%q) = %v, want 400 with %v naming %q", id, err, code, msg)
		}
	}
	for _, bad := range []string{".hidden", "...", "../../escape3", "a/b", strings.Repeat("x", 151), "tën"} {
		check(bad, codes.InvalidArgument, "tenant id")
	}
	e.store.SetMaxTenants(2)
	for _, id := range []string{"a", "b", "a"} {
		if err := push(id); err != nil {
			t.Fatalf("Push(%q) = %v", id, err)
		}
	}
	check("c", codes.ResourceExhausted, "max_tenants")
}
