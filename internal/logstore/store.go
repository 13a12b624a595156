package logstore

import (
	"context"
	"fmt"
	"path"
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
	"github.com/sprout-otel/sprout/internal/diskguard"
	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/wal"
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
	wal    *wal.Log
	disk   *diskguard.Guard // refuses pushes while data_dir's filesystem is nearly full
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
	lastMeta   labels.Labels
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
	// Spans are where the chunk's timestamps lie: at most maxSpans ascending, disjoint, inclusive intervals
	// from MinT to MaxT (see spansOf). Chunks of earlier releases have none: [MinT, MaxT] stands for them.
	Spans [][2]int64 `json:"spans,omitempty"`
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
		cfg: cfg, logger: opts.Logger, bkt: bkt, cache: newObjectCache(bkt, cfg.ChunkCacheSize),
		disk:    diskguard.New("log store", cfg.DataDir, cfg.MinFreeDiskBytes),
		engine:  &logql.Engine{Limits: logql.Limits{MaxSeries: cfg.Limits.MaxQuerySeries, MaxBytesRead: cfg.Limits.MaxQueryBytesRead, MaxSamples: cfg.Limits.MaxFetchedSamples}},
		queries: querylimit.New(cfg.Limits.Config),
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
	_, _, deprecated := cfg.WAL.Effective()
	segmentBytes, _, warning := cfg.WAL.segmentBytes()
	if warning != "" {
		deprecated = append(deprecated, warning)
	}
	for _, m := range deprecated {
		s.logger.Warn(m)
	}
	wo := cfg.WAL.Options()
	wo.SegmentBytes, wo.FirstSegment, wo.Logger = segmentBytes, uint64(minSeg), s.logger
	w, err := wal.Open(path.Join(cfg.DataDir, "wal"), wo)
	if err != nil {
		return nil, fmt.Errorf("open log store WAL: %w", err)
	}
	s.wal = w
	start := time.Now()
	skipped := 0
	res, err := w.Replay(func(p wal.Position, b []byte) error {
		pos := int(p.Segment)
		if !p.Checkpoint {
			// The WAL since the last checkpoint counts toward the next one, across restarts.
			s.walBytes.Add(int64(len(b)))
		}
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
		_ = w.Close()
		return nil, err
	}
	for _, d := range res.Corrupt {
		s.logger.Error("Log store WAL segment is corrupt; the records after the damage in this file are lost",
			zap.String("damage", fmt.Sprintf("%s: record at offset %d fails its checksum, %d bytes after it not replayed", d.File, d.Offset, d.Lost)))
	}
	for _, d := range res.Torn {
		s.logger.Warn("Log store WAL segment ended in a partial record (the write in progress when the process stopped); it was never acknowledged and is cut off",
			zap.String("file", d.File), zap.Int64("offset", d.Offset))
	}
	if skipped > 0 {
		s.logger.Info("Log store WAL replay skipped lines already in chunks (the last flush stopped before its checkpoint)", zap.Int("lines", skipped))
	}
	s.logger.Info("Log store WAL replayed", zap.Int("records", res.Records), zap.Duration("took", time.Since(start)))
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
		if e := s.wal.Close(); err == nil {
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

// append adds entries to the head; st.mu must be held. Exact duplicates of the previous line (same timestamp,
// text and structured metadata) are dropped, as Loki's ingester does.
func (st *stream) append(es []logql.Entry, now time.Time) {
	for _, e := range es {
		if e.Timestamp == st.lastTs && e.Line == st.lastLine && st.headLen > 0 && labels.Equal(e.Metadata, st.lastMeta) {
			continue
		}
		if st.headLen == 0 {
			st.headFirst = now
		}
		st.tail = append(st.tail, e)
		st.tailBytes += len(e.Line)
		st.headBytes += len(e.Line)
		st.headLen++
		st.lastTs, st.lastLine, st.lastMeta = e.Timestamp, e.Line, e.Metadata
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
	s.queries.Processors().Ingesting()
	td, err := s.admit(tenantID)
	if err != nil {
		return err // a *refusal.Error: a malformed tenant id, or one over max_tenants
	}
	if err := s.disk.Check(); err != nil {
		return err
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
		_, err := s.wal.Append(payload)
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
