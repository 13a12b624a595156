package metricstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// TestMetadataSurvivesRestart pushes metadata with remote write 2.0, restarts the store and asks
// /api/v1/metadata; a damaged metadata file must not keep the tenant from opening.
func TestMetadataSurvivesRestart(t *testing.T) {
	cfg := testConfig(t)
	open := func() (*Store, string) {
		s, err := Open(context.Background(), cfg, Options{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		_, srv := serveStore(t, s)
		return s, srv.URL
	}
	s, base := open()
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("queue_bytes"), st.Symbolize("job"), st.Symbolize("q")},
		Samples:    []writev2.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("Bytes queued."), UnitRef: st.Symbolize("bytes")},
	}}}
	req.Symbols = st.Symbols()
	if code, body := post(t, base+"/api/v1/write", contentTypeV2, encodeV2(t, req), "X-Prometheus-Remote-Write-Version", "2.0.0"); code != 204 {
		t.Fatalf("POST v2: %d %s", code, body)
	}
	const want = `{"queue_bytes":[{"type":"gauge","help":"Bytes queued.","unit":"bytes"}]}`
	// Saved with the acknowledged write: the file is there before any shutdown.
	if _, err := os.Stat(filepath.Join(cfg.DataDir, tenant.Default, metadataFile)); err != nil {
		t.Errorf("metadata file after an acknowledged write: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, base = open()
	if code, r := apiGet(t, base, "/api/v1/metadata", nil); code != 200 || string(r.Data) != want {
		t.Errorf("metadata after restart: %d %s, want %s", code, r.Data, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(cfg.DataDir, tenant.Default, metadataFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, base = open()
	defer s.Close()
	if code, r := apiGet(t, base, "/api/v1/metadata", nil); code != 200 || string(r.Data) != `{}` {
		t.Errorf("metadata after a damaged file: %d %s, want an empty answer", code, r.Data)
	}
}
