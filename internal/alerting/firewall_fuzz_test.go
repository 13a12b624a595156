package alerting

import (
	"context"
	"net/netip"
	"net/url"
	"reflect"
	"testing"

	"github.com/prometheus/alertmanager/config"

	"github.com/sprout-otel/sprout/internal/egress"
)

// FuzzCheckReceivers: no Alertmanager configuration makes the receiver walk panic, and one it accepts has no
// webhook whose URL names a blocked address literally.
func FuzzCheckReceivers(f *testing.F) {
	for _, s := range []string{
		"route: {receiver: r}\nreceivers:\n  - name: r\n    webhook_configs: [{url: 'http://127.0.0.1:1/'}]\n",
		"route: {receiver: r}\nreceivers:\n  - name: r\n    webhook_configs: [{url: 'https://hooks.example.com/', http_config: {proxy_url: 'http://10.0.0.1:3128'}}]\n",
		"route: {receiver: r}\nreceivers:\n  - name: r\n    slack_configs: [{api_url: 'http://[::1]/x', channel: '#a'}]\n",
		"route: {receiver: r}\nreceivers:\n  - name: r\n    email_configs: [{to: a@b.c, from: b@c.d, smarthost: 'mail.example.com:25'}]\n",
		"route: {receiver: r}\nreceivers:\n  - name: r\n    sns_configs: [{topic_arn: 'arn:aws:sns:us-east-1:1:t', api_url: 'http://169.254.169.254/', sigv4: {region: us-east-1}}]\n",
	} {
		f.Add(s)
	}
	// No DNS while fuzzing: every name resolves to a public documentation address.
	orig := lookupNetIP
	f.Cleanup(func() { lookupNetIP = orig })
	lookupNetIP = func(context.Context, string, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("203.0.113.1")}, nil
	}
	p := &egress.Policy{BlockPrivateAddresses: true}
	f.Fuzz(func(t *testing.T, s string) {
		conf, err := config.Load(s)
		if err != nil {
			return
		}
		if CheckReceivers(context.Background(), conf, p) != nil {
			return
		}
		for _, rcv := range conf.Receivers {
			for _, w := range rcv.WebhookConfigs {
				u, err := url.Parse(string(w.URL))
				if err != nil {
					continue // templated: checked when dialled
				}
				if a, err := netip.ParseAddr(u.Hostname()); err == nil && p.CheckAddr(a) != nil {
					t.Fatalf("accepted webhook %s", u)
				}
			}
		}
		// The walk also runs on whole receiver lists without panicking.
		var found []target
		walkTargets(reflect.ValueOf(conf), "", false, &found, 0)
	})
}
