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
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/sprout-otel/sprout/internal/refusal"
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
	if ref, ok := refusal.As(err); ok {
		refusal.SetHeaders(w.Header(), err)
		typ := "unavailable"
		if ref.Reason == refusal.RateLimited {
			typ = "too_many_requests"
		}
		writeAPIError(w, ref.HTTPStatus(), typ, err.Error())
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		writeAPIError(w, 499, "canceled", "query canceled while it waited for a slot: "+err.Error())
		return
	}
	writeAPIError(w, http.StatusInternalServerError, "internal", err.Error())
}

// checkPoints refuses, before evaluation, a query whose range or subqueries would compute more points per
// series than the limits allow. Times are read exactly as Prometheus' handler reads them, so that no spelling of
// a time the handler accepts skips the check; parameters the handler refuses are left to it.
func (t *Tenant) checkPoints(r *http.Request, rangeQuery bool) error {
	var start, end time.Time
	var step time.Duration
	var err error
	if rangeQuery {
		if start, err = promTime(r.Form.Get("start")); err != nil {
			return nil
		}
		if end, err = promTime(r.Form.Get("end")); err != nil {
			return nil
		}
		if step, err = promDuration(r.Form.Get("step")); err != nil || step <= 0 || end.Before(start) {
			return nil
		}
	} else {
		// An instant query's subqueries span their ranges wherever it is evaluated: the time does not matter.
		end = time.Now()
		start = end
	}
	return t.store.cfg.Limits.promQLBudget().CheckString(r.Form.Get("query"), start, end, step)
}

// promTime reads a timestamp as Prometheus' API does: unix seconds (with a fraction), RFC 3339, or the API's
// own formatted minimum and maximum times.
func promTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, ns := math.Modf(f)
		ns = math.Round(ns*1000) / 1000
		return time.Unix(int64(sec), int64(ns*float64(time.Second))).UTC(), nil
	}
	if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return ts, nil
	}
	switch s {
	case v1.MinTime.Format(time.RFC3339Nano):
		return v1.MinTime, nil
	case v1.MaxTime.Format(time.RFC3339Nano):
		return v1.MaxTime, nil
	}
	return time.Time{}, errors.New("not a time Prometheus' API reads")
}

// promDuration reads a step as Prometheus' API does: seconds (with a fraction) or a Prometheus duration.
func promDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ts := f * float64(time.Second)
		if ts > float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, errors.New("duration overflows")
		}
		return time.Duration(ts), nil
	}
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}
