package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// sourceTree writes a small module: a main package that embeds a directory and a glob, a test file, testdata,
// a doc and a hidden directory.
func sourceTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for path, body := range map[string]string{
		"go.mod":                    "module example.com/m\n\ngo 1.26\n",
		"go.sum":                    "",
		"main.go":                   "package main\n\nfunc main() {}\n",
		"main_test.go":              "package main\n",
		"web/embed.go":              "package web\n\nimport \"embed\"\n\n//go:embed all:dist\nvar FS embed.FS\n",
		"web/dist/index.html":       "<html></html>",
		"web/dist/.hidden.js":       "x",
		"web/src/app.js":            "app",
		"configs/embed.go":          "package configs\n\nimport _ \"embed\"\n\n//go:embed \"a.yaml\" b*.yaml\nvar A string\n",
		"configs/a.yaml":            "a: 1\n",
		"configs/b1.yaml":           "b: 1\n",
		"configs/c.yaml":            "c: 1\n",
		"internal/x/x.go":           "package x\n",
		"internal/x/testdata/in.go": "package in\n",
		"docs/readme.md":            "# docs\n",
		".git/HEAD":                 "ref: main\n",
		"web/node_modules/m/m.go":   "package m\n",
	} {
		p := filepath.Join(root, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestSourceKey(t *testing.T) {
	for _, c := range []struct {
		name, path, body string
		changes          bool
	}{
		{"a Go file", "main.go", "package main\n\nfunc main() { println() }\n", true},
		{"a new Go file", "internal/x/y.go", "package x\n", true},
		{"go.mod", "go.mod", "module example.com/m\n\ngo 1.27\n", true},
		{"go.sum", "go.sum", "example.com/d v1.0.0 h1:x=\n", true},
		{"an embedded directory's file", "web/dist/index.html", "<html>new</html>", true},
		{"an all: embedded hidden file", "web/dist/.hidden.js", "y", true},
		{"a new file in an embedded directory", "web/dist/assets/app.js", "new", true},
		{"an embedded quoted name", "configs/a.yaml", "a: 2\n", true},
		{"an embedded glob", "configs/b1.yaml", "b: 2\n", true},
		{"a new file the glob embeds", "configs/b2.yaml", "b: 3\n", true},
		{"a file next to the embedded ones", "configs/c.yaml", "c: 2\n", false},
		{"a test file", "main_test.go", "package main\n\n// changed\n", false},
		{"testdata", "internal/x/testdata/in.go", "package in\n\n// changed\n", false},
		{"UI source that is not embedded", "web/src/app.js", "changed", false},
		{"docs", "docs/readme.md", "# changed\n", false},
		{"a hidden directory", ".git/HEAD", "ref: other\n", false},
		{"node_modules", "web/node_modules/m/m.go", "package m\n\n// changed\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := sourceTree(t)
			before, err := SourceKey(root)
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := SourceKey(root); again != before {
				t.Fatalf("the key of an unchanged tree changed: %s, %s", before, again)
			}
			p := filepath.Join(root, filepath.FromSlash(c.path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(c.body), 0o644); err != nil {
				t.Fatal(err)
			}
			after, err := SourceKey(root)
			if err != nil {
				t.Fatal(err)
			}
			if (after != before) != c.changes {
				t.Errorf("changing %s: key %s -> %s, want changed=%v", c.path, before, after, c.changes)
			}
		})
	}
}

func TestSourceKeyMissingModule(t *testing.T) {
	if _, err := SourceKey(t.TempDir()); err == nil {
		t.Error("a directory without go.mod: no error")
	}
}

func TestEmbedPatterns(t *testing.T) {
	p := filepath.Join(t.TempDir(), "e.go")
	src := "package e\n\n//go:embed a\tb/*.yaml \"c d.txt\" `e`\n//go:embedded x\n// go:embed y\nvar x int\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := embedPatterns(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b/*.yaml", "c d.txt", "e"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func FuzzParseEmbeds(f *testing.F) {
	for _, s := range []string{
		"package e\n\n//go:embed a\tb/*.yaml \"c d.txt\" `e`\nvar x int\n",
		"//go:embed all:dist\n",
		"//go:embed \"unterminated\n",
		"//go:embedded x\n// go:embed y\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		pats, err := parseEmbeds(src)
		if err != nil {
			return
		}
		for _, p := range pats {
			if p == "" && !bytes.Contains(src, []byte(`""`)) && !bytes.Contains(src, []byte("``")) {
				t.Fatalf("empty pattern from %q", src)
			}
		}
	})
}
