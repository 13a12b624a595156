// Package resourcedetectionprocessor is the `resource_detection` processor (alias `resourcedetection`) with the
// detectors Sprout's configs and the seed's use: `env` (OTEL_RESOURCE_ATTRIBUTES) and `ecs` (the ECS task
// metadata endpoint). It detects once at start and adds the attributes to every resource that passes.
//
// The contrib processor of the same name registers every detector it has (EC2, GCP, Azure, Kubernetes,
// Consul, Docker, …) in its factory, so linking it links their cloud SDKs: about a third of the binary. No
// config of Sprout's or the seed's uses them, so Sprout ships this processor with the same keys and the same
// attributes for the detectors it keeps, and refuses the others by name.
package resourcedetectionprocessor

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.opentelemetry.io/collector/processor/xprocessor"
	"go.uber.org/zap"
)

var (
	// Type is the processor's name in configuration; DeprecatedType the older name the seed's config uses.
	Type           = component.MustNewType("resource_detection")
	DeprecatedType = component.MustNewType("resourcedetection")
)

// NewFactory returns the processor factory. The processors one config entry makes for several pipelines share
// one detection, as the contrib processor's do.
func NewFactory() processor.Factory {
	f := &factory{shared: map[component.ID]*detection{}}
	return xprocessor.NewFactory(Type, createDefaultConfig,
		xprocessor.WithDeprecatedTypeAlias(DeprecatedType),
		xprocessor.WithTraces(f.createTraces, component.StabilityLevelBeta),
		xprocessor.WithMetrics(f.createMetrics, component.StabilityLevelBeta),
		xprocessor.WithLogs(f.createLogs, component.StabilityLevelBeta))
}

func createDefaultConfig() component.Config {
	return &Config{Detectors: []string{envDetector}, Override: true, Timeout: 5 * time.Second}
}

type factory struct {
	mu     sync.Mutex
	shared map[component.ID]*detection
}

func (f *factory) detection(set processor.Settings, cfg *Config) *detection {
	f.mu.Lock()
	defer f.mu.Unlock()
	// A reload of the config makes a new Config: detect again for it.
	d := f.shared[set.ID]
	if d == nil || d.cfg != cfg {
		d = &detection{cfg: cfg, logger: set.Logger}
		f.shared[set.ID] = d
	}
	return d
}

// detection is one config entry's detected resource, found by the first of its processors to start.
type detection struct {
	cfg    *Config
	logger *zap.Logger

	once   sync.Once
	err    error
	res    pcommon.Resource
	schema string
}

func (d *detection) start(ctx context.Context, _ component.Host) error {
	d.once.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		defer cancel()
		client := &http.Client{Timeout: d.cfg.Timeout}
		d.logger.Info("began detecting resource information", zap.Strings("detectors", d.cfg.Detectors))
		d.res, d.schema, d.err = detectAll(ctx, client, d.cfg.Detectors)
		if d.err == nil {
			d.logger.Info("detected resource information", zap.Any("resource", d.res.Attributes().AsRaw()))
		}
	})
	if d.err != nil {
		return fmt.Errorf("resource detection: %w", d.err)
	}
	return nil
}

// apply adds the detected attributes to one resource and sets its schema URL when it has none.
func (d *detection) apply(res pcommon.Resource, schemaURL func() string, setSchemaURL func(string)) {
	if d.res.Attributes().Len() == 0 {
		return
	}
	if schemaURL() == "" && d.schema != "" {
		setSchemaURL(d.schema)
	}
	mergeResource(res, d.res, d.cfg.Override)
}

var capabilities = consumer.Capabilities{MutatesData: true}

func (f *factory) createTraces(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	d := f.detection(set, cfg.(*Config))
	return processorhelper.NewTraces(ctx, set, cfg, next, func(_ context.Context, td ptrace.Traces) (ptrace.Traces, error) {
		for _, rs := range td.ResourceSpans().All() {
			d.apply(rs.Resource(), rs.SchemaUrl, rs.SetSchemaUrl)
		}
		return td, nil
	}, processorhelper.WithCapabilities(capabilities), processorhelper.WithStart(d.start))
}

func (f *factory) createMetrics(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
	d := f.detection(set, cfg.(*Config))
	return processorhelper.NewMetrics(ctx, set, cfg, next, func(_ context.Context, md pmetric.Metrics) (pmetric.Metrics, error) {
		for _, rm := range md.ResourceMetrics().All() {
			d.apply(rm.Resource(), rm.SchemaUrl, rm.SetSchemaUrl)
		}
		return md, nil
	}, processorhelper.WithCapabilities(capabilities), processorhelper.WithStart(d.start))
}

func (f *factory) createLogs(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	d := f.detection(set, cfg.(*Config))
	return processorhelper.NewLogs(ctx, set, cfg, next, func(_ context.Context, ld plog.Logs) (plog.Logs, error) {
		for _, rl := range ld.ResourceLogs().All() {
			d.apply(rl.Resource(), rl.SchemaUrl, rl.SetSchemaUrl)
		}
		return ld, nil
	}, processorhelper.WithCapabilities(capabilities), processorhelper.WithStart(d.start))
}
