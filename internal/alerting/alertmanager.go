// Package alerting is Sprout's embedded Alertmanager: Prometheus' Alertmanager libraries (routing, grouping,
// inhibition, silences, the notification log and its receivers) wired into in-process instances whose v2 API
// is served on Sprout's API port, with silences and the notification log snapshotted under a data directory.
// MultiTenant runs one instance per tenant, with Mimir's per-tenant configuration API.
//
// It owns the Alertmanager's lifecycle and configuration. It must not evaluate rules (that is internal/ruler) and
// must not open a port of its own; callers mount Handler where they like.
package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	apiv2 "github.com/prometheus/alertmanager/api/v2"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/sprout-otel/sprout/internal/egress"
)

// DefaultConfig routes every alert to a receiver without integrations: alerts are kept, shown by the API and can
// be silenced, but nothing is sent until a real configuration is given.
const DefaultConfig = `
route:
  receiver: default
  group_by: [alertname]
receivers:
  - name: default
`

// Options configure an embedded Alertmanager.
type Options struct {
	// ConfigFile is an Alertmanager configuration file. It wins over ConfigYAML.
	ConfigFile string
	// ConfigYAML is an inline Alertmanager configuration; DefaultConfig when both are empty.
	ConfigYAML string
	// DataDir keeps the silences and nflog snapshots.
	DataDir string
	// Retention is how long silences and notification log entries are kept after they expire (default 120h).
	Retention time.Duration
	// MaintenanceInterval is how often state is garbage-collected and snapshotted (default 15m).
	MaintenanceInterval time.Duration
	// ExternalURL is the URL under which the Alertmanager is reachable, used in notification templates.
	ExternalURL string
	Logger      *slog.Logger
	// Registerer receives the Alertmanager's own metrics (alertmanager_notifications_failed_total and friends).
	Registerer prometheus.Registerer
	// Firewall is the address policy the receivers of a configuration dial through (nil: none). It is asked for
	// each configuration applied, as a tenant's own configuration and the operator's may be held to different
	// policies.
	Firewall func(*config.Config) *egress.Policy
}

// Alertmanager is a running embedded Alertmanager.
type Alertmanager struct {
	logger   *slog.Logger
	alerts   *mem.Alerts
	silences *silence.Silences
	silencer *silence.Silencer
	nflog    *nflog.Log
	api      *apiv2.API
	marker   marker.GroupMarker
	extURL   *url.URL
	rec      eventrecorder.Recorder
	firewall func(*config.Config) *egress.Policy

	pipelines   *notify.PipelineBuilder
	dispMetrics *dispatch.DispatcherMetrics

	mu        sync.Mutex // guards the running configuration; ApplyConfig holds it throughout
	disp      *dispatch.Dispatcher
	inhibitor *inhibit.Inhibitor
	conf      *config.Config

	stop     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// LoadConfig reads the Alertmanager configuration the options name, so that a bad one fails at start with the
// file (or "inline config") in the message.
func LoadConfig(o Options) (*config.Config, error) {
	if o.ConfigFile != "" {
		c, err := config.LoadFile(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("alertmanager config %s: %w", o.ConfigFile, err)
		}
		return c, nil
	}
	s := o.ConfigYAML
	if strings.TrimSpace(s) == "" {
		s = DefaultConfig
	}
	c, err := config.Load(s)
	if err != nil {
		return nil, fmt.Errorf("alertmanager inline config: %w", err)
	}
	return c, nil
}

// New starts an embedded Alertmanager with the configuration the options name. Stop it with Stop.
func New(o Options) (*Alertmanager, error) {
	conf, err := LoadConfig(o)
	if err != nil {
		return nil, err
	}
	return NewWithConfig(o, conf)
}

// NewWithConfig starts an embedded Alertmanager with conf (the options' config fields are not read).
func NewWithConfig(o Options, conf *config.Config) (*Alertmanager, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Retention <= 0 {
		o.Retention = 120 * time.Hour
	}
	if o.MaintenanceInterval <= 0 {
		o.MaintenanceInterval = 15 * time.Minute
	}
	if o.DataDir == "" {
		return nil, errors.New("alertmanager: data dir must be set")
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("alertmanager: create data dir: %w", err)
	}
	extURL, err := url.Parse(o.ExternalURL)
	if err != nil {
		return nil, fmt.Errorf("alertmanager: external url %q: %w", o.ExternalURL, err)
	}
	ff, err := featurecontrol.NewFlags(o.Logger, "")
	if err != nil {
		return nil, err
	}
	reg := o.Registerer

	am := &Alertmanager{logger: o.Logger, marker: marker.NewGroupMarker(), stop: make(chan struct{}), extURL: extURL, firewall: o.Firewall}

	nflogFile := filepath.Join(o.DataDir, "nflog")
	am.nflog, err = nflog.New(nflog.Options{SnapshotFile: nflogFile, Retention: o.Retention, Logger: o.Logger.With("component", "nflog"), Metrics: reg})
	if err != nil {
		return nil, fmt.Errorf("alertmanager: notification log %s: %w", nflogFile, err)
	}
	silFile := filepath.Join(o.DataDir, "silences")
	am.silences, err = silence.New(silence.Options{SnapshotFile: silFile, Retention: o.Retention, Logger: o.Logger.With("component", "silences"), Metrics: reg, EventRecorder: am.rec})
	if err != nil {
		return nil, fmt.Errorf("alertmanager: silences %s: %w", silFile, err)
	}
	am.wg.Add(2)
	go func() { defer am.wg.Done(); am.nflog.Maintenance(o.MaintenanceInterval, nflogFile, am.stop, nil) }()
	go func() { defer am.wg.Done(); am.silences.Maintenance(o.MaintenanceInterval, silFile, am.stop, nil) }()

	am.silencer = silence.NewSilencer(am.silences, o.Logger, am.rec)
	am.alerts, err = mem.NewAlerts(context.Background(), 30*time.Minute, 0, am.silencer, o.Logger, am.rec, reg, ff)
	if err != nil {
		am.Stop()
		return nil, fmt.Errorf("alertmanager: alert store: %w", err)
	}

	groupFn := func(ctx context.Context, rf func(*dispatch.Route) bool, af func(*alert.Alert, time.Time) bool) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
		am.mu.Lock()
		d := am.disp
		am.mu.Unlock()
		return d.Groups(ctx, rf, af)
	}
	am.api, err = apiv2.NewAPI(am.alerts, groupFn, am.marker.Muted, am.silences, nil, o.Logger.With("component", "api"), reg)
	if err != nil {
		am.Stop()
		return nil, fmt.Errorf("alertmanager: api: %w", err)
	}
	am.pipelines = notify.NewPipelineBuilder(reg, ff, am.rec)
	am.dispMetrics = dispatch.NewDispatcherMetrics(false, reg, ff)
	if err := am.ApplyConfig(conf); err != nil {
		am.Stop()
		return nil, err
	}
	return am, nil
}

// ApplyConfig replaces the running configuration: routes, receivers, inhibition rules, time intervals and
// templates. Alerts, silences and the notification log are kept. On error the old configuration keeps running.
func (am *Alertmanager) ApplyConfig(conf *config.Config) error {
	tmpl, err := template.FromGlobs(conf.Templates)
	if err != nil {
		return fmt.Errorf("alertmanager: templates: %w", err)
	}
	tmpl.ExternalURL = am.extURL

	routes := dispatch.NewRoute(conf.Route, nil)
	active := map[string]struct{}{}
	routes.Walk(func(r *dispatch.Route) { active[r.RouteOpts.Receiver] = struct{}{} })
	receivers := make(map[string][]notify.Integration, len(active))
	var httpOpts []commoncfg.HTTPClientOption
	if am.firewall != nil {
		if p := am.firewall(conf); p.Enabled() {
			// Every HTTP integration dials through the policy, which checks the address a name resolved to.
			httpOpts = append(httpOpts, commoncfg.WithDialContextFunc(p.DialContext))
		}
	}
	for _, rcv := range conf.Receivers {
		if _, ok := active[rcv.Name]; !ok {
			continue
		}
		ints, err := receiver.BuildReceiverIntegrations(rcv, tmpl, am.logger, httpOpts...)
		if err != nil {
			return fmt.Errorf("alertmanager: receiver %q: %w", rcv.Name, err)
		}
		receivers[rcv.Name] = ints
	}
	intervals := map[string][]timeinterval.TimeInterval{}
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}

	am.mu.Lock()
	defer am.mu.Unlock()
	if am.disp != nil {
		am.disp.Stop()
	}
	if am.inhibitor != nil {
		am.inhibitor.Stop()
	}
	inhibitor := inhibit.NewInhibitor(am.alerts, conf.InhibitRules, am.logger, am.rec)
	// The pipeline's RetryStage retries a failing integration with exponential back-off until the group's
	// timeout, and counts each failure in alertmanager_notifications_failed_total.
	pipeline := am.pipelines.New(receivers, func() time.Duration { return 0 }, inhibitor,
		am.silencer, timeinterval.NewIntervener(intervals), am.marker, am.nflog, nil)
	am.api.Update(conf, func(ctx context.Context, ls model.LabelSet) {
		inhibitor.Mutes(ctx, ls)
		am.silencer.Mutes(ctx, ls)
	})
	timeout := func(d time.Duration) time.Duration { return max(d, notify.MinTimeout) }
	disp := dispatch.NewDispatcher(am.alerts, routes, pipeline, am.marker, timeout, 30*time.Second, nil, am.logger,
		am.rec, am.dispMetrics)
	go inhibitor.Run()
	inhibitor.WaitForLoading()
	go disp.Run(time.Now())
	disp.WaitForLoading()
	am.disp, am.inhibitor, am.conf = disp, inhibitor, conf
	return nil
}

// Handler serves the Alertmanager v2 API with paths starting at /api/v2/. Mount it under a prefix with
// http.StripPrefix (Sprout serves it under /alertmanager, so amtool's --alertmanager.url ends in /alertmanager).
func (am *Alertmanager) Handler() http.Handler { return am.api.Handler }

// Config is the configuration the Alertmanager runs with.
func (am *Alertmanager) Config() *config.Config {
	am.mu.Lock()
	defer am.mu.Unlock()
	return am.conf
}

// Stop stops dispatching and writes the final silence and notification log snapshots.
func (am *Alertmanager) Stop() { am.stopOnce.Do(am.stopNow) }

func (am *Alertmanager) stopNow() {
	am.mu.Lock()
	d, ih := am.disp, am.inhibitor
	am.mu.Unlock()
	if d != nil {
		d.Stop()
	}
	if ih != nil {
		ih.Stop()
	}
	if am.alerts != nil {
		am.alerts.Close()
	}
	close(am.stop)
	am.wg.Wait()
}
