package alerting

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/config"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"

	"github.com/sprout-otel/sprout/internal/egress"
)

// CheckReceivers refuses a tenant configuration whose receivers point at an address the policy blocks: every
// URL of every receiver (webhook, Slack, PagerDuty, …, their http_config proxy and OAuth2 token URLs) whose host
// is an IP literal or localhost, and e-mail smarthosts (resolved here, since the e-mail integration dials
// without the policy). Host names of HTTP receivers are checked again at every dial, on what they resolve to.
func CheckReceivers(ctx context.Context, conf *config.Config, p *egress.Policy) error {
	if !p.Enabled() {
		return nil
	}
	for _, rcv := range conf.Receivers {
		var found []target
		walkTargets(reflect.ValueOf(&rcv), "", false, &found, 0)
		for _, t := range found {
			err := p.CheckHost(t.host)
			if err == nil && t.resolve {
				err = checkResolved(ctx, p, t.host)
			}
			if err != nil {
				return fmt.Errorf("receiver %q: %s: %s: %w", rcv.Name, t.field, t.shown, err)
			}
		}
		for i, c := range rcv.SNSConfigs {
			if c.UseAWSHTTPClient {
				return fmt.Errorf("receiver %q: sns_configs[%d].use_aws_http_client: not allowed in a tenant configuration while the receivers firewall is on (the AWS SDK's own client dials without it)", rcv.Name, i)
			}
		}
	}
	return nil
}

// checkResolved resolves host and refuses it if any address is blocked; a name that does not resolve now
// passes (it cannot be dialled either).
func checkResolved(ctx context.Context, p *egress.Policy, host string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := lookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return err
		}
	}
	return nil
}

// lookupNetIP resolves e-mail smarthosts; tests replace it.
var lookupNetIP = net.DefaultResolver.LookupNetIP

// target is a host a receiver would connect to.
type target struct {
	field   string // e.g. webhook_configs[0].url
	shown   string // the URL or host:port, without secrets
	host    string
	resolve bool // checked on its resolved addresses at upload (not dialled through the policy later)
}

var (
	urlType       = reflect.TypeOf(url.URL{})
	secretURLType = reflect.TypeOf(amcommoncfg.SecretURL{})
	hostPortType  = reflect.TypeOf(config.HostPort{})
)

// walkTargets collects the URLs and host:port pairs in v: *url.URL values (inside Alertmanager's URL and
// SecretURL and the common library's URL types), e-mail smarthosts, and string fields whose YAML name ends in
// "url" (SNS api_url, OAuth2 token_url).
func walkTargets(v reflect.Value, path string, secret bool, out *[]target, depth int) {
	if depth > 16 || !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkTargets(v.Elem(), path, secret, out, depth+1)
		}
		return
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walkTargets(v.Index(i), fmt.Sprintf("%s[%d]", path, i), secret, out, depth+1)
		}
		return
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			walkTargets(iter.Value(), fmt.Sprintf("%s.%v", path, iter.Key()), secret, out, depth+1)
		}
		return
	case reflect.Struct:
	default:
		return
	}
	switch v.Type() {
	case urlType:
		u := v.Interface().(url.URL)
		*out = append(*out, target{field: path, shown: showURL(&u, secret), host: u.Hostname()})
		return
	case hostPortType:
		hp := v.Interface().(config.HostPort)
		if hp.Host != "" {
			*out = append(*out, target{field: path, shown: net.JoinHostPort(hp.Host, hp.Port), host: hp.Host, resolve: true})
		}
		return
	case secretURLType:
		secret = true
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := yamlName(f)
		p := path
		if !f.Anonymous && name != "" {
			p = strings.TrimPrefix(path+"."+name, ".")
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.String && strings.HasSuffix(name, "url") && fv.String() != "" {
			if u, err := url.Parse(fv.String()); err == nil && u.Host != "" {
				*out = append(*out, target{field: p, shown: showURL(u, secret), host: u.Hostname()})
			}
			continue
		}
		walkTargets(fv, p, secret, out, depth+1)
	}
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if name, _, _ := strings.Cut(tag, ","); name != "" && name != "-" {
		return name
	}
	return strings.ToLower(f.Name)
}

// showURL prints a URL for an error message: whole, or scheme and host only for secret URLs (a Slack or Discord
// webhook URL is its own credential).
func showURL(u *url.URL, secret bool) string {
	if secret {
		return u.Scheme + "://" + u.Host + "/<secret>"
	}
	c := *u
	c.User = nil
	c.RawQuery = ""
	return c.String()
}
