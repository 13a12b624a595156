// Command sprout is the whole Sprout system in one binary: an OpenTelemetry Collector distribution whose
// components include trace, metrics and log stores with Tempo-, Prometheus- and Loki-compatible APIs.
//
// With no flags it runs the embedded all-in-one config; --config replaces it (a file path, or sprout:NAME for an
// embedded example). The Collector's own subcommands are all here: `components`, `validate`, `print-config`;
// Sprout adds `demo` (all-in-one plus a demo workload), `healthcheck` (a probe for images without curl) and
// `migrate` (copies a backend's history into Tempo, Loki and Mimir or Prometheus).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/sprout-otel/sprout/components/uiext"
	"github.com/sprout-otel/sprout/internal/distribution"
	"github.com/sprout-otel/sprout/internal/memguard"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	watchShutdownDeadline()
	// Before anything allocates: a Go heap that knows the container's limit collects harder near it instead
	// of being killed past it. sprout_api logs the decision with its memory budgets, which derive from it.
	memguard.SetGoMemLimit("/", os.Getenv)
	memguard.TuneGC(os.Getenv)
	// The logs are JSON for machines; the person who started `sprout` also gets the UI's address in plain text.
	uiext.Announce = func(url string) {
		fmt.Fprintf(os.Stderr, "\nSprout UI: %s  (Tempo, Prometheus and Loki APIs under the same address)\n\n", url)
	}
	cmd := otelcol.NewCommand(distribution.Settings(version))
	cmd.AddCommand(newDemoCommand(), newHealthcheckCommand(), newMigrateCommand())
	if err := cmd.Execute(); err != nil {
		// cobra has printed the error already.
		os.Exit(1)
	}
}

// watchShutdownDeadline bounds graceful shutdown. ECS sends SIGTERM and SIGKILLs 30 s later (stopTimeout); a
// shutdown that overruns is cut here first, at SPROUT_SHUTDOWN_TIMEOUT (default 25s), with a message, so that the
// operator learns which deadline was missed. Acknowledged data is already in the write-ahead logs, so exiting
// here loses nothing that was acknowledged.
func watchShutdownDeadline() {
	timeout := 25 * time.Second
	if v := os.Getenv("SPROUT_SHUTDOWN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "SPROUT_SHUTDOWN_TIMEOUT: %q is not a duration: %v\n", v, err)
			os.Exit(2)
		}
		timeout = d
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-ch
		time.Sleep(timeout)
		fmt.Fprintf(os.Stderr, "sprout: still shutting down %s after %v; exiting (SPROUT_SHUTDOWN_TIMEOUT=%s)\n", timeout, sig, strconv.Quote(timeout.String()))
		os.Exit(1)
	}()
}
