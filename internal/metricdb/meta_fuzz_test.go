package metricdb

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadMeta reads arbitrary meta.json files: an error or a version 1 meta, never a panic.
func FuzzReadMeta(f *testing.F) {
	f.Add([]byte(`{"ulid":"01JF0000000000000000000000","minTime":0,"maxTime":7200000,"stats":{"numSamples":1},"compaction":{"level":1,"sources":["01JF0000000000000000000000"]},"version":1}`))
	f.Add([]byte(`{"ulid":"01JF0000000000000000000000","version":2}`))
	f.Add([]byte(`{"ulid":`))
	f.Add([]byte(`{"ulid":"not a ulid","version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "meta.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := readMeta(dir)
		if err == nil && m.Version != 1 {
			t.Fatalf("accepted meta version %d", m.Version)
		}
	})
}
