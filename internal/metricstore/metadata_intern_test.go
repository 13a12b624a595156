package metricstore

import (
	"context"
	"testing"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// recordingAppender keeps the metadata handed to the storage under limitedAppender.
type recordingAppender struct {
	storage.Appender
	got []metadata.Metadata
}

func (r *recordingAppender) UpdateMetadata(ref storage.SeriesRef, _ labels.Labels, m metadata.Metadata) (storage.SeriesRef, error) {
	r.got = append(r.got, m)
	return ref, nil
}

// TestMetadataReachesHeadAsOwnCopy: the head keeps the metadata it is given in each series, so what the tenant's
// appender passes down must not point into the request (remote write 2.0's metadata is read in place from the
// pooled request buffer), and every series of a metric shares one copy of its help text.
func TestMetadataReachesHeadAsOwnCopy(t *testing.T) {
	meta, err := newMetadataStore("")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingAppender{}
	app := &limitedAppender{Appender: rec, t: &Tenant{meta: meta}, ctx: context.Background()}

	for _, tc := range []struct {
		name, help, unit string
	}{
		{"http_requests_total", "Requests served.", ""},
		{"http_requests_total", "Requests served.", ""}, // the same metadata again, from another request
		{"process_cpu_seconds_total", "CPU time.", "seconds"},
	} {
		buf := []byte(tc.help + tc.unit) // the request buffer
		md := metadata.Metadata{Type: model.MetricTypeCounter, Help: unsafeString(buf[:len(tc.help)]), Unit: unsafeString(buf[len(tc.help):])}
		ls := labels.FromStrings(labels.MetricName, tc.name, "instance", "a")
		if _, err := app.UpdateMetadata(1, ls, md); err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] = 'x' // the buffer goes back to the pool and holds the next request
		}
		got := rec.got[len(rec.got)-1]
		if got.Help != tc.help || got.Unit != tc.unit || got.Type != model.MetricTypeCounter {
			t.Fatalf("%s: the head was given %+v, which changed with the request buffer; want help %q unit %q", tc.name, got, tc.help, tc.unit)
		}
	}
	if a, b := rec.got[0].Help, rec.got[1].Help; unsafe.StringData(a) != unsafe.StringData(b) {
		t.Error("two requests' metadata of one metric reached the head as two copies of its help text, want one shared copy")
	}
	if got := meta.query("", -1, -1); len(got) != 2 || got["http_requests_total"][0].Help != "Requests served." {
		t.Errorf("metadata store holds %+v, want the two metrics with their help", got)
	}
}
