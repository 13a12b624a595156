package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sprout-otel/sprout/examples/rules"
	"github.com/sprout-otel/sprout/internal/distribution"
)

// TestAllInOneRulePath: plain `sprout` (the all-in-one config, run from a directory without ./rules) starts
// without rule files and without a warning about them; SPROUT_RULES loads the rules it names; a SPROUT_RULES
// that names a missing directory is a configuration mistake and is still reported.
func TestAllInOneRulePath(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the all-in-one Collector")
	}
	cases := []struct {
		name       string
		rules      func(t *testing.T) string // the SPROUT_RULES value; "" leaves it unset
		wantWarn   bool
		wantGroups bool
	}{
		{name: "unset: no rule files, no warning"},
		{name: "the example rules", rules: func(t *testing.T) string {
			dir := t.TempDir()
			if _, err := rules.WriteTo(dir); err != nil {
				t.Fatal(err)
			}
			return dir
		}, wantGroups: true},
		{name: "a missing directory", rules: func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, wantWarn: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The old default was ./rules relative to the working directory: run where there is none.
			t.Chdir(t.TempDir())
			t.Setenv("SPROUT_RULES", "")
			if tc.rules != nil {
				t.Setenv("SPROUT_RULES", tc.rules(t))
			} else {
				os.Unsetenv("SPROUT_RULES")
			}
			_, api, _ := roleEnv(t)
			core, logs := observer.New(zapcore.WarnLevel)
			tee := zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, core) })
			// The ruler reads its rule files in Start, before the Collector (and so /ready) is up.
			startCollector(t, distribution.DefaultConfigURI, api+"/ready", tee)
			var warned []string
			for _, e := range logs.All() {
				if strings.Contains(e.Message, "rule_path") {
					warned = append(warned, e.Message)
				}
			}
			if got := len(warned) > 0; got != tc.wantWarn {
				t.Errorf("rule_path warnings %q, want a warning: %v", warned, tc.wantWarn)
			}
			var body struct {
				Data struct {
					Groups []struct{ Name string } `json:"groups"`
				} `json:"data"`
			}
			if err := getJSON(api, "/api/v1/rules", &body); err != nil {
				t.Fatal(err)
			}
			if got := len(body.Data.Groups) > 0; got != tc.wantGroups {
				t.Errorf("%d rule groups loaded, want some: %v", len(body.Data.Groups), tc.wantGroups)
			}
		})
	}
}
