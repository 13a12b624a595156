package logstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// PushStream is one stream of a push: its labels and its entries.
type PushStream struct {
	Labels  labels.Labels
	Entries []logql.Entry
}

// Store is the log store. All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	logger *zap.Logger
	bkt    bucket.Bucket
	wal    *wal
	cache  *chunkCache
	engine *logql.Engine
	// queries admits the API's queries (timeout, concurrency, queue).
	queries *querylimit.Limiter

	ingestMu   sync.RWMutex // pushes hold it shared; WAL rotation takes it exclusively
	mu         sync.RWMutex
	tenants    map[string]*tenantDB
	maxTenants atomic.Int64 // max_tenants of sprout_api; 0: no limit

	damaged sync.Map // chunk key -> struct{}: chunks already reported undecodable

	tailMu  sync.Mutex
	tailers map[*Tailer]struct{}

	stop    chan struct{}
	done    chan struct{}
	started bool
	// headBytes is the line bytes in all heads; over MaxHeadBytes a flush is requested early.
	headBytes atomic.Int64
	// walBytes is what the WAL took since the last checkpoint's rotation.
	walBytes atomic.Int64
	// flushNow requests an early flush: a head reached the chunk size, or all heads are over MaxHeadBytes.
	flushNow chan struct{}
	closeErr error
	closed   sync.Once
	now      func() time.Time
	// afterIndexHook, when set (tests), runs after a flush wrote its chunks and index and before the WAL
	// checkpoint; an error stops the flush there, as a crash would.
	afterIndexHook func() error

	m storeMetrics
}

type storeMetrics struct {
	lines, bytes   *prometheus.CounterVec
	discarded      *prometheus.CounterVec
	chunksFlushed  prometheus.Counter
	chunkBytes     prometheus.Counter
	streams        *prometheus.GaugeVec
	flushFailures  prometheus.Counter
	retentionDrops prometheus.Counter
	// indexLoadFailures counts, per tenant, chunk index files (or a whole tenant's index) that could not be
	// loaded at start; everything else starts.
	indexLoadFailures *prometheus.CounterVec
}

type tenantDB struct {
	id       string
	mu       sync.RWMutex
	streams  map[uint64][]*stream
	postings map[string]map[string][]*stream
	count    int
	limiter  *rate.Limiter
}

type stream struct {
	fp  uint64
	lbs labels.Labels

	mu sync.Mutex
	// The head: sealed compressed blocks (oldest first), then the open tail of decoded entries.
	blocks     []headBlock
	tail       []logql.Entry
	tailBytes  int
	headLen    int // entries in blocks and tail
	headBytes  int // line bytes in blocks and tail
	headFirst  time.Time
	lastAppend time.Time
	lastTs     int64
	lastLine   string
	mark       int
	chunks     []*chunkMeta
	// flushedSeg is the highest WALSeg of the stream's chunks at open: WAL records of this stream from before
	// that segment are already in chunks.
	flushedSeg int
}

// chunkMeta is one chunk's entry in the index.
type chunkMeta struct {
	Stream  labels.Labels `json:"stream"`
	Key     string        `json:"key"`
	MinT    int64         `json:"minT"`
	MaxT    int64         `json:"maxT"`
	Entries int           `json:"entries"`
	Bytes   int           `json:"bytes"`
	Size    int           `json:"size"`
	Bloom   []byte        `json:"bloom,omitempty"`
	// WALSeg is the WAL segment the flush that wrote this chunk rotated to: every line of the chunk was
	// written to the WAL before that segment. Replay skips a stream's records from before the newest WALSeg of
	// its chunks, so a crash between a flush's upload and its WAL checkpoint does not store lines twice.
	WALSeg int `json:"walSeg,omitempty"`
}

// Options are a Store's collaborators.
type Options struct {
	Logger     *zap.Logger
	Registerer prometheus.Registerer
	// Now is the clock, for tests.
	Now func() time.Time
}

// Open opens (or creates) the store: it loads the index from the bucket and replays the WAL. Background
// flushing, retention and compaction start with Start.
func Open(ctx context.Context, cfg Config, bkt bucket.Bucket, opts Options) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("log store config: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{
		cfg: cfg, logger: opts.Logger, bkt: bkt, cache: newChunkCache(cfg.ChunkCacheSize),
		engine:  &logql.Engine{Limits: logql.Limits{MaxSeries: cfg.Limits.MaxQuerySeries, MaxBytesRead: cfg.Limits.MaxQueryBytesRead, MaxSamples: cfg.Limits.MaxFetchedSamples}},
		queries: querylimit.New(cfg.Limits.queryLimits()),
		tenants: map[string]*tenantDB{}, tailers: map[*Tailer]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{}), now: opts.Now, flushNow: make(chan struct{}, 1),
	}
	s.initMetrics(opts.Registerer)
	if err := s.loadIndex(ctx); err != nil {
		return nil, err
	}
	minSeg := 0
	for _, td := range s.tenants {
		for _, sts := range td.streams {
			for _, st := range sts {
				if st.flushedSeg > minSeg {
					minSeg = st.flushedSeg
				}
			}
		}
	}
	// New segments must not number below a chunk's WALSeg (a WAL directory removed by hand restarts at 1),
	// or replay would take their records for already flushed ones.
	w, err := openWAL(path.Join(cfg.Dir, "wal"), cfg.WAL, minSeg)
	if err != nil {
		return nil, err
	}
	s.wal = w
	start := time.Now()
	skipped := 0
	n, damaged, err := w.replay(func(pos int, b []byte) error {
		r, err := decodeWALRecord(b)
		if err != nil {
			s.logger.Warn("Skipping unreadable WAL record", zap.Error(err))
			return nil
		}
		td := s.tenant(r.tenant)
		for _, ws := range r.streams {
			st := td.getOrCreate(ws.labels)
			if pos < st.flushedSeg {
				// Already in a chunk: the flush uploaded it but the process stopped before the checkpoint.
				skipped += len(ws.entries)
				continue
			}
			st.mu.Lock()
			before := st.headBytes
			st.append(ws.entries, s.now())
			s.headBytes.Add(int64(st.headBytes - before))
			st.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		_ = w.close()
		return nil, err
	}
	for _, d := range damaged {
		s.logger.Error("Log store WAL segment is corrupt; the records after the damage in this file are lost", zap.String("damage", d))
	}
	if skipped > 0 {
		s.logger.Info("Log store WAL replay skipped lines already in chunks (the last flush stopped before its checkpoint)", zap.Int("lines", skipped))
	}
	s.logger.Info("Log store WAL replayed", zap.Int("records", n), zap.Duration("took", time.Since(start)))
	return s, nil
}

func (s *Store) initMetrics(reg prometheus.Registerer) {
	s.m = storeMetrics{
		lines:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sprout_logs_ingested_lines_total", Help: "Log lines accepted, by tenant."}, []string{"tenant"}),
		bytes:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sprout_logs_ingested_bytes_total", Help: "Log line bytes accepted, by tenant."}, []string{"tenant"}),
		discarded:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sprout_logs_discarded_lines_total", Help: "Log lines refused, by tenant and the limit or check that refused them."}, []string{"tenant", "reason"}),
		chunksFlushed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_logs_chunks_flushed_total", Help: "Chunks written to the bucket."}),
		chunkBytes:     prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_logs_chunk_bytes_flushed_total", Help: "Compressed chunk bytes written to the bucket."}),
		streams:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sprout_logs_streams", Help: "Streams known to the log store, by tenant."}, []string{"tenant"}),
		flushFailures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_logs_flush_failures_total", Help: "Chunk flushes that failed and will be retried."}),
		retentionDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_logs_retention_deleted_chunks_total", Help: "Chunks deleted by retention."}),
		indexLoadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sprout_logs_index_load_failures_total",
			Help: "Chunk index files (or a tenant's whole index) that could not be loaded at start: their chunks are not queried; everything else started."}, []string{"tenant"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.m.lines, s.m.bytes, s.m.discarded, s.m.chunksFlushed, s.m.chunkBytes, s.m.streams, s.m.flushFailures, s.m.retentionDrops, s.m.indexLoadFailures, s.queries.Collector("logs")} {
			if err := reg.Register(c); err != nil {
				s.logger.Warn("Cannot register log store metric", zap.Error(err))
			}
		}
	}
}

// Start runs flushing, retention and compaction until Close.
func (s *Store) Start() {
	s.started = true
	go s.loop()
}

func (s *Store) loop() {
	defer close(s.done)
	flush := time.NewTicker(s.cfg.FlushCheckPeriod)
	defer flush.Stop()
	compactEvery := s.cfg.CompactionInterval
	if compactEvery <= 0 {
		compactEvery = time.Hour
	}
	compact := time.NewTicker(compactEvery)
	defer compact.Stop()
	var earlyFailed time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-flush.C:
			if err := s.Flush(context.Background(), false); err != nil {
				s.logger.Warn("Log flush failed; will retry", zap.Error(err))
			}
		case <-s.flushNow:
			// After a failed early flush, wait for the next tick: pushes would otherwise retry it back to back
			// against a bucket that is down.
			if s.now().Sub(earlyFailed) < s.cfg.FlushCheckPeriod {
				continue
			}
			if err := s.flush(context.Background(), false, true); err != nil {
				earlyFailed = s.now()
				s.logger.Warn("Log flush failed; will retry", zap.Error(err))
			}
		case <-compact.C:
			if err := s.Compact(context.Background()); err != nil {
				s.logger.Warn("Log compaction failed; will retry", zap.Error(err))
			}
		}
	}
}

// Close stops background work, flushes every head to the bucket and closes the WAL.
func (s *Store) Close(ctx context.Context) error {
	s.closed.Do(func() {
		close(s.stop)
		if s.started {
			<-s.done
		}
		err := s.Flush(ctx, true)
		if e := s.wal.close(); err == nil {
			err = e
		}
		s.closeErr = err
	})
	return s.closeErr
}

// SetMaxTenants sets the number of tenants beyond which a push naming a new one is refused (0: no limit).
func (s *Store) SetMaxTenants(n int) { s.maxTenants.Store(int64(n)) }

// admit is tenant for a push: the id is validated and a new tenant counts against max_tenants.
func (s *Store) admit(id string) (*tenantDB, error) {
	if err := tenant.Validate(id); err != nil {
		return nil, err
	}
	return s.tenantLimited(id, int(s.maxTenants.Load()))
}

// tenant returns the tenant's state, creating it (start-up and WAL replay: no limit).
func (s *Store) tenant(id string) *tenantDB {
	td, _ := s.tenantLimited(id, 0)
	return td
}

// tenantLimited returns the tenant's state, creating it unless max (> 0) tenants exist already.
func (s *Store) tenantLimited(id string, max int) (*tenantDB, error) {
	s.mu.RLock()
	td := s.tenants[id]
	s.mu.RUnlock()
	if td != nil {
		return td, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if td = s.tenants[id]; td == nil {
		if err := tenant.CheckCount(id, len(s.tenants), max, "log store"); err != nil {
			return nil, err
		}
		lim := s.cfg.Limits
		var l *rate.Limiter
		if lim.IngestionRateMB > 0 {
			burst := int(lim.IngestionBurstSizeMB * (1 << 20))
			if burst <= 0 {
				burst = int(lim.IngestionRateMB * (1 << 20))
			}
			l = rate.NewLimiter(rate.Limit(lim.IngestionRateMB*(1<<20)), burst)
		}
		td = &tenantDB{id: id, streams: map[uint64][]*stream{}, postings: map[string]map[string][]*stream{}, limiter: l}
		s.tenants[id] = td
	}
	return td, nil
}

func (s *Store) tenantIfExists(id string) *tenantDB {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tenants[id]
}

func (td *tenantDB) lookup(lbs labels.Labels, h uint64) *stream {
	for _, st := range td.streams[h] {
		if labels.Equal(st.lbs, lbs) {
			return st
		}
	}
	return nil
}

func (td *tenantDB) getOrCreate(lbs labels.Labels) *stream {
	h := lbs.Hash()
	td.mu.RLock()
	st := td.lookup(lbs, h)
	td.mu.RUnlock()
	if st != nil {
		return st
	}
	td.mu.Lock()
	defer td.mu.Unlock()
	return td.createLocked(lbs, h)
}

func (td *tenantDB) createLocked(lbs labels.Labels, h uint64) *stream {
	if st := td.lookup(lbs, h); st != nil {
		return st
	}
	st := &stream{fp: h, lbs: lbs}
	td.streams[h] = append(td.streams[h], st)
	td.count++
	lbs.Range(func(l labels.Label) {
		m := td.postings[l.Name]
		if m == nil {
			m = map[string][]*stream{}
			td.postings[l.Name] = m
		}
		m[l.Value] = append(m[l.Value], st)
	})
	return st
}

// append adds entries to the head; st.mu must be held. Exact duplicates of the previous line (same timestamp
// and text) are dropped, as Loki does.
func (st *stream) append(es []logql.Entry, now time.Time) {
	for _, e := range es {
		if e.Timestamp == st.lastTs && e.Line == st.lastLine && st.headLen > 0 {
			continue
		}
		if st.headLen == 0 {
			st.headFirst = now
		}
		st.tail = append(st.tail, e)
		st.tailBytes += len(e.Line)
		st.headBytes += len(e.Line)
		st.headLen++
		st.lastTs, st.lastLine = e.Timestamp, e.Line
	}
	st.lastAppend = now
	if st.tailBytes >= headBlockBytes {
		st.seal()
	}
}

// Push validates entries against the tenant's limits, writes the accepted ones to the WAL (durable per the
// fsync policy before it returns) and adds them to the heads. Refused entries are reported in a *refusal.Error
// (Invalid for bad entries, Partial for the stream limit, RateLimited for the ingestion rate, which refuses the
// whole push); the rest of the batch is still accepted, as Loki does.
func (s *Store) Push(ctx context.Context, tenantID string, streams []PushStream) error {
	td, err := s.admit(tenantID)
	if err != nil {
		return err // a *refusal.Error: a malformed tenant id, or one over max_tenants
	}
	lim := s.cfg.Limits
	now := s.now()
	var total, lines int
	for _, ps := range streams {
		for _, e := range ps.Entries {
			total += len(e.Line)
			lines++
		}
	}
	if td.limiter != nil && total > 0 && !td.limiter.AllowN(now, total) {
		s.m.discarded.WithLabelValues(tenantID, "rate_limited").Add(float64(lines))
		return &refusal.Error{Reason: refusal.RateLimited, Limit: "ingestion_rate_mb", Msg: fmt.Sprintf(
			"Ingestion rate limit exceeded for user %s (limit: %d bytes/sec) while attempting to ingest '%d' lines totaling '%d' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased (ingestion_rate_mb)",
			tenantID, int(lim.IngestionRateMB*(1<<20)), lines, total)}
	}
	var (
		errs     []string
		reason   = refusal.Invalid
		rec      = walRecord{tenant: tenantID}
		targets  []*stream
		accepted int
		accBytes int
	)
	reject := func(reason string, n int, msg string) {
		s.m.discarded.WithLabelValues(tenantID, reason).Add(float64(n))
		if len(errs) < 10 {
			errs = append(errs, msg)
		}
	}
	oldest := int64(0)
	if lim.RejectOldSamples && lim.RejectOldSamplesMaxAge > 0 {
		oldest = now.Add(-lim.RejectOldSamplesMaxAge).UnixNano()
	}
	newest := now.Add(lim.CreationGracePeriod).UnixNano()
	for _, ps := range streams {
		if msg := validateLabels(ps.Labels, lim); msg != "" {
			reject("invalid_labels", len(ps.Entries), msg)
			continue
		}
		if len(ps.Entries) == 0 {
			continue
		}
		h := ps.Labels.Hash()
		td.mu.RLock()
		st := td.lookup(ps.Labels, h)
		td.mu.RUnlock()
		if st == nil {
			td.mu.Lock()
			if st = td.lookup(ps.Labels, h); st == nil {
				if lim.MaxGlobalStreamsPerUser > 0 && td.count >= lim.MaxGlobalStreamsPerUser {
					td.mu.Unlock()
					reason = refusal.Partial
					reject("stream_limit", len(ps.Entries), fmt.Sprintf(
						"Maximum active stream limit exceeded when trying to create stream %s, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '%s' (max_global_streams_per_user: %d)",
						ps.Labels.String(), tenantID, lim.MaxGlobalStreamsPerUser))
					continue
				}
				st = td.createLocked(ps.Labels, h)
				s.m.streams.WithLabelValues(tenantID).Set(float64(td.count))
			}
			td.mu.Unlock()
		}
		ok := make([]logql.Entry, 0, len(ps.Entries))
		for _, e := range ps.Entries {
			switch {
			case lim.MaxLineSize > 0 && len(e.Line) > lim.MaxLineSize && !lim.MaxLineSizeTruncate:
				reject("line_too_long", 1, fmt.Sprintf("Max entry size '%d' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes (max_line_size)", lim.MaxLineSize, ps.Labels.String(), len(e.Line)))
				continue
			case oldest != 0 && e.Timestamp < oldest:
				reject("greater_than_max_sample_age", 1, fmt.Sprintf("entry for stream '%s' has timestamp too old: %s, oldest acceptable timestamp is: %s (reject_old_samples_max_age)", ps.Labels.String(), time.Unix(0, e.Timestamp).UTC().Format(time.RFC3339), time.Unix(0, oldest).UTC().Format(time.RFC3339)))
				continue
			case e.Timestamp > newest:
				reject("too_far_in_future", 1, fmt.Sprintf("entry for stream '%s' has timestamp too new: %s (creation_grace_period)", ps.Labels.String(), time.Unix(0, e.Timestamp).UTC().Format(time.RFC3339)))
				continue
			}
			if lim.MaxLineSize > 0 && len(e.Line) > lim.MaxLineSize {
				e.Line = e.Line[:lim.MaxLineSize]
			}
			ok = append(ok, e)
			accBytes += len(e.Line)
		}
		if len(ok) == 0 {
			continue
		}
		if lim.DiscoverLogLevels {
			addDetectedLevels(ps.Labels, ok)
		}
		accepted += len(ok)
		rec.streams = append(rec.streams, walStream{labels: st.lbs, entries: ok})
		targets = append(targets, st)
	}
	if accepted > 0 {
		payload := appendWALRecord(ingestBufs.get(), &rec)
		s.ingestMu.RLock()
		err := s.wal.append(payload)
		if err == nil {
			s.walBytes.Add(int64(len(payload)))
		}
		// The WAL has written (or copied) the record when append returns.
		ingestBufs.put(payload)
		if err == nil {
			full := false
			for i, ws := range rec.streams {
				st := targets[i]
				st.mu.Lock()
				st.append(ws.entries, now)
				full = full || st.headBytes >= s.cfg.ChunkTargetSize
				st.mu.Unlock()
			}
			// A head that reached the chunk size is cut now rather than at the next flush tick: waiting for the
			// tick let every busy stream grow until max_head_bytes, which was most of ingest's memory.
			total := s.headBytes.Add(int64(accBytes))
			if max := s.cfg.MaxHeadBytes; full || max > 0 && total > int64(max) {
				select {
				case s.flushNow <- struct{}{}:
				default:
				}
			}
		}
		s.ingestMu.RUnlock()
		if err != nil {
			return fmt.Errorf("log store: %w", err)
		}
		s.m.lines.WithLabelValues(tenantID).Add(float64(accepted))
		s.m.bytes.WithLabelValues(tenantID).Add(float64(accBytes))
		s.notifyTailers(tenantID, &rec)
	}
	if len(errs) > 0 {
		return &refusal.Error{Reason: reason, Msg: strings.Join(errs, "\n")}
	}
	return nil
}

func validateLabels(lbs labels.Labels, lim Limits) string {
	if lbs.IsEmpty() {
		return "error at least one label pair is required per stream"
	}
	if lim.MaxLabelNamesPerSeries > 0 && lbs.Len() > lim.MaxLabelNamesPerSeries {
		return fmt.Sprintf("stream '%s' has %d label names; limit %d (max_label_names_per_series)", lbs.String(), lbs.Len(), lim.MaxLabelNamesPerSeries)
	}
	var msg string
	lbs.Range(func(l labels.Label) {
		switch {
		case msg != "":
		case !model.LegacyValidation.IsValidLabelName(l.Name):
			msg = fmt.Sprintf("error parsing labels %s: invalid label name %q", lbs.String(), l.Name)
		case lim.MaxLabelNameLength > 0 && len(l.Name) > lim.MaxLabelNameLength:
			msg = fmt.Sprintf("stream '%s' has label name too long: '%s' (max_label_name_length)", lbs.String(), l.Name)
		case lim.MaxLabelValueLength > 0 && len(l.Value) > lim.MaxLabelValueLength:
			msg = fmt.Sprintf("stream '%s' has label value too long: '%s' (max_label_value_length)", lbs.String(), l.Value)
		}
	})
	return msg
}

// Querier returns a logql.Querier over one tenant's data.
func (s *Store) Querier(tenantID string) logql.Querier { return &querier{s: s, tenant: tenantID} }

// QueryLimiter admits the store's queries; a process-wide governor installs its gate on it (SetGate).
func (s *Store) QueryLimiter() *querylimit.Limiter { return s.queries }

// QueryTimeout bounds one query, the ruler's evaluations included.
func (s *Store) QueryTimeout() time.Duration { return s.cfg.Limits.QueryTimeout }

// MaxQueryLength is the longest time range (plus range selector) a query may cover; 0 does not limit.
func (s *Store) MaxQueryLength() time.Duration { return s.cfg.Limits.MaxQueryLength }

// Engine is the LogQL engine configured with the store's query limits.
func (s *Store) Engine() *logql.Engine { return s.engine }

type querier struct {
	s      *Store
	tenant string
}

// matchStreams returns the tenant's streams that match all matchers, using postings for equality matchers.
func (td *tenantDB) matchStreams(ms []*labels.Matcher) []*stream {
	td.mu.RLock()
	defer td.mu.RUnlock()
	var cand []*stream
	bestSet := false
	for _, m := range ms {
		if m.Type == labels.MatchEqual && m.Value != "" {
			l := td.postings[m.Name][m.Value]
			if !bestSet || len(l) < len(cand) {
				cand, bestSet = l, true
			}
		}
	}
	if !bestSet {
		for _, sts := range td.streams {
			cand = append(cand, sts...)
		}
	}
	out := make([]*stream, 0, len(cand))
	for _, st := range cand {
		ok := true
		for _, m := range ms {
			if !m.Matches(st.lbs.Get(m.Name)) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].lbs, out[j].lbs) < 0 })
	return out
}

type chunkJob struct {
	st   *stream
	meta *chunkMeta
	res  chan chunkResult
}

type chunkResult struct {
	es  []logql.Entry
	err error
	// noSlot: the reader gave up before taking a read-ahead slot (the query was cancelled).
	noSlot bool
}

// SelectLogs implements logql.Querier.
func (q *querier) SelectLogs(ctx context.Context, p logql.SelectParams, fn func(labels.Labels, logql.Entry) error) error {
	td := q.s.tenantIfExists(q.tenant)
	if td == nil {
		return nil
	}
	streams := td.matchStreams(p.Matchers)
	if p.Cutoff != nil {
		return q.selectLimited(ctx, p, streams, fn)
	}
	type streamWork struct {
		st     *stream
		chunks []*chunkMeta
		head   []logql.Entry
	}
	work := make([]streamWork, 0, len(streams))
	var jobs []*chunkJob
	for _, st := range streams {
		w := streamWork{st: st}
		st.mu.Lock()
		for _, c := range st.chunks {
			if c.MinT < p.End && c.MaxT >= p.Start && (p.TraceID == "" || bloom(c.Bloom).has(p.TraceID)) {
				w.chunks = append(w.chunks, c)
			}
		}
		// Blocks and tails are only ever appended to, or replaced by a new slice on seal and flush: a snapshot of
		// the slice headers stays valid without copying. Entries pushed out of order need a sorted copy.
		blocks, tail := st.blocks[:len(st.blocks):len(st.blocks)], st.tail[:len(st.tail):len(st.tail)]
		st.mu.Unlock()
		head, err := headEntries(blocks, tail, &p)
		if err != nil {
			return err
		}
		w.head = head
		if !sort.SliceIsSorted(w.head, func(i, j int) bool { return w.head[i].Timestamp < w.head[j].Timestamp }) {
			w.head = append([]logql.Entry(nil), w.head...)
			sort.SliceStable(w.head, func(i, j int) bool { return w.head[i].Timestamp < w.head[j].Timestamp })
		}
		for _, c := range w.chunks {
			jobs = append(jobs, &chunkJob{st: st, meta: c, res: make(chan chunkResult, 1)})
		}
		work = append(work, w)
	}
	// Fetch and decode chunks ahead of the consumer, in parallel, keeping the order.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// At most GOMAXPROCS+1 chunks are read ahead of the consumer (a slot frees when it takes a result).
	sem := make(chan struct{}, runtime.GOMAXPROCS(0)+1)
	if len(jobs) > 0 {
		go func() {
			for _, j := range jobs {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					j.res <- chunkResult{err: ctx.Err(), noSlot: true}
					continue
				}
				go q.readChunk(ctx, j, &p)
			}
		}()
	}
	ji := 0
	for _, w := range work {
		for range w.chunks {
			j := jobs[ji]
			ji++
			r := <-j.res
			if !r.noSlot {
				<-sem
			}
			if r.err != nil {
				if err := q.chunkError(j, r.err); err != nil {
					return err
				}
				continue
			}
			for _, e := range r.es {
				if e.Timestamp < p.Start || e.Timestamp >= p.End {
					continue
				}
				if p.TraceID != "" && e.Metadata.Get("trace_id") != p.TraceID {
					continue
				}
				if err := fn(w.st.lbs, e); err != nil {
					return err
				}
			}
		}
		var skipped, skippedBytes int64
		for _, e := range w.head {
			if e.Timestamp < p.Start || e.Timestamp >= p.End || (p.TraceID != "" && e.Metadata.Get("trace_id") != p.TraceID) {
				continue
			}
			if p.LineFilter != nil && !p.LineFilter(e.Line) {
				skipped++
				skippedBytes += int64(len(e.Line))
				continue
			}
			if err := fn(w.st.lbs, e); err != nil {
				return err
			}
		}
		if skipped > 0 && p.Skipped != nil {
			p.Skipped(skipped, skippedBytes)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// selectLimited serves a log query with a limit: heads first, then chunks newest first (Backward) or oldest
// first (Forward), decoded in parallel (at most GOMAXPROCS at a time), stopping at the first chunk wholly
// beyond the engine's cutoff: every later chunk is beyond it too.
func (q *querier) selectLimited(ctx context.Context, p logql.SelectParams, streams []*stream, fn func(labels.Labels, logql.Entry) error) error {
	var jobs []*chunkJob
	var head []logql.Entry
	for _, st := range streams {
		head = head[:0]
		st.mu.Lock()
		for _, c := range st.chunks {
			if c.MinT < p.End && c.MaxT >= p.Start && (p.TraceID == "" || bloom(c.Bloom).has(p.TraceID)) {
				jobs = append(jobs, &chunkJob{st: st, meta: c, res: make(chan chunkResult, 1)})
			}
		}
		blocks, tail := st.blocks[:len(st.blocks):len(st.blocks)], st.tail[:len(st.tail):len(st.tail)]
		st.mu.Unlock()
		sealed, err := headEntries(blocks, nil, &p)
		if err != nil {
			return err
		}
		head = append(head[:0], sealed...)
		head = headInRange(tail, &p, head)
		head = filterHead(head, &p)
		for _, e := range head {
			if err := fn(st.lbs, e); err != nil {
				return err
			}
		}
	}
	if p.Direction == logql.Forward {
		sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].meta.MinT < jobs[j].meta.MinT })
	} else {
		sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].meta.MaxT > jobs[j].meta.MaxT })
	}
	beyond := func(c *chunkMeta) bool {
		cut, ok := p.Cutoff()
		if !ok {
			return false
		}
		if p.Direction == logql.Forward {
			return c.MinT > cut
		}
		return c.MaxT < cut
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// At most GOMAXPROCS chunks are read ahead of the consumer: a slot frees when the consumer takes a result,
	// so an early stop wastes little work and decoded chunks never pile up in memory.
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	go func() {
		for _, j := range jobs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if beyond(j.meta) {
				return // the consumer stops at this job too
			}
			go q.readChunk(ctx, j, &p)
		}
	}()
	for _, j := range jobs {
		if beyond(j.meta) {
			return nil
		}
		var r chunkResult
		select {
		case r = <-j.res:
			<-sem
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			if err := q.chunkError(j, r.err); err != nil {
				return err
			}
			continue
		}
		for _, e := range r.es {
			if err := fn(j.st.lbs, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// headInRange appends to dst the entries of es in p's time range (and with its trace id).
func headInRange(es []logql.Entry, p *logql.SelectParams, dst []logql.Entry) []logql.Entry {
	for _, e := range es {
		if e.Timestamp >= p.Start && e.Timestamp < p.End && (p.TraceID == "" || e.Metadata.Get("trace_id") == p.TraceID) {
			dst = append(dst, e)
		}
	}
	return dst
}

// filterHead drops, in place, the entries that p's line filter rejects, reporting them through p.Skipped, as
// chunk decoding does.
func filterHead(es []logql.Entry, p *logql.SelectParams) []logql.Entry {
	if p.LineFilter == nil {
		return es
	}
	out := es[:0]
	var lines, bytes int64
	for _, e := range es {
		if p.LineFilter(e.Line) {
			out = append(out, e)
			continue
		}
		lines++
		bytes += int64(len(e.Line))
	}
	if lines > 0 && p.Skipped != nil {
		p.Skipped(lines, bytes)
	}
	return out
}

// readChunk fetches and decodes the entries of j's chunk that p selects, and posts them to j.res.
func (q *querier) readChunk(ctx context.Context, j *chunkJob, p *logql.SelectParams) {
	raw, err := q.s.loadChunkRaw(ctx, j.meta)
	var es []logql.Entry
	if err == nil {
		if es, err = decodeSelected(raw, p); err != nil {
			err = fmt.Errorf("chunk %s: %w: %w", j.meta.Key, errDamagedChunk, err)
		}
	}
	j.res <- chunkResult{es: es, err: err}
}

// chunkError decides what a chunk read error means for a query: nil to skip the chunk (deleted meanwhile, or
// damaged, which is logged once), or the error.
func (q *querier) chunkError(j *chunkJob, err error) error {
	if q.s.bkt != nil && q.s.bkt.IsObjNotFoundErr(errors.Unwrap(err)) {
		return nil // deleted by retention or compaction while we looked
	}
	if errors.Is(err, errDamagedChunk) {
		// One damaged chunk must not fail every query over its stream and time: skip it, say so once.
		if _, seen := q.s.damaged.LoadOrStore(j.meta.Key, struct{}{}); !seen {
			q.s.logger.Error("Log chunk is unreadable; queries skip it", zap.String("chunk", j.meta.Key), zap.Error(err))
		}
		return nil
	}
	return err
}

// errDamagedChunk marks a chunk that was read but does not decode (checksum, compression, format).
var errDamagedChunk = errors.New("damaged chunk")

// loadChunkRaw returns a chunk's decompressed payload, from the cache or the bucket.
func (s *Store) loadChunkRaw(ctx context.Context, c *chunkMeta) (string, error) {
	if raw, ok := s.cache.get(c.Key); ok {
		return raw, nil
	}
	rc, err := s.bkt.Get(ctx, c.Key)
	if err != nil {
		return "", fmt.Errorf("get chunk %s: %w", c.Key, err)
	}
	defer rc.Close()
	b, err := readAll(rc, make([]byte, 0, c.Size))
	if err != nil {
		return "", fmt.Errorf("read chunk %s: %w", c.Key, err)
	}
	raw, err := decompressChunk(b)
	if err != nil {
		return "", fmt.Errorf("chunk %s: %w: %w", c.Key, errDamagedChunk, err)
	}
	s.cache.put(c.Key, raw, len(raw))
	return raw, nil
}

// loadChunk returns every entry of a chunk.
func (s *Store) loadChunk(ctx context.Context, c *chunkMeta) ([]logql.Entry, error) {
	raw, err := s.loadChunkRaw(ctx, c)
	if err != nil {
		return nil, err
	}
	return decodeSelected(raw, &logql.SelectParams{Start: math.MinInt64, End: math.MaxInt64})
}

// Labels returns label names of a tenant's streams with data in [start, end).
func (s *Store) Labels(tenantID string, start, end int64, ms []*labels.Matcher) []string {
	set := map[string]struct{}{}
	for _, st := range s.streamsInRange(tenantID, start, end, ms) {
		st.lbs.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
	}
	return sortedKeys(set)
}

// LabelValues returns the values of one label.
func (s *Store) LabelValues(tenantID, name string, start, end int64, ms []*labels.Matcher) []string {
	set := map[string]struct{}{}
	for _, st := range s.streamsInRange(tenantID, start, end, ms) {
		if v := st.lbs.Get(name); v != "" {
			set[v] = struct{}{}
		}
	}
	return sortedKeys(set)
}

// Series returns the label sets of streams matching any of the selectors.
func (s *Store) Series(tenantID string, start, end int64, ms []*labels.Matcher) []labels.Labels {
	var out []labels.Labels
	for _, st := range s.streamsInRange(tenantID, start, end, ms) {
		out = append(out, st.lbs)
	}
	return out
}

// StreamStats are per-stream figures for index/stats and index/volume.
type StreamStats struct {
	Labels  labels.Labels
	Entries int64
	Bytes   int64
	Chunks  int64
}

// Stats returns figures for streams matching ms with data in [start, end).
func (s *Store) Stats(tenantID string, start, end int64, ms []*labels.Matcher) []StreamStats {
	var out []StreamStats
	for _, st := range s.streamsInRange(tenantID, start, end, ms) {
		ss := StreamStats{Labels: st.lbs}
		st.mu.Lock()
		for _, c := range st.chunks {
			if c.MinT < end && c.MaxT >= start {
				ss.Chunks++
				ss.Entries += int64(c.Entries)
				ss.Bytes += int64(c.Bytes)
			}
		}
		if n, b := st.headIn(start, end); n > 0 {
			ss.Entries += n
			ss.Bytes += b
			ss.Chunks++
		}
		st.mu.Unlock()
		out = append(out, ss)
	}
	return out
}

func (s *Store) streamsInRange(tenantID string, start, end int64, ms []*labels.Matcher) []*stream {
	td := s.tenantIfExists(tenantID)
	if td == nil {
		return nil
	}
	var out []*stream
	for _, st := range td.matchStreams(ms) {
		st.mu.Lock()
		in := false
		for _, c := range st.chunks {
			if c.MinT < end && c.MaxT >= start {
				in = true
				break
			}
		}
		if !in {
			n, _ := st.headIn(start, end)
			in = n > 0
		}
		st.mu.Unlock()
		if in {
			out = append(out, st)
		}
	}
	return out
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Flush cuts heads that are due (all of them when force is set) into chunks in the bucket, writes their index,
// and checkpoints the WAL so that it only holds what is not yet in the bucket.
func (s *Store) Flush(ctx context.Context, force bool) error { return s.flush(ctx, force, false) }

// flush is Flush. An early flush (a head reached the chunk size, or all heads are over MaxHeadBytes) cuts heads
// of half the target size too, so that streams growing together are cut together; under memory pressure a
// quarter. An early flush that is not under pressure skips the WAL checkpoint: the cut streams' records are
// skipped on replay by their chunks' WALSeg, and rewriting every other head into a checkpoint at each cut would
// cost more than the cut saves. The next regular flush checkpoints.
func (s *Store) flush(ctx context.Context, force, early bool) error {
	pressure := early && s.cfg.MaxHeadBytes > 0 && s.headBytes.Load() > int64(s.cfg.MaxHeadBytes)
	minCut := s.cfg.ChunkTargetSize
	switch {
	case pressure:
		minCut = s.cfg.ChunkTargetSize / 4
	case early:
		minCut = s.cfg.ChunkTargetSize / 2
	}
	s.ingestMu.Lock()
	seg, err := s.wal.rotate()
	// Pushes are held off: what the WAL took so far is before seg, which a checkpoint here would cover.
	walBefore := s.walBytes.Swap(0)
	type marked struct {
		td *tenantDB
		st *stream
	}
	var all []marked
	s.mu.RLock()
	for _, td := range s.tenants {
		td.mu.RLock()
		for _, sts := range td.streams {
			for _, st := range sts {
				st.mu.Lock()
				st.seal()
				st.mark = len(st.blocks)
				st.mu.Unlock()
				all = append(all, marked{td, st})
			}
		}
		td.mu.RUnlock()
	}
	s.mu.RUnlock()
	s.ingestMu.Unlock()
	checkpointed := false
	defer func() {
		if !checkpointed {
			s.walBytes.Add(walBefore)
		}
	}()
	if err != nil {
		return fmt.Errorf("rotate WAL: %w", err)
	}
	now := s.now()
	newMetas := map[string][]*chunkMeta{}
	var flushErr error
	for _, m := range all {
		st := m.st
		st.mu.Lock()
		due := st.mark > 0 && (force || st.headBytes >= minCut || now.Sub(st.headFirst) >= s.cfg.MaxChunkAge || now.Sub(st.lastAppend) >= s.cfg.ChunkIdlePeriod)
		var blocks []headBlock
		if due {
			// Pushes only append beyond the mark, and a cut replaces st.blocks: the marked blocks can be read
			// without the lock.
			blocks = st.blocks[:st.mark:st.mark]
		}
		st.mu.Unlock()
		if !due {
			continue
		}
		metas, err := s.cutBlocks(ctx, m.td.id, st, blocks)
		if err != nil {
			s.m.flushFailures.Inc()
			flushErr = errors.Join(flushErr, err)
			continue
		}
		for _, c := range metas {
			c.WALSeg = seg
		}
		newMetas[m.td.id] = append(newMetas[m.td.id], metas...)
		st.mu.Lock()
		st.blocks = append([]headBlock(nil), st.blocks[st.mark:]...)
		s.headBytes.Add(-int64(st.headBytes))
		st.headBytes, st.headLen = st.tailBytes, len(st.tail)
		for _, b := range st.blocks {
			st.headBytes += b.lineBytes
			st.headLen += b.n
		}
		s.headBytes.Add(int64(st.headBytes))
		st.headFirst = now
		st.mark = 0
		st.chunks = append(st.chunks, metas...)
		st.mu.Unlock()
	}
	for tid, metas := range newMetas {
		if err := s.writeIndex(ctx, tid, metas); err != nil {
			// Without an index the chunks are invisible after a restart: keep the WAL as it is.
			return errors.Join(flushErr, err)
		}
	}
	if s.afterIndexHook != nil {
		if err := s.afterIndexHook(); err != nil {
			return errors.Join(flushErr, err)
		}
	}
	// Once the WAL holds max_head_bytes since the last checkpoint, an early flush checkpoints anyway: that bounds
	// the WAL on disk and the replay after a crash as the pressure flushes did.
	if early && !pressure && !force && (s.cfg.MaxHeadBytes <= 0 || walBefore+s.walBytes.Load() < int64(s.cfg.MaxHeadBytes)) {
		for _, m := range all {
			m.st.mu.Lock()
			m.st.mark = 0
			m.st.mu.Unlock()
		}
		return flushErr
	}
	// Checkpoint: what was in the heads before the rotation and is still not in a chunk.
	byTenant := map[string]*walRecord{}
	for _, m := range all {
		st := m.st
		st.mu.Lock()
		if st.mark > 0 {
			r := byTenant[m.td.id]
			if r == nil {
				r = &walRecord{tenant: m.td.id}
				byTenant[m.td.id] = r
			}
			es, err := allBlockEntries(st.blocks[:st.mark])
			if err != nil {
				st.mu.Unlock()
				return errors.Join(flushErr, err)
			}
			r.streams = append(r.streams, walStream{labels: st.lbs, entries: es})
		}
		st.mark = 0
		st.mu.Unlock()
	}
	var recs [][]byte
	for _, r := range byTenant {
		recs = append(recs, encodeWALRecord(r))
	}
	if err := s.wal.writeCheckpoint(seg, recs); err != nil {
		return errors.Join(flushErr, err)
	}
	checkpointed = true
	return flushErr
}

var chunkSeq struct {
	sync.Mutex
	n uint64
}

func nextSeq() uint64 {
	chunkSeq.Lock()
	defer chunkSeq.Unlock()
	chunkSeq.n++
	return chunkSeq.n
}

// cutBlocks writes a head's marked blocks as chunks, re-encoding them as chunk payloads without building
// entries and their metadata.
func (s *Store) cutBlocks(ctx context.Context, tenantID string, st *stream, blocks []headBlock) ([]*chunkMeta, error) {
	parts, err := blocksToChunks(st.lbs, blocks, s.cfg.ChunkTargetSize)
	if err != nil {
		return nil, err
	}
	var metas []*chunkMeta
	for _, p := range parts {
		data := compressChunk(p.raw)
		chunkBufs.put(p.raw)
		m, err := s.uploadChunk(ctx, tenantID, st.lbs, st.fp, data, p)
		if err != nil {
			return nil, err
		}
		metas = append(metas, m)
	}
	return metas, nil
}

// writeChunks encodes es (sorted) into chunks of about the target size and uploads them.
func (s *Store) writeChunks(ctx context.Context, tenantID string, st *stream, es []logql.Entry) ([]*chunkMeta, error) {
	var metas []*chunkMeta
	for len(es) > 0 {
		n, size := 0, 0
		for n < len(es) && (n == 0 || size+len(es[n].Line) <= s.cfg.ChunkTargetSize) {
			size += len(es[n].Line)
			n++
		}
		part := es[:n]
		es = es[n:]
		m, err := s.writeChunk(ctx, tenantID, st.lbs, st.fp, part)
		if err != nil {
			return nil, err
		}
		metas = append(metas, m)
	}
	return metas, nil
}

func (s *Store) writeChunk(ctx context.Context, tenantID string, lbs labels.Labels, fp uint64, es []logql.Entry) (*chunkMeta, error) {
	data := encodeChunk(lbs, es)
	traces := map[string]struct{}{}
	lineBytes := 0
	for _, e := range es {
		lineBytes += len(e.Line)
		if t := e.Metadata.Get("trace_id"); t != "" {
			traces[t] = struct{}{}
		}
	}
	return s.uploadChunk(ctx, tenantID, lbs, fp, data, rawChunk{minT: es[0].Timestamp, maxT: es[len(es)-1].Timestamp, n: len(es), lineBytes: lineBytes, traces: traces})
}

// uploadChunk uploads a compressed chunk and returns its index entry.
func (s *Store) uploadChunk(ctx context.Context, tenantID string, lbs labels.Labels, fp uint64, data []byte, c rawChunk) (*chunkMeta, error) {
	traces, lineBytes := c.traces, c.lineBytes
	bl := newBloom(len(traces))
	for t := range traces {
		bl.add(t)
	}
	key := fmt.Sprintf("%s/chunks/%016x/%d-%d-%d-%d", tenantID, fp, c.minT, c.maxT, time.Now().UnixNano(), nextSeq())
	if err := s.bkt.Upload(ctx, key, bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("upload chunk %s: %w", key, err)
	}
	s.m.chunksFlushed.Inc()
	s.m.chunkBytes.Add(float64(len(data)))
	return &chunkMeta{Stream: lbs, Key: key, MinT: c.minT, MaxT: c.maxT, Entries: c.n, Bytes: lineBytes, Size: len(data), Bloom: bl}, nil
}

type indexFile struct {
	Chunks []*chunkMeta `json:"chunks"`
}

func (s *Store) writeIndex(ctx context.Context, tenantID string, metas []*chunkMeta) error {
	b, err := json.Marshal(indexFile{Chunks: metas})
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s/index/%020d-%d.json", tenantID, time.Now().UnixNano(), nextSeq())
	if err := s.bkt.Upload(ctx, key, strings.NewReader(string(b))); err != nil {
		return fmt.Errorf("upload index %s: %w", key, err)
	}
	return nil
}

// loadIndex reads every tenant's index files from the bucket.
func (s *Store) loadIndex(ctx context.Context) error {
	if s.bkt == nil {
		return errors.New("log store: no bucket")
	}
	var tenants []string
	if err := s.bkt.Iter(ctx, "", func(name string) error {
		if strings.HasSuffix(name, "/") {
			tenants = append(tenants, strings.TrimSuffix(name, "/"))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("list bucket: %w", err)
	}
	for _, tid := range tenants {
		if tenant.Validate(tid) != nil {
			continue
		}
		files, err := s.indexFiles(ctx, tid)
		if err != nil {
			// One tenant's unlistable index must not keep every other tenant from starting.
			s.m.indexLoadFailures.WithLabelValues(tid).Inc()
			s.logger.Error("Log store: tenant's index not loaded at start; its chunks stay in the bucket", zap.String("tenant", tid), zap.Error(err))
			continue
		}
		seen := map[string]bool{}
		td := s.tenant(tid)
		for _, f := range files {
			idx, err := s.readIndex(ctx, f)
			if err != nil {
				s.m.indexLoadFailures.WithLabelValues(tid).Inc()
				s.logger.Error("Log store: unreadable chunk index file skipped at start; its chunks are not queried", zap.String("tenant", tid), zap.String("key", f), zap.Error(err))
				continue
			}
			for _, c := range idx.Chunks {
				if seen[c.Key] {
					continue
				}
				seen[c.Key] = true
				st := td.getOrCreate(c.Stream)
				st.chunks = append(st.chunks, c)
				if c.WALSeg > st.flushedSeg {
					st.flushedSeg = c.WALSeg
				}
			}
		}
		for _, sts := range td.streams {
			for _, st := range sts {
				sort.Slice(st.chunks, func(i, j int) bool { return st.chunks[i].MinT < st.chunks[j].MinT })
			}
		}
		s.m.streams.WithLabelValues(tid).Set(float64(td.count))
		s.logger.Info("Log index loaded", zap.String("tenant", tid), zap.Int("index_files", len(files)), zap.Int("chunks", len(seen)))
	}
	return nil
}

func (s *Store) indexFiles(ctx context.Context, tid string) ([]string, error) {
	var files []string
	if err := s.bkt.Iter(ctx, tid+"/index/", func(name string) error {
		if strings.HasSuffix(name, ".json") {
			files = append(files, name)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list index of %s: %w", tid, err)
	}
	sort.Strings(files)
	return files, nil
}

func (s *Store) readIndex(ctx context.Context, key string) (*indexFile, error) {
	rc, err := s.bkt.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var idx indexFile
	if err := json.NewDecoder(rc).Decode(&idx); err != nil {
		return nil, err
	}
	return &idx, nil
}

// TenantIDs lists tenants with data.
func (s *Store) TenantIDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.tenants))
	for k := range s.tenants {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fmtNs(ns int64) string { return strconv.FormatInt(ns, 10) }

// AppliesLineFilter implements logql.LineFilterer: every path of SelectLogs (chunk decoding and heads) applies
// SelectParams.LineFilter.
func (*querier) AppliesLineFilter() bool { return true }
