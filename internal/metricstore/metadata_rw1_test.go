package metricstore

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"go.uber.org/zap"
)

// TestMetadataRemoteWriteV1 sends WriteRequest.metadata with remote write 1.0 (snappy, and already decompressed
// as sprout_api hands it over) and reads it back from /api/v1/metadata, before and after a restart.
func TestMetadataRemoteWriteV1(t *testing.T) {
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
	req := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{Labels: series("http_requests_total", "job", "a"), Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}},
		Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests served.", Unit: ""},
			{Type: prompb.MetricMetadata_GAUGEHISTOGRAM, MetricFamilyName: "queue_wait_seconds", Help: "Wait.", Unit: "seconds"},
		},
	}
	if code, body := post(t, base+"/api/v1/write", contentTypeV1, encodeV1(t, req), "Content-Encoding", "snappy"); code != 204 {
		t.Fatalf("POST v1: %d %s", code, body)
	}
	const want = `{"http_requests_total":[{"type":"counter","help":"Requests served.","unit":""}],"queue_wait_seconds":[{"type":"gaugehistogram","help":"Wait.","unit":"seconds"}]}`
	if code, r := apiGet(t, base, "/api/v1/metadata", nil); code != 200 || string(r.Data) != want {
		t.Errorf("metadata: %d %s, want %s", code, r.Data, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, base = open()
	defer s.Close()
	if code, r := apiGet(t, base, "/api/v1/metadata", nil); code != 200 || string(r.Data) != want {
		t.Errorf("metadata after restart: %d %s, want %s", code, r.Data, want)
	}
}

func TestRemoteWriteVersion(t *testing.T) {
	for _, tc := range []struct {
		ct      string
		v2, err bool
	}{
		{"", false, false},
		{"application/x-protobuf", false, false},
		{"application/x-protobuf;proto=prometheus.WriteRequest", false, false},
		{"application/x-protobuf;proto=io.prometheus.write.v2.Request", true, false},
		{"application/x-protobuf; proto=io.prometheus.write.v2.Request ", true, false},
		{"application/x-protobuf;charset=utf-8", false, false},
		{"application/x-protobuf;proto=foo.Bar", false, true},
		{"application/x-protobuf;proto", false, true},
		{"application/json", false, true},
	} {
		v2, err := remoteWriteVersion(tc.ct)
		if v2 != tc.v2 || (err != nil) != tc.err {
			t.Errorf("%q: v2 %v, error %v; want v2 %v, error %v", tc.ct, v2, err, tc.v2, tc.err)
		}
	}
}
