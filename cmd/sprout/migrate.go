package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"github.com/sprout-otel/sprout/components/logstoreext"
	"github.com/sprout-otel/sprout/components/metricstoreext"
	"github.com/sprout-otel/sprout/components/tracestoreext"
	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/distribution"
	"github.com/sprout-otel/sprout/internal/migrate"
)

// migrateFlags are the flags of `sprout migrate`.
type migrateFlags struct {
	config, from, to, tenant, targetTenant, signals, rate   string
	batch                                                   int
	tracesOTLP, logsLoki, metricsRW, metricsDir, metricsCfg string
	headers                                                 []string
	basicAuth, bearerFile, checkpoint, scratch              string
	timeout, maxRetry                                       time.Duration
}

func newMigrateCommand() *cobra.Command {
	f := migrateFlags{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Copy the history a Sprout backend holds into Tempo, Loki, and Mimir or Prometheus",
		Long: `Reads one tenant's traces, metrics and logs over a time range from the stores named in --config (the same
config the backend runs with: its data directories and buckets, read only, with Sprout stopped or running) and
sends them to clusters: traces over OTLP (--traces-otlp), logs to Loki's push API (--logs-loki), metrics as
TSDB blocks into a bucket in Mimir's layout (--metrics-bucket-dir, --metrics-bucket-config) and/or by remote
write (--metrics-remote-write). A checkpoint file records what each target acknowledged: a killed run resumes
where it stopped, and a second run sends nothing twice. See docs/growing.md, "Moving history".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o, err := f.options(ctx, time.Now())
			if err != nil {
				return err
			}
			o.Progress = cmd.ErrOrStderr()
			o.ProgressTTY = isTerminal(o.Progress)
			cmd.SilenceUsage = true
			counts, err := migrate.Run(ctx, o)
			// The counts, also of a run that stopped: what they say was sent is in the checkpoint.
			for _, c := range counts {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", c)
			}
			if err != nil && ctx.Err() != nil {
				return fmt.Errorf("interrupted; run the same command again to resume from %s", o.Checkpoint)
			}
			if err != nil && o.Checkpoint != "" {
				return fmt.Errorf("%w\n(what was sent is in %s: run the same command again to resume)", err, o.Checkpoint)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", distribution.DefaultConfigURI, "the config the Sprout backend runs with (file path or sprout:NAME); its stores' data_dir and storage are read")
	fl.StringVar(&f.from, "from", "30d", "start of the range: RFC 3339 time, or a duration before now (30d, 36h)")
	fl.StringVar(&f.to, "to", "0s", "end of the range (excluded): RFC 3339 time, or a duration before now")
	fl.StringVar(&f.tenant, "tenant", "single-tenant", "the Sprout tenant to copy")
	fl.StringVar(&f.targetTenant, "target-tenant", "", "X-Scope-OrgID sent to the targets (default: --tenant)")
	fl.StringVar(&f.signals, "signals", "", "comma-separated signals to copy: traces, metrics, logs (default: those with a target)")
	fl.StringVar(&f.rate, "rate", "", "limit: items per second (5000), or bytes per second with a unit (2MiB); default none")
	fl.IntVar(&f.batch, "batch-size", 2000, "spans, log lines or samples per request")
	fl.StringVar(&f.tracesOTLP, "traces-otlp", "", "OTLP target for traces: http(s)://tempo:4318[/v1/traces] or grpc://tempo:4317 (grpcs:// for TLS)")
	fl.StringVar(&f.logsLoki, "logs-loki", "", "Loki base URL for logs (http://loki:3100); lines go to /loki/api/v1/push")
	fl.StringVar(&f.metricsRW, "metrics-remote-write", "", "remote-write URL for metrics (Mimir http://mimir:8080/api/v1/push, Prometheus http://prometheus:9090/api/v1/write)")
	fl.StringVar(&f.metricsDir, "metrics-bucket-dir", "", "directory of a filesystem bucket to write metric blocks to, in Mimir's layout <tenant>/<ULID>/")
	fl.StringVar(&f.metricsCfg, "metrics-bucket-config", "", "YAML file of a bucket (Sprout's storage keys: backend, prefix, filesystem.dir, s3.*) to write metric blocks to")
	fl.StringArrayVar(&f.headers, "header", nil, "header added to every request to a target, \"Name: value\" (repeatable)")
	fl.StringVar(&f.basicAuth, "basic-auth", os.Getenv("SPROUT_MIGRATE_BASIC_AUTH"), "user:password for the targets ($SPROUT_MIGRATE_BASIC_AUTH)")
	fl.StringVar(&f.bearerFile, "bearer-token-file", "", "file holding a bearer token for the targets")
	fl.StringVar(&f.checkpoint, "checkpoint", "sprout-migrate.checkpoint.json", "checkpoint file: resumes a killed run, skips what an earlier run sent (\"\" keeps none)")
	fl.StringVar(&f.scratch, "scratch-dir", "", "directory for downloaded and written metric blocks (default: the system's temp directory)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of one request")
	fl.DurationVar(&f.maxRetry, "max-retry-time", 5*time.Minute, "how long one batch is retried when a target is unreachable or asks to retry")
	return cmd
}

// options turns the flags and the backend's config into migrate.Options.
func (f *migrateFlags) options(ctx context.Context, now time.Time) (migrate.Options, error) {
	o := migrate.Options{Tenant: f.tenant, TargetTenant: f.targetTenant, BatchItems: f.batch, Checkpoint: f.checkpoint,
		ScratchDir: f.scratch, Timeout: f.timeout,
		Retry: migrate.RetryPolicy{Initial: time.Second, Max: 30 * time.Second, MaxElapsed: f.maxRetry}}
	var err error
	if o.From, err = parseTimeFlag(f.from, now); err != nil {
		return o, fmt.Errorf("--from: %w", err)
	}
	if o.To, err = parseTimeFlag(f.to, now); err != nil {
		return o, fmt.Errorf("--to: %w", err)
	}
	// A relative range ("30d") is resolved by the first run; a resumed run continues the range in its checkpoint.
	o.RangeFromCheckpoint = isRelative(f.from) || isRelative(f.to)
	if o.Rate, err = migrate.ParseRate(f.rate); err != nil {
		return o, fmt.Errorf("--rate: %w", err)
	}
	o.Traces.Endpoint, o.Logs.Endpoint, o.Metrics.RemoteWrite = f.tracesOTLP, f.logsLoki, f.metricsRW
	switch {
	case f.metricsDir != "" && f.metricsCfg != "":
		return o, errors.New("--metrics-bucket-dir and --metrics-bucket-config: give one")
	case f.metricsDir != "":
		o.Metrics.TargetBucket = &bucket.Config{Backend: bucket.BackendFilesystem, Filesystem: bucket.FilesystemConfig{Dir: f.metricsDir}}
	case f.metricsCfg != "":
		var bc bucket.Config
		if err := resolveInto(ctx, f.metricsCfg, func(c *confmap.Conf) error { return c.Unmarshal(&bc) }); err != nil {
			return o, fmt.Errorf("--metrics-bucket-config: %w", err)
		}
		o.Metrics.TargetBucket = &bc
	}
	if f.signals != "" {
		for _, s := range strings.Split(f.signals, ",") {
			o.Signals = append(o.Signals, strings.TrimSpace(s))
		}
	} else {
		if o.Traces.Endpoint != "" {
			o.Signals = append(o.Signals, migrate.Traces)
		}
		if o.Metrics.RemoteWrite != "" || o.Metrics.TargetBucket != nil {
			o.Signals = append(o.Signals, migrate.Metrics)
		}
		if o.Logs.Endpoint != "" {
			o.Signals = append(o.Signals, migrate.Logs)
		}
		if len(o.Signals) == 0 {
			return o, errors.New("no target: give --traces-otlp, --logs-loki, --metrics-remote-write or --metrics-bucket-dir")
		}
	}
	o.Auth.Headers = map[string]string{}
	for _, h := range f.headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return o, fmt.Errorf("--header %q: want \"Name: value\"", h)
		}
		o.Auth.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if f.basicAuth != "" {
		u, p, ok := strings.Cut(f.basicAuth, ":")
		if !ok {
			return o, errors.New("--basic-auth: want user:password")
		}
		o.Auth.BasicUser, o.Auth.BasicPassword = u, p
	}
	if f.bearerFile != "" {
		b, err := os.ReadFile(f.bearerFile)
		if err != nil {
			return o, fmt.Errorf("--bearer-token-file: %w", err)
		}
		o.Auth.BearerToken = strings.TrimSpace(string(b))
	}
	if err := f.sources(ctx, &o); err != nil {
		return o, fmt.Errorf("--config %s: %w", f.config, err)
	}
	return o, o.Validate()
}

// sources reads the stores' locations from the backend's config, with the stores' own defaults and derived
// directories.
func (f *migrateFlags) sources(ctx context.Context, o *migrate.Options) error {
	factories, err := distribution.Components()
	if err != nil {
		return err
	}
	return resolveInto(ctx, f.config, func(conf *confmap.Conf) error {
		exts, err := conf.Sub("extensions")
		if err != nil {
			return err
		}
		found := map[component.Type]string{}
		for key := range exts.ToStringMap() {
			var id component.ID
			if err := id.UnmarshalText([]byte(key)); err != nil {
				continue
			}
			switch id.Type() {
			case tracestoreext.Type, metricstoreext.Type, logstoreext.Type:
			default:
				continue
			}
			if prev, dup := found[id.Type()]; dup {
				return fmt.Errorf("two %s extensions (%s, %s): migrate reads one of each; give a config with one", id.Type(), prev, key)
			}
			found[id.Type()] = key
			sub, err := exts.Sub(key)
			if err != nil {
				return err
			}
			cfg := factories.Extensions[id.Type()].CreateDefaultConfig()
			if err := sub.Unmarshal(cfg); err != nil {
				return fmt.Errorf("extensions::%s: %w", key, err)
			}
			switch c := cfg.(type) {
			case *tracestoreext.Config:
				o.Traces.Source = c.Storage
				if (c.Storage.Backend == "" || c.Storage.Backend == bucket.BackendFilesystem) && c.Storage.Filesystem.Dir == "" {
					o.Traces.Source.Filesystem.Dir = filepath.Join(c.DataDir, "blocks")
				}
			case *metricstoreext.Config:
				o.Metrics.DataDir = c.DataDir
				if c.Storage.Enabled {
					bc := c.Storage.Config
					if (bc.Backend == "" || bc.Backend == bucket.BackendFilesystem) && bc.Filesystem.Dir == "" {
						bc.Filesystem.Dir = filepath.Join(c.DataDir, ".bucket")
					}
					o.Metrics.Source = &bc
				}
				if c.BlockDuration > 0 {
					o.Metrics.Window = c.BlockDuration
				}
			case *logstoreext.Config:
				o.Logs.Source = c.BucketConfig()
			}
		}
		for _, s := range o.Signals {
			t := map[string]component.Type{migrate.Traces: tracestoreext.Type, migrate.Metrics: metricstoreext.Type, migrate.Logs: logstoreext.Type}[s]
			if t.String() != "" && found[t] == "" {
				return fmt.Errorf("no %s extension: this config holds no %s", t, s)
			}
		}
		return nil
	})
}

// resolveInto resolves a config URI as the Collector does (files, sprout:NAME, ${env:…}) and hands it to fn.
func resolveInto(ctx context.Context, uri string, fn func(*confmap.Conf) error) error {
	rs := distribution.Settings(version, uri).ConfigProviderSettings.ResolverSettings
	r, err := confmap.NewResolver(rs)
	if err != nil {
		return err
	}
	defer r.Shutdown(context.WithoutCancel(ctx))
	conf, err := r.Resolve(ctx)
	if err != nil {
		return err
	}
	return fn(conf)
}

// parseTimeFlag reads an RFC 3339 time, or a duration before now ("7d" is seven days).
func parseTimeFlag(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time or a duration (30d, 36h)", s)
		}
		return now.Add(-time.Duration(n * float64(24*time.Hour))), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time or a duration (30d, 36h)", s)
	}
	return now.Add(-d), nil
}

func isRelative(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err != nil
}

// isTerminal reports whether w is a character device (a terminal), where the progress line is redrawn.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
