package metricstoreext

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/testutil"
)

type host struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.exts }

// TestExporterToAPI runs sprout_api, the sprout_metrics extension and exporter together: metrics pushed
// through the exporter for tenant team-a are queryable on the API port with X-Scope-OrgID: team-a.
func TestExporterToAPI(t *testing.T) {
	ctx := context.Background()
	apiF := apiserver.NewFactory()
	apiCfg := apiF.CreateDefaultConfig().(*apiserver.Config)
	apiCfg.NetAddr.Endpoint = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	apiCfg.MultitenancyEnabled = true
	api, err := apiF.Create(ctx, extensiontest.NewNopSettings(apiserver.Type), apiCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	cfg.DataDir = t.TempDir()
	cfg.Storage.Filesystem.Dir = t.TempDir()
	ext, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := host{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{
		component.NewID(apiserver.Type): api, component.NewID(Type): ext}}
	for _, c := range []extension.Extension{api, ext} {
		if err := c.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		_ = ext.Shutdown(ctx)
		_ = api.Shutdown(ctx)
	}()

	exp, err := NewExporterFactory().CreateMetrics(ctx, exportertest.NewNopSettings(Type), createDefaultExporterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(ctx)

	now := time.Now().Truncate(time.Second)
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "app")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("orders")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	dp.SetIntValue(9)
	tctx := client.NewContext(ctx, client.Info{Metadata: client.NewMetadata(map[string][]string{"X-Scope-OrgID": {"team-a"}})})
	if err := exp.ConsumeMetrics(tctx, md); err != nil {
		t.Fatal(err)
	}

	// Remote write through sprout_api, whose HTTP server decompresses snappy bodies itself.
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "pushed"}},
		Samples: []prompb.Sample{{Value: 3, Timestamp: now.UnixMilli()}}}}}
	raw, _ := wr.Marshal()
	req, _ := http.NewRequest("POST", "http://"+apiCfg.NetAddr.Endpoint+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Scope-OrgID", "team-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("remote write through sprout_api: %d %s", resp.StatusCode, b)
	}

	q := url.Values{"query": {`orders{job="app"} + on() group_left pushed`}, "time": {now.Format(time.RFC3339)}}
	for _, tc := range []struct{ org, want string }{{"team-a", `"12"`}, {"team-b", `[]`}} {
		req, _ := http.NewRequest("GET", "http://"+apiCfg.NetAddr.Endpoint+"/prometheus/api/v1/query?"+q.Encode(), nil)
		req.Header.Set("X-Scope-OrgID", tc.org)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r struct {
			Data struct {
				Result json.RawMessage `json:"result"`
			} `json:"data"`
		}
		_ = json.Unmarshal(b, &r)
		if resp.StatusCode != 200 || !contains(string(r.Data.Result), tc.want) {
			t.Errorf("tenant %s: %d %s, want result containing %s", tc.org, resp.StatusCode, b, tc.want)
		}
	}
	// Without X-Scope-OrgID the API answers 401, as Mimir does with multi-tenancy on.
	resp, err = http.Get("http://" + apiCfg.NetAddr.Endpoint + "/api/v1/labels")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("no org id: %d, want 401", resp.StatusCode)
	}

	// The ruler's view: the same tenant storage and engine.
	e := ext.(*Extension)
	st, err := e.Tenant(ctx, "team-a")
	if err != nil || e.QueryEngine() == nil {
		t.Fatalf("Tenant/QueryEngine: %v", err)
	}
	qr, err := e.QueryEngine().NewInstantQuery(ctx, st, nil, "orders", now)
	if err != nil {
		t.Fatal(err)
	}
	if res := qr.Exec(ctx); res.Err != nil || res.String() == "" {
		t.Errorf("ruler-style query: %v %s", res.Err, res.String())
	}
	qr.Close()
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
