package tenant

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
		{".", false},
		{"...", false},
		{".hidden", false},
		{"a.b", true},
		{"a..", true},
		{"../../escape3", false},
		{"tën", false},
		{strings.Repeat("x", 150), true},
		{strings.Repeat("x", 151), false},
		{"a/b", false},
		{"a b", false},
		{string(make([]byte, 151)), false},
	} {
		err := Validate(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && tc.id != "" && status.Code(err) != codes.InvalidArgument {
			t.Errorf("Validate(%q): code %v, want InvalidArgument (HTTP 400)", tc.id, status.Code(err))
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

// FuzzValidate: an id Validate accepts is one plain path element that no store's own dot-named entries can
// share, and a refusal is never anything but a 400/401-class tenant error.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{"team-a", ".hidden", "...", "..", "a/b", "../../x", "tën", "blocks", "silences", "a\x00b", strings.Repeat("x", 151)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := Validate(id)
		if err != nil {
			if id != "" && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Validate(%q) = %v: code %v", id, err, status.Code(err))
			}
			return
		}
		if id == "" || len(id) > MaxLength || id[0] == '.' || strings.ContainsAny(id, "/\\\x00") {
			t.Fatalf("Validate accepted %q", id)
		}
		if filepath.Base(filepath.Join("/data", id)) != id || filepath.Dir(filepath.Join("/data", id)) != "/data" {
			t.Fatalf("%q is not one path element", id)
		}
	})
}
