// Package configcheck helps tests run Sprout's example configs before every component they name is linked in:
// it finds the component types a config uses that a set of factories lacks, and cuts them out of a config so
// that the rest can still be validated or run. It is imported only from tests.
package configcheck

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/otelcol"
	"go.yaml.in/yaml/v3"
)

// Pending are Sprout's own components that are built on parallel branches. Tests skip configs that need one of
// them on a developer machine until it is linked in; under CI (CI=true) a missing component is a failure.
var Pending = []string{"sprout_traces", "sprout_metrics", "sprout_logs", "sprout_generator", "sprout_ruler", "sprout_ui"}

// Read parses a YAML config file.
func Read(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Write serialises a config to path.
func Write(path string, cfg map[string]any) error {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// Missing lists, sorted, the component types cfg names that f lacks.
func Missing(cfg map[string]any, f otelcol.Factories) []string {
	var missing []string
	check := func(section string, has func(component.Type) bool) {
		m, _ := cfg[section].(map[string]any)
		for id := range m {
			typ, _, _ := strings.Cut(id, "/")
			ct, err := component.NewType(typ)
			if (err != nil || !has(ct)) && !slices.Contains(missing, typ) {
				missing = append(missing, typ)
			}
		}
	}
	check("receivers", func(c component.Type) bool { _, ok := f.Receivers[c]; return ok })
	check("processors", func(c component.Type) bool { _, ok := f.Processors[c]; return ok })
	check("exporters", func(c component.Type) bool { _, ok := f.Exporters[c]; return ok })
	check("connectors", func(c component.Type) bool { _, ok := f.Connectors[c]; return ok })
	check("extensions", func(c component.Type) bool { _, ok := f.Extensions[c]; return ok })
	slices.Sort(missing)
	return missing
}

// OnlyPending reports whether every missing type is one of Pending (anything else is a typo in a config).
func OnlyPending(missing []string) bool {
	for _, m := range missing {
		if !slices.Contains(Pending, m) {
			return false
		}
	}
	return true
}

// Without removes the named component types from cfg and from the service that uses them. A pipeline left
// without exporters gets `debug`; one left without receivers is dropped.
func Without(cfg map[string]any, types []string) map[string]any {
	gone := func(id string) bool { typ, _, _ := strings.Cut(id, "/"); return slices.Contains(types, typ) }
	for _, section := range []string{"receivers", "processors", "exporters", "connectors", "extensions"} {
		if m, ok := cfg[section].(map[string]any); ok {
			for id := range m {
				if gone(id) {
					delete(m, id)
				}
			}
		}
	}
	filter := func(v any) []any {
		out := []any{}
		l, _ := v.([]any)
		for _, x := range l {
			if s, _ := x.(string); !gone(s) {
				out = append(out, x)
			}
		}
		return out
	}
	svc, _ := cfg["service"].(map[string]any)
	if svc == nil {
		return cfg
	}
	svc["extensions"] = filter(svc["extensions"])
	pipelines, _ := svc["pipelines"].(map[string]any)
	for id, p := range pipelines {
		pm, _ := p.(map[string]any)
		if pm == nil {
			continue
		}
		pm["receivers"], pm["exporters"] = filter(pm["receivers"]), filter(pm["exporters"])
		if len(pm["receivers"].([]any)) == 0 {
			delete(pipelines, id)
			continue
		}
		if len(pm["exporters"].([]any)) == 0 {
			pm["exporters"] = []any{"debug"}
			exps, _ := cfg["exporters"].(map[string]any)
			if exps == nil {
				exps = map[string]any{}
				cfg["exporters"] = exps
			}
			exps["debug"] = nil
		}
	}
	return cfg
}
