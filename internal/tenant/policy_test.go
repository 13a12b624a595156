package tenant

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// authData stands in for the basicauth extension's client.AuthData.
type authData map[string]any

func (a authData) GetAttribute(k string) any { return a[k] }
func (a authData) GetAttributeNames() []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	return out
}

func infoFor(user string, header string) client.Info {
	info := client.Info{}
	if user != "" {
		info.Auth = authData{"username": user}
	}
	if header != "" {
		info.Metadata = client.NewMetadata(map[string][]string{Header: {header}})
	}
	return info
}

func TestPolicyResolve(t *testing.T) {
	multi := Policy{Multitenancy: true}
	bound := Policy{Multitenancy: true, UserIsTenant: true}
	mapped := Policy{Multitenancy: true, Users: map[string][]string{"ops": {"team-a", "team-b"}, "ci": {"team-c"}}}
	for _, tc := range []struct {
		name         string
		p            Policy
		user, header string
		want         string
		code         codes.Code
	}{
		{"single-tenant ignores the header", Policy{}, "", "team-a", Default, codes.OK},
		{"single-tenant without header", Policy{}, "", "", Default, codes.OK},
		{"multi: header names the tenant", multi, "", "team-a", "team-a", codes.OK},
		{"multi: any user may name any tenant when not bound", multi, "alice", "team-b", "team-b", codes.OK},
		{"multi: missing header", multi, "", "", "", codes.Unauthenticated},
		{"multi: bad tenant id", multi, "", "../etc", "", codes.InvalidArgument},
		{"multi: leading dot", multi, "", ".hidden", "", codes.InvalidArgument},
		{"multi: dots only", multi, "", "...", "", codes.InvalidArgument},
		{"multi: 151 bytes", multi, "", strings.Repeat("x", 151), "", codes.InvalidArgument},
		{"multi: not ASCII", multi, "", "tën", "", codes.InvalidArgument},
		{"bound: bad tenant id", bound, "team-a", "a/b", "", codes.InvalidArgument},
		{"bound: user is the tenant", bound, "team-a", "team-a", "team-a", codes.OK},
		{"bound: header may be left out", bound, "team-a", "", "team-a", codes.OK},
		{"bound: another tenant is forbidden", bound, "team-a", "team-b", "", codes.PermissionDenied},
		{"bound: no user", bound, "", "team-a", "", codes.Unauthenticated},
		{"mapped: listed tenant", mapped, "ops", "team-b", "team-b", codes.OK},
		{"mapped: unlisted tenant", mapped, "ops", "team-c", "", codes.PermissionDenied},
		{"mapped: two tenants need the header", mapped, "ops", "", "", codes.Unauthenticated},
		{"mapped: one tenant names itself", mapped, "ci", "", "team-c", codes.OK},
		{"mapped: unknown user", mapped, "eve", "team-a", "", codes.PermissionDenied},
		{"mapped: unknown user, no header", mapped, "eve", "", "", codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Resolve(tc.header, infoFor(tc.user, ""))
			if status.Code(err) != tc.code || got != tc.want {
				t.Fatalf("Resolve = %q, %v; want %q, %v", got, err, tc.want, tc.code)
			}
			if err != nil {
				e := err.(*refusal.Error)
				if want := map[codes.Code]int{codes.Unauthenticated: 401, codes.PermissionDenied: 403, codes.InvalidArgument: 400}[tc.code]; e.HTTPStatus() != want {
					t.Errorf("HTTP status %d, want %d", e.HTTPStatus(), want)
				}
			}

			// The same decision over HTTP and for pipeline data.
			r := httptest.NewRequest("GET", "/api/v1/labels", nil)
			if tc.header != "" {
				r.Header.Set(Header, tc.header)
			}
			r = r.WithContext(client.NewContext(r.Context(), infoFor(tc.user, "")))
			if got, err := tc.p.FromRequest(r); status.Code(err) != tc.code || got != tc.want {
				t.Errorf("FromRequest = %q, %v", got, err)
			}
			ctx := client.NewContext(context.Background(), infoFor(tc.user, tc.header))
			got, err = tc.p.FromPipeline(ctx)
			if status.Code(err) != tc.code || got != tc.want {
				t.Errorf("FromPipeline = %q, %v; want %q, %v", got, err, tc.want, tc.code)
			}
			if err != nil && !consumererror.IsPermanent(err) {
				t.Error("a pipeline refusal must be permanent, or the exporter would retry it")
			}
		})
	}
}

func TestFromPipelineTrustsSproutsOwnTenant(t *testing.T) {
	p := Policy{Multitenancy: true, UserIsTenant: true}
	ctx := WithTenant(context.Background(), "team-a")
	if got, err := p.FromPipeline(ctx); err != nil || got != "team-a" {
		t.Fatalf("FromPipeline = %q, %v", got, err)
	}
}

// One-tenant mode ignores X-Scope-OrgID in pipeline metadata, whatever it holds: every batch is Default's.
func TestFromPipelineIgnoresHeaderInOneTenantMode(t *testing.T) {
	for _, h := range []string{"ghost", "../../escape3", "a/b", strings.Repeat("x", 151), "tën", ".hidden"} {
		for _, k := range []string{Header, "x-scope-orgid"} {
			ctx := client.NewContext(context.Background(), client.Info{Metadata: client.NewMetadata(map[string][]string{k: {h}})})
			if got, err := (Policy{}).FromPipeline(ctx); err != nil || got != Default {
				t.Errorf("%s: %q: FromPipeline = %q, %v; want %q", k, h, got, err, Default)
			}
		}
	}
	// Sprout's own tenant (the generator's output) is Default's too in one-tenant mode.
	if got, _ := (Policy{}).FromPipeline(WithTenant(context.Background(), "team-a")); got != Default {
		t.Errorf("WithTenant in one-tenant mode: %q", got)
	}
}

func TestFromPipelineValidatesSproutsOwnTenant(t *testing.T) {
	_, err := Policy{Multitenancy: true}.FromPipeline(WithTenant(context.Background(), ".hidden"))
	if status.Code(err) != codes.InvalidArgument || !consumererror.IsPermanent(err) {
		t.Fatalf("FromPipeline(.hidden) = %v, want a permanent InvalidArgument", err)
	}
}

func TestCheckCount(t *testing.T) {
	for _, tc := range []struct {
		have, max int
		ok        bool
	}{{0, 0, true}, {5000, 0, true}, {2, 3, true}, {3, 3, false}, {4, 3, false}} {
		err := CheckCount("t", tc.have, tc.max, "trace store")
		if (err == nil) != tc.ok {
			t.Errorf("CheckCount(have %d, max %d) = %v, want ok=%v", tc.have, tc.max, err, tc.ok)
		}
		if err == nil {
			continue
		}
		if status.Code(err) != codes.ResourceExhausted || refusal.HTTPStatus(fmt.Errorf("wrapped: %w", err), 500) != 400 {
			t.Errorf("refusal %v: code %v, HTTP %d", err, status.Code(err), refusal.HTTPStatus(err, 500))
		}
		if !strings.Contains(err.Error(), "max_tenants") {
			t.Errorf("refusal does not name the limit: %v", err)
		}
	}
}

func TestUserAttributes(t *testing.T) {
	if got := User(client.Info{Auth: authData{"subject": "svc-1"}}); got != "svc-1" {
		t.Errorf("OIDC subject: %q", got)
	}
	if got := User(client.Info{}); got != "" {
		t.Errorf("no auth: %q", got)
	}
}
