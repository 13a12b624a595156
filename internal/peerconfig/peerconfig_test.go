package peerconfig

import (
	"strings"
	"testing"
)

func TestMergeYAML(t *testing.T) {
	for _, c := range []struct{ name, base, overlay, want string }{
		{"adds a key", "a: 1\n", "b: 2\n", "a: 1\nb: 2\n"},
		{"replaces a scalar", "a: 1\n", "a: x\n", "a: x\n"},
		{"merges maps key by key", "a:\n  b: 1\n  c: 2\n", "a: {c: 3, d: 4}\n", "a:\n    b: 1\n    c: 3\n    d: 4\n"},
		{"keeps the base's order", "z: 1\na: 2\n", "a: 3\n", "z: 1\na: 3\n"},
		{"null removes", "a:\n  b: 1\n  c: 2\n", "a: {b: null}\n", "a:\n    c: 2\n"},
		{"null of a missing key", "a: 1\n", "b: null\n", "a: 1\n"},
		{"a list replaces", "a:\n  - 1\n  - 2\n", "a: [3]\n", "a: [3]\n"},
		{"a map replaces a scalar", "a: 1\n", "a:\n  b: 2\n", "a:\n    b: 2\n"},
		{"dates stay as written", "from: 2024-01-01\n", "x: true\n", "from: 2024-01-01\nx: true\n"},
		{"empty base", "", "a: 1\n", "a: 1\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := MergeYAML(c.base, c.overlay)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
	for _, c := range [][2]string{{"a: [", "b: 1"}, {"a: 1", "- 1"}, {"- 1", "a: 1"}} {
		if _, err := MergeYAML(c[0], c[1]); err == nil {
			t.Errorf("MergeYAML(%q, %q): no error", c[0], c[1])
		}
	}
}

func FuzzMergeYAML(f *testing.F) {
	f.Add("a: {b: 1, c: 2}\nd: [1]\n", "a: {b: null, e: 3}\nd: x\n")
	f.Add("from: 2024-01-01\n", "x: true\n")
	f.Add("", "a: 1\n")
	f.Add("a: [", "b: 1")
	f.Fuzz(func(t *testing.T, base, overlay string) {
		merged, err := MergeYAML(base, overlay)
		if err != nil {
			return
		}
		// What comes out is a YAML map again, and merging the overlay once more changes nothing.
		again, err := MergeYAML(merged, overlay)
		if err != nil {
			t.Fatalf("merged document does not parse: %v\n%s", err, merged)
		}
		if again != merged {
			t.Fatalf("merging twice differs:\n%s\n---\n%s", merged, again)
		}
	})
}

// TestRender: each peer's template renders for a Host with its ports into YAML that names them, an overlay
// changes only what it states, and a port the host has not got is an error, not a panic.
func TestRender(t *testing.T) {
	for _, c := range []struct {
		name, tmpl string
		ports      []string
		want       []string
	}{
		{"tempo", Tempo, TempoPorts, []string{"http_listen_port: 1000", "grpc_listen_port: 1001", "endpoint: 127.0.0.1:1002", "endpoint: 127.0.0.1:1003", "bind_port: 1004", "path: /d/blocks", "rate_limit_bytes: 7"}},
		{"loki", Loki, LokiPorts, []string{"http_listen_port: 1000", "grpc_listen_port: 1001", "bind_port: 1002", "chunks_directory: /d/chunks", "rate_limit_bytes: 7"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := Host{Dir: "/d", Ports: map[string]int{}}
			for i, p := range c.ports {
				h.Ports[p] = 1000 + i
			}
			got, err := Render(c.tmpl, "overrides: {rate_limit_bytes: 7}\nserver: {log_level: info}\n", h)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range append(c.want, "log_level: info") {
				if !strings.Contains(got, w) {
					t.Errorf("rendered config lacks %q:\n%s", w, got)
				}
			}
			if strings.Contains(got, "log_level: warn") {
				t.Errorf("overlay did not replace server.log_level:\n%s", got)
			}
			delete(h.Ports, c.ports[0])
			if _, err := Render(c.tmpl, "", h); err == nil || !strings.Contains(err.Error(), `no port "http"`) {
				t.Errorf("render without port http: %v, want an error naming it", err)
			}
		})
	}
}
