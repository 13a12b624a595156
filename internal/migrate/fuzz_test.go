package migrate

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"", "5000", "5000/s", "2MiB/s", "1.5MB", "-1", "1e400", "NaN", "KiB", "0B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r.Items < 0 || r.Bytes < 0 || (r.Items > 0 && r.Bytes > 0) {
			t.Fatalf("ParseRate(%q) = %+v", s, r)
		}
	})
}

func FuzzParseOTLPEndpoint(f *testing.F) {
	for _, s := range []string{"http://tempo:4318", "grpc://tempo:4317", "grpcs://[::1]:4317", "https://x/v1/traces", "tempo:4317", "://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, addr, err := parseOTLPEndpoint(s)
		if err == nil && (addr == "" || (kind != "http" && kind != "grpc" && kind != "grpcs")) {
			t.Fatalf("parseOTLPEndpoint(%q) = %q, %q", s, kind, addr)
		}
	})
}

// FuzzLoadCheckpoint: a damaged or hand-edited checkpoint is refused or loaded, never a panic, and what loads
// saves and loads again to the same state.
func FuzzLoadCheckpoint(f *testing.F) {
	f.Add([]byte(`{"version":1,"run":{"tenant":"t","targets":["logs=x"]},"signals":{"logs":{"done":["a","b"],"current":"c","batches":2,"items":5}}}`))
	f.Add([]byte(`{"version":1,"run":{"tenant":"t","targets":["logs=x"]},"signals":{"logs":null}}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`not json`))
	key := RunKey{Tenant: "t", Targets: []string{"logs=x"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "cp.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		cp, err := loadCheckpoint(path, key, false)
		if err != nil {
			return
		}
		st := cp.signal(Logs)
		st.markDone("z")
		if err := cp.save(); err != nil {
			t.Fatal(err)
		}
		cp2, err := loadCheckpoint(path, key, false)
		if err != nil {
			t.Fatalf("a saved checkpoint does not load: %v", err)
		}
		if !cp2.signal(Logs).isDone("z") {
			t.Fatal("done unit lost")
		}
	})
}
