// Package memguard is the process's one view of memory: every ingest path on the API port asks it before
// decoding a request body, the store exporters ask it before taking a batch from the OTLP pipelines, and query
// handlers ask it before evaluating, so that the three signals and their queries share one budget instead of
// each finding out about the others through an out-of-memory kill.
//
// It refuses on two measures. The live Go heap (runtime/metrics' "/gc/heap/live:bytes", sampled at most every
// few milliseconds) plus the bytes admitted and not yet released must stay under a percentage of the process's
// memory limit; queries have a lower percentage than ingest, so that a heavy query is refused before ingest
// suffers. And the bytes admitted per class (ingest, queries) must stay under that class's in-flight budget,
// so that N requests that each decode to the body limit cannot all decode at once.
//
// The live heap, not the heap with its garbage, is what counts: garbage is what the collector frees as soon as
// memory is short (GOMEMLIMIT), and refusing on it is how a burst of refused requests kept an upstream memory
// limiter refusing normal ones long after the burst.
//
// It decides and accounts; it must not know any API's wire format. A refusal is a *refusal.Error for
// refusal.Overloaded naming the setting to change: retryable, as memory in flight drains within seconds (HTTP
// 503 with Retry-After, gRPC UNAVAILABLE with RetryInfo).
package memguard

import (
	"context"
	"fmt"
	"math"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// Class is what a reservation is for; each class has its own budget.
type Class int

const (
	// Ingest is writes: push bodies on the API port and batches from the OTLP pipelines.
	Ingest Class = iota
	// Query is query evaluation on any store's API.
	Query
)

func (c Class) String() string {
	if c == Query {
		return "query"
	}
	return "ingest"
}

// Budget is one class's limits, in bytes. Zero disables a check.
type Budget struct {
	// Heap: refuse while the live heap plus every class's admitted bytes would pass it.
	Heap int64
	// InFlight: refuse while this class's admitted bytes would pass it (one reservation is always admitted
	// when the class has nothing in flight, so that a request larger than the budget is slow, not impossible).
	InFlight int64
}

// Governor admits or refuses reservations of memory. Its methods are safe for concurrent use; a nil
// *Governor admits everything.
type Governor struct {
	limit   int64
	budgets [2]Budget
	keys    [2]budgetKeys
	heap    func() int64

	mu       sync.Mutex
	inflight [2]int64

	sampleAt   atomic.Int64 // unix nanoseconds of the last heap sample
	sample     atomic.Int64
	sampleEvry time.Duration

	refusals *prometheus.CounterVec
	admitted *prometheus.GaugeVec
}

// budgetKeys name the configuration keys that set a class's budgets, for refusal messages.
type budgetKeys struct{ heap, inFlight string }

// Options are what New needs besides the budgets.
type Options struct {
	// Limit is the memory limit the budgets were derived from (for messages and metrics).
	Limit int64
	// HeapLive returns the live heap in bytes; nil reads runtime/metrics. Tests inject their own.
	HeapLive func() int64
	// Registerer, when set, receives the governor's metrics.
	Registerer prometheus.Registerer
}

// New returns a governor with the given budgets for ingest and queries.
func New(ingest, query Budget, opts Options) *Governor {
	g := &Governor{
		limit:      opts.Limit,
		budgets:    [2]Budget{ingest, query},
		heap:       opts.HeapLive,
		sampleEvry: 5 * time.Millisecond,
		keys: [2]budgetKeys{
			{heap: "sprout_api.memory.ingest_limit_percentage", inFlight: "sprout_api.memory.ingest_inflight_percentage"},
			{heap: "sprout_api.memory.query_limit_percentage", inFlight: "sprout_api.memory.query_inflight_percentage"},
		},
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sprout_memory_refusals_total",
			Help: "Requests and batches refused by the memory governor, by class (ingest, query) and reason (heap, in_flight).",
		}, []string{"class", "reason"}),
		admitted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sprout_memory_admitted_bytes",
			Help: "Bytes of requests the memory governor has admitted and not yet released, by class.",
		}, []string{"class"}),
	}
	if g.heap == nil {
		g.heap = readHeapLive
	}
	if opts.Registerer != nil {
		heapGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sprout_memory_heap_live_bytes",
			Help: "The live Go heap as the memory governor last sampled it.",
		}, func() float64 { return float64(g.heapLive()) })
		limitGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sprout_memory_limit_bytes",
			Help: "The memory limit the governor's budgets derive from.",
		}, func() float64 { return float64(g.limit) })
		for _, c := range []prometheus.Collector{g.refusals, g.admitted, heapGauge, limitGauge} {
			_ = opts.Registerer.Register(c)
		}
	}
	return g
}

// Limit is the memory limit the budgets were derived from.
func (g *Governor) Limit() int64 {
	if g == nil {
		return 0
	}
	return g.limit
}

// Budget returns a class's budget.
func (g *Governor) Budget(c Class) Budget {
	if g == nil {
		return Budget{}
	}
	return g.budgets[c]
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// Ticket is one request's reservation. Grow adds to it, Release returns all of it. A nil *Ticket (no
// governor) admits everything.
type Ticket struct {
	g     *Governor
	class Class
	n     int64
}

// Ticket returns an empty reservation of class c.
func (g *Governor) Ticket(c Class) *Ticket {
	if g == nil {
		return nil
	}
	return &Ticket{g: g, class: c}
}

// Grow reserves n more bytes, or returns a *refusal.Error and reserves nothing.
func (t *Ticket) Grow(n int64) error {
	if t == nil || n <= 0 {
		return nil
	}
	if err := t.g.reserve(t.class, n); err != nil {
		return err
	}
	t.n += n
	return nil
}

// Release returns every byte the ticket holds. It may be called more than once.
func (t *Ticket) Release() {
	if t == nil || t.n == 0 {
		return
	}
	t.g.release(t.class, t.n)
	t.n = 0
}

// Admit reserves n bytes of class c and returns the function that releases them, or a *refusal.Error. It is the
// whole API a query handler needs: call it before evaluating, with an estimate of the memory the query may
// hold (for PromQL, max_samples × 16 bytes is a fair bound), and call release when the response is written.
func (g *Governor) Admit(c Class, n int64) (release func(), err error) {
	t := g.Ticket(c)
	if err := t.Grow(max(n, 1)); err != nil {
		return func() {}, err
	}
	return t.Release, nil
}

// Check refuses when the heap is already past class c's limit, reserving nothing. The store exporters call
// it before taking a batch from the pipelines: the batch is decoded already, but the store would keep it.
func (g *Governor) Check(c Class) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.checkHeap(c, 0)
}

func (g *Governor) reserve(c Class, n int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.budgets[c]
	if b.InFlight > 0 && g.inflight[c] > 0 && g.inflight[c]+n > b.InFlight {
		g.refusals.WithLabelValues(c.String(), "in_flight").Inc()
		return &refusal.Error{Reason: refusal.Overloaded, Limit: g.keys[c].inFlight, Msg: fmt.Sprintf(
			"memory: %s refused: %s of %s requests are being processed and this one needs %s more, over the %s budget (%s); retry later",
			c, mib(g.inflight[c]), c, mib(n), mib(b.InFlight), g.keys[c].inFlight)}
	}
	if err := g.checkHeap(c, n); err != nil {
		return err
	}
	g.inflight[c] += n
	g.admitted.WithLabelValues(c.String()).Set(float64(g.inflight[c]))
	return nil
}

// checkHeap runs with g.mu held.
func (g *Governor) checkHeap(c Class, n int64) error {
	b := g.budgets[c]
	if b.Heap <= 0 {
		return nil
	}
	live := g.heapLive()
	held := g.inflight[Ingest] + g.inflight[Query]
	if live+held+n <= b.Heap {
		return nil
	}
	g.refusals.WithLabelValues(c.String(), "heap").Inc()
	return &refusal.Error{Reason: refusal.Overloaded, Limit: g.keys[c].heap, Msg: fmt.Sprintf(
		"memory: %s refused: live heap %s plus %s in flight plus %s for this request is over the %s limit for %s (%s of the %s memory limit); retry later",
		c, mib(live), mib(held), mib(n), mib(b.Heap), c, g.keys[c].heap, mib(g.limit))}
}

func (g *Governor) release(c Class, n int64) {
	g.mu.Lock()
	g.inflight[c] -= n
	if g.inflight[c] < 0 {
		g.inflight[c] = 0
	}
	v := g.inflight[c]
	g.mu.Unlock()
	g.admitted.WithLabelValues(c.String()).Set(float64(v))
}

// InFlight is the bytes of class c admitted and not yet released.
func (g *Governor) InFlight(c Class) int64 {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inflight[c]
}

// heapLive samples the live heap at most every sampleEvry: runtime/metrics serialises its readers, and the
// live heap only changes at the end of a GC cycle anyway.
func (g *Governor) heapLive() int64 {
	now := time.Now().UnixNano()
	if at := g.sampleAt.Load(); at != 0 && now-at < int64(g.sampleEvry) {
		return g.sample.Load()
	}
	v := g.heap()
	g.sample.Store(v)
	g.sampleAt.Store(now)
	return v
}

var heapLiveSample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
var heapLiveMu sync.Mutex

func readHeapLive() int64 {
	heapLiveMu.Lock()
	defer heapLiveMu.Unlock()
	metrics.Read(heapLiveSample)
	if heapLiveSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	v := heapLiveSample[0].Value.Uint64()
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

type ctxKey struct{}

type ctxValue struct {
	g         *Governor
	bodyLimit int64
}

// NewContext returns ctx carrying the governor and the server's request body limit, which the decoders
// below the server read with FromContext and DecodedLimit.
func NewContext(ctx context.Context, g *Governor, bodyLimit int64) context.Context {
	return context.WithValue(ctx, ctxKey{}, ctxValue{g: g, bodyLimit: bodyLimit})
}

// FromContext returns the governor ctx carries, or nil (which admits everything).
func FromContext(ctx context.Context) *Governor {
	v, _ := ctx.Value(ctxKey{}).(ctxValue)
	return v.g
}

// DecodedLimit is the most bytes a request body may decode to: the server's body limit when ctx carries one
// (so that a snappy body is held to the limit every other content coding is held to), else def.
func DecodedLimit(ctx context.Context, def int64) int64 {
	v, _ := ctx.Value(ctxKey{}).(ctxValue)
	if v.bodyLimit > 0 && (def <= 0 || v.bodyLimit < def) {
		return v.bodyLimit
	}
	return def
}

// IngestTicket is an empty ingest reservation from the governor ctx carries (nil when it carries none).
func IngestTicket(ctx context.Context) *Ticket { return FromContext(ctx).Ticket(Ingest) }

// WireSize is what reading a request body will hold before decoding: its Content-Length, or the body limit
// when the length is unknown (chunked, or decoded by the server's content coding already).
func WireSize(ctx context.Context, contentLength int64) int64 {
	limit := DecodedLimit(ctx, 0)
	if contentLength >= 0 && (limit <= 0 || contentLength <= limit) {
		return contentLength
	}
	return limit
}
