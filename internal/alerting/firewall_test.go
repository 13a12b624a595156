package alerting_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/alerting"
	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/egress"
	tu "github.com/sprout-otel/sprout/internal/testutil"
)

var blockPrivate = &egress.Policy{BlockPrivateAddresses: true, Setting: "sprout_ruler alertmanager.receivers_firewall_allow_cidr_networks"}

func TestCheckReceivers(t *testing.T) {
	receiver := func(body string) string {
		return "route: {receiver: r}\nreceivers:\n  - name: r\n" + body
	}
	allow10 := &egress.Policy{BlockPrivateAddresses: true, AllowCIDRNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, tc := range []struct {
		name string
		p    *egress.Policy
		conf string
		want string // part of the refusal; "" = taken
	}{
		{"webhook to loopback", blockPrivate, receiver("    webhook_configs: [{url: 'http://127.0.0.1:19999/internal-only'}]\n"),
			`receiver "r": webhook_configs[0].url: http://127.0.0.1:19999/internal-only: address blocked by the receivers firewall: 127.0.0.1 is a loopback address`},
		{"webhook to the metadata service", blockPrivate, receiver("    webhook_configs: [{url: 'http://169.254.169.254/latest/meta-data/'}]\n"), "link-local"},
		{"webhook to localhost", blockPrivate, receiver("    webhook_configs: [{url: 'http://localhost:9093/'}]\n"), "loopback"},
		{"webhook to IPv6 loopback", blockPrivate, receiver("    webhook_configs: [{url: 'http://[::1]:80/'}]\n"), "loopback"},
		{"webhook to a decimal IP", blockPrivate, receiver("    webhook_configs: [{url: 'http://2130706433/'}]\n"), "loopback"},
		{"second webhook private", blockPrivate, receiver("    webhook_configs: [{url: 'https://hooks.example.com/a'}, {url: 'http://10.1.2.3/'}]\n"), "webhook_configs[1].url"},
		{"slack URL is a secret", blockPrivate, receiver("    slack_configs: [{api_url: 'http://192.168.0.9/services/T000/B000/XXXX', channel: '#a'}]\n"), "http://192.168.0.9/<secret>"},
		{"proxy on loopback", blockPrivate, receiver("    webhook_configs: [{url: 'https://hooks.example.com/', http_config: {proxy_url: 'http://127.0.0.1:3128'}}]\n"), "http_config.proxy_url"},
		{"OAuth2 token URL", blockPrivate, receiver("    webhook_configs: [{url: 'https://hooks.example.com/', http_config: {oauth2: {client_id: a, client_secret: b, token_url: 'http://127.0.0.1/token'}}}]\n"), "oauth2.token_url"},
		{"e-mail smarthost on loopback", blockPrivate, receiver("    email_configs: [{to: a@example.com, from: b@example.com, smarthost: '127.0.0.1:25'}]\n"), "smarthost: 127.0.0.1:25"},
		{"e-mail smarthost named localhost", blockPrivate, receiver("    email_configs: [{to: a@example.com, from: b@example.com, smarthost: 'localhost:25'}]\n"), "loopback"},
		{"SNS through the AWS client", blockPrivate, receiver("    sns_configs: [{topic_arn: 'arn:aws:sns:us-east-1:123456789012:t', use_aws_http_client: true, sigv4: {region: us-east-1}}]\n"), "use_aws_http_client"},
		{"PagerDuty on a private address", blockPrivate, receiver("    pagerduty_configs: [{routing_key: k, url: 'http://10.9.9.9/v2/enqueue'}]\n"), "pagerduty_configs[0].url"},

		{"public webhook", blockPrivate, receiver("    webhook_configs: [{url: 'https://203.0.113.7/hook'}]\n"), ""},
		{"webhook by name", blockPrivate, receiver("    webhook_configs: [{url: 'https://hooks.example.com/hook'}]\n"), ""},
		{"allowed network", allow10, receiver("    webhook_configs: [{url: 'http://10.1.2.3/hook'}]\n"), ""},
		{"no receivers", blockPrivate, receiver(""), ""},
		{"firewall off", &egress.Policy{}, receiver("    webhook_configs: [{url: 'http://127.0.0.1:1/'}]\n"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := config.Load(tc.conf)
			if err != nil {
				t.Fatal(err)
			}
			err = alerting.CheckReceivers(context.Background(), conf, tc.p)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckReceivers = %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "XXXX") {
				t.Errorf("the refusal shows a secret URL: %v", err)
			}
		})
	}
}

// loopbackHook is a real listener on 127.0.0.1 that must receive nothing.
func loopbackHook(t *testing.T) (string, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	return srv.URL, &hits
}

// TestFirewallRefusesTenantWebhookAtUpload: a tenant's configuration with a webhook to a loopback listener is
// refused with 400 naming the URL, and nothing is ever delivered there.
func TestFirewallRefusesTenantWebhookAtUpload(t *testing.T) {
	hookURL, hits := loopbackHook(t)
	dir := t.TempDir()
	bkt, err := bucket.New(context.Background(), bucket.Config{Filesystem: bucket.FilesystemConfig{Dir: filepath.Join(dir, "bucket")}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bkt.Close() })
	mt, err := alerting.NewMultiTenant(alerting.MultiOptions{
		Fallback: alerting.Options{DataDir: filepath.Join(dir, "am")},
		Bucket:   bkt,
		Firewall: blockPrivate,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mt.Stop)
	mux := http.NewServeMux()
	mux.Handle("/alertmanager/api/v2/", http.StripPrefix("/alertmanager", mt.Handler(headerTenant)))
	_, set, _ := mt.ConfigHandlers(headerTenant)
	mux.Handle("POST /api/v1/alerts", set)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{t: t, base: srv.URL}
	if b := e.call("POST", "/api/v1/alerts", "a", webhookConfig(hookURL+"/internal-only"), http.StatusBadRequest); !strings.Contains(b, hookURL+"/internal-only") || !strings.Contains(b, "loopback") || !strings.Contains(b, blockPrivate.Setting) {
		t.Fatalf("400 body %q does not name the URL, the reason and the setting", b)
	}
	// An alert of that tenant goes to its fallback receiver (no integrations): nothing reaches the listener.
	e.call("POST", "/alertmanager/api/v2/alerts", "a", alertBody("Probe"), http.StatusOK)
	if n := hits.Load(); n != 0 {
		t.Fatalf("loopback listener got %d requests", n)
	}
}

// TestFirewallAtDialTime: the operator's configuration is held to the policy too when asked; its webhook to a
// loopback listener is attempted and refused at the dial (the failure counted), and nothing arrives.
func TestFirewallAtDialTime(t *testing.T) {
	hookURL, hits := loopbackHook(t)
	// localhost resolves to loopback: the name is checked on the address it resolves to, when dialled.
	named := strings.Replace(hookURL, "127.0.0.1", "localhost", 1)
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	mt, err := alerting.NewMultiTenant(alerting.MultiOptions{
		Fallback: alerting.Options{DataDir: dir, Registerer: reg, ConfigYAML: fmt.Sprintf(`
route: {receiver: hook, group_wait: 10ms, group_interval: 10ms}
receivers:
  - name: hook
    webhook_configs: [{url: '%s/by-ip'}, {url: '%s/by-name'}]
`, hookURL, named)},
		Firewall:               blockPrivate,
		FirewallOperatorConfig: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mt.Stop)
	srv := httptest.NewServer(http.StripPrefix("/alertmanager", mt.Handler(headerTenant)))
	t.Cleanup(srv.Close)
	e := &env{t: t, base: srv.URL}
	e.call("POST", "/alertmanager/api/v2/alerts", "a", alertBody("Probe"), http.StatusOK)
	tu.Eventually(t, 20*time.Second, func() error {
		failed := 0.0
		mfs, err := reg.Gather()
		if err != nil {
			return err
		}
		for _, mf := range mfs {
			if mf.GetName() == "alertmanager_notifications_failed_total" {
				for _, m := range mf.GetMetric() {
					failed += m.GetCounter().GetValue()
				}
			}
		}
		if failed < 2 {
			return fmt.Errorf("%v failed notifications, want both webhooks failed", failed)
		}
		return nil
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("loopback listener got %d requests", n)
	}

	// Without FirewallOperatorConfig the operator's configuration is trusted and delivered.
	reg2 := prometheus.NewRegistry()
	mt2, err := alerting.NewMultiTenant(alerting.MultiOptions{
		Fallback: alerting.Options{DataDir: t.TempDir(), Registerer: reg2, ConfigYAML: fmt.Sprintf(`
route: {receiver: hook, group_wait: 10ms, group_interval: 10ms}
receivers:
  - name: hook
    webhook_configs: [{url: '%s/trusted'}]
`, hookURL)},
		Firewall: blockPrivate,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mt2.Stop)
	srv2 := httptest.NewServer(http.StripPrefix("/alertmanager", mt2.Handler(headerTenant)))
	t.Cleanup(srv2.Close)
	(&env{t: t, base: srv2.URL}).call("POST", "/alertmanager/api/v2/alerts", "a", alertBody("Trusted"), http.StatusOK)
	tu.Eventually(t, 20*time.Second, func() error {
		if hits.Load() == 0 {
			return fmt.Errorf("the operator's webhook was not delivered")
		}
		return nil
	})
}
