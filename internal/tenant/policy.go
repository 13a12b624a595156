package tenant

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"go.opentelemetry.io/collector/client"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// Policy decides the tenant of an HTTP request and of pipeline data. A process has one: the `sprout_api`
// extension's settings, which every store's HTTP handlers and every store exporter read, so that a write refused
// on one path is refused on all of them. The zero Policy is single-tenant mode.
type Policy struct {
	// Multitenancy requires every request and every batch of pipeline data to name its tenant in X-Scope-OrgID.
	Multitenancy bool
	// UserIsTenant ties credentials to tenants the way hosted Mimir, Loki and Tempo gateways do: an authenticated
	// user may act only as the tenant of the same name.
	UserIsTenant bool
	// Users lists, per authenticated user, the tenants that user may act as (in addition to its own name when
	// UserIsTenant is set).
	Users map[string][]string
	// MaxTenants bounds the number of tenants each store holds (0: no limit); see CheckCount.
	MaxTenants int
}

// Bound reports whether credentials are tied to tenants.
func (p Policy) Bound() bool { return p.UserIsTenant || len(p.Users) > 0 }

// CheckCount is the max_tenants check a store makes where it creates a tenant: have is the number it already
// holds, store names it in the refusal. Tenants found on disk at start are opened without it, so that a start
// never fails and no data becomes unreadable when the limit is lowered.
func CheckCount(id string, have, max int, store string) error {
	if max <= 0 || have < max {
		return nil
	}
	return &refusal.Error{Reason: refusal.TooManyTenants, Limit: "max_tenants", Msg: fmt.Sprintf(
		"tenant %q refused: the %s already holds %d tenants, the limit (max_tenants of the sprout_api extension; raise it, or 0 for no limit)",
		id, store, have)}
}

// User is the authenticated user of a request or of pipeline data: the "username" (basic auth) or "subject"
// (OIDC) attribute the Collector's authenticator extensions put into client.Info.Auth; "" when there is none.
func User(info client.Info) string {
	if info.Auth == nil {
		return ""
	}
	for _, attr := range []string{"username", "subject"} {
		if v, ok := info.Auth.GetAttribute(attr).(string); ok && v != "" {
			return v
		}
	}
	return ""
}

// Allowed lists the tenants user may act as when credentials are bound.
func (p Policy) Allowed(user string) []string { return p.allowed(user) }

// allowed lists the tenants user may act as when credentials are bound.
func (p Policy) allowed(user string) []string {
	var out []string
	if p.UserIsTenant {
		out = append(out, user)
	}
	for _, t := range p.Users[user] {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// Resolve decides the tenant from the X-Scope-OrgID value (may be empty) and the client information of the
// request. With multi-tenancy on:
//   - credentials bound to exactly one tenant name it when the header is absent (as a hosted gateway does);
//   - otherwise a missing or invalid header is Unauthenticated;
//   - with credentials bound, a request with no authenticated user is Unauthenticated, and a tenant the user
//     may not act as is PermissionDenied.
func (p Policy) Resolve(header string, info client.Info) (string, error) {
	if !p.Multitenancy {
		return Default, nil
	}
	if !p.Bound() {
		if err := Validate(header); err != nil {
			return "", err
		}
		return header, nil
	}
	user := User(info)
	if user == "" {
		return "", &refusal.Error{Reason: refusal.Unauthenticated, Msg: "no authenticated user: credentials are tied to tenants (tenant_auth), so every request must authenticate"}
	}
	allowed := p.allowed(user)
	if header == "" {
		if len(allowed) == 1 {
			header = allowed[0]
		} else {
			return "", &refusal.Error{Reason: refusal.Unauthenticated, Msg: fmt.Sprintf("no org id: user %q may act as %d tenants, so the %s header must name one", user, len(allowed), Header)}
		}
	}
	if err := Validate(header); err != nil {
		return "", err
	}
	if !slices.Contains(allowed, header) {
		return "", &refusal.Error{Reason: refusal.Forbidden, Msg: fmt.Sprintf("user %q may not act as tenant %q (%s)", user, header, Header)}
	}
	return header, nil
}

// FromRequest resolves the tenant of an HTTP request; the authenticated user, if any, is in the client.Info the
// Collector's HTTP server put into the request's context.
func (p Policy) FromRequest(r *http.Request) (string, error) {
	return p.Resolve(r.Header.Get(Header), client.FromContext(r.Context()))
}

// FromPipeline resolves the tenant of pipeline data for a store exporter or connector. With multi-tenancy off
// every batch is Default's, whatever X-Scope-OrgID a sender put in its metadata: a stray header must neither
// split a one-tenant installation's data into tenants its APIs never show nor make one per invented name. With
// it on, data must name its tenant in the X-Scope-OrgID client metadata (the receivers need include_metadata:
// true) and, with credentials bound, come from a receiver whose authenticator names a user allowed to act as
// it; a tenant set by Sprout itself with WithTenant (the span-metrics generator's output) is trusted once it
// passes Validate. A refusal is a *refusal.Error made permanent (refusal.Consumer), which the OTLP receivers
// answer with its gRPC code (Unauthenticated, InvalidArgument, PermissionDenied; HTTP 401 / 400 / 403).
func (p Policy) FromPipeline(ctx context.Context) (string, error) {
	if !p.Multitenancy {
		return Default, nil
	}
	if id, ok := ctx.Value(ctxKey{}).(string); ok && id != "" {
		if err := Validate(id); err != nil {
			return "", refusal.Consumer(err)
		}
		return id, nil
	}
	info := client.FromContext(ctx)
	var header string
	for _, k := range []string{Header, "x-scope-orgid"} {
		if v := info.Metadata.Get(k); len(v) > 0 && v[0] != "" {
			header = v[0]
			break
		}
	}
	id, err := p.Resolve(header, info)
	if err != nil {
		return "", refusal.Consumer(err)
	}
	return id, nil
}
