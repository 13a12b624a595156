package metricstore

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// postV2 sends a remote write 2.0 request and returns the status, body and written-count headers.
func postV2(t *testing.T, base string, req *writev2.Request) (int, string, [3]string) {
	t.Helper()
	hr, err := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(encodeV2(t, req)))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", contentTypeV2)
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	h := resp.Header
	return resp.StatusCode, string(b), [3]string{h.Get(writtenSamplesHeader), h.Get(writtenHistogramsHeader), h.Get(writtenExemplarsHeader)}
}

// TestRemoteWriteV2Semantics checks the 2.0 receiver against what Prometheus' receiver answers: partial
// writes (refused series named in a 400, the rest committed), written counts in the headers, whole-request
// refusal for limits.
func TestRemoteWriteV2Semantics(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	ms := now.UnixMilli()
	h := &histogram.Histogram{Count: 3, Sum: 2, Schema: 1, PositiveSpans: []histogram.Span{{Length: 2}}, PositiveBuckets: []int64{1, 1}}
	type series struct {
		labels     []string // name, value, ...
		samples    []writev2.Sample
		histograms []writev2.Histogram
		exemplars  int
	}
	for _, tc := range []struct {
		name        string
		limits      func(*Limits)
		before      []series
		req         []series
		badRefs     bool // the first series names a symbol past the table
		wantCode    int
		wantText    []string
		wantWritten [3]string
		want        map[string]string // query at now → value ("" = no result)
		wantInvalid float64
	}{
		{
			name: "samples, a histogram and exemplars written",
			req: []series{
				{labels: []string{"__name__", "v2_ok", "a", "1"}, samples: []writev2.Sample{{Value: 1, Timestamp: ms - 1000}, {Value: 2, Timestamp: ms}}, exemplars: 2},
				{labels: []string{"__name__", "v2_hist"}, histograms: []writev2.Histogram{writev2.FromIntHistogram(ms, h)}},
			},
			wantCode: 204, wantWritten: [3]string{"2", "1", "2"},
			want: map[string]string{`v2_ok`: "2", `histogram_count(v2_hist)`: "3"},
		},
		{
			name: "invalid labels, no samples and bad references are refused, the rest is written",
			req: []series{
				{labels: []string{"__name__", "v2_badref"}, samples: []writev2.Sample{{Value: 1, Timestamp: ms}}},
				{labels: []string{"job", "no-name"}, samples: []writev2.Sample{{Value: 1, Timestamp: ms}}},
				{labels: []string{"__name__", "v2_empty"}},
				{labels: []string{"__name__", "v2_kept"}, samples: []writev2.Sample{{Value: 7, Timestamp: ms}}},
			},
			badRefs:     true,
			wantCode:    400,
			wantText:    []string{"outside of symbols table", "invalid metric name or labels", "at least one sample or histogram"},
			wantWritten: [3]string{"1", "0", "0"},
			want:        map[string]string{`v2_kept`: "7", `v2_empty`: ""},
			wantInvalid: 2,
		},
		{
			name:     "an out-of-order sample is refused, the rest of the request is written",
			before:   []series{{labels: []string{"__name__", "v2_ooo"}, samples: []writev2.Sample{{Value: 1, Timestamp: ms}}}},
			req:      []series{{labels: []string{"__name__", "v2_ooo"}, samples: []writev2.Sample{{Value: 3, Timestamp: ms - 60000}}}, {labels: []string{"__name__", "v2_other"}, samples: []writev2.Sample{{Value: 2, Timestamp: ms}}}},
			wantCode: 400, wantText: []string{"out of order sample for series {__name__=\"v2_ooo\"}"},
			wantWritten: [3]string{"1", "0", "0"},
			want:        map[string]string{`v2_ooo`: "1", `v2_other`: "2"},
		},
		{
			name:     "a series limit refuses the whole request",
			limits:   func(l *Limits) { l.MaxGlobalSeriesPerUser = 1 },
			req:      []series{{labels: []string{"__name__", "v2_l1"}, samples: []writev2.Sample{{Value: 1, Timestamp: ms}}}, {labels: []string{"__name__", "v2_l2"}, samples: []writev2.Sample{{Value: 1, Timestamp: ms}}}},
			wantCode: 400, wantText: []string{"max_global_series_per_user"},
			wantWritten: [3]string{"0", "0", "0"},
			want:        map[string]string{`v2_l1`: "", `v2_l2`: ""},
		},
		{
			name:     "the ingestion rate refuses the whole request",
			limits:   func(l *Limits) { l.IngestionRate, l.IngestionBurstSize = 1, 1 },
			req:      []series{{labels: []string{"__name__", "v2_rate"}, samples: []writev2.Sample{{Value: 1, Timestamp: ms - 1000}, {Value: 1, Timestamp: ms}}}},
			wantCode: 429, wantText: []string{"ingestion_rate"},
			wantWritten: [3]string{"0", "0", "0"},
			want:        map[string]string{`v2_rate`: ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tc.limits != nil {
				tc.limits(&cfg.Limits)
			}
			s, srv := openTestStore(t, cfg)
			build := func(ss []series, badRefs bool) *writev2.Request {
				st := writev2.NewSymbolTable()
				var req writev2.Request
				for i, se := range ss {
					var refs []uint32
					for _, l := range se.labels {
						refs = append(refs, st.Symbolize(l))
					}
					if badRefs && i == 0 {
						refs[1] = 999
					}
					ts := writev2.TimeSeries{LabelsRefs: refs, Samples: se.samples, Histograms: se.histograms,
						Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("help")}}
					for j := range se.exemplars {
						ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("t")}, Value: float64(j), Timestamp: ms - 1000 + int64(j)*1000})
					}
					req.Timeseries = append(req.Timeseries, ts)
				}
				req.Symbols = st.Symbols()
				return &req
			}
			if tc.before != nil {
				if code, body, _ := postV2(t, srv.URL, build(tc.before, false)); code != 204 {
					t.Fatalf("before: %d %s", code, body)
				}
			}
			code, body, written := postV2(t, srv.URL, build(tc.req, tc.badRefs))
			if code != tc.wantCode || written != tc.wantWritten {
				t.Errorf("POST: %d %q written %v, want %d written %v", code, body, written, tc.wantCode, tc.wantWritten)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(body, w) {
					t.Errorf("answer %q does not name %q", body, w)
				}
			}
			for q, want := range tc.want {
				got := instant(t, srv.URL, q, now)
				var v string
				for _, val := range got {
					v = val
				}
				if len(got) > 1 || v != want {
					t.Errorf("%s = %v, want %q", q, got, want)
				}
			}
			if got := promtestutil.ToFloat64(s.rwInvalid.WithLabelValues(tenant.Default)); got != tc.wantInvalid {
				t.Errorf("invalid-label samples counted %v, want %v", got, tc.wantInvalid)
			}
		})
	}
}

// TestRemoteWriteV2ReferenceCache: a 2.0 series is cached by the strings its references name, so a later
// request with another symbol table (other reference numbers) appends it by reference; 1.0 and 2.0 writes of
// the same series land in the same series.
func TestRemoteWriteV2ReferenceCache(t *testing.T) {
	s, srv := openTestStore(t, testConfig(t))
	tn, err := s.Tenant(context.Background(), tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	for i, padding := range []int{0, 5} {
		st := writev2.NewSymbolTable()
		for p := range padding {
			st.Symbolize("pad" + string(rune('a'+p))) // shifts every reference number
		}
		req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
			LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("cached_v2"), st.Symbolize("job"), st.Symbolize("j")},
			Samples:    []writev2.Sample{{Value: float64(i), Timestamp: now.Add(time.Duration(i-2) * time.Second).UnixMilli()}},
		}}}
		req.Symbols = st.Symbols()
		if code, body, _ := postV2(t, srv.URL, req); code != 204 {
			t.Fatalf("POST %d: %d %s", i, code, body)
		}
		if n := tn.refs.len(); n != 1 {
			t.Fatalf("after request %d the cache holds %d entries, want 1", i, n)
		}
	}
	// A hit carries no labels: a refused sample still names its series, and metadata reaches the head and
	// /api/v1/metadata as the store's copy.
	st := writev2.NewSymbolTable()
	hit := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("cached_v2"), st.Symbolize("job"), st.Symbolize("j")},
		Samples:    []writev2.Sample{{Value: 7, Timestamp: now.Add(-time.Hour).UnixMilli()}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("a cached series")},
	}}}
	hit.Symbols = st.Symbols()
	if code, body, _ := postV2(t, srv.URL, hit); code != 400 || !strings.Contains(body, `out of order sample for series {__name__="cached_v2", job="j"}`) {
		t.Fatalf("POST out of order to a cached series: %d %s", code, body)
	}
	if code, r := apiGet(t, srv.URL, "/api/v1/metadata", url.Values{"metric": {"cached_v2"}}); code != 200 || !strings.Contains(string(r.Data), `"help":"a cached series"`) {
		t.Errorf("metadata of a cached series: %d %s", code, r.Data)
	}
	if md, ok := tn.DB().Head().Metadata(tn.DB().Head().Lookup(labels.FromStrings("__name__", "cached_v2", "job", "j"))); !ok || md.Help != "a cached series" {
		t.Errorf("head metadata of a cached series: %+v %v", md, ok)
	}
	v1 := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("cached_v2", "job", "j"), Samples: []prompb.Sample{{Value: 9, Timestamp: now.UnixMilli()}}}}}
	if code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, encodeV1(t, v1)); code != 204 {
		t.Fatalf("POST 1.0: %d %s", code, body)
	}
	if got := instant(t, srv.URL, `count_over_time(cached_v2[1m])`, now); len(got) != 1 || got[`map[job:j]`] != "3" {
		t.Errorf("samples = %v, want 3 in one series", got)
	}
}
