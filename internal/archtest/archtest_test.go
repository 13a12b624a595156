package archtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// module is the module path; package paths below are relative to it.
const module = "github.com/sprout-otel/sprout"

// Import prefixes the rules use. A prefix matches the path itself and everything under it.
const (
	collector = "go.opentelemetry.io/collector"
	pdata     = "go.opentelemetry.io/collector/pdata"
	sprout    = module // any package of the module
)

var (
	stores     = []string{"internal/tracestore", "internal/metricstore", "internal/logstore"}
	storeLogic = append(slices.Clone(stores), "internal/generator", "internal/ruler", "internal/alerting", "internal/logql", "internal/traceql", "internal/wal")
)

func join(lists ...[]string) []string { return slices.Concat(lists...) }

// rule is what the import graph can show of a row of docs/architecture.md: the imports its package must not
// have (prefixes; module-relative for the module's own packages), the exceptions, and the row's own words.
type rule struct {
	pkg    string
	forbid []string
	allow  []string
	tests  bool // the test files' imports too (packages that are only tests)
	why    string
}

var rules = []rule{
	{pkg: "cmd/sprout", forbid: storeLogic, why: "contain store logic"},
	{pkg: "internal/distribution", forbid: join(storeLogic, []string{"internal/bucket", "internal/tenant"}), why: "know any component's internals"},
	{pkg: "examples", forbid: []string{sprout}, why: "import Sprout's packages"},
	{pkg: "examples/configs", forbid: []string{sprout}, why: "import Sprout's packages"},
	{pkg: "examples/rules", forbid: []string{sprout}, why: "import Sprout's packages"},
	{pkg: "components/apiserver", forbid: join(storeLogic, []string{"components"}), why: "know any store's API"},
	{pkg: "components/storebridge", forbid: join(storeLogic, []string{"components"}), allow: []string{"components/apiserver"}, why: "know a store's data, configuration or API"},
	{pkg: "components/tracestoreext", forbid: []string{"internal/metricstore", "internal/logstore", "internal/generator", "components"}, allow: []string{"components/apiserver", "components/storebridge"}, why: "hold store logic"},
	{pkg: "components/metricstoreext", forbid: []string{"internal/tracestore", "internal/logstore", "internal/generator", "components"}, allow: []string{"components/apiserver", "components/storebridge"}, why: "hold store logic"},
	{pkg: "components/logstoreext", forbid: []string{"internal/tracestore", "internal/metricstore", "internal/generator", "components"}, allow: []string{"components/apiserver", "components/storebridge"}, why: "hold store logic"},
	{pkg: "internal/tracestore", forbid: []string{collector, "components", "internal/metricstore", "internal/logstore"}, allow: []string{pdata}, why: "import the Collector beyond pdata"},
	{pkg: "internal/traceql", forbid: []string{"internal/tracestore", "internal/bucket", "github.com/parquet-go"}, why: "know the storage format"},
	{pkg: "internal/metricstore", forbid: []string{collector, "components", "internal/tracestore", "internal/logstore"}, allow: []string{pdata}, why: "import the Collector beyond pdata"},
	{pkg: "internal/metricdb", forbid: join(stores, []string{collector, "components"}), why: "import the Collector or a store"},
	{pkg: "internal/logstore", forbid: []string{collector, "components", "internal/tracestore", "internal/metricstore"}, allow: []string{pdata}, why: "import the Collector beyond pdata"},
	{pkg: "internal/logql", forbid: []string{"internal/logstore", "internal/bucket", "internal/wal", "github.com/klauspost/compress"}, why: "know the storage format"},
	{pkg: "components/generatorconnector", forbid: join(stores, []string{"components"}), allow: []string{"components/apiserver"}, why: "write into a store"},
	{pkg: "internal/generator", forbid: join(stores, []string{collector, "components"}), allow: []string{pdata}, why: "import the Collector beyond pdata, or a store"},
	{pkg: "internal/wal", forbid: []string{sprout}, why: "decode records or know a store"},
	{pkg: "components/rulerext", forbid: []string{"components", "internal/tracestore"}, allow: []string{"components/apiserver"}, why: "reach a store but through its extension"},
	{pkg: "internal/ruler", forbid: join(stores, []string{collector, "components"}), why: "import a store or the Collector"},
	{pkg: "internal/alerting", forbid: join(stores, []string{collector, "components"}), why: "import a store or the Collector"},
	{pkg: "components/uiext", forbid: storeLogic, why: "call anything but the public Tempo/Prometheus/Loki APIs"},
	{pkg: "web", forbid: []string{sprout}, why: "call anything but the public Tempo/Prometheus/Loki APIs"},
	{pkg: "components/pprofextension", forbid: []string{sprout}, why: "import Sprout's packages"},
	{pkg: "components/bearertokenauthextension", forbid: []string{sprout}, why: "import Sprout's packages"},
	{pkg: "components/resourcedetectionprocessor", forbid: []string{sprout, "github.com/aws", "cloud.google.com", "github.com/Azure", "k8s.io"}, why: "import Sprout's packages, or a cloud SDK"},
	{pkg: "internal/migrate", forbid: []string{collector, "components"}, allow: []string{pdata}, why: "import the Collector"},
	{pkg: "internal/egress", forbid: []string{"github.com/prometheus/alertmanager", sprout}, why: "know Alertmanager"},
	{pkg: "internal/bucket", forbid: []string{sprout}, why: "know what is stored"},
	{pkg: "internal/tenant", forbid: join(storeLogic, []string{"components"}), why: "know a store"},
	{pkg: "internal/querylimit", forbid: join(storeLogic, []string{"github.com/prometheus/prometheus/promql", "github.com/prometheus/prometheus/tsdb", "github.com/prometheus/prometheus/storage"}),
		allow: []string{"github.com/prometheus/prometheus/promql/parser"}, why: "evaluate queries or know a store's data"},
	{pkg: "internal/memguard", forbid: join(storeLogic, []string{collector, "github.com/prometheus/prometheus/prompb", "internal/grpcwire"}), why: "know any API's wire format"},
	{pkg: "internal/grpcwire", forbid: join(storeLogic, []string{"internal/tracestore"}), why: "own message types or know a store"},
	{pkg: "internal/zstdbound", forbid: []string{collector}, why: "know the Collector"},
	{pkg: "internal/refusal", forbid: join(storeLogic, []string{"internal/querylimit", "internal/memguard", "internal/tenant", "components"}), why: "decide when to refuse"},
	{pkg: "internal/demo", forbid: []string{sprout, collector}, why: "import Sprout's packages or the Collector"},
	{pkg: "internal/peerconfig", forbid: []string{"os/exec", sprout}, why: "start processes"},
	{pkg: "tests/e2e", tests: true, forbid: join(storeLogic, []string{"components", "cmd"}), allow: []string{"internal/tracestore/tempopb"}, why: "import a store or a component"},
	{pkg: "tests/diff", tests: true, forbid: join(storeLogic, []string{"components", "cmd"}), why: "import a store or a component"},
}

// testOnly are packages no package may import outside its tests.
var testOnly = []string{"internal/testutil", "internal/configcheck", "internal/archtest"}

// notInBinary are packages the binary must not link.
var notInBinary = []string{"tools", "tests", "internal/testutil", "internal/configcheck", "internal/peerconfig", "internal/archtest"}

// layers: a package under the key must not import anything under the values (no import runs back up), but for
// layerExempt.
var layers = map[string][]string{
	"internal":   {"components", "cmd", "tools", "tests"},
	"components": {"cmd", "tools", "tests"},
	"tools":      {"cmd", "tests"},
}

// layerExempt: internal/distribution is the list of the binary's factories, ours among them; it sits between
// cmd and components (cmd → distribution → components → stores).
var layerExempt = map[string]bool{"internal/distribution": true}

type pkg struct {
	ImportPath                         string
	Imports, TestImports, XTestImports []string
	Deps                               []string
}

// rel is path relative to the module, or path itself outside it.
func rel(path string) string {
	if path == module {
		return ""
	}
	return strings.TrimPrefix(path, module+"/")
}

// topDirs are the module's top-level directories: a prefix that starts with one is module-relative.
var topDirs = []string{"cmd", "components", "examples", "internal", "tests", "tools", "web"}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	if slices.Contains(topDirs, strings.SplitN(prefix, "/", 2)[0]) {
		prefix = module + "/" + prefix
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// listPackages runs go list over the module.
func listPackages(t *testing.T, dir string) map[string]pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is not on PATH: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports,Deps", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs[rel(p.ImportPath)] = p
	}
	return pkgs
}

// TestImportRules fails when a package imports what its row of docs/architecture.md says it must not.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t, root(t))
	for _, r := range rules {
		p, ok := pkgs[r.pkg]
		if !ok {
			t.Errorf("%s: rule for a package that does not exist", r.pkg)
			continue
		}
		imports := p.Imports
		if r.tests {
			imports = join(imports, p.TestImports, p.XTestImports)
		}
		for _, imp := range imports {
			if !slices.ContainsFunc(r.forbid, func(f string) bool { return under(imp, f) }) ||
				slices.ContainsFunc(r.allow, func(a string) bool { return under(imp, a) }) {
				continue
			}
			t.Errorf("%s imports %s, but must not %s (docs/architecture.md)", r.pkg, imp, r.why)
		}
	}
	for name, p := range pkgs {
		for _, imp := range p.Imports {
			for _, only := range testOnly {
				if under(imp, only) && !under(module+"/"+name, only) {
					t.Errorf("%s imports %s outside its tests; %s is for tests only", name, imp, only)
				}
			}
			for layer, above := range layers {
				if !under(module+"/"+name, layer) || layerExempt[name] {
					continue
				}
				for _, a := range above {
					if under(imp, a) {
						t.Errorf("%s imports %s: a package under %s/ must not import anything under %s/", name, imp, layer, a)
					}
				}
			}
		}
	}
	bin, ok := pkgs["cmd/sprout"]
	if !ok {
		t.Fatal("cmd/sprout not listed")
	}
	for _, dep := range bin.Deps {
		for _, n := range notInBinary {
			if under(dep, n) {
				t.Errorf("the binary links %s; nothing under %s may be linked into it", dep, n)
			}
		}
	}
}

// TestRulesSeeEveryImport checks the checker: under() and a forbidden prefix catch an import they must.
func TestRulesSeeEveryImport(t *testing.T) {
	for _, c := range []struct {
		path, prefix string
		want         bool
	}{
		{module + "/internal/tracestore", "internal/tracestore", true},
		{module + "/internal/tracestore/tempopb", "internal/tracestore", true},
		{module + "/internal/tracestorex", "internal/tracestore", false},
		{"go.opentelemetry.io/collector/pdata/ptrace", pdata, true},
		{"go.opentelemetry.io/collector/component", collector, true},
		{"go.opentelemetry.io/collectorx", collector, false},
		{"os/exec", "os/exec", true},
		{"os", "os/exec", false},
	} {
		if got := under(c.path, c.prefix); got != c.want {
			t.Errorf("under(%q, %q) = %v, want %v", c.path, c.prefix, got, c.want)
		}
	}
}

// docRow is a row of the Packages table of docs/architecture.md.
type docRow struct {
	pkgs          []string
	owns, mustNot string
}

var backticked = regexp.MustCompile("`([^`]+)`")

func packagesTable(t *testing.T, dir string) []docRow {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []docRow
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Packages"
			continue
		case !in || !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "| package") || strings.HasPrefix(line, "|---"):
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 3 {
			t.Errorf("docs/architecture.md: row with %d cells, want 3 (package | owns | must not): %s", len(cells), line)
			continue
		}
		var row docRow
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			row.pkgs = append(row.pkgs, strings.TrimSuffix(m[1], "/"))
		}
		row.owns, row.mustNot = strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("docs/architecture.md has no Packages table")
	}
	return rows
}

// TestArchitectureMap: every package of the module has a row in docs/architecture.md (its own or its parent's),
// every row says what it owns and what it must not do, and every rule above belongs to a row.
func TestArchitectureMap(t *testing.T) {
	dir := root(t)
	rows := packagesTable(t, dir)
	documented := map[string]docRow{}
	for _, r := range rows {
		if len(r.pkgs) == 0 {
			t.Errorf("docs/architecture.md: a row names no package")
		}
		if r.owns == "" || r.mustNot == "" {
			t.Errorf("docs/architecture.md: the row of %s leaves %q empty", strings.Join(r.pkgs, ", "),
				map[bool]string{true: "owns", false: "must not"}[r.owns == ""])
		}
		for _, p := range r.pkgs {
			documented[p] = r
		}
	}
	for name := range listPackages(t, dir) {
		if name == "" {
			continue
		}
		found := false
		for p := name; p != "."; p = filepath.Dir(p) {
			if _, ok := documented[p]; ok {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("package %s has no row in docs/architecture.md", name)
		}
	}
	for _, r := range rules {
		row, ok := documented[r.pkg]
		switch {
		case !ok:
			t.Errorf("rule for %s, which has no row of its own in docs/architecture.md", r.pkg)
		case !strings.Contains(row.mustNot, r.why):
			t.Errorf("docs/architecture.md: the row of %s does not say it must not %q, which TestImportRules checks", r.pkg, r.why)
		}
	}
}

// machinePaths are directories of one developer's machine, which docs must not name.
var machinePaths = []string{"/work/", "/tmp/", "/home/", "/root/", "/Users/"}

// TestDocsNameNoMachinePaths: docs/ says $PEERS, $PWD or /path/to, never where things lay on one machine.
func TestDocsNameNoMachinePaths(t *testing.T) {
	dir := filepath.Join(root(t), "docs")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".md", ".json", ".svg", ".txt", ".yaml", ".yml", ".csv":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range machinePaths {
				if strings.Contains(line, m) {
					name, _ := filepath.Rel(dir, path)
					t.Errorf("docs/%s:%d names %s: %s", name, i+1, m, strings.TrimSpace(line))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
