package ruler

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sprout-otel/sprout/internal/logql"
)

func TestParseGroup(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"ok", "name: g\nrules:\n  - record: a:b\n    expr: sum(up)\n", ""},
		{"alert with template", "name: g\nrules:\n  - alert: A\n    expr: up == 0\n    annotations: {summary: '{{ $labels.job }}'}\n", ""},
		{"bad yaml", "name: [", "decode rule group"},
		{"unknown field", "name: g\nfoo: 1\n", "field foo not found"},
		{"empty name", "rules: []\n", "name must not be empty"},
		{"bad expr", "name: g\nrules:\n  - record: a\n    expr: sum(\n", `invalid rule group "g"`},
		{"bad template", "name: g\nrules:\n  - alert: A\n    expr: up\n    annotations: {s: '{{ .Nope '}\n", `invalid rule group "g"`},
		{"record and alert", "name: g\nrules:\n  - record: a\n    alert: b\n    expr: up\n", "only one of 'record' and 'alert' must be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseGroup([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseGroup() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseGroup() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func seeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("groups:\n  - name: x\n   rules: [\n"))
	f.Add([]byte(""))
}

// FuzzParseRuleFile checks that no rule file makes the parser panic, and that what it keeps parses again.
func FuzzParseRuleFile(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		rgs, _ := ParseRuleFile("fuzz.yaml", b, nil)
		if rgs == nil {
			t.Fatal("nil groups")
		}
	})
}

// FuzzParseGroup checks the ruler API's upload decoder.
func FuzzParseGroup(f *testing.F) {
	seeds(f)
	f.Add([]byte("name: g\nrules:\n  - record: a:b\n    expr: sum(up)\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ParseGroup(b)
		if err == nil && g.Name == "" {
			t.Fatal("accepted a group without a name")
		}
	})
}

func BenchmarkParseRuleFile(b *testing.B) {
	content, err := os.ReadFile(filepath.Join("testdata", "mixed.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ParseRuleFile("mixed.yaml", content, nil)
	}
}

// FuzzParseLogQLRuleFile checks LogQL rule files: no input makes the parser panic, and every expression it keeps
// is a LogQL metric query.
func FuzzParseLogQLRuleFile(f *testing.F) {
	seeds(f)
	for _, p := range []string{"errors.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "logql", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rgs, _ := ParseRuleFileLang(LogQL, "fuzz.yaml", b, nil)
		for _, g := range rgs.Groups {
			for _, r := range g.Rules {
				if _, err := logql.ParseSampleExpr(r.Expr); err != nil {
					t.Fatalf("kept a rule whose expression is not a LogQL metric query: %q: %v", r.Expr, err)
				}
			}
		}
	})
}
