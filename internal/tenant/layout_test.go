package tenant

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// tree writes files (path → content; a path ending in / is a directory) under root.
func tree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// files lists the regular files under root, slash-separated, sorted.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// wholeDirs takes every directory with a valid id as a tenant (the Alertmanager's layout).
func wholeDirs(_ string, isDir bool) []string {
	if isDir {
		return []string{""}
	}
	return nil
}

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    map[string]string
		parts func(string, bool) []string
		want  []string
		err   string
	}{
		{"empty", nil, wholeDirs, []string{"tenants/.sprout-layout"}, ""},
		{"earlier tenants, one named tenants, one named silences; files and dot-dirs stay",
			map[string]string{"a/silences": "A", "tenants/nflog": "T", "silences/silences": "S", "silences.legacy": "L", ".bucket/x": "B"},
			wholeDirs,
			[]string{".bucket/x", "silences.legacy", "tenants/.sprout-layout", "tenants/a/silences", "tenants/silences/silences", "tenants/tenants/nflog"}, ""},
		{"already migrated: nothing moves",
			map[string]string{"tenants/.sprout-layout": "", "tenants/x/silences": "X", "blocks/y": "Y"},
			wholeDirs,
			[]string{"blocks/y", "tenants/.sprout-layout", "tenants/x/silences"}, ""},
		{"a crash half-way: the staging directory is completed",
			map[string]string{".tenants-migrating/a/wal/1": "A", "b/wal/1": "B"},
			func(string, bool) []string { return []string{"wal"} },
			[]string{"tenants/.sprout-layout", "tenants/a/wal/1", "tenants/b/wal/1"}, ""},
		{"parts: only the WAL of a directory that is also the store's",
			map[string]string{"blocks/wal/1": "W", "blocks/team-a/blocks/m": "M"},
			func(string, bool) []string { return []string{"wal"} },
			[]string{"blocks/team-a/blocks/m", "tenants/.sprout-layout", "tenants/blocks/wal/1"}, ""},
		{"a tenants directory that is no tenant and not empty is not guessed at",
			map[string]string{"tenants/x/y": "?"},
			func(string, bool) []string { return nil },
			nil, "in the way"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tree(t, root, tc.in)
			for run := 0; run < 2; run++ {
				dst, err := Layout(root, tc.parts)
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("Layout = %v, want an error with %q", err, tc.err)
					}
					return
				}
				if err != nil || dst != filepath.Join(root, LayoutDir) {
					t.Fatalf("Layout = %q, %v", dst, err)
				}
				if got := files(t, root); strings.Join(got, " ") != strings.Join(tc.want, " ") {
					t.Fatalf("run %d: files\n%v\nwant\n%v", run, got, tc.want)
				}
			}
		})
	}
}
