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
)

// TenantFunc resolves the tenant of a request, or answers the request itself (401) and returns false.
type TenantFunc func(w http.ResponseWriter, r *http.Request) (string, bool)

// Route is one HTTP route of the ruler: a Go ServeMux pattern (method and path) and its handler.
type Route struct {
	Pattern string
	Handler http.Handler
}

// maxRuleGroupBytes bounds an uploaded rule group.
const maxRuleGroupBytes = 1 << 20

// Routes returns the ruler's HTTP routes: the Mimir/Cortex ruler configuration API under
// /prometheus/config/v1/rules and /api/v1/rules/{namespace}, and Prometheus' rules and alerts API under
// /api/v1 and /prometheus/api/v1.
func (r *Ruler) Routes(tenantOf TenantFunc) []Route {
	h := &apiHandler{r: r, tenant: tenantOf}
	var out []Route
	add := func(p string, f http.HandlerFunc) { out = append(out, Route{Pattern: p, Handler: f}) }
	for _, base := range []string{"/prometheus/config/v1/rules", "/api/v1/rules"} {
		if base == "/prometheus/config/v1/rules" {
			// GET /api/v1/rules is Prometheus' rules API; the Cortex listing lives only under the Mimir prefix.
			add("GET "+base, h.listRules)
		}
		add("GET "+base+"/{namespace}", h.getNamespace)
		add("GET "+base+"/{namespace}/{group}", h.getGroup)
		add("POST "+base+"/{namespace}", h.setGroup)
		add("DELETE "+base+"/{namespace}", h.deleteNamespace)
		add("DELETE "+base+"/{namespace}/{group}", h.deleteGroup)
	}
	for _, base := range []string{"/api/v1", "/prometheus/api/v1"} {
		add("GET "+base+"/rules", h.promRules)
		add("GET "+base+"/alerts", h.promAlerts)
	}
	return out
}

type apiHandler struct {
	r      *Ruler
	tenant TenantFunc
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

func (h *apiHandler) store(w http.ResponseWriter) (*RuleStore, bool) {
	if h.r.opts.Rules == nil {
		http.Error(w, "the ruler has no rule storage configured", http.StatusNotImplemented)
		return nil, false
	}
	return h.r.opts.Rules, true
}

func (h *apiHandler) names(w http.ResponseWriter, req *http.Request, withGroup bool) (ns, group string, ok bool) {
	ns = req.PathValue("namespace")
	if err := ValidateName("namespace", ns); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", "", false
	}
	if withGroup {
		group = req.PathValue("group")
		if err := ValidateName("group", group); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return "", "", false
		}
	}
	return ns, group, true
}

func storeError(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func (h *apiHandler) listRules(w http.ResponseWriter, req *http.Request) {
	id, ok := h.tenant(w, req)
	if !ok {
		return
	}
	st, ok := h.store(w)
	if !ok {
		return
	}
	nss, err := st.Namespaces(req.Context(), id, "")
	if err != nil {
		storeError(w, err)
		return
	}
	writeYAML(w, nss)
}

func (h *apiHandler) getNamespace(w http.ResponseWriter, req *http.Request) {
	id, ok := h.tenant(w, req)
	if !ok {
		return
	}
	ns, _, ok := h.names(w, req, false)
	if !ok {
		return
	}
	st, ok := h.store(w)
	if !ok {
		return
	}
	nss, err := st.Namespaces(req.Context(), id, ns)
	if err != nil {
		storeError(w, err)
		return
	}
	if len(nss[ns]) == 0 {
		storeError(w, ErrNotFound)
		return
	}
	writeYAML(w, map[string][]rulefmt.RuleGroup{ns: nss[ns]})
}

func (h *apiHandler) getGroup(w http.ResponseWriter, req *http.Request) {
	id, ok := h.tenant(w, req)
	if !ok {
		return
	}
	ns, group, ok := h.names(w, req, true)
	if !ok {
		return
	}
	st, ok := h.store(w)
	if !ok {
		return
	}
	g, err := st.GetGroup(req.Context(), id, ns, group)
	if err != nil {
		storeError(w, err)
		return
	}
	writeYAML(w, g)
}

func (h *apiHandler) setGroup(w http.ResponseWriter, req *http.Request) {
	id, ok := h.tenant(w, req)
	if !ok {
		return
	}
	ns, _, ok := h.names(w, req, false)
	if !ok {
		return
	}
	st, ok := h.store(w)
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
	g, err := ParseGroup(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := ValidateName("group", g.Name); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := st.SetGroup(req.Context(), id, ns, g); err != nil {
		storeError(w, err)
		return
	}
	h.resync(req, id)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, successBody)
}

// resync applies an API change at once; if that fails the next poll retries it.
func (h *apiHandler) resync(req *http.Request, id string) {
	if err := h.r.SyncTenant(req.Context(), id); err != nil {
		h.r.opts.Logger.Error("applying uploaded rules failed; retried at the next poll", "tenant", id, "err", err)
	}
}

func (h *apiHandler) deleteNamespace(w http.ResponseWriter, req *http.Request) {
	id, ok := h.tenant(w, req)
	if !ok {
		return
	}
	ns, _, ok := h.names(w, req, false)
	if !ok {
		return
	}
	st, ok := h.store(w)
	if !ok {
		return
	}
	if err := st.DeleteNamespace(req.Context(), id, ns); err != nil {
		storeError(w, err)
		return
	}
	h.resync(req, id)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, successBody)
}

func (h *apiHandler) deleteGroup(w http.ResponseWriter, req *http.Request) {
	id, ok := h.tenant(w, req)
	if !ok {
		return
	}
	ns, group, ok := h.names(w, req, true)
	if !ok {
		return
	}
	st, ok := h.store(w)
	if !ok {
		return
	}
	if err := st.DeleteGroup(req.Context(), id, ns, group); err != nil {
		storeError(w, err)
		return
	}
	h.resync(req, id)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, successBody)
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
	Name           string    `json:"name"`
	File           string    `json:"file"`
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
	LastError      string           `json:"lastError,omitempty"`
	EvaluationTime float64          `json:"evaluationTime"`
	LastEvaluation time.Time        `json:"lastEvaluation"`
	Type           string           `json:"type"`
}

type recordingRule struct {
	Name           string           `json:"name"`
	Query          string           `json:"query"`
	Labels         labels.Labels    `json:"labels"`
	Health         rules.RuleHealth `json:"health"`
	LastError      string           `json:"lastError,omitempty"`
	EvaluationTime float64          `json:"evaluationTime"`
	LastEvaluation time.Time        `json:"lastEvaluation"`
	Type           string           `json:"type"`
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
		if !wantGroups.has(g.Name()) || !wantFiles.has(g.File()) {
			continue
		}
		rg := &ruleGroup{
			Name: g.Name(), File: g.File(), Interval: g.Interval().Seconds(), Limit: g.Limit(),
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
					State: rule.State().String(), Name: rule.Name(), Query: rule.Query().String(),
					Duration: rule.HoldDuration().Seconds(), KeepFiringFor: rule.KeepFiringFor().Seconds(),
					Labels: rule.Labels(), Annotations: rule.Annotations(), Alerts: toPromAlerts(rule.ActiveAlerts()),
					Health: rule.Health(), LastError: errString(rule.LastError()),
					EvaluationTime: rule.GetEvaluationDuration().Seconds(), LastEvaluation: rule.GetEvaluationTimestamp(),
					Type: "alerting",
				})
			case *rules.RecordingRule:
				if typ == "alert" {
					continue
				}
				rg.Rules = append(rg.Rules, recordingRule{
					Name: rule.Name(), Query: rule.Query().String(), Labels: rule.Labels(), Health: rule.Health(),
					LastError: errString(rule.LastError()), EvaluationTime: rule.GetEvaluationDuration().Seconds(),
					LastEvaluation: rule.GetEvaluationTimestamp(), Type: "recording",
				})
			}
		}
		if len(rg.Rules) > 0 || (len(wantNames) == 0 && typ == "") {
			res.RuleGroups = append(res.RuleGroups, rg)
		}
	}
	writeJSON(w, http.StatusOK, promResponse{Status: "success", Data: res})
}

func (h *apiHandler) promAlerts(w http.ResponseWriter, req *http.Request) {
	id, ok := h.tenant(w, req)
	if !ok {
		return
	}
	var all []*rules.Alert
	for _, g := range h.r.Rules(id).Groups {
		for _, rule := range g.Rules() {
			if ar, ok := rule.(*rules.AlertingRule); ok {
				all = append(all, ar.ActiveAlerts()...)
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return labels.Compare(all[i].Labels, all[j].Labels) < 0 })
	writeJSON(w, http.StatusOK, promResponse{Status: "success", Data: map[string]any{"alerts": toPromAlerts(all)}})
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
