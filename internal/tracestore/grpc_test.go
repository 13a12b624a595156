package tracestore

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/internal/grpcwire"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tracestore/tempopb"
)

// grpcHarness serves a store's GRPCAPI on a loopback port and records how each call ended on the server.
type grpcHarness struct {
	client *tempopb.Client
	api    *GRPCAPI
	ended  chan error
}

func newGRPC(t *testing.T, s *Store) *grpcHarness {
	t.Helper()
	h := &grpcHarness{ended: make(chan error, 16)}
	h.api = &GRPCAPI{Store: s, ProgressInterval: time.Hour, Tenant: func(ctx context.Context) (string, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if slices.Contains(md.Get("x-scope-orgid"), "forbidden") {
			return "", status.Error(codes.Unauthenticated, "no org id")
		}
		return tn, nil
	}}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(grpcwire.Codec{}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			err := handler(srv, ss)
			h.ended <- err
			return err
		}))
	srv.RegisterService(&tempopb.ServiceDesc, h.api)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	h.client = tempopb.NewClient(cc)
	return h
}

// recvAll reads a stream to its end.
func recvAll[T any](st *tempopb.Stream[T], err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	var out []T
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// storeWithBlocks holds traces 1-4 in a block and 5-6 in memory, so that a search has two jobs.
func storeWithBlocks(t *testing.T) *Store {
	t.Helper()
	s := openStore(t, testConfig(t.TempDir()))
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	ctx := context.Background()
	if err := s.Push(ctx, tn, batch(1, 4, 4)); err != nil {
		t.Fatal(err)
	}
	if err := s.CutAndFlush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Push(ctx, tn, batch(5, 2, 4)); err != nil {
		t.Fatal(err)
	}
	return s
}

func httpJSON(t *testing.T, h http.Handler, path string, v any) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	if w.Code != http.StatusOK {
		t.Fatalf("%s: %d %s", path, w.Code, w.Body.String())
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("%s: %v: %s", path, err, w.Body.String())
	}
}

// TestGRPCSearchStreamsProgress: the memory job's traces arrive in a progress message before the final one,
// the progress messages together hold every trace of the final answer, and the final answer is the HTTP API's.
func TestGRPCSearchStreamsProgress(t *testing.T) {
	s := storeWithBlocks(t)
	h := newGRPC(t, s)
	msgs, err := recvAll(h.client.Search(context.Background(), &tempopb.SearchRequest{Query: "{ }", Limit: 100, SpansPerSpanSet: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 3 {
		t.Fatalf("%d messages, want progress after memory and after the block, then the final", len(msgs))
	}
	first := msgs[0]
	if len(first.Traces) != 2 || first.Metrics.CompletedJobs != 1 || first.Metrics.TotalJobs != 2 {
		t.Fatalf("first message: %d traces, jobs %d/%d; want the 2 traces in memory, jobs 1/2", len(first.Traces), first.Metrics.CompletedJobs, first.Metrics.TotalJobs)
	}
	final := msgs[len(msgs)-1]
	if final.Metrics.CompletedJobs != final.Metrics.TotalJobs || len(final.Traces) != 6 {
		t.Fatalf("final: %d traces, jobs %d/%d", len(final.Traces), final.Metrics.CompletedJobs, final.Metrics.TotalJobs)
	}
	var streamed, finalIDs []string
	for _, m := range msgs[:len(msgs)-1] {
		for _, tr := range m.Traces {
			streamed = append(streamed, tr.TraceID)
		}
	}
	for _, tr := range final.Traces {
		finalIDs = append(finalIDs, tr.TraceID)
	}
	sort.Strings(streamed)
	sort.Strings(finalIDs)
	if !slices.Equal(streamed, finalIDs) {
		t.Fatalf("progress messages held %v, final %v", streamed, finalIDs)
	}

	// The final answer is the HTTP API's, field by field.
	api := &API{Store: s, Version: "test", Tenant: func(http.ResponseWriter, *http.Request) (string, bool) { return tn, true }}
	var hj searchResponse
	httpJSON(t, http.HandlerFunc(api.search), "/api/search?limit=100&spss=2&q="+url.QueryEscape("{ }"), &hj)
	if len(hj.Traces) != len(final.Traces) {
		t.Fatalf("HTTP %d traces, gRPC %d", len(hj.Traces), len(final.Traces))
	}
	for i, want := range hj.Traces {
		got := final.Traces[i]
		if got.TraceID != want.TraceID || got.RootServiceName != want.RootServiceName || got.RootTraceName != want.RootTraceName ||
			got.DurationMs != uint32(want.DurationMs) || len(got.SpanSets) != len(want.SpanSets) || got.SpanSet == nil ||
			len(got.ServiceStats) != len(want.ServiceStats) {
			t.Fatalf("trace %d: gRPC %+v, HTTP %+v", i, got, want)
		}
		for j, sp := range want.SpanSets[0].Spans {
			g := got.SpanSets[0].Spans[j]
			if g.SpanID != sp.SpanID || g.Name != sp.Name {
				t.Fatalf("trace %d span %d: gRPC %+v, HTTP %+v", i, j, g, sp)
			}
		}
	}
}

// TestGRPCMethods: every method answers, and the same as its HTTP twin.
func TestGRPCMethods(t *testing.T) {
	s := storeWithBlocks(t)
	h := newGRPC(t, s)
	ctx := context.Background()
	api := &API{Store: s, Version: "test", Tenant: func(http.ResponseWriter, *http.Request) (string, bool) { return tn, true }}
	mux := http.NewServeMux()
	api.Register(mux)

	tags, err := recvAll(h.client.SearchTags(ctx, &tempopb.SearchTagsRequest{}))
	if err != nil || len(tags) != 1 {
		t.Fatalf("SearchTags: %d messages, %v", len(tags), err)
	}
	var tagsHTTP struct{ TagNames []string }
	httpJSON(t, mux, "/api/search/tags", &tagsHTTP)
	if !slices.Equal(tags[0].TagNames, tagsHTTP.TagNames) || len(tags[0].TagNames) == 0 {
		t.Fatalf("SearchTags %v, HTTP %v", tags[0].TagNames, tagsHTTP.TagNames)
	}

	v2, err := recvAll(h.client.SearchTagsV2(ctx, &tempopb.SearchTagsRequest{Scope: "resource"}))
	if err != nil || len(v2) != 1 || len(v2[0].Scopes) != 1 || v2[0].Scopes[0].Name != "resource" ||
		!slices.Contains(v2[0].Scopes[0].Tags, "service.name") {
		t.Fatalf("SearchTagsV2: %+v, %v", v2, err)
	}

	vals, err := recvAll(h.client.SearchTagValues(ctx, &tempopb.SearchTagValuesRequest{TagName: "service.name"}))
	if err != nil || len(vals) != 1 || !slices.Equal(vals[0].TagValues, []string{"backend", "frontend"}) {
		t.Fatalf("SearchTagValues: %+v, %v", vals, err)
	}
	vals2, err := recvAll(h.client.SearchTagValuesV2(ctx, &tempopb.SearchTagValuesRequest{TagName: "name", Query: "{ status = error }"}))
	if err != nil || len(vals2) != 1 || len(vals2[0].TagValues) == 0 || vals2[0].TagValues[0].Type != "string" {
		t.Fatalf("SearchTagValuesV2: %+v, %v", vals2, err)
	}
	var valsHTTP struct {
		TagValues []struct{ Type, Value string }
	}
	httpJSON(t, mux, "/api/v2/search/tag/name/values?q="+url.QueryEscape("{ status = error }"), &valsHTTP)
	if len(valsHTTP.TagValues) != len(vals2[0].TagValues) {
		t.Fatalf("SearchTagValuesV2 %d values, HTTP %d", len(vals2[0].TagValues), len(valsHTTP.TagValues))
	}

	start, end := baseTime.Add(-time.Minute), baseTime.Add(time.Minute)
	rng, err := recvAll(h.client.MetricsQueryRange(ctx, &tempopb.QueryRangeRequest{Query: "{ } | rate() by (resource.service.name)",
		Start: uint64(start.UnixNano()), End: uint64(end.UnixNano()), Step: uint64(30 * time.Second)}))
	if err != nil || len(rng) < 2 {
		t.Fatalf("MetricsQueryRange: %d messages, %v; want progress then the final", len(rng), err)
	}
	if len(rng[0].Series) != 0 || rng[0].Metrics == nil || rng[0].Metrics.CompletedJobs != 1 {
		t.Fatalf("MetricsQueryRange progress: %+v", rng[0])
	}
	var rngHTTP struct {
		Series []struct {
			Samples []struct {
				TimestampMs string
				Value       float64
			}
		}
	}
	httpJSON(t, mux, "/api/metrics/query_range?step=30s&q="+url.QueryEscape("{ } | rate() by (resource.service.name)")+metricsRange, &rngHTTP)
	fin := rng[len(rng)-1]
	if len(fin.Series) != 2 || len(fin.Series) != len(rngHTTP.Series) {
		t.Fatalf("MetricsQueryRange %d series, HTTP %d", len(fin.Series), len(rngHTTP.Series))
	}
	for i, ser := range rngHTTP.Series {
		if len(ser.Samples) != len(fin.Series[i].Samples) {
			t.Fatalf("series %d: %d samples, HTTP %d", i, len(fin.Series[i].Samples), len(ser.Samples))
		}
		for j, smp := range ser.Samples {
			g := fin.Series[i].Samples[j]
			if g.Value != smp.Value || strings.TrimSpace(smp.TimestampMs) != itoa(g.TimestampMs) {
				t.Fatalf("series %d sample %d: %+v, HTTP %+v", i, j, g, smp)
			}
		}
	}

	inst, err := recvAll(h.client.MetricsQueryInstant(ctx, &tempopb.QueryInstantRequest{Query: "{ } | count_over_time() by (kind)",
		Start: uint64(start.UnixNano()), End: uint64(end.UnixNano())}))
	if err != nil || len(inst) < 2 {
		t.Fatalf("MetricsQueryInstant: %d messages, %v", len(inst), err)
	}
	if f := inst[len(inst)-1]; len(f.Series) != 2 || f.Series[0].Value+f.Series[1].Value != 24 {
		t.Fatalf("MetricsQueryInstant: %+v", f)
	}
}

// TestGRPCErrors: a bad query ends the call with InvalidArgument and the HTTP API's message (with the
// position); a refused tenant with the tenant's code.
func TestGRPCErrors(t *testing.T) {
	s := storeWithBlocks(t)
	h := newGRPC(t, s)
	ctx := context.Background()
	api := &API{Store: s, Version: "test", Tenant: func(http.ResponseWriter, *http.Request) (string, bool) { return tn, true }}
	const bad = `{ .a = }`
	w := httptest.NewRecorder()
	api.search(w, httptest.NewRequest(http.MethodGet, "/api/search?q="+url.QueryEscape(bad), nil))
	if w.Code != http.StatusBadRequest {
		t.Fatalf("HTTP %d", w.Code)
	}
	httpMsg := strings.TrimSpace(w.Body.String())

	tests := []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"search", func() error {
			_, err := recvAll(h.client.Search(ctx, &tempopb.SearchRequest{Query: bad}))
			return err
		}, codes.InvalidArgument, httpMsg},
		{"search metrics query", func() error {
			_, err := recvAll(h.client.Search(ctx, &tempopb.SearchRequest{Query: "{ } | rate()"}))
			return err
		}, codes.InvalidArgument, "MetricsQueryRange"},
		{"range", func() error {
			_, err := recvAll(h.client.MetricsQueryRange(ctx, &tempopb.QueryRangeRequest{Query: "{ } | rate( by"}))
			return err
		}, codes.InvalidArgument, "invalid TraceQL query"},
		{"instant not metrics", func() error {
			_, err := recvAll(h.client.MetricsQueryInstant(ctx, &tempopb.QueryInstantRequest{Query: "{ }"}))
			return err
		}, codes.InvalidArgument, "a metrics query ends in"},
		{"scope", func() error {
			_, err := recvAll(h.client.SearchTagsV2(ctx, &tempopb.SearchTagsRequest{Scope: "nope"}))
			return err
		}, codes.InvalidArgument, "invalid scope"},
		{"tenant", func() error {
			_, err := recvAll(h.client.SearchTags(metadata.AppendToOutgoingContext(ctx, "X-Scope-OrgID", "forbidden"), &tempopb.SearchTagsRequest{}))
			return err
		}, codes.Unauthenticated, "no org id"},
		{"search limit", func() error {
			_, err := recvAll(h.client.Search(ctx, &tempopb.SearchRequest{Query: "{ }", Limit: 1 << 30}))
			return err
		}, codes.InvalidArgument, "max_search_limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
		})
	}
}

// TestGRPCCancelFreesSearch: a client that cancels a search mid-scan ends it: the cancellation reaches the
// scan (which returns Canceled rather than finishing) and the query slot is freed.
func TestGRPCCancelFreesSearch(t *testing.T) {
	s := storeWithBlocks(t)
	h := newGRPC(t, s)
	inScan := make(chan struct{})
	h.api.afterProgress = func(ctx context.Context) {
		close(inScan)
		<-ctx.Done() // hold the scan between two jobs until the client has gone
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := h.client.Search(ctx, &tempopb.SearchRequest{Query: "{ }", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	<-inScan
	if got := s.QueryLimiter().Stats().Running; got != 1 {
		t.Fatalf("%d queries running during the search, want 1", got)
	}
	cancel()
	select {
	case err := <-h.ended:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("the search ended with %v, want Canceled", err)
		}
	case <-time.After(20 * time.Second): // a bound for the test, not the measure
		t.Fatal("the search did not end after the client cancelled")
	}
	if got := s.QueryLimiter().Stats().Running; got != 0 {
		t.Fatalf("%d queries still hold a slot", got)
	}
}

// TestGRPCQueryBudget: gRPC queries take their slot in the store's query budget as HTTP ones do: with the one
// slot held by a running search, another call is refused with ResourceExhausted and a retry hint; a memory gate
// refusal is Unavailable.
func TestGRPCQueryBudget(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Limits.MaxConcurrent, cfg.Limits.MaxConcurrentPerTenant, cfg.Limits.MaxOutstandingPerTenant = 1, 1, 0
	s := openStore(t, cfg)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if err := s.Push(context.Background(), tn, batch(1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.CutAndFlush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if err := s.Push(context.Background(), tn, batch(3, 2, 3)); err != nil {
		t.Fatal(err)
	}
	h := newGRPC(t, s)
	held, release := make(chan struct{}), make(chan struct{})
	h.api.afterProgress = func(ctx context.Context) {
		select {
		case <-held:
		default:
			close(held)
			<-release
		}
	}
	ctx := context.Background()
	first := make(chan error, 1)
	go func() {
		_, err := recvAll(h.client.Search(ctx, &tempopb.SearchRequest{Query: "{ }", Limit: 100}))
		first <- err
	}()
	<-held
	_, err := recvAll(h.client.SearchTags(ctx, &tempopb.SearchTagsRequest{}))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max_outstanding_per_tenant") {
		t.Fatalf("second query: %v, want ResourceExhausted naming the limit", err)
	}
	if d, ok := refusal.RetryDelay(err); !ok || d <= 0 {
		t.Fatalf("no retry hint in %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the held search: %v", err)
	}
	s.QueryLimiter().SetGate(func(context.Context, string) error {
		return refusal.New(refusal.Overloaded, "memory", "query memory budget exceeded")
	})
	_, err = recvAll(h.client.Search(ctx, &tempopb.SearchRequest{Query: "{ }"}))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("gated query: %v, want Unavailable", err)
	}
}
