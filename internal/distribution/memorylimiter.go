package distribution

import (
	"context"
	"reflect"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/processor/xprocessor"
)

// memoryLimiterFactory is the Collector's memory_limiter processor, with one limiter per pipeline instead of one
// shared by every pipeline that names the same processor. The upstream factory (v0.158) shares a limiter by
// config and calls its Start once per pipeline; each Start after the first writes the limiter's host while the
// limiter's check loop, started by the first, reads it: a data race whenever a check falls between two pipelines'
// starts (slow starts under load). Each pipeline's own copy of the config gets its own limiter, started once.
// What they decide is the same (each reads the process's memory); only the periodic read of memory statistics
// runs once per pipeline rather than once.
type memoryLimiterFactory struct{ xprocessor.Factory }

func newMemoryLimiterFactory() processor.Factory {
	return memoryLimiterFactory{memorylimiterprocessor.NewFactory().(xprocessor.Factory)}
}

// ownConfig is a copy of cfg, a pointer to a config struct: a key of its own in the upstream factory's map.
func ownConfig(cfg component.Config) component.Config {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return cfg
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	return c.Interface()
}

func (f memoryLimiterFactory) CreateTraces(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	return f.Factory.CreateTraces(ctx, set, ownConfig(cfg), next)
}

func (f memoryLimiterFactory) CreateMetrics(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
	return f.Factory.CreateMetrics(ctx, set, ownConfig(cfg), next)
}

func (f memoryLimiterFactory) CreateLogs(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	return f.Factory.CreateLogs(ctx, set, ownConfig(cfg), next)
}
