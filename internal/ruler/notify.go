package ruler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// postableAlert is one element of the Alertmanager v2 POST /api/v2/alerts body.
type postableAlert struct {
	Labels       labels.Labels `json:"labels"`
	Annotations  labels.Labels `json:"annotations,omitempty"`
	StartsAt     time.Time     `json:"startsAt,omitzero"`
	EndsAt       time.Time     `json:"endsAt,omitzero"`
	GeneratorURL string        `json:"generatorURL,omitempty"`
}

type batch struct {
	tenant string
	alerts []postableAlert
}

// AlertmanagerSender posts alerts to an Alertmanager's v2 API, with the tenant in X-Scope-OrgID (which a
// multi-tenant Alertmanager such as Mimir's uses and a plain one ignores). Sending is asynchronous through a
// bounded queue so that a slow Alertmanager never delays rule evaluation; the rules engine re-sends firing
// alerts every resend delay, so a failed send is counted and logged, not retried here.
type AlertmanagerSender struct {
	url    string
	client *http.Client
	logger *slog.Logger
	queue  chan batch

	sent, failed, dropped prometheus.Counter

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewAlertmanagerSender sends to the Alertmanager at baseURL (e.g. http://am:9093 or
// http://mimir/alertmanager). client may be nil for a default client with a 10 s timeout.
func NewAlertmanagerSender(baseURL string, client *http.Client, logger *slog.Logger, reg prometheus.Registerer) (*AlertmanagerSender, error) {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &AlertmanagerSender{
		url:    strings.TrimRight(baseURL, "/") + "/api/v2/alerts",
		client: client,
		logger: logger,
		queue:  make(chan batch, 1000),
		stop:   make(chan struct{}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sprout_ruler_notifications_sent_total", Help: "Alerts sent by the ruler to the Alertmanager.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sprout_ruler_notifications_failed_total", Help: "Alerts the ruler failed to send to the Alertmanager.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sprout_ruler_notifications_dropped_total", Help: "Alerts dropped because the send queue was full.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.sent, s.failed, s.dropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register ruler notifier metrics: %w", err)
			}
		}
	}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// HandlerClient is an HTTP client that serves requests with h in process, for the embedded Alertmanager.
func HandlerClient(h http.Handler) *http.Client {
	return &http.Client{Transport: handlerTransport{h}}
}

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// Notify implements Notifier.
func (s *AlertmanagerSender) Notify(tenantID string, alerts []*rules.Alert, genURL string) {
	b := batch{tenant: tenantID, alerts: make([]postableAlert, 0, len(alerts))}
	for _, a := range alerts {
		pa := postableAlert{StartsAt: a.FiredAt, Labels: a.Labels, Annotations: a.Annotations, GeneratorURL: genURL}
		if !a.ResolvedAt.IsZero() {
			pa.EndsAt = a.ResolvedAt
		} else {
			pa.EndsAt = a.ValidUntil
		}
		b.alerts = append(b.alerts, pa)
	}
	select {
	case s.queue <- b:
	default:
		s.dropped.Add(float64(len(b.alerts)))
	}
}

func (s *AlertmanagerSender) run() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case b := <-s.queue:
			if err := s.send(b); err != nil {
				s.failed.Add(float64(len(b.alerts)))
				s.logger.Warn("sending alerts to the Alertmanager failed; they are re-sent at the next resend delay", "url", s.url, "tenant", b.tenant, "err", err)
				continue
			}
			s.sent.Add(float64(len(b.alerts)))
		}
	}
}

func (s *AlertmanagerSender) send(b batch) error {
	body, err := json.Marshal(b.alerts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(tenant.Header, b.tenant)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// Stop stops sending; queued alerts are dropped (the rules engine re-sends firing ones after a restart).
func (s *AlertmanagerSender) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}
