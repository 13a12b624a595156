package tenant

import (
	"context"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/client"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"team-a", true},
		{"A_b.c(1)", true},
		{"", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{string(make([]byte, 151)), false},
	} {
		if err := Validate(tc.id); (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

func TestFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if id, err := FromRequest(r, false); err != nil || id != Default {
		t.Fatalf("single tenant: got %q, %v", id, err)
	}
	if _, err := FromRequest(r, true); err == nil {
		t.Fatal("multi-tenant without header: want error")
	}
	r.Header.Set(Header, "team-a")
	if id, err := FromRequest(r, true); err != nil || id != "team-a" {
		t.Fatalf("multi-tenant: got %q, %v", id, err)
	}
	if id, _ := FromRequest(r, false); id != Default {
		t.Fatalf("header must be ignored when multi-tenancy is off, got %q", id)
	}
}

func TestFromContext(t *testing.T) {
	if got := FromContext(context.Background()); got != Default {
		t.Fatalf("got %q", got)
	}
	ctx := client.NewContext(context.Background(), client.Info{Metadata: client.NewMetadata(map[string][]string{"x-scope-orgid": {"t1"}})})
	if got := FromContext(ctx); got != "t1" {
		t.Fatalf("client metadata: got %q", got)
	}
	if got := FromContext(WithTenant(ctx, "t2")); got != "t2" {
		t.Fatalf("explicit: got %q", got)
	}
}
