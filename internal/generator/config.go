package generator

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sprout-otel/sprout/internal/diskguard"
	"github.com/sprout-otel/sprout/internal/wal"
)

// Processor names, as Tempo's overrides spell them.
const (
	ProcessorServiceGraphs = "service-graphs"
	ProcessorSpanMetrics   = "span-metrics"
)

// Config configures the generator. The defaults are Tempo's, so that dashboards written against Tempo's
// generated metrics see the same names, labels and buckets.
type Config struct {
	// Processors lists the enabled processors: "service-graphs", "span-metrics" (default both).
	Processors []string `mapstructure:"processors"`

	SpanMetrics   SpanMetricsConfig   `mapstructure:"span_metrics"`
	ServiceGraphs ServiceGraphsConfig `mapstructure:"service_graphs"`

	// MaxActiveSeries bounds the number of series held in memory over all tenants and processors. A span that
	// would create a series beyond it is still counted elsewhere but its series is refused and counted in
	// sprout_generator_series_refused_total. 0 means no limit (not recommended).
	MaxActiveSeries int `mapstructure:"max_active_series"`

	// MaxActiveSeriesPerTenant bounds the series of one tenant (Tempo's per-tenant override
	// metrics_generator.max_active_series), so that one tenant with thousands of span names cannot take the
	// whole of max_active_series and leave another tenant without span metrics. Refusals are counted with the
	// global ones. It applies in multi-tenant mode only: in one-tenant mode every series is the one tenant's
	// and max_active_series alone bounds them. 0 means no per-tenant limit.
	MaxActiveSeriesPerTenant int `mapstructure:"max_active_series_per_tenant"`

	// MaxTenants bounds the number of tenants the generator tracks (a batch of a new tenant beyond it is
	// refused). The connector sets it from sprout_api's max_tenants; it is not a key of its own.
	MaxTenants int `mapstructure:"-"`

	// StaleAfter drops a series that has not been updated for this long, freeing its slot (Tempo: 15m).
	StaleAfter time.Duration `mapstructure:"stale_after"`

	// FlushInterval is how often the cumulative points are emitted downstream (Tempo's collection interval).
	FlushInterval time.Duration `mapstructure:"flush_interval"`

	// TraceIDLabelName is the exemplar label that carries the trace id in Tempo's form (Tempo's
	// trace_id_label_name, default "traceID"). Exemplars always carry the OpenTelemetry trace_id and span_id
	// labels as well; "" or "trace_id" adds nothing more.
	TraceIDLabelName string `mapstructure:"trace_id_label_name"`

	// GenerateNativeHistograms selects the latency histograms' form, as Tempo's override of that name:
	// "classic" (explicit buckets, the default), "native" (exponential buckets: Prometheus native histograms)
	// or "both" (each histogram in both forms under the same name).
	GenerateNativeHistograms string `mapstructure:"generate_native_histograms"`
	// NativeHistogramBucketFactor is the largest allowed ratio between neighbouring native-histogram bucket
	// bounds (Tempo's default 1.1, which gives schema 3).
	NativeHistogramBucketFactor float64 `mapstructure:"native_histogram_bucket_factor"`
	// NativeHistogramMaxBucketNumber bounds the populated buckets of one native histogram; beyond it the
	// resolution is halved (Tempo's default 100).
	NativeHistogramMaxBucketNumber int `mapstructure:"native_histogram_max_bucket_number"`

	WAL WALConfig `mapstructure:"wal"`
}

// SpanMetricsConfig configures the span-metrics processor.
type SpanMetricsConfig struct {
	// Dimensions are extra labels taken from span attributes, or from resource attributes when the span has
	// none of that name. The label name is the attribute name made Prometheus-safe (dots become underscores).
	Dimensions []string `mapstructure:"dimensions"`
	// HistogramBuckets are the latency histogram's upper bounds in seconds.
	HistogramBuckets []float64 `mapstructure:"histogram_buckets"`
	// IntrinsicDimensions turns the built-in labels on and off.
	IntrinsicDimensions IntrinsicDimensions `mapstructure:"intrinsic_dimensions"`
	// EnableTargetInfo emits traces_target_info{job,instance,<resource attributes>} and adds job and instance
	// labels to the span metrics, so that resource attributes can be joined in PromQL.
	EnableTargetInfo bool `mapstructure:"enable_target_info"`
	// EnableInstanceLabel keeps the instance label on the span metrics and traces_target_info when target info
	// is on (Tempo's default true).
	EnableInstanceLabel bool `mapstructure:"enable_instance_label"`
	// TargetInfoExcludedDimensions are resource attributes left out of traces_target_info.
	TargetInfoExcludedDimensions []string `mapstructure:"target_info_excluded_dimensions"`
	// SpanMultiplierKey names a double attribute (span first, then resource) holding the sampling ratio r of
	// the span: calls and latency observations then count 1/r instead of 1.
	SpanMultiplierKey string `mapstructure:"span_multiplier_key"`
}

// IntrinsicDimensions selects which of Tempo's built-in span-metrics labels are emitted.
type IntrinsicDimensions struct {
	Service       bool `mapstructure:"service"`
	SpanName      bool `mapstructure:"span_name"`
	SpanKind      bool `mapstructure:"span_kind"`
	StatusCode    bool `mapstructure:"status_code"`
	StatusMessage bool `mapstructure:"status_message"`
}

// ServiceGraphsConfig configures the service-graphs processor.
type ServiceGraphsConfig struct {
	// HistogramBuckets are the request latency histograms' upper bounds in seconds.
	HistogramBuckets []float64 `mapstructure:"histogram_buckets"`
	// Wait is how long one half of an edge waits for the other before it expires.
	Wait time.Duration `mapstructure:"wait"`
	// MaxItems bounds the number of half-edges waiting per tenant; spans beyond it are dropped and counted in
	// traces_service_graph_dropped_spans_total.
	MaxItems int `mapstructure:"max_items"`
	// PeerAttributes name the attributes, in order of preference, that name an uninstrumented server when a
	// client span expires unpaired (a virtual node).
	PeerAttributes []string `mapstructure:"peer_attributes"`
	// DatabaseNameAttributes name the attributes (resource first, then span) that make a client or producer
	// span a database call: the edge completes at once with connection_type="database" and server = the
	// span's peer.service, else server.address, else network.peer.address[:network.peer.port], else the
	// attribute's value.
	DatabaseNameAttributes []string `mapstructure:"database_name_attributes"`
	// Dimensions are extra edge labels from resource, else span attributes of either side.
	Dimensions []string `mapstructure:"dimensions"`
	// EnableClientServerPrefix labels each dimension twice, client_<name> from the client span and
	// server_<name> from the server span; without it the side seen last wins.
	EnableClientServerPrefix bool `mapstructure:"enable_client_server_prefix"`
	// EnableVirtualNodeLabel adds virtual_node="client"|"server" to edges whose client or server is a
	// virtual node inferred at expiry.
	EnableVirtualNodeLabel bool `mapstructure:"enable_virtual_node_label"`
	// EnableMessagingSystemLatencyHistogram adds traces_service_graph_request_messaging_system_seconds: the
	// time between a producer span's end and its consumer span's start.
	EnableMessagingSystemLatencyHistogram bool `mapstructure:"enable_messaging_system_latency_histogram"`
	// SpanMultiplierKey as in span_metrics, for request counts and latency observations.
	SpanMultiplierKey string `mapstructure:"span_multiplier_key"`
}

// WALConfig configures the generator's write-ahead log.
type WALConfig struct {
	// Dir holds the WAL and checkpoints, one subdirectory per tenant is not needed: records carry the tenant.
	// Empty disables durability (state lives only in memory).
	Dir string `mapstructure:"dir"`
	// Policy is fsync (always (default): an accepted batch survives a power cut; interval; never: it survives
	// kill -9, not a power cut, cheaper on slow disks) and fsync_interval; sync (always, none) of earlier
	// releases still works.
	wal.Policy `mapstructure:",squash"`
	// CheckpointInterval is how often the whole state is written to a checkpoint and the log truncated.
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`
	// MinFreeDiskBytes refuses span batches (retryable, as the trace store does) while Dir's filesystem has less
	// free, so that the WAL does not meet a full disk mid-record; 0 turns the check off.
	MinFreeDiskBytes int64 `mapstructure:"min_free_disk_bytes"`
}

// DefaultSpanMetricsBuckets are Tempo's span-metrics latency buckets: 2ms doubling to 16.384s.
func DefaultSpanMetricsBuckets() []float64 {
	b := make([]float64, 14)
	v := 0.002
	for i := range b {
		b[i] = v
		v *= 2
	}
	return b
}

// DefaultServiceGraphBuckets are Tempo's service-graph latency buckets: 0.1s doubling to 12.8s.
func DefaultServiceGraphBuckets() []float64 {
	return []float64{0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8}
}

// DefaultConfig returns the defaults; WAL.Dir is left for the caller (the connector sets it under the data dir).
func DefaultConfig() Config {
	return Config{
		Processors: []string{ProcessorServiceGraphs, ProcessorSpanMetrics},
		SpanMetrics: SpanMetricsConfig{
			HistogramBuckets: DefaultSpanMetricsBuckets(),
			IntrinsicDimensions: IntrinsicDimensions{
				Service: true, SpanName: true, SpanKind: true, StatusCode: true,
			},
			EnableInstanceLabel: true,
		},
		ServiceGraphs: ServiceGraphsConfig{
			HistogramBuckets:       DefaultServiceGraphBuckets(),
			Wait:                   10 * time.Second,
			MaxItems:               10000,
			PeerAttributes:         []string{"peer.service", "db.name", "db.system", "db.system.name"},
			DatabaseNameAttributes: []string{"db.namespace", "db.name", "db.system", "db.system.name"},
		},
		MaxActiveSeries:                100000,
		MaxActiveSeriesPerTenant:       25000,
		StaleAfter:                     15 * time.Minute,
		FlushInterval:                  15 * time.Second,
		TraceIDLabelName:               "traceID",
		GenerateNativeHistograms:       HistogramClassic,
		NativeHistogramBucketFactor:    1.1,
		NativeHistogramMaxBucketNumber: 100,
		WAL: WALConfig{
			Policy:             wal.Policy{Fsync: wal.FsyncAlways, FsyncInterval: time.Second},
			CheckpointInterval: time.Minute,
			MinFreeDiskBytes:   diskguard.DefaultMinFreeBytes,
		},
	}
}

// Validate names the field that is wrong and why.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Processors) == 0 {
		errs = append(errs, errors.New("processors: at least one of service-graphs, span-metrics is required"))
	}
	for _, p := range c.Processors {
		if p != ProcessorServiceGraphs && p != ProcessorSpanMetrics {
			errs = append(errs, fmt.Errorf("processors: unknown processor %q (want service-graphs or span-metrics)", p))
		}
	}
	if err := validBuckets(c.SpanMetrics.HistogramBuckets); err != nil {
		errs = append(errs, fmt.Errorf("span_metrics.histogram_buckets: %w", err))
	}
	if err := validBuckets(c.ServiceGraphs.HistogramBuckets); err != nil {
		errs = append(errs, fmt.Errorf("service_graphs.histogram_buckets: %w", err))
	}
	// Two dimensions that sanitize to the same label are allowed, as in Tempo (deployment.environment and
	// deployment_environment from different SDKs): the one configured last wins.
	for _, d := range c.SpanMetrics.Dimensions {
		if d == "" {
			errs = append(errs, errors.New("span_metrics.dimensions: empty attribute name"))
		}
	}
	for _, d := range c.ServiceGraphs.Dimensions {
		if d == "" {
			errs = append(errs, errors.New("service_graphs.dimensions: empty attribute name"))
		}
	}
	if l := c.TraceIDLabelName; l != "" && (SanitizeLabelName(l) != l || l[0] >= '0' && l[0] <= '9') {
		errs = append(errs, fmt.Errorf("trace_id_label_name: %q is not a valid Prometheus label name", l))
	}
	switch c.GenerateNativeHistograms {
	case HistogramClassic, HistogramNative, HistogramBoth:
	default:
		errs = append(errs, fmt.Errorf("generate_native_histograms: %q is not one of classic, native, both", c.GenerateNativeHistograms))
	}
	if hasNative(c.GenerateNativeHistograms) {
		if !(c.NativeHistogramBucketFactor > 1) {
			errs = append(errs, fmt.Errorf("native_histogram_bucket_factor: %v must be greater than 1", c.NativeHistogramBucketFactor))
		}
		if c.NativeHistogramMaxBucketNumber <= 0 {
			errs = append(errs, errors.New("native_histogram_max_bucket_number: must be positive"))
		}
	}
	if c.ServiceGraphs.Wait <= 0 {
		errs = append(errs, errors.New("service_graphs.wait: must be positive"))
	}
	if c.ServiceGraphs.MaxItems <= 0 {
		errs = append(errs, errors.New("service_graphs.max_items: must be positive"))
	}
	if c.MaxActiveSeries < 0 {
		errs = append(errs, errors.New("max_active_series: must not be negative (0 means unlimited)"))
	}
	if c.MaxActiveSeriesPerTenant < 0 {
		errs = append(errs, errors.New("max_active_series_per_tenant: must not be negative (0 means no per-tenant limit)"))
	}
	if c.StaleAfter <= 0 {
		errs = append(errs, errors.New("stale_after: must be positive"))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, errors.New("flush_interval: must be positive"))
	}
	if err := c.WAL.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.WAL.CheckpointInterval <= 0 {
		errs = append(errs, errors.New("wal.checkpoint_interval: must be positive"))
	}
	if c.WAL.MinFreeDiskBytes < 0 {
		errs = append(errs, errors.New("wal.min_free_disk_bytes: must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) enabled(p string) bool { return slices.Contains(c.Processors, p) }

func validBuckets(b []float64) error {
	if len(b) == 0 {
		return errors.New("at least one bucket is required")
	}
	if !sort.Float64sAreSorted(b) {
		return errors.New("buckets must be in increasing order")
	}
	for i := 1; i < len(b); i++ {
		if b[i] == b[i-1] {
			return fmt.Errorf("bucket %v appears twice", b[i])
		}
	}
	return nil
}

// Histogram forms (generate_native_histograms), Tempo's values.
const (
	HistogramClassic = "classic"
	HistogramNative  = "native"
	HistogramBoth    = "both"
)

func hasNative(mode string) bool { return mode == HistogramNative || mode == HistogramBoth }
func hasClassic(mode string) bool {
	return mode == HistogramClassic || mode == HistogramBoth || mode == ""
}

// intrinsicLabels are span metrics' built-in labels. A dimension whose label would be one of them gets a "__"
// prefix (Tempo: `http.method` stays `http_method`, `service` becomes `__service`), whether or not the
// intrinsic dimension is enabled.
var intrinsicLabels = []string{"service", "span_name", "span_kind", "status_code", "status_message"}

// dimensionLabel is the label a span-metrics dimension or target-info attribute gets: sanitized, with a "__"
// prefix when it collides with one of reserved.
func dimensionLabel(attr string, reserved []string) string {
	l := SanitizeLabelName(attr)
	if slices.Contains(reserved, l) {
		return "__" + l
	}
	return l
}

// SanitizeLabelName makes an attribute name a Prometheus label name the way Tempo does (Prometheus'
// strutil.SanitizeLabelName): every character other than [a-zA-Z0-9_] becomes '_'. A leading digit is left
// for the OTLP translation, which prefixes "key_".
func SanitizeLabelName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}
