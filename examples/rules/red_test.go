// Package rules holds example rule files and checks them with Prometheus' own promtool.
package rules

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sprout-otel/sprout/internal/alerting"
	"github.com/sprout-otel/sprout/internal/ruler"
	"github.com/sprout-otel/sprout/internal/testutil"
)

// amConfig is the example Alertmanager configuration; it lives apart from the rule files, because the ruler
// loads every YAML file of its rule_path as rules.
const amConfig = "../alertmanager/alertmanager.yaml"

func TestPromtoolCheckRules(t *testing.T) {
	promtool := testutil.RequireBinary(t, "promtool")
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no rule files")
	}
	for _, f := range files {
		out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check rules %s: %v\n%s", f, err, out)
		}
	}
}

func TestSproutLoadsExamples(t *testing.T) {
	files, _ := filepath.Glob("red.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rgs, errs := ruler.ParseRuleFile(f, b, nil)
		if len(errs) > 0 || len(rgs.Groups) != 2 {
			t.Fatalf("%s: groups %d, errors %v", f, len(rgs.Groups), errs)
		}
	}
}

func TestSproutLoadsLogQLExamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("logql", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no LogQL rule files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rgs, errs := ruler.ParseRuleFileLang(ruler.LogQL, f, b, nil)
		if len(errs) > 0 || len(rgs.Groups) == 0 {
			t.Fatalf("%s: groups %d, errors %v", f, len(rgs.Groups), errs)
		}
	}
}

func TestAmtoolCheckConfig(t *testing.T) {
	amtool := testutil.RequireBinary(t, "amtool")
	out, err := exec.Command(amtool, "check-config", amConfig).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
}

func TestEmbeddedAlertmanagerLoadsExample(t *testing.T) {
	if _, err := alerting.LoadConfig(alerting.Options{ConfigFile: amConfig}); err != nil {
		t.Fatal(err)
	}
}
