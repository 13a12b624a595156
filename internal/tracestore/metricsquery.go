package tracestore

import (
	"net/http"
)

func (a *API) queryRange(w http.ResponseWriter, r *http.Request) {
	httpError(w, http.StatusNotImplemented, "TraceQL metrics are not implemented yet")
}

func (a *API) queryInstant(w http.ResponseWriter, r *http.Request) {
	httpError(w, http.StatusNotImplemented, "TraceQL metrics are not implemented yet")
}
