package ruler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"

	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// TenantFunc resolves the tenant of a request, or answers the request itself (401) and returns false.
type TenantFunc func(w http.ResponseWriter, r *http.Request) (string, bool)

// Route is one HTTP route of the ruler: a Go ServeMux pattern (method and path) and its handler.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Mux is where the API mounts its routes (the sprout_api server, or an http.ServeMux in tests).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// API serves the ruler's HTTP API (see Routes), mounted as the stores mount theirs.
type API struct {
	Ruler *Ruler
	// Tenant resolves a request's tenant or answers the request itself and returns false.
	Tenant TenantFunc
}

// Register mounts every route of Routes.
func (a *API) Register(m Mux) {
	for _, rt := range a.Ruler.Routes(a.Tenant) {
		m.Handle(rt.Pattern, rt.Handler)
	}
}

// maxRuleGroupBytes bounds an uploaded rule group.
const maxRuleGroupBytes = 1 << 20

// Routes returns the ruler's HTTP routes:
//
//   - PromQL rule configuration, Mimir's and Cortex's API: /prometheus/config/v1/rules and /api/v1/rules/{namespace}
//     as Mimir serves them, and /config/v1/rules and /rules, the paths Grafana's ruler proxy builds on a Prometheus
//     data source at Sprout's root address (subtype mimir and cortex respectively, and its probe of a Thanos-like
//     source, which Sprout looks like because it serves /api/v1/status/flags). /prometheus/rules is the same for a
//     data source at /prometheus.
//   - LogQL rule configuration, Loki's API: /loki/api/v1/rules and its legacy /api/prom/rules, the one Grafana's
//     ruler proxy uses for a Loki data source.
//   - Prometheus' rules and alerts views: /api/v1/rules and /api/v1/alerts list PromQL groups only (what a
//     Prometheus data source reads); /prometheus/api/v1/rules and /alerts list the groups of
//     Options.PrometheusPrefixRules, LogQL by default: that is the path Loki serves its rules at and Grafana
//     reads for a Loki data source, which collides with Mimir's prefix for a Prometheus data source.
func (r *Ruler) Routes(tenantOf TenantFunc) []Route {
	var out []Route
	add := func(p string, f http.HandlerFunc) { out = append(out, Route{Pattern: p, Handler: f}) }
	config := func(h *configAPI, base string, list bool) {
		if list {
			add("GET "+base, h.listRules)
		}
		add("GET "+base+"/{namespace}", h.getNamespace)
		add("GET "+base+"/{namespace}/{group}", h.getGroup)
		add("POST "+base+"/{namespace}", h.setGroup)
		add("DELETE "+base+"/{namespace}", h.deleteNamespace)
		add("DELETE "+base+"/{namespace}/{group}", h.deleteGroup)
	}
	mimir := &configAPI{r: r, lang: PromQL, tenant: tenantOf}
	for _, base := range []string{"/prometheus/config/v1/rules", "/config/v1/rules", "/rules", "/prometheus/rules"} {
		config(mimir, base, true)
	}
	// GET /api/v1/rules is Prometheus' rules API; the Cortex listing lives under the other prefixes.
	config(mimir, "/api/v1/rules", false)
	// Loki answers 404 to a listing without groups, as cortextool and Grafana expect of it.
	loki := &configAPI{r: r, lang: LogQL, tenant: tenantOf, emptyListNotFound: true}
	config(loki, "/loki/api/v1/rules", true)
	config(loki, "/api/prom/rules", true)
	prefixed := r.opts.PrometheusPrefixRules
	if prefixed == "" {
		prefixed = LogQL
	}
	for base, lang := range map[string]Lang{"/api/v1": PromQL, "/prometheus/api/v1": prefixed} {
		h := &apiHandler{r: r, tenant: tenantOf, lang: lang, cortex: base != "/api/v1"}
		add("GET "+base+"/rules", h.promRules)
		add("GET "+base+"/alerts", h.promAlerts)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pattern < out[j].Pattern })
	return out
}

type apiHandler struct {
	r      *Ruler
	tenant TenantFunc
	lang   Lang // the language of the groups listed
	// cortex answers as Loki's and Mimir's rulers do under /prometheus: errorType and error always present,
	// and every rule's lastError even when empty. Prometheus leaves them out.
	cortex bool
}

// configAPI is the rule configuration API of one language: Mimir's and Cortex's for PromQL, Loki's for LogQL.
// They differ only in their paths, the store behind them and how an empty listing is answered.
type configAPI struct {
	r                 *Ruler
	lang              Lang
	tenant            TenantFunc
	emptyListNotFound bool
}

// successBody is what Mimir answers to a rule group set or delete.
const successBody = `{"status":"success","data":null,"errorType":"","error":""}`

func writeYAML(w http.ResponseWriter, v any) {
	b, err := yaml.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(b)
}

func writeAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, successBody)
}

// configReq is a config API request whose tenant, path names and rule store are resolved.
type configReq struct {
	tenant, ns, group string
	st                *RuleStore
}

// Path names a request carries.
const (
	noNames = iota
	namespaceOnly
	namespaceAndGroup
)

// prepare resolves the tenant, the path names the route has and the rule store, or answers the request
// itself (401, 400 for a bad name, 501 without a store) and returns false.
func (h *configAPI) prepare(w http.ResponseWriter, req *http.Request, names int) (configReq, bool) {
	var c configReq
	var ok bool
	if c.tenant, ok = h.tenant(w, req); !ok {
		return c, false
	}
	if names >= namespaceOnly {
		c.ns = req.PathValue("namespace")
		if err := ValidateName("namespace", c.ns); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return c, false
		}
	}
	if names == namespaceAndGroup {
		c.group = req.PathValue("group")
		if err := ValidateName("group", c.group); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return c, false
		}
	}
	if c.st = h.r.ruleStore(h.lang); c.st == nil {
		http.Error(w, fmt.Sprintf("the ruler has no %s rule storage configured", h.lang), http.StatusNotImplemented)
		return c, false
	}
	return c, true
}

// The 404 texts of Mimir's and Loki's ruler APIs (Cortex's rule store errors), which clients match: Grafana
// takes "group does not exist" and "no rule groups found" to mean a ruler without that group.
const (
	notFoundList      = "no rule groups found"
	notFoundGroup     = "group does not exist"
	notFoundNamespace = "group namespace does not exist"
)

// storeError answers a rule store error; a missing namespace or group is a 404 with the text notFound.
func storeError(w http.ResponseWriter, err error, notFound string) {
	if errors.Is(err, ErrNotFound) {
		http.Error(w, notFound, http.StatusNotFound)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func (h *configAPI) listRules(w http.ResponseWriter, req *http.Request) {
	c, ok := h.prepare(w, req, noNames)
	if !ok {
		return
	}
	nss, err := c.st.Namespaces(req.Context(), c.tenant, "")
	switch {
	case err != nil:
		storeError(w, err, notFoundList)
	case len(nss) == 0 && h.emptyListNotFound:
		storeError(w, ErrNotFound, notFoundList)
	default:
		writeYAML(w, nss)
	}
}

func (h *configAPI) getNamespace(w http.ResponseWriter, req *http.Request) {
	c, ok := h.prepare(w, req, namespaceOnly)
	if !ok {
		return
	}
	nss, err := c.st.Namespaces(req.Context(), c.tenant, c.ns)
	switch {
	case err != nil:
		storeError(w, err, notFoundList)
	case len(nss[c.ns]) == 0:
		storeError(w, ErrNotFound, notFoundList)
	default:
		writeYAML(w, map[string][]rulefmt.RuleGroup{c.ns: nss[c.ns]})
	}
}

func (h *configAPI) getGroup(w http.ResponseWriter, req *http.Request) {
	c, ok := h.prepare(w, req, namespaceAndGroup)
	if !ok {
		return
	}
	g, err := c.st.GetGroup(req.Context(), c.tenant, c.ns, c.group)
	if err != nil {
		storeError(w, err, notFoundGroup)
		return
	}
	writeYAML(w, g)
}

func (h *configAPI) setGroup(w http.ResponseWriter, req *http.Request) {
	c, ok := h.prepare(w, req, namespaceOnly)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxRuleGroupBytes+1))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxRuleGroupBytes {
		http.Error(w, fmt.Sprintf("rule group is larger than %d bytes", maxRuleGroupBytes), http.StatusRequestEntityTooLarge)
		return
	}
	g, err := ParseGroupLang(h.lang, body)
	if err == nil {
		err = ValidateName("group", g.Name)
	}
	if err == nil {
		err = h.r.checkBudget(h.lang, g)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The rules run on the tenant's metrics storage: a tenant id or a new tenant the metrics store refuses
	// (max_tenants) is refused here, before anything is stored that the next start could not load.
	if err := tenant.Validate(c.tenant); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := h.r.opts.Store.Tenant(req.Context(), c.tenant); err != nil {
		http.Error(w, err.Error(), refusal.HTTPStatus(err, http.StatusInternalServerError))
		return
	}
	h.changed(w, req, c, c.st.SetGroup(req.Context(), c.tenant, c.ns, g), notFoundGroup)
}

func (h *configAPI) deleteNamespace(w http.ResponseWriter, req *http.Request) {
	if c, ok := h.prepare(w, req, namespaceOnly); ok {
		h.changed(w, req, c, c.st.DeleteNamespace(req.Context(), c.tenant, c.ns), notFoundNamespace)
	}
}

func (h *configAPI) deleteGroup(w http.ResponseWriter, req *http.Request) {
	if c, ok := h.prepare(w, req, namespaceAndGroup); ok {
		h.changed(w, req, c, c.st.DeleteGroup(req.Context(), c.tenant, c.ns, c.group), notFoundGroup)
	}
}

// changed answers a stored change (202) and applies it at once; if applying fails the next poll retries it.
func (h *configAPI) changed(w http.ResponseWriter, req *http.Request, c configReq, err error, notFound string) {
	if err != nil {
		storeError(w, err, notFound)
		return
	}
	if err := h.r.SyncTenant(req.Context(), c.tenant); err != nil {
		h.r.opts.Logger.Error("applying uploaded rules failed; retried at the next poll", "tenant", c.tenant, "err", err)
	}
	writeAccepted(w)
}

// Prometheus' /api/v1/rules and /api/v1/alerts response shapes.

type promResponse struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

type ruleDiscovery struct {
	RuleGroups []*ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name string `json:"name"`
	File string `json:"file"`
	// Language is promql or logql, the one language of the listing's groups (see Routes).
	Language       Lang      `json:"language"`
	Rules          []any     `json:"rules"`
	Interval       float64   `json:"interval"`
	Limit          int       `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

type promAlert struct {
	Labels          labels.Labels `json:"labels"`
	Annotations     labels.Labels `json:"annotations"`
	State           string        `json:"state"`
	ActiveAt        *time.Time    `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
	Value           string        `json:"value"`
}

type alertingRule struct {
	State          string           `json:"state"`
	Name           string           `json:"name"`
	Query          string           `json:"query"`
	Duration       float64          `json:"duration"`
	KeepFiringFor  float64          `json:"keepFiringFor"`
	Labels         labels.Labels    `json:"labels"`
	Annotations    labels.Labels    `json:"annotations"`
	Alerts         []*promAlert     `json:"alerts"`
	Health         rules.RuleHealth `json:"health"`
	LastError      *string          `json:"lastError,omitempty"`
	EvaluationTime float64          `json:"evaluationTime"`
	LastEvaluation time.Time        `json:"lastEvaluation"`
	Type           string           `json:"type"`
}

type recordingRule struct {
	Name           string           `json:"name"`
	Query          string           `json:"query"`
	Labels         labels.Labels    `json:"labels"`
	Health         rules.RuleHealth `json:"health"`
	LastError      *string          `json:"lastError,omitempty"`
	EvaluationTime float64          `json:"evaluationTime"`
	LastEvaluation time.Time        `json:"lastEvaluation"`
	Type           string           `json:"type"`
}

// cortexResponse is promResponse as Loki's and Mimir's rulers write it, with the error fields always present.
type cortexResponse struct {
	Status    string `json:"status"`
	Data      any    `json:"data"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

// write answers a successful rules or alerts view in the handler's envelope.
func (h *apiHandler) write(w http.ResponseWriter, data any) {
	if !h.cortex {
		writeJSON(w, http.StatusOK, promResponse{Status: "success", Data: data})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(cortexResponse{Status: "success", Data: data})
}

// lastError is a rule's error as the handler writes it: nil (left out) when empty, unless cortex.
func (h *apiHandler) lastError(err error) *string {
	if err == nil && !h.cortex {
		return nil
	}
	s := errString(err)
	return &s
}

func writeJSON(w http.ResponseWriter, code int, v promResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // as Prometheus: a query's ">" stays ">"
	_ = enc.Encode(v)
}

func toPromAlerts(as []*rules.Alert) []*promAlert {
	out := make([]*promAlert, 0, len(as))
	for _, a := range as {
		pa := &promAlert{
			Labels: a.Labels, Annotations: a.Annotations, State: a.State.String(),
			ActiveAt: &a.ActiveAt, Value: strconv.FormatFloat(a.Value, 'e', -1, 64),
		}
		if !a.KeepFiringSince.IsZero() {
			pa.KeepFiringSince = &a.KeepFiringSince
		}
		out = append(out, pa)
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (h *apiHandler) promRules(w http.ResponseWriter, req *http.Request) {
	id, ok := h.tenant(w, req)
	if !ok {
		return
	}
	typ := req.URL.Query().Get("type")
	if typ != "" && typ != "alert" && typ != "record" {
		writeJSON(w, http.StatusBadRequest, promResponse{Status: "error", ErrorType: "bad_data", Error: fmt.Sprintf("invalid type parameter %q: want alert or record", typ)})
		return
	}
	wantNames := set(req.URL.Query()["rule_name[]"])
	wantGroups := set(req.URL.Query()["rule_group[]"])
	wantFiles := set(req.URL.Query()["file[]"])
	res := &ruleDiscovery{RuleGroups: []*ruleGroup{}}
	for _, g := range h.r.Rules(id).Groups {
		if g.Lang != h.lang || !wantGroups.has(g.Name()) || !wantFiles.has(g.File()) {
			continue
		}
		rg := &ruleGroup{
			Name: g.Name(), File: g.File(), Language: g.Lang, Interval: g.Interval().Seconds(), Limit: g.Limit(),
			EvaluationTime: g.GetEvaluationTime().Seconds(), LastEvaluation: g.GetLastEvaluation(), Rules: []any{},
		}
		for _, rule := range g.Rules() {
			if !wantNames.has(rule.Name()) {
				continue
			}
			switch rule := rule.(type) {
			case *rules.AlertingRule:
				if typ == "record" {
					continue
				}
				rg.Rules = append(rg.Rules, alertingRule{
					State: rule.State().String(), Name: rule.Name(), Query: RuleQuery(rule),
					Duration: rule.HoldDuration().Seconds(), KeepFiringFor: rule.KeepFiringFor().Seconds(),
					Labels: rule.Labels(), Annotations: rule.Annotations(), Alerts: toPromAlerts(rule.ActiveAlerts()),
					Health: rule.Health(), LastError: h.lastError(rule.LastError()),
					EvaluationTime: rule.GetEvaluationDuration().Seconds(), LastEvaluation: rule.GetEvaluationTimestamp(),
					Type: "alerting",
				})
			case *rules.RecordingRule:
				if typ == "alert" {
					continue
				}
				rg.Rules = append(rg.Rules, recordingRule{
					Name: rule.Name(), Query: RuleQuery(rule), Labels: rule.Labels(), Health: rule.Health(),
					LastError: h.lastError(rule.LastError()), EvaluationTime: rule.GetEvaluationDuration().Seconds(),
					LastEvaluation: rule.GetEvaluationTimestamp(), Type: "recording",
				})
			}
		}
		if len(rg.Rules) > 0 || (len(wantNames) == 0 && typ == "") {
			res.RuleGroups = append(res.RuleGroups, rg)
		}
	}
	h.write(w, res)
}

func (h *apiHandler) promAlerts(w http.ResponseWriter, req *http.Request) {
	id, ok := h.tenant(w, req)
	if !ok {
		return
	}
	var all []*rules.Alert
	for _, g := range h.r.Rules(id).Groups {
		if g.Lang != h.lang {
			continue
		}
		for _, rule := range g.Rules() {
			if ar, ok := rule.(*rules.AlertingRule); ok {
				all = append(all, ar.ActiveAlerts()...)
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return labels.Compare(all[i].Labels, all[j].Labels) < 0 })
	h.write(w, map[string]any{"alerts": toPromAlerts(all)})
}

type stringSet map[string]struct{}

func set(vs []string) stringSet {
	s := stringSet{}
	for _, v := range vs {
		s[v] = struct{}{}
	}
	return s
}

// has reports whether v is in the set; an empty set matches everything.
func (s stringSet) has(v string) bool {
	if len(s) == 0 {
		return true
	}
	_, ok := s[v]
	return ok
}
