// Package migrate is `sprout migrate`: it copies what a Sprout backend holds (traces, metrics, logs of one
// tenant, over a time range) into other systems: traces to Tempo (or anything that takes OTLP), logs to Loki's
// push API, metrics as TSDB blocks into a Mimir bucket or by remote write to a Prometheus-compatible endpoint.
//
// It reads with the stores' own export readers, straight from the data directory and the bucket, so it runs
// with Sprout stopped or beside a running one, and writes nothing there. Every signal is cut into units (a trace
// block, a log chunk, a window of metrics) sent in a fixed order, and each unit into batches cut in a fixed way;
// a checkpoint file records what the target acknowledged, so that a killed run resumes after the last
// acknowledged batch and a second run sends nothing twice.
//
// It must not import the Collector: cmd/sprout turns the config into Options.
package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// Signals.
const (
	Traces  = "traces"
	Metrics = "metrics"
	Logs    = "logs"
)

// Options describe one migration.
type Options struct {
	// Tenant is the Sprout tenant whose data moves; TargetTenant the X-Scope-OrgID sent to the targets (empty:
	// the same).
	Tenant       string
	TargetTenant string
	// From and To bound the data moved, [From, To): spans by their trace's first start time, log lines and
	// samples by their timestamps.
	From, To time.Time
	// RangeFromCheckpoint makes a resumed run take From and To from the checkpoint, for ranges given relative
	// to now ("30d"): the first run resolves them and every resumption continues that range.
	RangeFromCheckpoint bool
	Signals             []string
	Rate                Rate
	// BatchItems is the number of spans, log lines or samples per request.
	BatchItems int
	// Checkpoint is the checkpoint file ("" keeps none: nothing resumes).
	Checkpoint string
	// ScratchDir holds downloaded metric blocks and blocks being written ("" is the system's temp directory).
	ScratchDir string
	Auth       Auth
	Retry      RetryPolicy
	// Timeout bounds one request.
	Timeout time.Duration

	Traces  TracesOptions
	Logs    LogsOptions
	Metrics MetricsOptions

	// Progress receives the progress line (rewritten in place when ProgressTTY) and retry notices.
	Progress    io.Writer
	ProgressTTY bool

	// now and sleep are the clock of retries (tests replace them).
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

// Auth is added to every request to a target.
type Auth struct {
	Headers       map[string]string
	BasicUser     string
	BasicPassword string
	BearerToken   string
}

// TracesOptions: the trace store's bucket, and the OTLP endpoint to send to: http(s)://host:4318/v1/traces
// (OTLP/HTTP protobuf) or grpc://host:4317 (grpcs:// for TLS).
type TracesOptions struct {
	Source   bucket.Config
	Endpoint string
}

// LogsOptions: the log store's bucket, and Loki's base URL (its push path /loki/api/v1/push is added).
type LogsOptions struct {
	Source   bucket.Config
	Endpoint string
}

// MetricsOptions: the metrics store's data_dir (one TSDB per tenant) and bucket, and where to write: a bucket
// in Mimir's layout (<tenant>/<block ULID>/…), a remote-write URL, or both.
type MetricsOptions struct {
	DataDir string
	// Source is the bucket blocks are shipped to; nil when the store ships none.
	Source *bucket.Config
	// TargetBucket receives blocks, one per Window.
	TargetBucket *bucket.Config
	// RemoteWrite is a Prometheus remote-write 1.0 URL (Prometheus' /api/v1/write, Mimir's /api/v1/push).
	RemoteWrite string
	// Window is the time range of one unit: one block, or one stretch of remote write (default 2h, the TSDB's
	// block range).
	Window time.Duration
}

// Count is what a run did for one signal.
type Count struct {
	Signal string
	// Items and Bytes were acknowledged by the target in this run; Skipped items were acknowledged by an earlier
	// run (the checkpoint says so) and not sent again.
	Items, Bytes, Requests int64
	Skipped                int64
	Units, SkippedUnits    int
	Retries                int
	Unit                   string // "blocks", "chunks", "windows"
	Item                   string // "spans", "lines", "samples"
}

func (c Count) String() string {
	s := fmt.Sprintf("%s: %d %s sent in %d requests (%d bytes) from %d %s", c.Signal, c.Items, c.Item, c.Requests, c.Bytes, c.Units, c.Unit)
	switch {
	case c.SkippedUnits > 0 && c.Skipped > 0:
		s += fmt.Sprintf("; skipped what an earlier run sent: %d %s, and %d %s of a partly sent one", c.SkippedUnits, c.Unit, c.Skipped, c.Item)
	case c.SkippedUnits > 0:
		s += fmt.Sprintf("; skipped what an earlier run sent: %d %s", c.SkippedUnits, c.Unit)
	case c.Skipped > 0:
		s += fmt.Sprintf("; skipped what an earlier run sent: %d %s", c.Skipped, c.Item)
	}
	if c.Retries > 0 {
		s += fmt.Sprintf("; %d retries", c.Retries)
	}
	return s
}

// Validate names the first option that is wrong.
func (o *Options) Validate() error {
	if err := tenant.Validate(o.Tenant); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	if o.TargetTenant != "" {
		if err := tenant.Validate(o.TargetTenant); err != nil {
			return fmt.Errorf("target tenant: %w", err)
		}
	}
	if !o.From.Before(o.To) {
		return fmt.Errorf("from (%s) must be before to (%s)", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	if len(o.Signals) == 0 {
		return errors.New("signals: name at least one of traces, metrics, logs")
	}
	if o.BatchItems <= 0 {
		return errors.New("batch size: must be positive")
	}
	for _, s := range o.Signals {
		switch s {
		case Traces:
			if o.Traces.Endpoint == "" {
				return errors.New("traces: no target (--traces-otlp)")
			}
			if _, _, err := parseOTLPEndpoint(o.Traces.Endpoint); err != nil {
				return fmt.Errorf("--traces-otlp: %w", err)
			}
		case Logs:
			if o.Logs.Endpoint == "" {
				return errors.New("logs: no target (--logs-loki)")
			}
			if err := checkHTTPURL(o.Logs.Endpoint); err != nil {
				return fmt.Errorf("--logs-loki: %w", err)
			}
		case Metrics:
			if o.Metrics.TargetBucket == nil && o.Metrics.RemoteWrite == "" {
				return errors.New("metrics: no target (--metrics-bucket-dir, --metrics-bucket-config or --metrics-remote-write)")
			}
			if o.Metrics.RemoteWrite != "" {
				if err := checkHTTPURL(o.Metrics.RemoteWrite); err != nil {
					return fmt.Errorf("--metrics-remote-write: %w", err)
				}
			}
			if o.Metrics.TargetBucket != nil {
				if err := o.Metrics.TargetBucket.Validate(); err != nil {
					return fmt.Errorf("metrics target bucket: %w", err)
				}
			}
			if o.Metrics.DataDir == "" && o.Metrics.Source == nil {
				return errors.New("metrics: the metrics store has neither data_dir nor bucket")
			}
		default:
			return fmt.Errorf("signals: unknown signal %q (want traces, metrics or logs)", s)
		}
	}
	return nil
}

func checkHTTPURL(u string) error {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("%q: want an http:// or https:// URL", u)
	}
	return nil
}

func (o *Options) targetTenant() string {
	if o.TargetTenant != "" {
		return o.TargetTenant
	}
	return o.Tenant
}

// unitSource is one signal's side of a migration.
type unitSource interface {
	// units lists the units to send, in the order they are sent.
	units(ctx context.Context) ([]string, error)
	// batches calls emit with each batch of a unit, always cut the same way for the same data and options.
	batches(ctx context.Context, unit string, emit func(batch) error) error
	close() error
}

// maxBatchBytes bounds a trace or log request's body, whatever --batch-size says: 4 MiB is the default gRPC
// message limit of Tempo's and Loki's receivers, and large spans or lines reach it long before 2000 items.
const maxBatchBytes = 2 << 20

// batch is one request's worth of data.
type batch struct {
	items int
	bytes int
	send  func(ctx context.Context) error
}

// Run migrates the selected signals one after the other, and returns what each did. An error stops the run
// (the checkpoint keeps what was acknowledged); the counts up to it are returned with it.
func Run(ctx context.Context, o Options) ([]Count, error) {
	if o.Retry == (RetryPolicy{}) {
		o.Retry = DefaultRetry
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Metrics.Window <= 0 {
		o.Metrics.Window = 2 * time.Hour
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.now == nil {
		o.now, o.sleep = time.Now, sleepCtx
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	signals := append([]string(nil), o.Signals...)
	order := map[string]int{Traces: 0, Metrics: 1, Logs: 2}
	sort.Slice(signals, func(i, j int) bool { return order[signals[i]] < order[signals[j]] })
	key := RunKey{Tenant: o.Tenant, TargetTenant: o.targetTenant(), FromUnixNano: o.From.UnixNano(), ToUnixNano: o.To.UnixNano(), BatchItems: o.BatchItems}
	for _, s := range signals {
		key.Targets = append(key.Targets, s+"="+o.targetName(s))
	}
	cp, err := loadCheckpoint(o.Checkpoint, key, o.RangeFromCheckpoint)
	if err != nil {
		return nil, err
	}
	o.From, o.To = time.Unix(0, cp.Run.FromUnixNano), time.Unix(0, cp.Run.ToUnixNano)
	p := &progress{w: o.Progress, tty: o.ProgressTTY, now: time.Now}
	pace := newPacer(o.Rate)
	var counts []Count
	for _, s := range signals {
		c := Count{Signal: s}
		src, err := o.open(ctx, s, &c)
		if err != nil {
			return counts, fmt.Errorf("%s: %w", s, err)
		}
		err = run(ctx, &o, src, cp.signal(s), cp, pace, p, &c)
		if cerr := src.close(); err == nil && cerr != nil {
			err = cerr
		}
		p.finish(c)
		counts = append(counts, c)
		if err != nil {
			return counts, fmt.Errorf("%s: %w", s, err)
		}
	}
	return counts, nil
}

func (o *Options) targetName(signal string) string {
	switch signal {
	case Traces:
		return o.Traces.Endpoint
	case Logs:
		return o.Logs.Endpoint
	default:
		var parts []string
		if o.Metrics.TargetBucket != nil {
			parts = append(parts, o.Metrics.TargetBucket.String())
		}
		if o.Metrics.RemoteWrite != "" {
			parts = append(parts, o.Metrics.RemoteWrite)
		}
		return strings.Join(parts, "+")
	}
}

func (o *Options) open(ctx context.Context, signal string, c *Count) (unitSource, error) {
	switch signal {
	case Traces:
		c.Unit, c.Item = "blocks", "spans"
		return openTraces(ctx, o)
	case Logs:
		c.Unit, c.Item = "chunks", "lines"
		return openLogs(ctx, o)
	default:
		c.Unit, c.Item = "windows", "samples"
		return openMetrics(ctx, o)
	}
}

// run sends one signal's units, skipping what the checkpoint says was acknowledged.
func run(ctx context.Context, o *Options, src unitSource, st *SignalState, cp *Checkpoint, pace *pacer, p *progress, c *Count) error {
	units, err := src.units(ctx)
	if err != nil {
		return err
	}
	p.total = len(units)
	for i, u := range units {
		p.unit = i
		if st.isDone(u) {
			c.SkippedUnits++
			continue
		}
		skip := 0
		if st.Current == u {
			skip = st.Batches
		}
		k := 0
		err := src.batches(ctx, u, func(b batch) error {
			k++
			if k <= skip {
				c.Skipped += int64(b.items)
				return nil
			}
			if err := pace.wait(ctx, b.items, b.bytes); err != nil {
				return err
			}
			err := withRetry(ctx, o.Retry, o.sleep, o.now, func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, o.Timeout)
				defer cancel()
				return b.send(ctx)
			}, func(err error, wait time.Duration) {
				c.Retries++
				p.note(fmt.Sprintf("%v; retrying in %s", err, wait.Round(time.Millisecond)))
			})
			if err != nil {
				return err
			}
			st.Current, st.Batches = u, k
			st.Items += int64(b.items)
			st.Bytes += int64(b.bytes)
			st.Requests++
			c.Items += int64(b.items)
			c.Bytes += int64(b.bytes)
			c.Requests++
			if err := cp.save(); err != nil {
				return err
			}
			p.update(*c)
			return nil
		})
		if err != nil {
			return err
		}
		st.markDone(u)
		c.Units++
		if err := cp.save(); err != nil {
			return err
		}
		p.update(*c)
	}
	return nil
}

// progress writes a line per signal: rewritten in place on a terminal (at most four times a second), and the
// final count on its own line everywhere.
type progress struct {
	w     io.Writer
	tty   bool
	now   func() time.Time
	last  time.Time
	unit  int
	total int
	dirty bool
}

func (p *progress) update(c Count) {
	if !p.tty {
		return
	}
	if n := p.now(); n.Sub(p.last) >= 250*time.Millisecond {
		p.last = n
		fmt.Fprintf(p.w, "\r\033[K%s: %d/%d %s, %d %s sent", c.Signal, p.unit+1, p.total, c.Unit, c.Items, c.Item)
		p.dirty = true
	}
}

func (p *progress) note(msg string) {
	if p.dirty {
		fmt.Fprint(p.w, "\r\033[K")
		p.dirty = false
	}
	fmt.Fprintln(p.w, msg)
}

// finish ends a signal's progress line; the caller prints the final counts.
func (p *progress) finish(Count) {
	if p.dirty {
		fmt.Fprint(p.w, "\r\033[K")
		p.dirty = false
	}
}

// poster sends request bodies to one HTTP target with the migration's auth.
type poster struct {
	client *http.Client
	url    string
	target string
	tenant string
	auth   Auth
}

func (o *Options) poster(name, url string) *poster {
	return &poster{client: &http.Client{}, url: url, target: name + " " + url, tenant: o.targetTenant(), auth: o.Auth}
}

func (p *poster) post(ctx context.Context, body []byte, header map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return &TargetError{Target: p.target, Msg: "bad request", Err: err}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	p.authorize(req.Header)
	resp, err := p.client.Do(req)
	if err != nil {
		return transportError(p.target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return httpError(p.target, resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return nil
}

func (p *poster) authorize(h http.Header) {
	h.Set("X-Scope-OrgID", p.tenant)
	for k, v := range p.auth.Headers {
		h.Set(k, v)
	}
	if p.auth.BearerToken != "" {
		h.Set("Authorization", "Bearer "+p.auth.BearerToken)
	} else if p.auth.BasicUser != "" {
		r := http.Request{Header: h}
		r.SetBasicAuth(p.auth.BasicUser, p.auth.BasicPassword)
	}
}
