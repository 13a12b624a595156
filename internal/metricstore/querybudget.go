package metricstore

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/sprout-otel/sprout/internal/querylimit"
)

// isQueryPath reports whether a request to path reads the TSDB, and so runs under the query limiter.
func isQueryPath(path string) bool {
	switch path {
	case "/api/v1/query", "/api/v1/query_range", "/api/v1/query_exemplars", "/api/v1/series", "/api/v1/labels", "/api/v1/read":
		return true
	}
	return strings.HasPrefix(path, "/api/v1/label/")
}

// admitQuery checks a query's points against the budget and waits for a slot; it returns the request to serve
// (its context carries the query timeout and ends when the client leaves) and the function that frees the
// slot, or answers the refusal itself, in Prometheus' error format, and returns false.
func (t *Tenant) admitQuery(w http.ResponseWriter, r *http.Request, path string) (*http.Request, func(), bool) {
	if path == "/api/v1/query" || path == "/api/v1/query_range" {
		if err := r.ParseForm(); err != nil {
			writeAPIError(w, http.StatusBadRequest, "bad_data", "invalid parameter \"form\": "+err.Error())
			return nil, nil, false
		}
		if err := t.checkPoints(r, path == "/api/v1/query_range"); err != nil {
			writeAPIError(w, http.StatusBadRequest, "bad_data", err.Error())
			return nil, nil, false
		}
	}
	ctx, release, err := t.store.queries.Admit(r.Context(), t.id)
	if err != nil {
		writeQueryRefusal(w, err)
		return nil, nil, false
	}
	return r.WithContext(ctx), release, true
}

// writeQueryRefusal answers a query the limiter did not admit.
func writeQueryRefusal(w http.ResponseWriter, err error) {
	if ref, ok := querylimit.IsRefusal(err); ok {
		ref.SetHeaders(w.Header())
		typ := "unavailable"
		if ref.Status == http.StatusTooManyRequests {
			typ = "too_many_requests"
		}
		writeAPIError(w, ref.Status, typ, ref.Error())
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		writeAPIError(w, 499, "canceled", "query canceled while it waited for a slot: "+err.Error())
		return
	}
	writeAPIError(w, http.StatusInternalServerError, "internal", err.Error())
}

// checkPoints refuses, before evaluation, a query whose range or subqueries would compute more points per
// series than the limits allow. Parameters it cannot read are left to Prometheus' handler, which answers them.
func (t *Tenant) checkPoints(r *http.Request, rangeQuery bool) error {
	now := time.Now()
	var start, end time.Time
	var step time.Duration
	var ok bool
	if rangeQuery {
		if start, ok = promTime(r.Form.Get("start"), time.Time{}); !ok {
			return nil
		}
		if end, ok = promTime(r.Form.Get("end"), time.Time{}); !ok {
			return nil
		}
		if step, ok = promDuration(r.Form.Get("step")); !ok || step <= 0 || end.Before(start) {
			return nil
		}
	} else {
		if end, ok = promTime(r.Form.Get("time"), now); !ok {
			return nil
		}
		start = end
	}
	return t.store.cfg.Limits.promQLBudget().CheckString(r.Form.Get("query"), start, end, step)
}

// promTime reads a timestamp as Prometheus' API does: unix seconds (with a fraction) or RFC 3339.
func promTime(s string, def time.Time) (time.Time, bool) {
	if s == "" {
		return def, !def.IsZero()
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
			return time.Time{}, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
	}
	if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return ts, true
	}
	return time.Time{}, false
}

// promDuration reads a step as Prometheus' API does: seconds (with a fraction) or a Prometheus duration.
func promDuration(s string) (time.Duration, bool) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f > float64(math.MaxInt64)/1e9 {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), true
	}
	return 0, false
}
