package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// The embedded rules are the files of this directory, byte for byte, and WriteTo lays them out as rule_path
// expects (PromQL at the top, LogQL under logql/), replacing older copies.
func TestWriteToMatchesSourceFiles(t *testing.T) {
	src, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	logql, err := filepath.Glob("logql/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src = append(src, logql...)
	if len(logql) == 0 || len(src) == len(logql) {
		t.Fatalf("expected PromQL and LogQL example rules, found %v", src)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "logql"), 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "red.yaml")
	if err := os.WriteFile(stale, []byte("groups: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	written, err := WriteTo(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, w := range written {
		r, err := filepath.Rel(dir, w)
		if err != nil {
			t.Fatal(err)
		}
		rel = append(rel, r)
	}
	sort.Strings(rel)
	sort.Strings(src)
	if len(rel) != len(src) {
		t.Fatalf("wrote %v, source has %v", rel, src)
	}
	for i := range src {
		if rel[i] != src[i] {
			t.Fatalf("wrote %v, source has %v", rel, src)
		}
		want, _ := os.ReadFile(src[i])
		got, _ := os.ReadFile(filepath.Join(dir, rel[i]))
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from its source", rel[i])
		}
	}
}

func TestWriteToUnwritableDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteTo(filepath.Join(f, "rules")); err == nil {
		t.Fatal("WriteTo under a regular file: no error")
	}
}
