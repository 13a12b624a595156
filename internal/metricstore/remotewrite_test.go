package metricstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// TestRemoteWriteOut forwards through Prometheus' remote-write queue (reading the tenant's WAL) to a second
// store, keeping only the series write_relabel_configs select and adding external labels.
func TestRemoteWriteOut(t *testing.T) {
	_, downstream := openTestStore(t, testConfig(t))
	cfg := testConfig(t)
	cfg.ExternalLabels = map[string]string{"cluster": "edge"}
	cfg.RemoteWrite = []map[string]any{{
		"url":          downstream.URL + "/api/v1/push",
		"queue_config": map[string]any{"batch_send_deadline": "100ms", "min_backoff": "10ms", "max_backoff": "100ms"},
		"write_relabel_configs": []any{map[string]any{
			"source_labels": []any{"__name__"}, "regex": "keep_.*", "action": "keep"}},
	}}
	_, upstream := openTestStore(t, cfg)

	now := time.Now()
	for i := 0; i < 5; i++ {
		ts := now.Add(time.Duration(i) * time.Second).UnixMilli()
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: series("keep_me"), Samples: []prompb.Sample{{Value: float64(i), Timestamp: ts}}},
			{Labels: series("drop_me"), Samples: []prompb.Sample{{Value: float64(i), Timestamp: ts}}},
		}}
		if code, body := post(t, upstream.URL+"/api/v1/write", contentTypeV1, encodeV1(t, req)); code != 204 {
			t.Fatalf("write: %d %s", code, body)
		}
	}
	at := now.Add(5 * time.Second)
	testutil.Eventually(t, 20*time.Second, func() error {
		got := instant(t, downstream.URL, `keep_me`, at)
		if got["map[__name__:keep_me cluster:edge]"] != "4" {
			return fmt.Errorf("downstream has %v", got)
		}
		return nil
	})
	if got := instant(t, downstream.URL, `{__name__=~".+"}`, at); len(got) != 1 {
		t.Errorf("downstream has %v, want only keep_me", got)
	}
}
