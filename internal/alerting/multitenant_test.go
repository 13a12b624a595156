package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/alerting"
	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/tenant"
	tu "github.com/sprout-otel/sprout/internal/testutil"
)

// hook is a local webhook receiver that keeps the alert names it was sent.
type hook struct {
	mu    sync.Mutex
	names []string
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	_ = json.NewDecoder(r.Body).Decode(&m)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range m.Alerts {
		h.names = append(h.names, a.Labels["alertname"])
	}
}

func (h *hook) got() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.names, ",")
}

type env struct {
	t    *testing.T
	dir  string
	bkt  bucket.Bucket
	mt   *alerting.MultiTenant
	srv  *httptest.Server
	base string
}

func headerTenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, err := tenant.FromRequest(r, true)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return "", false
	}
	return id, true
}

func newEnv(t *testing.T, dir string) *env {
	t.Helper()
	bkt, err := bucket.New(context.Background(), bucket.Config{Filesystem: bucket.FilesystemConfig{Dir: filepath.Join(dir, "bucket")}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	mt, err := alerting.NewMultiTenant(alerting.MultiOptions{
		Fallback: alerting.Options{DataDir: filepath.Join(dir, "am"), ExternalURL: "http://sprout.test/alertmanager"},
		Bucket:   bkt,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/alertmanager/api/v2/", http.StripPrefix("/alertmanager", mt.Handler(headerTenant)))
	get, set, del := mt.ConfigHandlers(headerTenant)
	mux.Handle("GET /api/v1/alerts", get)
	mux.Handle("POST /api/v1/alerts", set)
	mux.Handle("DELETE /api/v1/alerts", del)
	srv := httptest.NewServer(mux)
	e := &env{t: t, dir: dir, bkt: bkt, mt: mt, srv: srv, base: srv.URL}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	e.srv.Close()
	e.mt.Stop()
	_ = e.bkt.Close()
}

func (e *env) call(method, path, tenantID, body string, want int) string {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if tenantID != "" {
		req.Header.Set(tenant.Header, tenantID)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s (tenant %q) = %d %s, want %d", method, path, tenantID, resp.StatusCode, b, want)
	}
	return string(b)
}

func webhookConfig(url string) string {
	return fmt.Sprintf(`alertmanager_config: |
  route:
    receiver: hook
    group_wait: 200ms
    group_interval: 200ms
  receivers:
    - name: hook
      webhook_configs:
        - url: %s
template_files:
  extra.tmpl: '{{ define "sprout.title" }}[{{ .Status }}]{{ end }}'
`, url)
}

func alertBody(name string) string {
	return fmt.Sprintf(`[{"labels":{"alertname":%q},"endsAt":%q}]`, name, time.Now().Add(time.Hour).Format(time.RFC3339))
}

func TestTenantConfigAPI(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.call("GET", "/api/v1/alerts", "a", "", http.StatusNotFound)
	for _, tc := range []struct{ name, body, want string }{
		{"not yaml", "alertmanager_config: [", "invalid alertmanager config"},
		{"unknown field", "alertmanager_conf: x\n", "field alertmanager_conf not found"},
		{"empty", "template_files: {}\n", "alertmanager_config must not be empty"},
		{"bad route", "alertmanager_config: |\n  route: {receiver: nope}\n  receivers: [{name: x}]\n", `undefined receiver "nope"`},
		{"local file", "alertmanager_config: |\n  route: {receiver: x}\n  receivers:\n    - name: x\n      webhook_configs:\n        - url_file: /etc/passwd\n", "line 5: url_file: a tenant configuration may not read files"},
		{"bad template", "alertmanager_config: |\n  route: {receiver: x}\n  receivers: [{name: x}]\ntemplate_files:\n  a.tmpl: '{{ define }}'\n", "template_files: a.tmpl"},
		{"template path", "alertmanager_config: |\n  route: {receiver: x}\n  receivers: [{name: x}]\ntemplate_files:\n  ../x.tmpl: ''\n", "not a plain file name"},
	} {
		if b := e.call("POST", "/api/v1/alerts", "a", tc.body, http.StatusBadRequest); !strings.Contains(b, tc.want) {
			t.Errorf("%s: 400 body %q does not contain %q", tc.name, b, tc.want)
		}
	}
	e.call("POST", "/api/v1/alerts", "a", webhookConfig("http://127.0.0.1:1/a"), http.StatusCreated)
	if b := e.call("GET", "/api/v1/alerts", "a", "", http.StatusOK); !strings.Contains(b, "http://127.0.0.1:1/a") || !strings.Contains(b, "extra.tmpl") {
		t.Fatalf("config of a = %s", b)
	}
	e.call("GET", "/api/v1/alerts", "b", "", http.StatusNotFound)
	// The running Alertmanager of a has its configuration; b runs the fallback.
	// (Webhook URLs are secrets in the status output; the receiver name and template path show.)
	if b := e.call("GET", "/alertmanager/api/v2/status", "a", "", http.StatusOK); !strings.Contains(b, "receiver: hook") || !strings.Contains(b, "/a/templates/extra.tmpl") {
		t.Fatalf("status of a = %s", b)
	}
	if b := e.call("GET", "/alertmanager/api/v2/status", "b", "", http.StatusOK); strings.Contains(b, "receiver: hook") {
		t.Fatalf("status of b shows a's config: %s", b)
	}
	e.call("DELETE", "/api/v1/alerts", "a", "", http.StatusOK)
	e.call("GET", "/api/v1/alerts", "a", "", http.StatusNotFound)
	if b := e.call("GET", "/alertmanager/api/v2/status", "a", "", http.StatusOK); strings.Contains(b, "receiver: hook") {
		t.Fatalf("a still runs its deleted config: %s", b)
	}
	e.call("GET", "/alertmanager/api/v2/alerts", "", "", http.StatusUnauthorized)
}

// Tenant A's alerts and silences are never visible to tenant B, notifications go to each tenant's own
// receivers, and each tenant's state survives a restart.
func TestTenantIsolation(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	hookA, hookB := &hook{}, &hook{}
	srvA, srvB := httptest.NewServer(hookA), httptest.NewServer(hookB)
	defer srvA.Close()
	defer srvB.Close()
	e.call("POST", "/api/v1/alerts", "a", webhookConfig(srvA.URL), http.StatusCreated)
	e.call("POST", "/api/v1/alerts", "b", webhookConfig(srvB.URL), http.StatusCreated)

	e.call("POST", "/alertmanager/api/v2/alerts", "a", alertBody("OnlyA"), http.StatusOK)
	e.call("POST", "/alertmanager/api/v2/alerts", "b", alertBody("OnlyB"), http.StatusOK)
	tu.Eventually(t, 10*time.Second, func() error {
		if hookA.got() != "OnlyA" || hookB.got() != "OnlyB" {
			return fmt.Errorf("webhook a got %q, b got %q", hookA.got(), hookB.got())
		}
		return nil
	})
	if b := e.call("GET", "/alertmanager/api/v2/alerts", "b", "", http.StatusOK); strings.Contains(b, "OnlyA") || !strings.Contains(b, "OnlyB") {
		t.Fatalf("alerts of b = %s", b)
	}
	sil := fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"OnlyA","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":"a only"}`,
		time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
	e.call("POST", "/alertmanager/api/v2/silences", "a", sil, http.StatusOK)
	if b := e.call("GET", "/alertmanager/api/v2/silences", "a", "", http.StatusOK); !strings.Contains(b, "a only") {
		t.Fatalf("silences of a = %s", b)
	}
	if b := e.call("GET", "/alertmanager/api/v2/silences", "b", "", http.StatusOK); b != "[]\n" && b != "[]" {
		t.Fatalf("silences of b = %s", b)
	}

	// Restart: each tenant's silences come back, still only its own.
	e.close()
	e2 := newEnv(t, dir)
	if b := e2.call("GET", "/alertmanager/api/v2/silences", "a", "", http.StatusOK); !strings.Contains(b, "a only") {
		t.Fatalf("silences of a after restart = %s", b)
	}
	if b := e2.call("GET", "/alertmanager/api/v2/silences", "b", "", http.StatusOK); strings.Contains(b, "a only") {
		t.Fatalf("silences of b after restart = %s", b)
	}
	if b := e2.call("GET", "/api/v1/alerts", "b", "", http.StatusOK); !strings.Contains(b, srvB.URL) {
		t.Fatalf("config of b after restart = %s", b)
	}
}

// tenantProxy stands in for the gateway in front of a multi-tenant Alertmanager: it sets X-Scope-OrgID, which
// Debian's amtool 0.25 cannot (its --http.config.file has no http_headers).
func tenantProxy(t *testing.T, target, tenantID string) string {
	u, _ := url.Parse(target)
	p := httputil.NewSingleHostReverseProxy(u)
	dir := p.Director
	p.Director = func(r *http.Request) { dir(r); r.Header.Set(tenant.Header, tenantID) }
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAmtoolSeesOnlyItsTenant(t *testing.T) {
	amtool := tu.RequireBinary(t, "amtool")
	e := newEnv(t, t.TempDir())
	e.call("POST", "/alertmanager/api/v2/alerts", "a", alertBody("AmtoolA"), http.StatusOK)
	e.call("POST", "/alertmanager/api/v2/alerts", "b", alertBody("AmtoolB"), http.StatusOK)
	urlA, urlB := tenantProxy(t, e.base, "a")+"/alertmanager", tenantProxy(t, e.base, "b")+"/alertmanager"
	run := func(amURL string, args ...string) string {
		t.Helper()
		out, err := exec.Command(amtool, append([]string{"--alertmanager.url=" + amURL}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("amtool %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run(urlA, "alert", "query"); !strings.Contains(out, "AmtoolA") || strings.Contains(out, "AmtoolB") {
		t.Fatalf("amtool alert query (a) = %s", out)
	}
	lines := strings.Split(strings.TrimSpace(run(urlA, "silence", "add", "alertname=AmtoolA", "--comment=from amtool", "--author=test", "--duration=1h")), "\n")
	id := strings.TrimSpace(lines[len(lines)-1]) // after a version warning, if any
	if id == "" {
		t.Fatal("amtool silence add printed no id")
	}
	if out := run(urlA, "silence", "query"); !strings.Contains(out, id) {
		t.Fatalf("amtool silence query (a) = %s, want %s", out, id)
	}
	if out := run(urlB, "silence", "query"); strings.Contains(out, id) {
		t.Fatalf("tenant b sees a's silence: %s", out)
	}
	if out := run(urlB, "alert", "query"); strings.Contains(out, "AmtoolA") || !strings.Contains(out, "AmtoolB") {
		t.Fatalf("amtool alert query (b) = %s", out)
	}
}

func silence(comment string) string {
	return fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"X","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":%q}`,
		time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339), comment)
}

// TestTenantsNamedLikeStateFiles: tenants "silences", "nflog" and "tenants" keep their silences over restarts,
// from the layout before <data_dir>/tenants too, and the earliest single Alertmanager's files go to the default
// tenant.
func TestTenantsNamedLikeStateFiles(t *testing.T) {
	dir := t.TempDir()
	ids := []string{"silences", "nflog", "tenants"}
	e := newEnv(t, dir)
	for _, id := range ids {
		e.call("POST", "/alertmanager/api/v2/silences", id, silence("of "+id), http.StatusOK)
	}
	check := func(e *env, when string) {
		t.Helper()
		for _, id := range ids {
			b := e.call("GET", "/alertmanager/api/v2/silences", id, "", http.StatusOK)
			for _, other := range ids {
				if has := strings.Contains(b, `"of `+other+`"`); has != (other == id) {
					t.Errorf("%s: silences of %s = %s", when, id, b)
				}
			}
		}
	}
	check(e, "before restart")
	e.close()
	check(newEnv(t, dir), "after restart")

	// The layout before: <am>/<tenant>/… for tenants "nflog" and "tenants", and the earliest single
	// Alertmanager's <am>/silences file (the default tenant's snapshot).
	am := filepath.Join(dir, "am")
	e3 := newEnv(t, dir)
	e3.call("POST", "/alertmanager/api/v2/silences", tenant.Default, silence("of the one tenant"), http.StatusOK)
	e3.close()
	ids = []string{"nflog", "tenants"}
	for _, id := range ids {
		if err := os.Rename(filepath.Join(am, "tenants", id), filepath.Join(am, id+".old")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(am, "tenants", tenant.Default, "silences"), filepath.Join(am, "silences.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(am, "tenants")); err != nil {
		t.Fatal(err)
	}
	for _, id := range append(ids, "silences") {
		if err := os.Rename(filepath.Join(am, id+".old"), filepath.Join(am, id)); err != nil {
			t.Fatal(err)
		}
	}
	e4 := newEnv(t, dir)
	check(e4, "after the move from the earlier layout")
	if b := e4.call("GET", "/alertmanager/api/v2/silences", tenant.Default, "", http.StatusOK); !strings.Contains(b, "of the one tenant") {
		t.Errorf("the earliest Alertmanager's silences did not reach the default tenant: %s", b)
	}
}
