package tenant

import (
	"context"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
		{"multi: bad tenant id", multi, "", "../etc", "", codes.Unauthenticated},
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
				e := err.(*Error)
				if want := map[codes.Code]int{codes.Unauthenticated: 401, codes.PermissionDenied: 403}[tc.code]; e.HTTPStatus() != want {
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
			want := tc.want
			if !tc.p.Multitenancy {
				want = FromContext(ctx) // single-tenant pipelines keep today's behaviour exactly
			}
			if status.Code(err) != tc.code || got != want {
				t.Errorf("FromPipeline = %q, %v; want %q, %v", got, err, want, tc.code)
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

func TestUserAttributes(t *testing.T) {
	if got := User(client.Info{Auth: authData{"subject": "svc-1"}}); got != "svc-1" {
		t.Errorf("OIDC subject: %q", got)
	}
	if got := User(client.Info{}); got != "" {
		t.Errorf("no auth: %q", got)
	}
}
