package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/logstore"
)

// LogBody is one encoded push request.
type LogBody struct {
	Data  []byte
	Lines int
}

// LogShape says what the generated lines look like.
type LogShape struct {
	Batch    int  // lines per push
	Streams  int  // streams per push: {service_name="load-<n>", env="bench"}
	LineSize int  // approximate line size in bytes
	Random   bool // random alphanumerics (incompressible) instead of log-like lines
	// Base is the first line's timestamp; the k-th line of the run is Base + k µs, so every line is distinct.
	Base time.Time
}

// LogTraceID is the trace_id structured metadata of the lines i..i+9 of batch seq (i a multiple of 10).
func LogTraceID(seq, i int) string { return fmt.Sprintf("%016x%016x", seq, i/10) }

var words = strings.Fields("GET POST PUT request served handler user order payment cart item checkout timeout retry cache miss hit db query slow fast ok")

// LogBatch builds batch seq of a run: deterministic content, a trace_id in structured metadata per 10 lines.
func LogBatch(seq int, sh LogShape) []logstore.PushStream {
	r := rand.New(rand.NewSource(int64(seq)))
	out := make([]logstore.PushStream, sh.Streams)
	for s := range out {
		out[s].Labels = labels.FromStrings("service_name", fmt.Sprint("load-", s), "env", "bench")
	}
	for i := 0; i < sh.Batch; i++ {
		s := i % sh.Streams
		var sb strings.Builder
		if sh.Random {
			const alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			for sb.Len() < sh.LineSize {
				sb.WriteByte(alpha[r.Intn(len(alpha))])
			}
		} else {
			fmt.Fprintf(&sb, "level=info caller=handler.go:%d msg=\"request served\" status=200 duration=%dms", r.Intn(300), r.Intn(900))
			for sb.Len() < sh.LineSize {
				sb.WriteString(" ")
				sb.WriteString(words[r.Intn(len(words))])
			}
		}
		ts := sh.Base.Add(time.Duration(seq*sh.Batch+i) * time.Microsecond).UnixNano()
		out[s].Entries = append(out[s].Entries, logql.Entry{Timestamp: ts, Line: sb.String(),
			Metadata: labels.FromStrings("trace_id", LogTraceID(seq, i))})
	}
	return out
}

// EncodeLogs encodes a push in one of Loki's formats: "protobuf" (snappy), "json" or "json-gzip".
func EncodeLogs(ps []logstore.PushStream, format string) ([]byte, error) {
	switch format {
	case "protobuf":
		return logstore.EncodePushProto(ps), nil
	case "json":
		return encodeLogsJSON(ps), nil
	case "json-gzip":
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(encodeLogsJSON(ps))
		if err := zw.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	return nil, fmt.Errorf("unknown log push format %q (want protobuf, json or json-gzip)", format)
}

func encodeLogsJSON(ps []logstore.PushStream) []byte {
	var b bytes.Buffer
	b.WriteString(`{"streams":[`)
	for i, s := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"stream":{`)
		j := 0
		s.Labels.Range(func(l labels.Label) {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q:%q", l.Name, l.Value)
			j++
		})
		b.WriteString(`},"values":[`)
		for k, e := range s.Entries {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `["%d",%q,{"trace_id":%q}]`, e.Timestamp, e.Line, e.Metadata.Get("trace_id"))
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// PrepareLogBodies encodes perWorker distinct batches for each of workers senders; batch numbers run
// 0, 1, 2, … over all workers, so LogTraceID(seq, i) names lines of the run.
func PrepareLogBodies(workers, perWorker int, sh LogShape, format string) ([][]LogBody, error) {
	pre := make([][]LogBody, workers)
	seq := 0
	for w := range pre {
		for i := 0; i < perWorker; i++ {
			b, err := EncodeLogs(LogBatch(seq, sh), format)
			if err != nil {
				return nil, err
			}
			seq++
			pre[w] = append(pre[w], LogBody{b, sh.Batch})
		}
	}
	return pre, nil
}

// LogLoad pushes pre-encoded bodies to a Loki-compatible push endpoint (Sprout, Loki, VictoriaLogs).
type LogLoad struct {
	URL      string
	Format   string // as EncodeLogs, for the headers
	Tenant   string
	Duration time.Duration // stop after this long (0: no bound; needs Once)
	Once     bool          // send each body once and stop
	Bodies   [][]LogBody   // per worker
}

// LogResult is what a LogLoad measured on the client side.
type LogResult struct {
	Lines        int64 // lines acknowledged (2xx)
	FailedPushes int64
	Bytes        int64 // body bytes acknowledged
	Elapsed      time.Duration
	ClientCPU    float64
	FirstErr     string
}

// Run pushes from one goroutine per worker until Duration passes or, with Once, every body was sent.
func (l LogLoad) Run(ctx context.Context) (LogResult, error) {
	if l.Duration <= 0 && !l.Once {
		return LogResult{}, fmt.Errorf("a log load needs a duration or Once")
	}
	var sent, failed, bytesSent atomic.Int64
	var firstErr atomic.Value
	var deadline time.Time
	if l.Duration > 0 {
		deadline = time.Now().Add(l.Duration)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(l.Bodies)}}
	var wg sync.WaitGroup
	cpu0, began := SelfCPU(), time.Now()
	for w := range l.Bodies {
		wg.Add(1)
		go func(bodies []LogBody) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) && (!l.Once || i < len(bodies)); i++ {
				bd := bodies[i%len(bodies)]
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.URL, bytes.NewReader(bd.Data))
				if l.Format == "protobuf" {
					req.Header.Set("Content-Type", "application/x-protobuf")
				} else {
					req.Header.Set("Content-Type", "application/json")
				}
				if l.Format == "json-gzip" {
					req.Header.Set("Content-Encoding", "gzip")
				}
				if l.Tenant != "" {
					req.Header.Set("X-Scope-OrgID", l.Tenant)
				}
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("push refused: %d %s", resp.StatusCode, strings.TrimSpace(string(msg))))
					continue
				}
				sent.Add(int64(bd.Lines))
				bytesSent.Add(int64(len(bd.Data)))
			}
		}(l.Bodies[w])
	}
	wg.Wait()
	res := LogResult{Lines: sent.Load(), FailedPushes: failed.Load(), Bytes: bytesSent.Load(),
		Elapsed: time.Since(began), ClientCPU: SelfCPU() - cpu0}
	if e, ok := firstErr.Load().(string); ok {
		res.FirstErr = e
	}
	return res, nil
}
