package logql

import (
	"encoding/json"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// JSONField is one label `| json` (without parameters) extracts from a line: its name, value and the keys it
// came from (["user", "id"] for user_id), which Loki's detected_fields reports as jsonPath.
type JSONField struct {
	Name, Value string
	Path        []string
}

// JSONFields returns the labels `| json` would extract from line, named as the parser names them (nested keys
// joined with '_', invalid characters replaced, a name taken by a stream label suffixed with _extracted), or
// false when the line is not a JSON object.
func JSONFields(line string, stream labels.Labels) ([]JSONField, bool) {
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	var out []JSONField
	var walk func(prefix string, path []string, obj map[string]any)
	walk = func(prefix string, path []string, obj map[string]any) {
		for k, v := range obj {
			name := k
			if prefix != "" {
				name = prefix + "_" + k
			}
			p := append(path[:len(path):len(path)], k)
			switch x := v.(type) {
			case map[string]any:
				walk(name, p, x)
			case []any:
				// Arrays are skipped, as the parser skips them.
			default:
				n := sanitizeLabelName(name)
				if stream.Has(n) {
					n += "_extracted"
				}
				out = append(out, JSONField{Name: n, Value: jsonScalar(x), Path: p})
			}
		}
	}
	walk("", nil, obj)
	return out, true
}
