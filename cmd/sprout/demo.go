package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/sprout-otel/sprout/components/uiext"
	"github.com/sprout-otel/sprout/examples/rules"
	"github.com/sprout-otel/sprout/internal/demo"
	"github.com/sprout-otel/sprout/internal/distribution"
)

// demoOptions are the flags of `sprout demo`.
type demoOptions struct {
	config      string
	rate        float64
	duration    time.Duration
	dataDir     string
	metricsAddr string
	readyWithin time.Duration
	// workloadOnly runs just the demo services, as an app would: no Sprout in-process, OTLP to otlpEndpoint.
	workloadOnly bool
	otlpEndpoint string
}

func newDemoCommand() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run all-in-one Sprout with a built-in demo workload (frontend → checkout → payment, a database, a queue)",
		Long: `Starts Sprout in this process with the embedded demo config (all-in-one plus a prometheus receiver scraping
the demo's /metrics), waits until it is ready, then sends traces, metrics and logs from four instrumented demo
services over OTLP gRPC until interrupted (or for --duration). Open the printed UI address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, o, cmd.OutOrStdout())
		},
	}
	dataDefault := os.Getenv("SPROUT_DATA")
	if dataDefault == "" {
		dataDefault = "./data"
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", distribution.EmbeddedScheme+":demo", "config to run (file path or sprout:NAME)")
	f.Float64Var(&o.rate, "rate", 5, "demo requests per second (Poisson arrivals)")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (0: run until interrupted)")
	f.StringVar(&o.dataDir, "data-dir", dataDefault, "where Sprout keeps its data (sets SPROUT_DATA)")
	f.StringVar(&o.metricsAddr, "metrics-addr", envOr("SPROUT_DEMO_METRICS", "localhost:8080"), "listen address of the demo's Prometheus /metrics endpoint (sets SPROUT_DEMO_METRICS)")
	f.DurationVar(&o.readyWithin, "ready-timeout", time.Minute, "how long to wait for Sprout's /ready")
	f.BoolVar(&o.workloadOnly, "workload-only", false, "run only the demo services, like an instrumented app (for the compose and ECS examples)")
	f.StringVar(&o.otlpEndpoint, "otlp-endpoint", envOr("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"), "with --workload-only: OTLP gRPC endpoint to send to ($OTEL_EXPORTER_OTLP_ENDPOINT when set)")
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// runDemo starts the Collector in-process, waits for /ready, runs the workload until ctx ends (or the duration
// passes), then stops the workload first, so that its last batches are flushed into Sprout, and Sprout second.
func runDemo(ctx context.Context, o demoOptions, out io.Writer) error {
	if o.workloadOnly {
		return runWorkload(ctx, o, out)
	}
	// The embedded configs read these; setting them here keeps the demo's scrape target, data directory and
	// the workload's endpoints in agreement.
	if err := os.Setenv("SPROUT_DATA", o.dataDir); err != nil {
		return err
	}
	if err := os.Setenv("SPROUT_DEMO_METRICS", o.metricsAddr); err != nil {
		return err
	}
	// The demo's rules come with the binary: written under the data directory unless SPROUT_RULES names others,
	// so that they load wherever the binary runs, not only from a checkout.
	rulesDir := os.Getenv("SPROUT_RULES")
	if rulesDir == "" {
		rulesDir = filepath.Join(o.dataDir, "example-rules")
		if _, err := rules.WriteTo(rulesDir); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if err := os.Setenv("SPROUT_RULES", rulesDir); err != nil {
			return err
		}
	}
	uiext.Announce = nil // the demo prints its own banner, with the UI's address in it
	apiAddr := envOr("SPROUT_HTTP_ENDPOINT", "localhost:3200")
	otlpAddr := envOr("SPROUT_OTLP_GRPC_ENDPOINT", "localhost:4317")

	set := distribution.Settings(version, o.config)
	set.DisableGracefulShutdown = true // the demo owns the signals: workload first, then Sprout
	col, err := otelcol.NewCollector(set)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	colDone := make(chan error, 1)
	go func() { colDone <- col.Run(context.Background()) }()
	stopSprout := func() error {
		col.Shutdown()
		return <-colDone
	}

	start := time.Now()
	if err := waitReady(ctx, "http://"+apiAddr+"/ready", o.readyWithin, colDone); err != nil {
		if errors.Is(err, errCollectorExited) {
			return err
		}
		return errors.Join(err, stopSprout())
	}
	fmt.Fprintf(out, "Sprout is ready after %v (data in %s).\n", time.Since(start).Round(time.Millisecond), o.dataDir)

	w, err := demo.New(ctx, demo.Config{Endpoint: otlpAddr, MetricsAddr: o.metricsAddr, Rate: o.rate, ResourceAttributes: os.Getenv("OTEL_RESOURCE_ATTRIBUTES")})
	if err != nil {
		return errors.Join(fmt.Errorf("demo workload: %w", err), stopSprout())
	}
	base := "http://" + apiAddr
	fmt.Fprintf(out, `
Demo workload: services frontend, checkout, payment, fulfillment at %.1f requests/s, OTLP to %s,
Prometheus metrics on %s (scraped by Sprout every 15s).
Example recording and alerting rules: %s (SPROUT_RULES).

  UI                          %s/ui/
  Grafana data source: Tempo       %s
  Grafana data source: Prometheus  %s
  Grafana data source: Loki        %s
  Try: curl '%s/api/search?limit=5'
       curl '%s/api/v1/query?query=sum(rate(traces_spanmetrics_calls_total[1m]))by(service)'
       curl -G '%s/loki/api/v1/query_range' --data-urlencode 'query={service_name="checkout"}'

Press Ctrl-C to stop.
`, o.rate, otlpAddr, w.MetricsURL(), rulesDir, base, base, base, base, base, base, base)

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if o.duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, o.duration)
	}
	defer cancel()
	wErr := make(chan error, 1)
	go func() { wErr <- w.Run(runCtx) }()
	select {
	case err := <-wErr:
		fmt.Fprintf(out, "Demo stopped after %d requests; shutting Sprout down.\n", w.Requests())
		return errors.Join(err, stopSprout())
	case err := <-colDone:
		cancel()
		<-wErr
		if err == nil {
			err = errors.New("sprout stopped")
		}
		return fmt.Errorf("demo: %w", err)
	}
}

// runWorkload is the demo as an app in its own container: the seed's OTEL_EXPORTER_OTLP_ENDPOINT and
// OTEL_RESOURCE_ATTRIBUTES apply (each service still names itself), /metrics on --metrics-addr.
func runWorkload(ctx context.Context, o demoOptions, out io.Writer) error {
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	w, err := demo.New(ctx, demo.Config{Endpoint: o.otlpEndpoint, MetricsAddr: o.metricsAddr, Rate: o.rate, ResourceAttributes: os.Getenv("OTEL_RESOURCE_ATTRIBUTES")})
	if err != nil {
		return fmt.Errorf("demo workload: %w", err)
	}
	fmt.Fprintf(out, "Demo workload: %.1f requests/s, OTLP to %s, Prometheus metrics on %s\n", o.rate, o.otlpEndpoint, w.MetricsURL())
	err = w.Run(ctx)
	fmt.Fprintf(out, "Demo stopped after %d requests.\n", w.Requests())
	return err
}

var errCollectorExited = errors.New("sprout exited before it was ready")

// waitReady polls url until it answers 200, the deadline passes, ctx ends, or the collector exits.
func waitReady(ctx context.Context, url string, within time.Duration, colDone <-chan error) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sprout not ready at %s within %v: %s", url, within, last)
		}
		select {
		case err := <-colDone:
			return fmt.Errorf("%w: %v", errCollectorExited, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
