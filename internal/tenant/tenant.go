// Package tenant resolves which tenant a write or a query belongs to.
//
// Sprout keys every store by tenant from the first byte it writes, the way Tempo, Mimir and Loki do with the
// X-Scope-OrgID header, so that turning multi-tenancy on later needs no data migration. With multi-tenancy off
// (the default) every request belongs to Default.
package tenant

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/collector/client"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// Header is the HTTP (and gRPC metadata) key that names the tenant.
const Header = "X-Scope-OrgID"

// Default is the tenant used when multi-tenancy is off.
const Default = "single-tenant"

// ErrMissing is returned when multi-tenancy is on and a request names no tenant: Unauthenticated (HTTP 401), as
// Tempo, Mimir and Loki answer "no org id".
var ErrMissing error = &refusal.Error{Reason: refusal.Unauthenticated, Msg: "no org id: the " + Header + " header is required when multi-tenancy is enabled"}

type ctxKey struct{}

// WithTenant returns a context carrying the tenant id.
func WithTenant(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the tenant of ctx. It looks at a value set by WithTenant first, then at the Collector's
// client metadata (set by receivers with include_metadata: true), and falls back to Default.
func FromContext(ctx context.Context) string {
	if id, ok := ctx.Value(ctxKey{}).(string); ok && id != "" {
		return id
	}
	info := client.FromContext(ctx)
	for _, k := range []string{Header, strings.ToLower(Header)} {
		if v := info.Metadata.Get(k); len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	return Default
}

// MaxLength is the longest tenant id, in bytes (Mimir's limit).
const MaxLength = 150

// Validate is the one check of a tenant id, made at every door (HTTP APIs, OTLP pipelines, the ruler, the
// Alertmanager, the generator and each store) with the same rules, so that no store holds an id another one
// would refuse at its next start. The rules are Mimir's (at most 150 bytes of letters, digits and !-_.*'(),
// not "." or "..") plus one of Sprout's own: no leading dot, because the stores keep their own directories
// and files under dot names beside the tenants' ("."-prefixed names are never tenants).
//
// A malformed id is a *refusal.Error for refusal.Invalid (HTTP 400, gRPC InvalidArgument): retrying it cannot help. An empty id is
// ErrMissing.
func Validate(id string) error {
	if id == "" {
		return ErrMissing
	}
	if len(id) > MaxLength {
		return invalid("tenant id is %d bytes long, the limit is %d", len(id), MaxLength)
	}
	if id == "." || id == ".." {
		return invalid("tenant id %q is not allowed", id)
	}
	if id[0] == '.' {
		return invalid("tenant id %q: ids starting with a dot are reserved", id)
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!-_.*'()", r):
		default:
			return invalid("tenant id %q contains unsupported character %q (allowed: letters, digits and !-_.*'())", id, r)
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return &refusal.Error{Reason: refusal.Invalid, Msg: fmt.Sprintf(format, args...)}
}

// FromRequest resolves the tenant of an HTTP request. With multi-tenancy off it always returns Default, so a
// stray header cannot split a single-tenant installation's data.
func FromRequest(r *http.Request, multitenancy bool) (string, error) {
	if !multitenancy {
		return Default, nil
	}
	id := r.Header.Get(Header)
	if err := Validate(id); err != nil {
		return "", err
	}
	return id, nil
}
