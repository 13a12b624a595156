package diff

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"time"
)

// logEntry is one generated line of one stream.
type logEntry struct {
	ts   time.Time
	line string
	meta map[string]string // structured metadata
}

type logStream struct {
	labels  map[string]string
	entries []logEntry
}

// The generated log data spans logSpan after base; queries ask [base-1m, base+logSpan+1m].
const logSpan = 40 * time.Minute

var (
	logUsers   = []string{"u1", "u12", "u7", "alice", "bob", "zoë"}
	logPaths   = []string{"/api/orders", "/api/cart", "/api/pay", "/healthz", "/api/users/42"}
	logMethods = []string{"GET", "POST", "PUT", "DELETE"}
	logMsgs    = []string{"placed order", "payment failed", "cache miss", "café ☕ served", "日本語のメッセージ", "retry 🚀 launched", "timeout talking to db", "ok"}
	logLevels  = []string{"debug", "info", "info", "info", "warn", "error"}
)

// genLogs builds the data set from seed: four services in two environments, each service writing one format
// (logfmt, JSON, plain access-log lines, and a mix), trace ids as structured metadata on two of them, unicode in
// labels and lines, a few lines of 20 KB, about one line in twenty sharing the timestamp of the line before,
// and edgeStream.
func genLogs(seed int64, base time.Time) []logStream {
	r := rand.New(rand.NewSource(seed))
	var out []logStream
	for _, svc := range []string{"checkout", "payments", "frontend", "ünïcode-svc"} {
		for _, env := range []string{"prod", "dev"} {
			s := logStream{labels: map[string]string{"service_name": svc, "env": env, "job": "diff/" + svc}}
			n := 120 + r.Intn(80)
			var ts []time.Duration
			for i := 0; i < n; i++ {
				ts = append(ts, time.Duration(r.Int63n(int64(logSpan/time.Millisecond)))*time.Millisecond)
			}
			sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
			for i := 0; i < n; i++ {
				if i > 0 && r.Intn(20) == 0 {
					ts[i] = ts[i-1] // a duplicate timestamp with a different line
				}
				format := map[string]string{"checkout": "logfmt", "payments": "json", "frontend": "plain"}[svc]
				if format == "" {
					format = []string{"logfmt", "json", "plain"}[r.Intn(3)]
				}
				e := logEntry{ts: base.Add(ts[i]), line: genLine(r, format, i)}
				if svc == "checkout" || svc == "payments" {
					e.meta = map[string]string{"trace_id": fmt.Sprintf("%032x", r.Uint64()%16), "span_id": fmt.Sprintf("%016x", r.Uint64())}
				} else if r.Intn(2) == 0 {
					e.meta = map[string]string{"pod": fmt.Sprintf("pod-%d", r.Intn(3))}
				}
				s.entries = append(s.entries, e)
			}
			out = append(out, s)
		}
	}
	return append(out, edgeStream(base))
}

// edgeStream holds the edge cases of time on purpose: a line exactly on every minute of the data (the queries'
// step grid, so each lies on the closed end of one window and the open start of the next), pairs of lines at
// one nanosecond (different text: both kept; the same text twice: one kept), and the whole stream pushed newest
// first (out of order).
func edgeStream(base time.Time) logStream {
	s := logStream{labels: map[string]string{"service_name": "edge-svc", "env": "prod", "job": "diff/edge-svc"}}
	for k := 0; k <= int(logSpan/time.Minute); k++ {
		at := base.Add(time.Duration(k) * time.Minute)
		level := logLevels[k%len(logLevels)]
		s.entries = append(s.entries, logEntry{ts: at, line: fmt.Sprintf(`level=%s msg="on the minute" status=%d seq=%d latency=%d.5`, level, 200+k%3*100, k, k)})
		if k%10 == 0 {
			s.entries = append(s.entries,
				logEntry{ts: at, line: fmt.Sprintf(`level=error msg="same nanosecond" status=500 seq=%d`, k)},
				logEntry{ts: at.Add(time.Nanosecond), line: "duplicate ☕ line"},
				logEntry{ts: at.Add(time.Nanosecond), line: "duplicate ☕ line"})
		}
	}
	for i, j := 0, len(s.entries)-1; i < j; i, j = i+1, j-1 {
		s.entries[i], s.entries[j] = s.entries[j], s.entries[i]
	}
	return s
}

func genLine(r *rand.Rand, format string, i int) string {
	level := logLevels[r.Intn(len(logLevels))]
	status := []int{200, 200, 200, 201, 204, 301, 404, 429, 500, 503}[r.Intn(10)]
	durMs := r.Intn(2000)
	size := r.Intn(5000)
	user := logUsers[r.Intn(len(logUsers))]
	msg := logMsgs[r.Intn(len(logMsgs))]
	path := logPaths[r.Intn(len(logPaths))]
	method := logMethods[r.Intn(len(logMethods))]
	var line string
	switch format {
	case "logfmt":
		line = fmt.Sprintf(`level=%s msg=%q user=%s method=%s path=%s status=%d duration=%dms size=%.1fKB latency=%.3f seq=%d`,
			level, msg, user, method, path, status, durMs, float64(size)/1000, float64(durMs)/1000, i)
	case "json":
		b, _ := json.Marshal(map[string]any{
			"level": level, "msg": msg, "status": status, "latency_ms": float64(durMs) / 10, "bytes": size, "seq": i,
			"user": map[string]any{"id": user, "country": []string{"FR", "DE", "JP"}[r.Intn(3)]},
			"tags": []string{"a", "b"}, "request": map[string]any{"method": method, "path": path},
		})
		line = string(b)
	default:
		a, b := r.Intn(4), r.Intn(255)
		// The client is an IPv4 address, an IPv6 one every third line and an IPv4-mapped one every seventh, so
		// that ip() filters meet both families (drawn from the same numbers: the rest of the data is unchanged).
		client := fmt.Sprintf("10.0.%d.%d", a, b)
		switch {
		case i%7 == 5:
			client = "::ffff:" + client
		case i%3 == 1:
			client = fmt.Sprintf("2001:db8:%x::%x", a, b)
		}
		line = fmt.Sprintf(`%s - - "%s %s HTTP/1.1" %d %d %.3f %s %s`,
			client, method, path, status, size, float64(durMs)/1000, strings.ToUpper(level), msg)
	}
	if r.Intn(100) == 0 {
		line += " pad=" + strings.Repeat("x", 20000)
	}
	return line
}

// lokiPush renders streams as Loki's JSON push body.
func lokiPush(streams []logStream) []byte {
	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][]any           `json:"values"`
	}
	var body struct {
		Streams []stream `json:"streams"`
	}
	for _, s := range streams {
		st := stream{Stream: s.labels}
		for _, e := range s.entries {
			v := []any{fmt.Sprint(e.ts.UnixNano()), e.line}
			if e.meta != nil {
				v = append(v, e.meta)
			}
			st.Values = append(st.Values, v)
		}
		body.Streams = append(body.Streams, st)
	}
	b, _ := json.Marshal(body)
	return b
}
