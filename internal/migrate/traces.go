package migrate

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/tracestore"
)

// openSourceBucket opens a store's bucket for reading only: a filesystem bucket must exist and is not written
// to (bucket.New would create it and probe that it is writable); S3 goes through bucket.New, whose probe only
// reads.
func openSourceBucket(ctx context.Context, cfg bucket.Config) (objstore.Bucket, error) {
	if cfg.Backend == bucket.BackendS3 {
		return bucket.New(ctx, cfg, zap.NewNop())
	}
	if cfg.Filesystem.Dir == "" {
		return nil, fmt.Errorf("bucket %s: no directory", cfg.String())
	}
	if st, err := os.Stat(cfg.Filesystem.Dir); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.String(), err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("bucket %s: not a directory", cfg.String())
	}
	b, err := filesystem.NewBucket(cfg.Filesystem.Dir)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", cfg.String(), err)
	}
	if cfg.Prefix != "" {
		return objstore.NewPrefixedBucket(b, strings.TrimSuffix(cfg.Prefix, "/")), nil
	}
	return b, nil
}

// parseOTLPEndpoint reads --traces-otlp: http(s)://… is OTLP/HTTP to that URL (/v1/traces added when the URL
// has no path), grpc://host:port or grpcs://host:port is OTLP/gRPC.
func parseOTLPEndpoint(s string) (kind, addr string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("%q: want http(s)://host:port[/path] or grpc(s)://host:port", s)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		return "http", u.String(), nil
	case "grpc", "grpcs":
		return u.Scheme, u.Host, nil
	}
	return "", "", fmt.Errorf("%q: scheme %q is not http, https, grpc or grpcs", s, u.Scheme)
}

type traceSource struct {
	o      *Options
	bkt    objstore.Bucket
	blocks map[string]tracestore.ExportBlock
	send   func(ctx context.Context, req ptraceotlp.ExportRequest, body []byte) error
	conn   *grpc.ClientConn
}

func openTraces(ctx context.Context, o *Options) (unitSource, error) {
	bkt, err := openSourceBucket(ctx, o.Traces.Source)
	if err != nil {
		return nil, fmt.Errorf("trace store: %w", err)
	}
	t := &traceSource{o: o, bkt: bkt}
	kind, addr, _ := parseOTLPEndpoint(o.Traces.Endpoint)
	target := "OTLP " + o.Traces.Endpoint
	switch kind {
	case "http":
		p := o.poster("OTLP", addr)
		t.send = func(ctx context.Context, req ptraceotlp.ExportRequest, body []byte) error {
			return p.post(ctx, body, map[string]string{"Content-Type": "application/x-protobuf"})
		}
	default:
		creds := insecure.NewCredentials()
		if kind == "grpcs" {
			creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			_ = bkt.Close()
			return nil, fmt.Errorf("OTLP gRPC client for %s: %w", addr, err)
		}
		t.conn = conn
		client := ptraceotlp.NewGRPCClient(conn)
		md := metadata.MD{}
		h := map[string][]string{}
		(&poster{tenant: o.targetTenant(), auth: o.Auth}).authorize(h)
		for k, v := range h {
			md.Set(strings.ToLower(k), v...)
		}
		t.send = func(ctx context.Context, req ptraceotlp.ExportRequest, _ []byte) error {
			resp, err := client.Export(metadata.NewOutgoingContext(ctx, md), req)
			if err != nil {
				return grpcError(target, err)
			}
			if ps := resp.PartialSuccess(); ps.RejectedSpans() > 0 {
				return &TargetError{Target: target, Status: "partial success", Msg: fmt.Sprintf("%d spans rejected: %s", ps.RejectedSpans(), ps.ErrorMessage())}
			}
			return nil
		}
	}
	return t, nil
}

func (t *traceSource) units(ctx context.Context) ([]string, error) {
	blocks, err := tracestore.ExportBlocks(ctx, t.bkt, t.o.Tenant)
	if err != nil {
		return nil, fmt.Errorf("trace store: %w", err)
	}
	from, to := uint64(t.o.From.UnixNano()), uint64(t.o.To.UnixNano())
	t.blocks = map[string]tracestore.ExportBlock{}
	var ids []string
	for _, b := range blocks {
		if b.EndUnixNano < from || b.StartUnixNano >= to {
			continue
		}
		t.blocks[b.ULID] = b
		ids = append(ids, b.ULID)
	}
	return ids, nil
}

// batches cuts a block into requests of whole traces, up to BatchItems spans and maxBatchBytes each (a larger
// trace goes alone).
// A trace belongs to the range when its earliest span starts in it, so that adjacent ranges never split one.
func (t *traceSource) batches(ctx context.Context, unit string, emit func(batch) error) error {
	from, to := pcommon.Timestamp(t.o.From.UnixNano()), pcommon.Timestamp(t.o.To.UnixNano())
	cur := ptrace.NewTraces()
	curBytes := 0
	var sizer ptrace.ProtoMarshaler
	flush := func() error {
		n := cur.SpanCount()
		if n == 0 {
			return nil
		}
		req := ptraceotlp.NewExportRequestFromTraces(cur)
		body, err := req.MarshalProto()
		if err != nil {
			return fmt.Errorf("encode OTLP request: %w", err)
		}
		cur, curBytes = ptrace.NewTraces(), 0
		return emit(batch{items: n, bytes: len(body), send: func(ctx context.Context) error { return t.send(ctx, req, body) }})
	}
	err := tracestore.ExportTraces(ctx, t.bkt, t.o.Tenant, unit, func(_ pcommon.TraceID, td ptrace.Traces) error {
		if first := firstStart(td); first < from || first >= to {
			return nil
		}
		size := sizer.TracesSize(td)
		if n := td.SpanCount(); cur.SpanCount() > 0 && (cur.SpanCount()+n > t.o.BatchItems || curBytes+size > maxBatchBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		td.ResourceSpans().MoveAndAppendTo(cur.ResourceSpans())
		curBytes += size
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

func firstStart(td ptrace.Traces) pcommon.Timestamp {
	first := pcommon.Timestamp(^uint64(0))
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sp := sss.At(j).Spans()
			for k := 0; k < sp.Len(); k++ {
				if ts := sp.At(k).StartTimestamp(); ts < first {
					first = ts
				}
			}
		}
	}
	return first
}

func (t *traceSource) close() error {
	if t.conn != nil {
		_ = t.conn.Close()
	}
	return t.bkt.Close()
}
