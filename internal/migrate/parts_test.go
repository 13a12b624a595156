package migrate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Rate
		wantErr bool
	}{
		{"", Rate{}, false},
		{"0", Rate{}, false},
		{"5000", Rate{Items: 5000}, false},
		{"5000/s", Rate{Items: 5000}, false},
		{"250.5", Rate{Items: 250.5}, false},
		{"2MiB", Rate{Bytes: 2 << 20}, false},
		{"2MiB/s", Rate{Bytes: 2 << 20}, false},
		{"512KiB", Rate{Bytes: 512 << 10}, false},
		{"1.5MB/s", Rate{Bytes: 1.5e6}, false},
		{"1GiB", Rate{Bytes: 1 << 30}, false},
		{"100B", Rate{Bytes: 100}, false},
		{"-1", Rate{}, true},
		{"fast", Rate{}, true},
		{"MiB", Rate{}, true},
		{"3 lines", Rate{}, true},
	} {
		got, err := ParseRate(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPacer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rate    Rate
		batches [][2]int // items, bytes
		want    []time.Duration
	}{
		{"no limit", Rate{}, [][2]int{{1000, 1e6}, {1000, 1e6}}, nil},
		{"items", Rate{Items: 100}, [][2]int{{100, 0}, {50, 0}, {10, 0}}, []time.Duration{time.Second, 1500 * time.Millisecond}},
		{"bytes", Rate{Bytes: 1000}, [][2]int{{1, 500}, {1, 2000}, {1, 1}}, []time.Duration{500 * time.Millisecond, 2500 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			var slept []time.Duration
			p := newPacer(tc.rate)
			p.now = func() time.Time { return now }
			p.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
			for _, b := range tc.batches {
				if err := p.wait(context.Background(), b[0], b[1]); err != nil {
					t.Fatal(err)
				}
			}
			if fmt.Sprint(slept) != fmt.Sprint(tc.want) {
				t.Fatalf("slept %v, want %v", slept, tc.want)
			}
		})
	}
}

func TestHTTPErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		code       int
		retryAfter string
		retryable  bool
		wait       time.Duration
	}{
		{400, "", false, 0}, {401, "", false, 0}, {403, "", false, 0}, {404, "", false, 0}, {413, "", false, 0},
		{408, "", true, 0}, {429, "7", true, 7 * time.Second}, {500, "", true, 0}, {502, "", true, 0},
		{503, "2", true, 2 * time.Second}, {504, "", true, 0}, {501, "", false, 0}, {505, "", false, 0},
	} {
		rec := httptest.NewRecorder()
		if tc.retryAfter != "" {
			rec.Header().Set("Retry-After", tc.retryAfter)
		}
		rec.WriteHeader(tc.code)
		rec.WriteString("why")
		e := httpError("loki http://x", rec.Result())
		if e.Retryable != tc.retryable || e.RetryAfter != tc.wait || !strings.Contains(e.Error(), "loki http://x: "+fmt.Sprint(tc.code)) || !strings.HasSuffix(strings.Split(e.Error(), " (check")[0], ": why") {
			t.Errorf("%d: %+v %q", tc.code, e, e.Error())
		}
	}
}

// A refusal of the tenant is a 401 from Loki, but a 400 from Tempo's OTLP/HTTP receiver ("no org id") and from
// both for a malformed tenant: each says where to look.
func TestTenantRefusalHint(t *testing.T) {
	for _, tc := range []struct {
		code int
		body string
		hint bool
	}{
		{401, "no org id", true}, {400, "\tno org id", true}, {400, "tenant ID 'team/a' contains unsupported character '/'", true},
		{403, "forbidden", true}, {400, "entry too far behind", false}, {503, "no org id", false},
	} {
		rec := httptest.NewRecorder()
		rec.WriteHeader(tc.code)
		rec.WriteString(tc.body)
		e := httpError("OTLP http://x/v1/traces", rec.Result())
		if got := strings.Contains(e.Error(), "(check the target tenant and credentials"); got != tc.hint {
			t.Errorf("%d %q: %q, want the hint: %v", tc.code, tc.body, e.Error(), tc.hint)
		}
	}
}

// An OTLP/HTTP refusal of a protobuf request is a google.rpc.Status: its message is shown, not its bytes.
func TestOTLPStatusBody(t *testing.T) {
	b, err := proto.Marshal(&spb.Status{Code: 3, Message: "no org id"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ctype, body, want string }{
		{"application/x-protobuf", string(b), "OTLP http://x/v1/traces: 400 Bad Request: no org id (check"},
		{"text/plain", "no org id", "OTLP http://x/v1/traces: 400 Bad Request: no org id (check"},
		{"application/x-protobuf", "not a status \xff", "400 Bad Request: not a status"},
	} {
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", tc.ctype)
		rec.WriteHeader(400)
		rec.WriteString(tc.body)
		if got := httpError("OTLP http://x/v1/traces", rec.Result()).Error(); !strings.Contains(got, tc.want) {
			t.Errorf("%s %q: %q, want %q in it", tc.ctype, tc.body, got, tc.want)
		}
	}
}

func TestGRPCErrorClassification(t *testing.T) {
	withInfo, _ := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(3 * time.Second)})
	for _, tc := range []struct {
		err       error
		retryable bool
		wait      time.Duration
	}{
		{status.Error(codes.Unavailable, "down"), true, 0},
		{status.Error(codes.ResourceExhausted, "too big"), false, 0},
		{withInfo.Err(), true, 3 * time.Second},
		{status.Error(codes.InvalidArgument, "bad"), false, 0},
		{status.Error(codes.Unauthenticated, "who"), false, 0},
		{status.Error(codes.PermissionDenied, "no"), false, 0},
		{status.Error(codes.DeadlineExceeded, "slow"), true, 0},
		{errors.New("plain"), true, 0},
	} {
		e := grpcError("OTLP grpc://x", tc.err)
		if e.Retryable != tc.retryable || e.RetryAfter != tc.wait {
			t.Errorf("%v: retryable %v after %v, want %v after %v", tc.err, e.Retryable, e.RetryAfter, tc.retryable, tc.wait)
		}
	}
}

func TestParseOTLPEndpoint(t *testing.T) {
	for _, tc := range []struct{ in, kind, addr string }{
		{"http://tempo:4318", "http", "http://tempo:4318/v1/traces"},
		{"http://tempo:4318/", "http", "http://tempo:4318/v1/traces"},
		{"https://otlp.example.com/otlp/v1/traces", "http", "https://otlp.example.com/otlp/v1/traces"},
		{"grpc://tempo:4317", "grpc", "tempo:4317"},
		{"grpcs://tempo.example.com:443", "grpcs", "tempo.example.com:443"},
		{"tempo:4317", "", ""},
		{"ftp://tempo", "", ""},
		{"http://", "", ""},
	} {
		kind, addr, err := parseOTLPEndpoint(tc.in)
		if kind != tc.kind || addr != tc.addr || (err != nil) != (tc.kind == "") {
			t.Errorf("parseOTLPEndpoint(%q) = %q, %q, %v", tc.in, kind, addr, err)
		}
	}
}

func TestWithRetry(t *testing.T) {
	retryable := &TargetError{Target: "t", Status: "503", Retryable: true}
	for _, tc := range []struct {
		name      string
		errs      []error // what each attempt returns; nil after the end
		maxTime   time.Duration
		wantCalls int
		wantErr   string
		wantWaits string
	}{
		{"first try", nil, time.Minute, 1, "", "[]"},
		{"two failures", []error{retryable, retryable}, time.Minute, 3, "", "[1s 2s]"},
		{"permanent", []error{&TargetError{Target: "t", Status: "400"}}, time.Minute, 1, "t: 400", "[]"},
		{"retry-after longer", []error{&TargetError{Target: "t", Retryable: true, RetryAfter: 9 * time.Second}}, time.Minute, 2, "", "[9s]"},
		{"backoff capped", []error{retryable, retryable, retryable, retryable, retryable}, time.Hour, 6, "", "[1s 2s 4s 4s 4s]"},
		{"gives up", []error{retryable, retryable, retryable, retryable}, 5 * time.Second, 3, "gave up after retrying for 3s", "[1s 2s]"},
		{"not a target error", []error{errors.New("encode")}, time.Minute, 1, "encode", "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			var waits []time.Duration
			calls := 0
			err := withRetry(context.Background(), RetryPolicy{Initial: time.Second, Max: 4 * time.Second, MaxElapsed: tc.maxTime},
				func(_ context.Context, d time.Duration) error { waits = append(waits, d); now = now.Add(d); return nil },
				func() time.Time { return now },
				func(context.Context) error {
					calls++
					if calls <= len(tc.errs) {
						return tc.errs[calls-1]
					}
					return nil
				}, nil)
			if calls != tc.wantCalls || fmt.Sprint(waits) != tc.wantWaits || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("%d calls, waits %v, error %v; want %d calls, waits %s, error %q", calls, waits, err, tc.wantCalls, tc.wantWaits, tc.wantErr)
			}
		})
	}
}

// TestTracesOverGRPC sends the fixture's traces over OTLP/gRPC: every span arrives, with the tenant and the
// configured headers as metadata.
func TestTracesOverGRPC(t *testing.T) {
	f := writeFixture(t, fixtureStart)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	rec := &grpcSink{spans: map[string]bool{}}
	ptraceotlp.RegisterGRPCServer(srv, rec)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	s := newSink(t)
	o := f.options(s, "")
	o.Signals = []string{Traces}
	o.Traces.Endpoint = "grpc://" + lis.Addr().String()
	o.Auth = Auth{Headers: map[string]string{"X-Team": "shop"}, BearerToken: "tok"}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if len(rec.spans) != f.spans || rec.dups != 0 {
		t.Fatalf("%d spans (%d twice), want %d", len(rec.spans), rec.dups, f.spans)
	}
	if rec.md.Get("x-scope-orgid")[0] != "moved" || rec.md.Get("x-team")[0] != "shop" || rec.md.Get("authorization")[0] != "Bearer tok" {
		t.Fatalf("metadata %v", rec.md)
	}
}

type grpcSink struct {
	ptraceotlp.UnimplementedGRPCServer
	spans map[string]bool
	dups  int
	md    metadata.MD
}

func (g *grpcSink) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	g.md, _ = metadata.FromIncomingContext(ctx)
	eachSpan(req.Traces(), func(sp ptrace.Span) {
		k := sp.TraceID().String() + "/" + sp.SpanID().String()
		if g.spans[k] {
			g.dups++
		}
		g.spans[k] = true
	})
	return ptraceotlp.NewExportResponse(), nil
}

func TestBasicAuthAndHeaders(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer srv.Close()
	o := Options{Tenant: "a", Auth: Auth{BasicUser: "u", BasicPassword: "p", Headers: map[string]string{"X-Extra": "1"}}}
	if err := o.poster("loki", srv.URL).post(context.Background(), []byte("{}"), nil); err != nil {
		t.Fatal(err)
	}
	if got.Get("Authorization") != "Basic dTpw" || got.Get("X-Extra") != "1" || got.Get("X-Scope-OrgID") != "a" {
		t.Fatalf("headers %v", got)
	}
}

func TestValidate(t *testing.T) {
	base := func() Options {
		return Options{Tenant: "t", From: time.Unix(0, 0), To: time.Unix(10, 0), BatchItems: 10, Signals: []string{Logs},
			Logs: LogsOptions{Endpoint: "http://loki:3100"}}
	}
	for _, tc := range []struct {
		change func(*Options)
		want   string
	}{
		{func(*Options) {}, ""},
		{func(o *Options) { o.Tenant = "../x" }, "tenant"},
		{func(o *Options) { o.To = o.From }, "must be before"},
		{func(o *Options) { o.Signals = nil }, "signals"},
		{func(o *Options) { o.Signals = []string{"profiles"} }, "unknown signal"},
		{func(o *Options) { o.Logs.Endpoint = "loki:3100" }, "--logs-loki"},
		{func(o *Options) { o.Signals = []string{Traces} }, "--traces-otlp"},
		{func(o *Options) { o.Signals = []string{Metrics} }, "metrics: no target"},
		{func(o *Options) { o.BatchItems = 0 }, "batch size"},
	} {
		o := base()
		tc.change(&o)
		err := o.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

func TestCheckpointFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.json")
	key := RunKey{Tenant: "t", Targets: []string{"logs=b", "traces=a"}}
	cp, err := loadCheckpoint(path, key, false)
	if err != nil {
		t.Fatal(err)
	}
	st := cp.signal(Logs)
	st.markDone("u1")
	st.Current, st.Batches = "u2", 3
	if err := cp.save(); err != nil {
		t.Fatal(err)
	}
	key.Targets = []string{"traces=a", "logs=b"} // order does not matter
	cp2, err := loadCheckpoint(path, key, false)
	if err != nil {
		t.Fatal(err)
	}
	st2 := cp2.signal(Logs)
	if !st2.isDone("u1") || st2.isDone("u2") || st2.Current != "u2" || st2.Batches != 3 {
		t.Fatalf("reloaded %+v", st2)
	}
	for _, bad := range []string{"", "{", `{"version":2}`, "[]"} {
		_ = os.WriteFile(path, []byte(bad), 0o644)
		if _, err := loadCheckpoint(path, key, false); err == nil {
			t.Errorf("checkpoint %q accepted", bad)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}
