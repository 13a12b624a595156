package tracestore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/internal/testutil"
	"github.com/sprout-otel/sprout/internal/tracestore/tempopb"
)

// protoShape lists the paths of a decoded message's set fields (".Traces[].SpanSets[].Spans[].Name"), with
// map keys and list indexes folded, as jsonShape does for JSON.
func protoShape(v any) []string {
	set := map[string]bool{}
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(path, v.Elem())
			}
		case reflect.Struct:
			set[path+"{}"] = true
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() {
					walk(path+"."+v.Type().Field(i).Name, v.Field(i))
				}
			}
		case reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Uint8 {
				if v.Len() > 0 {
					set[path] = true
				}
				return
			}
			for i := 0; i < v.Len(); i++ {
				walk(path+"[]", v.Index(i))
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(path+"{*}", v.MapIndex(k))
			}
		default:
			if !v.IsZero() {
				set[path] = true
			}
		}
	}
	walk("", reflect.ValueOf(v))
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// peerGRPCAllowed lists the accepted differences of the streaming answers, as peerAllowed does for HTTP: request
// name prefix ("" for every request), "+" (only Sprout has it), "-" (only Tempo) or "status", and a path prefix.
var peerGRPCAllowed = []struct{ req, sign, prefix, why string }{
	{"", "+", ".Metrics.InspectedSpans", "Sprout fills counters that Tempo leaves at zero"},
	{"", "+", ".Metrics.InspectedTraces", "same"},
	{"", "+", ".Metrics.InspectedBytes", "same"},
	{"", "-", ".Metrics.CompletedJobs", "Tempo counts its frontend's shards; Sprout answers from memory alone without a block job"},
	{"", "-", ".Metrics.TotalJobs", "same"},
	{"", "+", ".Metrics.CompletedJobs", "same"},
	{"", "+", ".Metrics.TotalJobs", "same"},
	{"", "-", ".Metrics.TotalBlockBytes", "Sprout does not count the bytes of blocks it did not read"},
	{"", "+", ".Traces[].SpanSet.Spans[].Name", "Sprout always gives a matched span's name; Tempo only when the query reads it"},
	{"", "+", ".Traces[].SpanSets[].Spans[].Name", "same"},
	{"tag", "-", ".Metrics.InspectedBytes", "tags and tag values come from block summaries and memory: Sprout reads no block bytes for them (the HTTP API says 0 too)"},
	{"search_metrics_query", "status", "", "Tempo's Search runs the spanset part of a metrics query and drops the metrics stage; Sprout refuses it with InvalidArgument, as its HTTP search answers 400"},
	{"metrics_bad", "status", "", "Tempo 3.0.3 ends a metrics query that does not parse with Unknown (its parse error is not wrapped in a status); Sprout with InvalidArgument, as for every bad query"},
}

func peerGRPCDiffAllowed(req, sign, path string) bool {
	for _, a := range peerGRPCAllowed {
		if strings.HasPrefix(req, a.req) && a.sign == sign && strings.HasPrefix(path, a.prefix) {
			return true
		}
	}
	return false
}

// peerCall is one streaming call, run against either server; it returns the messages and the status error.
type peerCall struct {
	name string
	run  func(ctx context.Context, c *tempopb.Client) ([]any, error)
}

func collect[T any](st *tempopb.Stream[T], err error) ([]any, error) {
	msgs, err := recvAll(st, err)
	out := make([]any, len(msgs))
	for i, m := range msgs {
		out[i] = m
	}
	return out, err
}

func peerGRPCCalls(start, end time.Time) []peerCall {
	s, e := uint32(start.Unix()), uint32(end.Unix())
	sn, en := uint64(start.UnixNano()), uint64(end.UnixNano())
	search := func(name, q string, limit, spss uint32) peerCall {
		return peerCall{name, func(ctx context.Context, c *tempopb.Client) ([]any, error) {
			return collect(c.Search(ctx, &tempopb.SearchRequest{Query: q, Start: s, End: e, Limit: limit, SpansPerSpanSet: spss}))
		}}
	}
	rng := func(name, q string, step time.Duration) peerCall {
		return peerCall{name, func(ctx context.Context, c *tempopb.Client) ([]any, error) {
			return collect(c.MetricsQueryRange(ctx, &tempopb.QueryRangeRequest{Query: q, Start: sn, End: en, Step: uint64(step)}))
		}}
	}
	return []peerCall{
		search("search", `{ resource.service.name = "backend" && status = error }`, 3, 2),
		search("search_all", `{ }`, 50, 0),
		search("search_select", `{ resource.service.name = "backend" } | select(span.step)`, 5, 0),
		search("search_bad", `{ .a = }`, 0, 0),
		search("search_metrics_query", `{ } | rate()`, 0, 0),
		{"tags", func(ctx context.Context, c *tempopb.Client) ([]any, error) {
			return collect(c.SearchTags(ctx, &tempopb.SearchTagsRequest{Start: s, End: e}))
		}},
		{"tags_v2", func(ctx context.Context, c *tempopb.Client) ([]any, error) {
			return collect(c.SearchTagsV2(ctx, &tempopb.SearchTagsRequest{Start: s, End: e}))
		}},
		{"tags_v2_resource", func(ctx context.Context, c *tempopb.Client) ([]any, error) {
			return collect(c.SearchTagsV2(ctx, &tempopb.SearchTagsRequest{Scope: "resource", Start: s, End: e}))
		}},
		{"tag_values", func(ctx context.Context, c *tempopb.Client) ([]any, error) {
			return collect(c.SearchTagValues(ctx, &tempopb.SearchTagValuesRequest{TagName: "service.name", Start: s, End: e}))
		}},
		{"tag_values_v2", func(ctx context.Context, c *tempopb.Client) ([]any, error) {
			return collect(c.SearchTagValuesV2(ctx, &tempopb.SearchTagValuesRequest{TagName: "resource.service.name", Start: s, End: e}))
		}},
		{"tag_values_v2_q", func(ctx context.Context, c *tempopb.Client) ([]any, error) {
			return collect(c.SearchTagValuesV2(ctx, &tempopb.SearchTagValuesRequest{TagName: "name", Query: `{ status = error }`, Start: s, End: e}))
		}},
		rng("metrics_rate_by", `{ } | rate() by (resource.service.name)`, time.Minute),
		rng("metrics_quantile", `{ } | quantile_over_time(duration, .9)`, time.Minute),
		rng("metrics_bad", `{ } | rate( by`, time.Minute),
		{"metrics_instant", func(ctx context.Context, c *tempopb.Client) ([]any, error) {
			return collect(c.MetricsQueryInstant(ctx, &tempopb.QueryInstantRequest{Query: `{ } | count_over_time() by (kind)`, Start: sn, End: en}))
		}},
	}
}

// TestPeerTempoGRPCShapes: the same streaming calls go to Tempo (stream_over_http_enabled, its HTTP port) and
// to Sprout's GRPCAPI served as the API port serves it, with the same data, through the client of
// internal/tracestore/tempopb; the status codes and the shapes of the final messages are compared, and both
// must answer with at least one message.
//
//	SPROUT_PEER_TEMPO=/path/to/tempo go test -count=1 -run PeerTempoGRPC -v ./internal/tracestore/
func TestPeerTempoGRPCShapes(t *testing.T) {
	tempo, otlp := startTempo(t)
	now := time.Now().Truncate(time.Second)
	td, _ := peerFixture(now)
	pushToTempo(t, otlp, td)
	s := openStore(t, testConfig(t.TempDir()))
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if err := s.Push(context.Background(), tn, td); err != nil {
		t.Fatal(err)
	}
	start, end := now.Add(-10*time.Minute), now.Add(time.Minute)
	testutil.Eventually(t, 120*time.Second, func() error {
		a := peerGet(t, tempo, peerRequest{path: "/api/search?q=" + url.QueryEscape(`{ }`) + fmt.Sprintf("&limit=50&start=%d&end=%d", start.Unix(), end.Unix())})
		var sr struct{ Traces []any }
		_ = json.Unmarshal(a.body, &sr)
		if a.code != 200 || len(sr.Traces) < 12 {
			return fmt.Errorf("tempo search: %d, %d traces", a.code, len(sr.Traces))
		}
		return nil
	})
	dial := func(hostport string) *tempopb.Client {
		cc, err := grpc.NewClient(hostport, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return tempopb.NewClient(cc)
	}
	tc, sc := dial(strings.TrimPrefix(tempo, "http://")), dial(serveGRPCH2C(t, s))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "X-Scope-OrgID", "single-tenant")
	var report strings.Builder
	failed := 0
	for _, call := range peerGRPCCalls(start, end) {
		if only := os.Getenv("SPROUT_PEER_ONLY"); only != "" && call.name != only {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		tm, terr := call.run(cctx, tc)
		sm, serr := call.run(cctx, sc)
		cancel()
		fmt.Fprintf(&report, "== %s: tempo %d messages, %v | sprout %d messages, %v\n", call.name, len(tm), status.Code(terr), len(sm), status.Code(serr))
		if os.Getenv("SPROUT_PEER_VERBOSE") != "" {
			tj, _ := json.Marshal(tm)
			sj, _ := json.Marshal(sm)
			fmt.Fprintf(&report, "   tempo: %.1500s\n   sprout: %.1500s\n", tj, sj)
		}
		if status.Code(terr) != status.Code(serr) {
			if !peerGRPCDiffAllowed(call.name, "status", "") {
				failed++
				fmt.Fprintf(&report, "   CODE DIFFERS: tempo %v; sprout %v\n", terr, serr)
			} else {
				fmt.Fprintf(&report, "   code differs (accepted): tempo %v; sprout %v\n", terr, serr)
			}
			continue
		}
		if terr != nil {
			fmt.Fprintf(&report, "   tempo: %s\n   sprout: %s\n", status.Convert(terr).Message(), status.Convert(serr).Message())
			continue
		}
		if len(tm) == 0 || len(sm) == 0 {
			failed++
			fmt.Fprintf(&report, "   NO MESSAGE\n")
			continue
		}
		onlyT, onlyS := diffShapes(protoShape(tm[len(tm)-1]), protoShape(sm[len(sm)-1]))
		for _, p := range onlyT {
			if !peerGRPCDiffAllowed(call.name, "-", p) {
				failed++
				fmt.Fprintf(&report, "   only tempo: %s\n", p)
			}
		}
		for _, p := range onlyS {
			if !peerGRPCDiffAllowed(call.name, "+", p) {
				failed++
				fmt.Fprintf(&report, "   only sprout: %s\n", p)
			}
		}
	}
	t.Logf("\n%s", report.String())
	if failed > 0 {
		t.Fatalf("%d differences (see the report above)", failed)
	}
}
