package logstore

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/sprout-otel/sprout/internal/logql"
)

// DefaultIndexLabels are the OTLP resource attributes that become stream labels, Loki 3's default list; every
// other attribute goes to structured metadata.
var DefaultIndexLabels = []string{
	"service.name", "service.namespace", "service.instance.id", "deployment.environment",
	"cloud.region", "cloud.availability_zone", "container.name",
	"k8s.cluster.name", "k8s.namespace.name", "k8s.pod.name", "k8s.container.name", "k8s.replicaset.name",
	"k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.cronjob.name", "k8s.job.name",
}

var indexLabelSet = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range DefaultIndexLabels {
		m[k] = true
	}
	return m
}()

// OTLPToStreams converts OTLP logs to streams the way Loki 3 does by default: index resource attributes become
// stream labels (dots to underscores; service_name="unknown_service" when missing), the other resource
// attributes, scope, log attributes, trace_id, span_id and severity become structured metadata, and the body
// becomes the line.
func OTLPToStreams(ld plog.Logs, now time.Time) []PushStream {
	byKey := map[uint64]*PushStream{}
	var order []*PushStream
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		sb := labels.NewScratchBuilder(4)
		var resMeta []labels.Label
		hasService := false
		rl.Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
			if indexLabelSet[k] {
				sb.Add(sanitizeName(k), v.AsString())
				hasService = hasService || k == "service.name"
			} else {
				resMeta = append(resMeta, labels.Label{Name: sanitizeName(k), Value: attrString(v)})
			}
			return true
		})
		if !hasService {
			sb.Add("service_name", "unknown_service")
		}
		sb.Sort()
		lbs := sb.Labels()
		ps := byKey[lbs.Hash()]
		if ps == nil {
			ps = &PushStream{Labels: lbs}
			byKey[lbs.Hash()] = ps
			order = append(order, ps)
		}
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			sl := sls.At(j)
			scope := sl.Scope()
			lrs := sl.LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				md := make(map[string]string, len(resMeta)+8)
				for _, l := range resMeta {
					md[l.Name] = l.Value
				}
				if scope.Name() != "" {
					md["scope_name"] = scope.Name()
				}
				if scope.Version() != "" {
					md["scope_version"] = scope.Version()
				}
				lr.Attributes().Range(func(k string, v pcommon.Value) bool {
					md[sanitizeName(k)] = attrString(v)
					return true
				})
				if tid := lr.TraceID(); !tid.IsEmpty() {
					md["trace_id"] = tid.String()
				}
				if sid := lr.SpanID(); !sid.IsEmpty() {
					md["span_id"] = sid.String()
				}
				if st := lr.SeverityText(); st != "" {
					md["severity_text"] = st
				}
				if sn := lr.SeverityNumber(); sn != plog.SeverityNumberUnspecified {
					md["severity_number"] = itoa(int(sn))
					if _, ok := md["detected_level"]; !ok {
						md["detected_level"] = levelFromSeverity(sn)
					}
				}
				if lr.Flags() != 0 {
					md["flags"] = itoa(int(lr.Flags()))
				}
				ts := lr.Timestamp().AsTime().UnixNano()
				if lr.Timestamp() == 0 {
					ts = lr.ObservedTimestamp().AsTime().UnixNano()
					if lr.ObservedTimestamp() == 0 {
						ts = now.UnixNano()
					}
				}
				// Drop empty values, as Loki does for structured metadata.
				for k, v := range md {
					if v == "" {
						delete(md, k)
					}
				}
				ps.Entries = append(ps.Entries, logql.Entry{Timestamp: ts, Line: lr.Body().AsString(), Metadata: metadataFromMap(md)})
			}
		}
	}
	out := make([]PushStream, len(order))
	for i, ps := range order {
		out[i] = *ps
	}
	return out
}

func attrString(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeMap, pcommon.ValueTypeSlice:
		b, _ := json.Marshal(v.AsRaw())
		return string(b)
	}
	return v.AsString()
}

func levelFromSeverity(sn plog.SeverityNumber) string {
	switch {
	case sn >= plog.SeverityNumberFatal:
		return "fatal"
	case sn >= plog.SeverityNumberError:
		return "error"
	case sn >= plog.SeverityNumberWarn:
		return "warn"
	case sn >= plog.SeverityNumberInfo:
		return "info"
	case sn >= plog.SeverityNumberDebug:
		return "debug"
	case sn >= plog.SeverityNumberTrace:
		return "trace"
	}
	return strings.ToLower("unknown")
}

func itoa(i int) string { return fmtNs(int64(i)) }
