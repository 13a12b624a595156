// Package peerconfig is the one configuration of each peer (Tempo, Loki) that Sprout's side-by-side tests
// (internal/testutil's StartTempo and StartLoki) and the benchmark runner (tools/bench) start: a template over
// the peer's directory and loopback ports, and the YAML merge by which a test or a run states only how its peer
// differs (multi-tenancy, raised limits). It renders text; it must not start processes or be imported by the
// binary.
package peerconfig

import (
	"bytes"
	"fmt"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// Tempo is Tempo as one process (target all) on the local filesystem, on loopback ports, with OTLP over HTTP
// and gRPC, streaming over HTTP (its gRPC API on the HTTP port) and no query end cut-off, so what was just
// pushed is searchable. It names the ports TempoPorts.
const Tempo = `
stream_over_http_enabled: true
target: all
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {{.Port "http"}}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {{.Port "grpc"}}
  log_level: warn
distributor:
  receivers:
    otlp:
      protocols:
        http:
          endpoint: 127.0.0.1:{{.Port "otlp_http"}}
        grpc:
          endpoint: 127.0.0.1:{{.Port "otlp_grpc"}}
memberlist:
  bind_addr: [127.0.0.1]
  bind_port: {{.Port "memberlist"}}
  join_members: []
query_frontend:
  query_end_cutoff: 0s
live_store:
  wal:
    path: {{.Dir}}/live-store/traces
  shutdown_marker_dir: {{.Dir}}/live-store/shutdown-marker
block_builder:
  wal:
    path: {{.Dir}}/block-builder
backend_scheduler:
  local_work_path: {{.Dir}}/scheduler
storage:
  trace:
    backend: local
    wal:
      path: {{.Dir}}/wal
    local:
      path: {{.Dir}}/blocks
usage_report:
  reporting_enabled: false
`

// TempoPorts are the names of the ports Tempo's template uses.
var TempoPorts = []string{"http", "grpc", "otlp_http", "otlp_grpc", "memberlist"}

// Loki is Loki as one process on the local filesystem (TSDB index, schema v13), its ring in memory, on loopback
// ports, taking old samples and structured metadata, without result caching. It names the ports LokiPorts.
const Loki = `
auth_enabled: false
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {{.Port "http"}}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {{.Port "grpc"}}
  log_level: warn
common:
  instance_addr: 127.0.0.1
  path_prefix: {{.Dir}}
  storage:
    filesystem:
      chunks_directory: {{.Dir}}/chunks
      rules_directory: {{.Dir}}/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index: {prefix: index_, period: 24h}
limits_config:
  reject_old_samples: false
  allow_structured_metadata: true
  volume_enabled: true
query_range:
  cache_results: false
pattern_ingester:
  enabled: false
analytics:
  reporting_enabled: false
memberlist:
  bind_port: {{.Port "memberlist"}}
`

// LokiPorts are the names of the ports Loki's template uses.
var LokiPorts = []string{"http", "grpc", "memberlist"}

// Host is what a template names: the peer's directory ({{.Dir}}) and its loopback ports by name
// ({{.Port "http"}}, {{.Addr "http"}}, {{.URL "http"}}).
type Host struct {
	Dir   string
	Ports map[string]int
}

// Port is the number of the port named name; it panics on a name the host has not got, which is a mistake in
// the caller (a template's Execute returns the panic as its error).
func (h Host) Port(name string) int {
	n, ok := h.Ports[name]
	if !ok {
		panic(fmt.Sprintf("no port %q", name))
	}
	return n
}

// Addr is 127.0.0.1:port of the port named name.
func (h Host) Addr(name string) string { return fmt.Sprintf("127.0.0.1:%d", h.Port(name)) }

// URL is http://127.0.0.1:port of the port named name.
func (h Host) URL(name string) string { return "http://" + h.Addr(name) }

// Execute executes the template text with data (a Host, or a value that has its methods and more).
func Execute(text string, data any) (string, error) {
	tmpl, err := template.New("peer").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("parse template: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("execute template: %w", err)
	}
	return b.String(), nil
}

// Render executes the template base and the template overlay with data and merges the overlay over the base
// (see MergeYAML); an empty overlay leaves the base as it is.
func Render(base, overlay string, data any) (string, error) {
	text, err := Execute(base, data)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	if overlay == "" {
		return text, nil
	}
	o, err := Execute(overlay, data)
	if err != nil {
		return "", fmt.Errorf("config overlay: %w", err)
	}
	if text, err = MergeYAML(text, o); err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	return text, nil
}

// MergeYAML merges the YAML document overlay over base: maps merge key by key, any other value replaces the
// base's, and a null removes the key. The base keeps its key order and the style of its scalars (a date stays
// the string it was written as).
func MergeYAML(base, overlay string) (string, error) {
	var b, o yaml.Node
	if err := yaml.Unmarshal([]byte(base), &b); err != nil {
		return "", fmt.Errorf("parse base YAML: %w", err)
	}
	if err := yaml.Unmarshal([]byte(overlay), &o); err != nil {
		return "", fmt.Errorf("parse overlay YAML: %w", err)
	}
	bm, om := documentMap(&b), documentMap(&o)
	if bm == nil || om == nil {
		return "", fmt.Errorf("merge YAML: base and overlay must each be a map (or empty)")
	}
	mergeNodes(bm, om)
	out, err := yaml.Marshal(bm)
	if err != nil {
		return "", fmt.Errorf("encode merged YAML: %w", err)
	}
	return string(out), nil
}

// documentMap returns the top-level mapping of a parsed document: a new empty one for an empty document, nil
// when the document is something else.
func documentMap(doc *yaml.Node) *yaml.Node {
	if doc.Kind == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		return doc.Content[0]
	}
	return nil
}

func mergeNodes(dst, src *yaml.Node) {
	for i := 0; i+1 < len(src.Content); i += 2 {
		key, val := src.Content[i], src.Content[i+1]
		j := mapIndex(dst, key.Value)
		switch {
		case val.Tag == "!!null":
			// Every entry of the key goes: a document may repeat a key, and a merge must not leave the second.
			for ; j >= 0; j = mapIndex(dst, key.Value) {
				dst.Content = append(dst.Content[:j], dst.Content[j+2:]...)
			}
		case val.Kind == yaml.MappingNode && j >= 0 && dst.Content[j+1].Kind == yaml.MappingNode:
			mergeNodes(dst.Content[j+1], val)
		case val.Kind == yaml.MappingNode:
			// A map that is new here, or replaces a value that is not a map: merged into an empty one, so that
			// its nulls remove rather than stay (and merging it again changes nothing).
			m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			mergeNodes(m, val)
			if j < 0 {
				dst.Content = append(dst.Content, key, m)
			} else {
				dst.Content[j+1] = m
			}
		case j < 0:
			dst.Content = append(dst.Content, key, val)
		default:
			dst.Content[j+1] = val
		}
	}
}

// mapIndex is the index of key's node in the mapping m's Content, or -1.
func mapIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}
