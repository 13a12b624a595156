// Package tracestore is Sprout's trace store (Tempo's role): it takes OTLP traces from the pipeline, makes each
// batch durable in a per-tenant write-ahead log before it is acknowledged, keeps live traces in memory where
// search and lookup by id see them at once, cuts complete traces into parquet blocks with a trace-id bloom filter
// and index, uploads the blocks through the bucket layer, compacts and expires them, and answers Tempo's HTTP
// query API with TraceQL.
//
// It owns the on-disk and in-bucket formats of traces. It must not know about the Collector: the component in
// components/tracestoreext adapts it to the pipeline and mounts its HTTP API.
package tracestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/diskguard"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/traceql"
)

// ErrBadData marks a write or query that can never succeed (malformed): a refusal.Invalid, so that wrapping
// it (fmt.Errorf("%w: ...", ErrBadData)) makes an error a refusal, answered 400 / InvalidArgument and never
// retried. Refusals by a configured limit are *refusal.Error of their own (OverLimit, RateLimited, Timeout).
var ErrBadData error = &refusal.Error{Reason: refusal.Invalid, Msg: "bad trace data"}

// QueryLimiter admits the store's queries; a process-wide governor installs its gate on it (SetGate).
func (s *Store) QueryLimiter() *querylimit.Limiter { return s.queries }

// limitError is a refusal by the configured limit named limit; its message ends with the limit's key.
func limitError(limit, format string, args ...any) error {
	return refusal.New(refusal.OverLimit, limit, format, args...)
}

// Store is the trace store of every tenant.
type Store struct {
	cfg    Config
	logger *zap.Logger
	bkt    bucket.Bucket
	disk   *diskguard.Guard // refuses pushes while data_dir's filesystem is nearly full
	cache  *rangeCache      // block ranges read from an object store; nil for the filesystem
	m      *storeMetrics
	now    func() time.Time
	// queries admits the API's queries (timeout, concurrency, queue).
	queries *querylimit.Limiter

	tenantsDir string // <data_dir>/tenants: one directory (WAL, block scratch) per tenant

	mu         sync.RWMutex
	tenants    map[string]*instance
	maxTenants atomic.Int64 // max_tenants of sprout_api; 0: no limit

	damaged sync.Map // block ULID -> struct{}: blocks already reported unreadable

	flushMu   sync.Mutex // one block write from memory at a time per store
	compactMu sync.Mutex // one compaction at a time per store (it runs beside flushes)
	wake      chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
	closed    bool
}

// Options are a Store's collaborators.
type Options struct {
	Logger *zap.Logger
}

// Open opens the store: it connects the bucket, loads the block lists, and replays every tenant's WAL.
func Open(ctx context.Context, cfg Config, opts Options) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("trace store config: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	_, _, deprecated := cfg.WAL.Effective()
	for _, w := range deprecated {
		logger.Warn(w)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("trace store: create data_dir: %w", err)
	}
	bkt, err := bucket.New(ctx, cfg.storage(), logger)
	if err != nil {
		return nil, fmt.Errorf("trace store: %w", err)
	}
	tdir, err := tenant.Layout(cfg.DataDir, oldTenantParts(cfg.DataDir))
	if err != nil {
		_ = bkt.Close()
		return nil, fmt.Errorf("trace store: %w", err)
	}
	s := &Store{cfg: cfg, logger: logger, bkt: bkt, m: newStoreMetrics(), now: time.Now, tenantsDir: tdir,
		disk:    diskguard.New("trace store", cfg.DataDir, cfg.MinFreeDiskBytes),
		queries: querylimit.New(cfg.Limits.Config),
		tenants: map[string]*instance{}, stop: make(chan struct{}), wake: make(chan struct{}, 1)}
	if b := cfg.storage().Backend; b != "" && b != bucket.BackendFilesystem {
		s.cache = newRangeCache(cfg.ReadCacheBytes)
	}
	if err := s.loadTenants(ctx); err != nil {
		_ = bkt.Close()
		return nil, err
	}
	return s, nil
}

// Start runs the background loops: cutting and flushing, compaction and retention. (Each tenant's WAL runs its
// own fsync timer under the interval policy.)
func (s *Store) Start() {
	s.wg.Add(2)
	go s.cutLoop()
	go s.compactLoop()
}

// oldTenantParts recognises a tenant of the layout before <data_dir>/tenants: a directory <data_dir>/<id> with
// a WAL (and perhaps block scratch files). The filesystem bucket's default directory <data_dir>/blocks was also
// tenant "blocks"' directory, so only the WAL and scratch move, and a bucket tenant's directory ("wal" with its
// "blocks" inside) is not taken for a WAL.
func oldTenantParts(root string) func(string, bool) []string {
	return func(name string, isDir bool) []string {
		if !isDir {
			return nil
		}
		var parts []string
		for _, p := range []string{"wal", "tmp"} {
			dir := filepath.Join(root, name, p)
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, "blocks")); err == nil {
				continue // a bucket tenant named p: its blocks, not a WAL
			}
			parts = append(parts, p)
		}
		if len(parts) == 0 || parts[0] != "wal" {
			return nil
		}
		return parts
	}
}

// tenantDir is the directory of a tenant's WAL and block scratch files.
func (s *Store) tenantDir(id string) string { return filepath.Join(s.tenantsDir, id) }

// loadTenants finds tenants with a WAL on disk or blocks in the bucket.
func (s *Store) loadTenants(ctx context.Context) error {
	names := map[string]bool{}
	ents, err := os.ReadDir(s.tenantsDir)
	if err != nil {
		return fmt.Errorf("trace store: read %s: %w", s.tenantsDir, err)
	}
	for _, e := range ents {
		if e.IsDir() && tenant.Validate(e.Name()) == nil {
			if _, err := os.Stat(filepath.Join(s.tenantsDir, e.Name(), "wal")); err == nil {
				names[e.Name()] = true
			}
		}
	}
	err = s.bkt.Iter(ctx, "", func(name string) error {
		t := trimSlash(name)
		if tenant.Validate(t) == nil {
			names[t] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("trace store: list tenants in bucket: %w", err)
	}
	for n := range names {
		if _, err := s.open(ctx, n, false); err != nil {
			// One tenant's unreadable WAL or block list must not keep every other tenant from starting: it is
			// logged, counted, and retried on that tenant's next write.
			s.m.tenantLoadFailures.WithLabelValues(n).Inc()
			s.logger.Error("Trace store: tenant not loaded at start; its other data stays where it is", zap.String("tenant", n), zap.Error(err))
		}
	}
	return nil
}

// SetMaxTenants sets the number of tenants beyond which a write naming a new one is refused (0: no limit).
func (s *Store) SetMaxTenants(n int) { s.maxTenants.Store(int64(n)) }

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// instance returns the tenant's instance, opening it (block list, WAL replay) on first use.
func (s *Store) instance(ctx context.Context, id string) (*instance, error) {
	return s.open(ctx, id, true)
}

// open returns the tenant's instance, opening it; a new tenant counts against max_tenants when limited (tenants
// found at start never do).
func (s *Store) open(ctx context.Context, id string, limited bool) (*instance, error) {
	s.mu.RLock()
	in := s.tenants[id]
	s.mu.RUnlock()
	if in != nil {
		return in, nil
	}
	if err := tenant.Validate(id); err != nil {
		return nil, fmt.Errorf("bad trace data: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.tenants[id]; in != nil {
		return in, nil
	}
	if s.closed {
		return nil, errors.New("trace store is shut down")
	}
	if limited {
		if err := tenant.CheckCount(id, len(s.tenants), int(s.maxTenants.Load()), "trace store"); err != nil {
			return nil, fmt.Errorf("bad trace data: %w", err)
		}
	}
	in, err := openInstance(ctx, s, id)
	if err != nil {
		return nil, err
	}
	s.tenants[id] = in
	return in, nil
}

// lookupInstance returns the tenant's instance if it exists (queries never create tenants).
func (s *Store) lookupInstance(id string) *instance {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tenants[id]
}

func (s *Store) instances() []*instance {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*instance, 0, len(s.tenants))
	for _, in := range s.tenants {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].tenant < out[j].tenant })
	return out
}

// Push writes a batch for a tenant. When it returns nil every span is in the WAL. Spans over a limit are
// refused with a *refusal.Error (and the rest of the batch is written); malformed data gives an error wrapping
// ErrBadData.
func (s *Store) Push(ctx context.Context, tenantID string, td ptrace.Traces) error {
	s.queries.Processors().Ingesting()
	in, err := s.instance(ctx, tenantID)
	if err != nil {
		return err
	}
	if err := s.disk.Check(); err != nil {
		return err
	}
	return in.push(td)
}

// Close stops the loops and, with flush_all_on_shutdown, writes every live trace to a block. Whatever cannot
// be flushed in time stays in the WAL for the next start.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	var errs []error
	for _, in := range s.instances() {
		if s.cfg.FlushAllOnShutdown {
			in.cut(s.now(), true)
			if err := in.flush(ctx, true); err != nil {
				errs = append(errs, fmt.Errorf("tenant %s: flush on shutdown: %w", in.tenant, err))
			}
		}
		if err := in.wal.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := in.reap(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: delete compacted blocks: %w", in.tenant, err))
		}
	}
	if err := s.bkt.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close releases files without flushing (tests use it to simulate a crash after the fact).
func (s *Store) closeNoFlush() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
	for _, in := range s.instances() {
		_ = in.wal.Close()
	}
	_ = s.bkt.Close()
}

func (s *Store) cutLoop() {
	defer s.wg.Done()
	every := s.cfg.TraceIdlePeriod / 4
	if every > time.Second {
		every = time.Second
	}
	if every < 10*time.Millisecond {
		every = 10 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.CutAndFlush(context.Background(), false)
		case <-s.wake:
			s.CutAndFlush(context.Background(), false)
		}
	}
}

// CutAndFlush moves complete traces out of the live set and writes a block when one is due; force writes
// every live trace now. The cut loop calls it; tests and the /flush endpoint call it directly.
func (s *Store) CutAndFlush(ctx context.Context, force bool) error {
	var errs []error
	for _, in := range s.instances() {
		in.cut(s.now(), force)
		if err := in.flush(ctx, force); err != nil {
			s.logger.Error("Writing trace block failed; traces stay in the WAL and will be retried", zap.String("tenant", in.tenant), zap.Error(err))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// kick asks the cut loop to run now (memory is at its bound).
func (s *Store) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) compactLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Compaction.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			go func() {
				select {
				case <-s.stop:
					cancel() // shutdown must not wait for a long merge; its inputs are still in place
				case <-ctx.Done():
				}
			}()
			if err := s.Compact(ctx); err != nil {
				s.logger.Error("Compaction failed", zap.Error(err))
			}
			cancel()
		}
	}
}

// ParseTraceID accepts 1 to 32 hex digits (shorter ids are left-padded with zeros, as Tempo does).
func ParseTraceID(s string) (pcommon.TraceID, error) {
	var id pcommon.TraceID
	if len(s) == 0 || len(s) > 32 {
		return id, fmt.Errorf("trace id %q must be 1 to 32 hex digits", s)
	}
	padded := strings.Repeat("0", 32-len(s)) + s
	for i := 0; i < 16; i++ {
		hi, ok1 := unhex(padded[2*i])
		lo, ok2 := unhex(padded[2*i+1])
		if !ok1 || !ok2 {
			return id, fmt.Errorf("trace id %q is not hexadecimal", s)
		}
		id[i] = hi<<4 | lo
	}
	return id, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// traceIDString renders a trace id the way Tempo's search does: hex without leading zeros.
func traceIDString(id pcommon.TraceID) string {
	s := id.String()
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

var _ = traceql.Parse
