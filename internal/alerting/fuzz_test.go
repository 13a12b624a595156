package alerting

import (
	"bytes"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzUserConfig feeds the config API's decoder and validator: no body makes them panic, and what they accept
// is an Alertmanager configuration that reads no local files.
func FuzzUserConfig(f *testing.F) {
	for _, s := range []string{
		"alertmanager_config: |\n  route: {receiver: x}\n  receivers: [{name: x}]\n",
		"alertmanager_config: |\n  route: {receiver: x}\n  receivers:\n    - name: x\n      webhook_configs: [{url: 'http://a/b'}]\ntemplate_files:\n  a.tmpl: '{{ define \"a\" }}x{{ end }}'\n",
		"alertmanager_config: |\n  route: {receiver: x}\n  receivers:\n    - name: x\n      webhook_configs: [{url_file: /etc/passwd}]\n",
		"template_files:\n  ../a: ''\n",
		"alertmanager_config: [",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var uc UserConfig
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if dec.Decode(&uc) != nil {
			return
		}
		conf, err := ValidateUserConfig(uc)
		if err != nil {
			return
		}
		if conf == nil || conf.Route == nil {
			t.Fatal("accepted a configuration without a route")
		}
		var doc yaml.Node
		_ = yaml.Unmarshal([]byte(uc.AlertmanagerConfig), &doc)
		if k, _ := fileReference(&doc); k != "" {
			t.Fatalf("accepted a configuration reading a file: %s", k)
		}
	})
}
