// Command logload pushes log lines to a Loki-compatible push endpoint (Sprout, Loki, VictoriaLogs) as fast as
// it can and reports the rate the server accepted. Batches are encoded before the clock starts, so the client
// spends its CPU on sending, not on building lines.
//
//	go run ./tools/logload -url http://localhost:3200/loki/api/v1/push -format protobuf -workers 4 -duration 20s
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/logstore"
)

func main() {
	var (
		url       = flag.String("url", "http://localhost:3200/loki/api/v1/push", "push endpoint")
		format    = flag.String("format", "json", "json, json-gzip or protobuf")
		workers   = flag.Int("workers", 4, "concurrent pushers")
		duration  = flag.Duration("duration", 20*time.Second, "how long to push")
		batchSize = flag.Int("batch", 500, "lines per push")
		streams   = flag.Int("streams", 10, "streams per push")
		lineSize  = flag.Int("line-size", 200, "approximate line size in bytes")
		random    = flag.Bool("random", false, "random line content (incompressible) instead of repetitive log lines")
		tenantID  = flag.String("tenant", "", "X-Scope-OrgID to send")
		batches   = flag.Int("batches", 256, "distinct pre-encoded batches per worker")
		once      = flag.Bool("once", false, "send each pre-encoded batch once and stop (for bytes-per-line measurements)")
	)
	flag.Parse()
	start := time.Now().Add(-time.Minute)
	type body struct {
		data  []byte
		lines int
	}
	pre := make([][]body, *workers)
	seq := 0
	for w := range pre {
		for i := 0; i < *batches; i++ {
			ps := makeBatch(seq, *batchSize, *streams, *lineSize, *random, start)
			seq++
			var b []byte
			switch *format {
			case "protobuf":
				b = logstore.EncodePushProto(ps)
			case "json", "json-gzip":
				b = encodeJSON(ps)
				if *format == "json-gzip" {
					var buf bytes.Buffer
					zw := gzip.NewWriter(&buf)
					_, _ = zw.Write(b)
					_ = zw.Close()
					b = buf.Bytes()
				}
			default:
				log.Fatalf("unknown -format %q", *format)
			}
			pre[w] = append(pre[w], body{b, *batchSize})
		}
	}
	var sent, failed, bytesSent atomic.Int64
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}
	began := time.Now()
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && (!*once || i < len(pre[w])); i++ {
				bd := pre[w][i%len(pre[w])]
				req, _ := http.NewRequest("POST", *url, bytes.NewReader(bd.data))
				if *format == "protobuf" {
					req.Header.Set("Content-Type", "application/x-protobuf")
				} else {
					req.Header.Set("Content-Type", "application/json")
				}
				if *format == "json-gzip" {
					req.Header.Set("Content-Encoding", "gzip")
				}
				if *tenantID != "" {
					req.Header.Set("X-Scope-OrgID", *tenantID)
				}
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					if failed.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "push refused: %d %s\n", resp.StatusCode, strings.TrimSpace(string(msg)))
					}
					continue
				}
				sent.Add(int64(bd.lines))
				bytesSent.Add(int64(len(bd.data)))
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(began).Seconds()
	fmt.Printf("lines=%d failed_pushes=%d seconds=%.1f lines_per_sec=%.0f wire_MB_per_sec=%.1f\n",
		sent.Load(), failed.Load(), el, float64(sent.Load())/el, float64(bytesSent.Load())/el/1e6)
}

var words = strings.Fields("GET POST PUT request served handler user order payment cart item checkout timeout retry cache miss hit db query slow fast ok")

func makeBatch(seq, n, streams, size int, random bool, base time.Time) []logstore.PushStream {
	r := rand.New(rand.NewSource(int64(seq)))
	out := make([]logstore.PushStream, streams)
	for s := range out {
		out[s].Labels = labels.FromStrings("service_name", fmt.Sprint("load-", s), "env", "bench")
	}
	for i := 0; i < n; i++ {
		s := i % streams
		var sb strings.Builder
		if random {
			const alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			for sb.Len() < size {
				sb.WriteByte(alpha[r.Intn(len(alpha))])
			}
		} else {
			fmt.Fprintf(&sb, "level=info caller=handler.go:%d msg=\"request served\" status=200 duration=%dms", r.Intn(300), r.Intn(900))
			for sb.Len() < size {
				sb.WriteString(" ")
				sb.WriteString(words[r.Intn(len(words))])
			}
		}
		ts := base.Add(time.Duration(seq*n+i) * time.Microsecond).UnixNano()
		out[s].Entries = append(out[s].Entries, logql.Entry{Timestamp: ts, Line: sb.String(),
			Metadata: labels.FromStrings("trace_id", fmt.Sprintf("%016x%016x", seq, i/10))})
	}
	return out
}

func encodeJSON(ps []logstore.PushStream) []byte {
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
