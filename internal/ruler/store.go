package ruler

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/thanos-io/objstore"
	"go.yaml.in/yaml/v3"

	"github.com/sprout-otel/sprout/internal/bucket"
)

// ErrNotFound is returned for a namespace or group that is not stored.
var ErrNotFound = errors.New("no rule groups found")

// RuleStore keeps rule groups uploaded over the ruler API in the bucket, one object per group under
// <prefix>/<tenant>/<namespace>/<group> (names path-escaped), so they survive restarts and are shared by every
// Sprout that reads the bucket.
type RuleStore struct {
	bkt    bucket.Bucket
	prefix string
}

// NewRuleStore returns the store of PromQL rule groups over bkt, under rules/.
func NewRuleStore(bkt bucket.Bucket) *RuleStore { return &RuleStore{bkt: bkt, prefix: "rules"} }

// NewLogQLRuleStore returns the store of LogQL rule groups (Loki's ruler API) over bkt, under rules-logql/.
func NewLogQLRuleStore(bkt bucket.Bucket) *RuleStore {
	return &RuleStore{bkt: bkt, prefix: "rules-logql"}
}

// ValidateName checks a namespace or group name for use as a key segment.
func ValidateName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name must not be empty", kind)
	case name == "." || name == "..":
		return fmt.Errorf("%s name %q is not allowed", kind, name)
	case len(name) > 512:
		return fmt.Errorf("%s name is longer than 512 bytes", kind)
	}
	return nil
}

func (s *RuleStore) groupKey(tenantID, ns, group string) string {
	return strings.Join([]string{s.prefix, tenantID, url.PathEscape(ns), url.PathEscape(group)}, "/")
}

// SetGroup stores (creates or replaces) a group.
func (s *RuleStore) SetGroup(ctx context.Context, tenantID, ns string, g rulefmt.RuleGroup) error {
	b, err := yaml.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode rule group %q: %w", g.Name, err)
	}
	key := s.groupKey(tenantID, ns, g.Name)
	if err := s.bkt.Upload(ctx, key, strings.NewReader(string(b))); err != nil {
		return fmt.Errorf("store rule group %s: %w", key, err)
	}
	return nil
}

// GetGroup reads one group.
func (s *RuleStore) GetGroup(ctx context.Context, tenantID, ns, group string) (rulefmt.RuleGroup, error) {
	var g rulefmt.RuleGroup
	key := s.groupKey(tenantID, ns, group)
	b, err := bucket.ReadAll(ctx, s.bkt, key)
	if err != nil {
		if s.bkt.IsObjNotFoundErr(err) {
			return g, ErrNotFound
		}
		return g, fmt.Errorf("read rule group %s: %w", key, err)
	}
	if err := yaml.Unmarshal(b, &g); err != nil {
		return g, fmt.Errorf("decode rule group %s: %w", key, err)
	}
	return g, nil
}

// DeleteGroup removes one group; ErrNotFound if it is not stored.
func (s *RuleStore) DeleteGroup(ctx context.Context, tenantID, ns, group string) error {
	key := s.groupKey(tenantID, ns, group)
	if ok, err := s.bkt.Exists(ctx, key); err != nil {
		return fmt.Errorf("check rule group %s: %w", key, err)
	} else if !ok {
		return ErrNotFound
	}
	if err := s.bkt.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete rule group %s: %w", key, err)
	}
	return nil
}

// DeleteNamespace removes every group of a namespace; ErrNotFound if it has none.
func (s *RuleStore) DeleteNamespace(ctx context.Context, tenantID, ns string) error {
	groups, err := s.Namespaces(ctx, tenantID, ns)
	if err != nil {
		return err
	}
	if len(groups[ns]) == 0 {
		return ErrNotFound
	}
	for _, g := range groups[ns] {
		if err := s.DeleteGroup(ctx, tenantID, ns, g.Name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// Namespaces reads a tenant's groups by namespace, each namespace's groups sorted by name. With only set, it
// reads that namespace alone.
func (s *RuleStore) Namespaces(ctx context.Context, tenantID, only string) (map[string][]rulefmt.RuleGroup, error) {
	dir := s.prefix + "/" + tenantID + "/"
	if only != "" {
		dir += url.PathEscape(only) + "/"
	}
	out := map[string][]rulefmt.RuleGroup{}
	err := s.bkt.Iter(ctx, dir, func(name string) error {
		rest := strings.TrimPrefix(name, s.prefix+"/"+tenantID+"/")
		nsEsc, groupEsc, ok := strings.Cut(rest, "/")
		if !ok || groupEsc == "" || strings.HasSuffix(groupEsc, "/") {
			return nil
		}
		ns, err1 := url.PathUnescape(nsEsc)
		group, err2 := url.PathUnescape(groupEsc)
		if err1 != nil || err2 != nil {
			return nil // not ours
		}
		g, err := s.GetGroup(ctx, tenantID, ns, group)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil // deleted while listing
			}
			return err
		}
		out[ns] = append(out[ns], g)
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return nil, fmt.Errorf("list rule groups of tenant %s: %w", tenantID, err)
	}
	for _, gs := range out {
		sort.Slice(gs, func(i, j int) bool { return gs[i].Name < gs[j].Name })
	}
	return out, nil
}

// Tenants lists the tenants that have stored rules.
func (s *RuleStore) Tenants(ctx context.Context) ([]string, error) {
	var out []string
	err := s.bkt.Iter(ctx, s.prefix+"/", func(name string) error {
		t := strings.TrimSuffix(strings.TrimPrefix(name, s.prefix+"/"), "/")
		if t != "" && !strings.Contains(t, "/") {
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list rule tenants: %w", err)
	}
	sort.Strings(out)
	return out, nil
}
