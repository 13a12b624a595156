package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// badTenantIDs are ids every door refuses with multi-tenancy on (and ignores without it).
var badTenantIDs = []string{".hidden", "...", "../../escape3", "a/b", strings.Repeat("x", 151), "tën"}

// TestHiddenTenantRuleGroupRestart: a rule group for tenant ".hidden" is refused with 400; one an earlier release
// stored anyway (the object is put in the rule bucket by hand) no longer keeps Sprout from starting: the start
// skips it, counts it, and every other tenant's rules run.
func TestHiddenTenantRuleGroupRestart(t *testing.T) {
	env, api := defaultEnv(t)
	data := envValue(env, "SPROUT_DATA")
	p := startSprout(t, env, multitenantArgs...)
	p.waitHTTP(api+"/ready", 60*time.Second)
	group := []byte("name: g\ninterval: 1s\nrules:\n  - record: r:vector\n    expr: vector(1)\n")
	yaml := map[string]string{"Content-Type": "application/yaml"}
	for _, id := range []string{".hidden", "..."} {
		c := &client{tenant: id}
		if code, body := c.post(api+"/api/v1/rules/ns", "application/yaml", group, yaml); code != 400 {
			t.Errorf("rule group as %q: %d %s, want 400", id, code, firstLine(body))
		}
	}
	good := &client{tenant: "team-a"}
	if code, body := good.post(api+"/api/v1/rules/ns", "application/yaml", group, yaml); code != 202 {
		t.Fatalf("rule group as team-a: %d %s", code, firstLine(body))
	}
	if err := p.stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	// What the earlier release stored for ".hidden" and "...".
	for _, id := range []string{".hidden", "..."} {
		obj := filepath.Join(data, "ruler", "bucket", "rules", id, "ns", "g")
		if err := os.MkdirAll(filepath.Dir(obj), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(obj, group, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for start := 1; start <= 2; start++ {
		p = startSprout(t, env, multitenantArgs...)
		p.waitHTTP(api+"/ready", 60*time.Second)
		if err := poll(30*time.Second, func() error {
			code, body := good.get(api + "/api/v1/query?query=r:vector")
			if code != 200 || !strings.Contains(body, `"r:vector"`) {
				return fmt.Errorf("%d %s", code, firstLine(body))
			}
			return nil
		}); err != nil {
			t.Errorf("start %d: team-a's rule does not run: %v", start, err)
		}
		code, body := (&client{}).get(api + "/metrics")
		if code != 200 || !strings.Contains(body, `sprout_ruler_groups_load_failures_total{tenant=".hidden"}`) {
			t.Errorf("start %d: the skipped tenant is not counted: %d %s", start, code, grepLines(body, "sprout_ruler_groups_load_failures_total"))
		}
		if err := p.stop(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOneTenantModeIgnoresOrgID: with multi-tenancy off, X-Scope-OrgID ("ghost", or malformed ids) on OTLP and
// on the HTTP push APIs is ignored: everything is accepted as the one tenant, readable through the APIs, and no
// tenant directory is made for it.
func TestOneTenantModeIgnoresOrgID(t *testing.T) {
	env, api := defaultEnv(t)
	data := envValue(env, "SPROUT_DATA")
	p := startSprout(t, env)
	p.waitHTTP(api+"/ready", 60*time.Second)
	for _, id := range append([]string{"ghost"}, badTenantIDs...) {
		c := &client{tenant: id}
		for what, o := range otlpExportAll(t, c, env, "ghostly", 0) {
			if grpcUnsendable(what, id) {
				continue
			}
			if o.code != "OK" && o.code != "200" {
				t.Errorf("OTLP %s as %q: %s, want accepted", what, id, o)
			}
		}
		if code, body := c.pushLine(api, "ghostjob", "a ghost line"); code/100 != 2 {
			t.Errorf("loki push as %q: %d %s", id, code, firstLine(body))
		}
		if code, body := c.remoteWrite(api, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "ghost_metric"}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}); code/100 != 2 {
			t.Errorf("remote write as %q: %d %s", id, code, firstLine(body))
		}
	}
	anon := &client{}
	if err := poll(30*time.Second, func() error {
		code, body := anon.get(api + "/loki/api/v1/query_range?query=" + url.QueryEscape(`{job="ghostjob"}`) + "&limit=100")
		if code != 200 || !strings.Contains(body, "a ghost line") {
			return fmt.Errorf("%d %s", code, firstLine(body))
		}
		code, body = anon.get(api + "/api/v1/query?query=ghost_metric")
		if code != 200 || !strings.Contains(body, "ghost_metric") {
			return fmt.Errorf("%d %s", code, firstLine(body))
		}
		return nil
	}); err != nil {
		t.Errorf("the one tenant does not see what was sent with X-Scope-OrgID: %v", err)
	}
	for _, dir := range []string{"traces", "traces/tenants", "metrics"} {
		ents, _ := os.ReadDir(filepath.Join(data, dir))
		for _, e := range ents {
			if e.Name() == "ghost" || strings.Contains(e.Name(), "escape") || strings.HasPrefix(e.Name(), "xxxx") {
				t.Errorf("tenant directory %s/%s made from a header", dir, e.Name())
			}
		}
	}
}

// TestBadTenantIDsAnswer400: with multi-tenancy on, a malformed X-Scope-OrgID is 400 on every HTTP API and OTLP
// HTTP, InvalidArgument on OTLP gRPC: never 500 / Internal, which clients retry for ever.
func TestBadTenantIDsAnswer400(t *testing.T) {
	env, api := defaultEnv(t)
	p := startSprout(t, env, multitenantArgs...)
	p.waitHTTP(api+"/ready", 60*time.Second)
	for _, id := range badTenantIDs {
		c := &client{tenant: id}
		for what, o := range otlpExportAll(t, c, env, "bad", 0) {
			if grpcUnsendable(what, id) {
				continue
			}
			want := "InvalidArgument"
			if strings.HasPrefix(what, "http") {
				want = "400"
			}
			if o.code != want {
				t.Errorf("OTLP %s as %q: %s, want %s", what, id, o, want)
			}
		}
		for _, path := range []string{"/api/v1/query?query=up", "/api/search?q=%7B%7D", "/loki/api/v1/labels", "/alertmanager/api/v2/silences", "/api/v1/rules", "/api/v1/alerts"} {
			if code, body := c.get(api + path); code != 400 {
				t.Errorf("GET %s as %q: %d %s, want 400", path, id, code, firstLine(body))
			}
		}
		if code, body := c.pushLine(api, "bad", "line"); code != 400 {
			t.Errorf("loki push as %q: %d %s, want 400", id, code, firstLine(body))
		}
		if code, body := c.remoteWrite(api, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "bad"}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}); code != 400 {
			t.Errorf("remote write as %q: %d %s, want 400", id, code, firstLine(body))
		}
	}
}

// TestMaxTenants: a new tenant beyond max_tenants is refused on every ingest path with a message naming the
// limit (OTLP gRPC ResourceExhausted without retry info, HTTP 400); tenants already known go on.
func TestMaxTenants(t *testing.T) {
	env, api := defaultEnv(t)
	p := startSprout(t, env, append([]string{"--set=extensions.sprout_api.max_tenants=2"}, multitenantArgs...)...)
	p.waitHTTP(api+"/ready", 60*time.Second)
	for _, id := range []string{"team-a", "team-b"} {
		for what, o := range otlpExportAll(t, &client{tenant: id}, env, "fits", 0) {
			if o.code != "OK" && o.code != "200" {
				t.Fatalf("OTLP %s as %s: %s", what, id, o)
			}
		}
	}
	c := &client{tenant: "team-c"}
	for what, o := range otlpExportAll(t, c, env, "over", 0) {
		// OTLP HTTP maps ResourceExhausted to 429 whatever the server means; gRPC clients do not retry it
		// without a RetryInfo.
		if (o.code != "ResourceExhausted" && o.code != "429") || !strings.Contains(o.msg, "max_tenants") || o.retry != "" {
			t.Errorf("OTLP %s as a third tenant: %s, want ResourceExhausted naming max_tenants, no retry hint", what, o)
		}
	}
	if code, body := c.pushLine(api, "over", "line"); code != 400 || !strings.Contains(body, "max_tenants") {
		t.Errorf("loki push as a third tenant: %d %s", code, firstLine(body))
	}
	if code, body := c.get(api + "/api/v1/query?query=up"); code != 400 || !strings.Contains(body, "max_tenants") {
		t.Errorf("query as a third tenant: %d %s", code, firstLine(body))
	}
	if code, body := (&client{tenant: "team-a"}).pushLine(api, "fits", "line"); code/100 != 2 {
		t.Errorf("loki push as a known tenant: %d %s", code, firstLine(body))
	}
}

// TestStateNamedTenantsRestart: tenants named "silences" and "nflog" keep their silences over a restart, and
// the default tenant's Alertmanager keeps answering.
func TestStateNamedTenantsRestart(t *testing.T) {
	env, api := defaultEnv(t)
	p := startSprout(t, env, multitenantArgs...)
	p.waitHTTP(api+"/ready", 60*time.Second)
	ids := []string{"silences", "nflog", "blocks", "tenants"}
	for _, id := range ids {
		if code, body := (&client{tenant: id}).post(api+"/alertmanager/api/v2/silences", "application/json", upgradeSilence("silence of "+id), nil); code != 200 {
			t.Fatalf("silence of %s: %d %s", id, code, body)
		}
	}
	for _, id := range ids {
		for what, o := range otlpExportAll(t, &client{tenant: id}, env, "named-"+id, 0) {
			if o.code != "OK" && o.code != "200" {
				t.Fatalf("OTLP %s as %s: %s", what, id, o)
			}
		}
	}
	if err := p.stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	p = startSprout(t, env, multitenantArgs...)
	p.waitHTTP(api+"/ready", 60*time.Second)
	for _, id := range append(ids, "single-tenant") {
		code, body := (&client{tenant: id}).get(api + "/alertmanager/api/v2/silences")
		if code != 200 {
			t.Errorf("silences of %s after restart: %d %s", id, code, firstLine(body))
			continue
		}
		for _, other := range ids {
			if has := strings.Contains(body, "silence of "+other+`"`); has != (other == id) {
				t.Errorf("silences of %s after restart: %s", id, firstLine(body))
			}
		}
	}
	if strings.Contains(p.logs.String(), "duplicate metrics collector registration") {
		t.Error("an Alertmanager registered its metrics twice")
	}
}

// grpcUnsendable: gRPC clients refuse to send a metadata value that is not printable ASCII ("tën"), so such
// an id never reaches the server over OTLP gRPC.
func grpcUnsendable(what, id string) bool {
	if !strings.HasPrefix(what, "grpc") {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r > 0x7e {
			return true
		}
	}
	return false
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestNoisyTenantDoesNotStarveGenerator: one tenant sending 40k span names fills its own series limit
// (max_active_series_per_tenant), not the generator's whole max_active_series: a quiet tenant that comes
// afterwards still gets span metrics.
func TestNoisyTenantDoesNotStarveGenerator(t *testing.T) {
	env, api := defaultEnv(t)
	p := startSprout(t, env, multitenantArgs...)
	p.waitHTTP(api+"/ready", 60*time.Second)
	otlp := "http://" + envValue(env, "SPROUT_OTLP_HTTP_ENDPOINT") + "/v1/traces"
	send := func(c *client, svc string, from, n int) {
		t.Helper()
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		now := time.Now()
		for i := from; i < from+n; i++ {
			sp := ss.AppendEmpty()
			sp.SetTraceID(pcommon.TraceID{0xee, byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
			sp.SetSpanID(pcommon.SpanID{1, byte(i >> 16), byte(i >> 8), byte(i), 7: 1})
			sp.SetName(fmt.Sprintf("op-%d", i))
			sp.SetKind(ptrace.SpanKindServer)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
		}
		body, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		c.post(otlp, "application/x-protobuf", body, nil) // the trace store may refuse some over its limits; the generator has seen them
	}
	noisy := &client{tenant: "noisy"}
	for b := 0; b < 40; b++ {
		send(noisy, "loud", b*1000, 1000)
	}
	quiet := &client{tenant: "quiet"}
	send(quiet, "calm", 0, 1)
	if err := poll(60*time.Second, func() error {
		code, body := quiet.get(api + "/api/v1/query?query=" + url.QueryEscape(`traces_spanmetrics_calls_total{service="calm"}`))
		if code != 200 || !strings.Contains(body, "calm") {
			return fmt.Errorf("%d %s", code, firstLine(body))
		}
		return nil
	}); err != nil {
		t.Errorf("quiet tenant has no span metrics: %v", err)
	}
	_, body := (&client{}).get(api + "/metrics")
	t.Logf("generator after the noisy tenant: %s", grepLines(body, "sprout_generator_active_series"))
}

// metricsAuthOverlay ties users to tenants (alice, bob) with basic auth on the API port; ops is an admin.
const metricsAuthOverlay = `extensions:
  basicauth/server:
    htpasswd:
      inline: |
        alice:pa
        bob:pb
        ops:po
  sprout_api:
    multitenancy_enabled: true
    tenant_auth:
      user_is_tenant: true
      admins: [ops]
    auth:
      authenticator: basicauth/server
service:
  extensions: [health_check, basicauth/server, sprout_api, sprout_traces, sprout_metrics, sprout_logs, sprout_ruler, sprout_ui]
`

// TestMetricsPerTenantOnlyForAdmins: with credentials tied to tenants, /metrics shows a user only its own
// tenant's series; an admin sees every tenant's.
func TestMetricsPerTenantOnlyForAdmins(t *testing.T) {
	env, api := defaultEnv(t)
	overlay := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(overlay, []byte(metricsAuthOverlay), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startSprout(t, env, "--config", "sprout:all-in-one", "--config", overlay)
	alice := &client{tenant: "alice", user: "alice", pass: "pa"}
	bob := &client{tenant: "bob", user: "bob", pass: "pb"}
	ops := &client{user: "ops", pass: "po"}
	if err := poll(60*time.Second, func() error {
		if ok, err := p.exited(); ok {
			t.Fatalf("sprout exited: %v", err)
		}
		if code, body := alice.get(api + "/ready"); code != 200 {
			return fmt.Errorf("ready: %d %s", code, firstLine(body))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, bob} {
		if code, body := c.pushLine(api, "job-"+c.tenant, "a line"); code/100 != 2 {
			t.Fatalf("loki push as %s: %d %s", c.tenant, code, firstLine(body))
		}
	}
	for _, tc := range []struct {
		c    *client
		see  []string
		hide []string
	}{
		{alice, []string{`tenant="alice"`}, []string{`tenant="bob"`}},
		{bob, []string{`tenant="bob"`}, []string{`tenant="alice"`}},
		{ops, []string{`tenant="alice"`, `tenant="bob"`}, nil},
	} {
		code, body := tc.c.get(api + "/metrics")
		if code != 200 || !strings.Contains(body, "go_goroutines") {
			t.Errorf("/metrics as %s: %d %s", tc.c.user, code, firstLine(body))
			continue
		}
		for _, s := range tc.see {
			if !strings.Contains(body, s) {
				t.Errorf("/metrics as %s: no series with %s", tc.c.user, s)
			}
		}
		for _, s := range tc.hide {
			if n := strings.Count(body, s); n > 0 {
				t.Errorf("/metrics as %s: %d series with %s", tc.c.user, n, s)
			}
		}
	}
}
