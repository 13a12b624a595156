package demo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Service names of the demo shop.
const (
	Frontend    = "frontend"
	Checkout    = "checkout"
	Payment     = "payment"
	Fulfillment = "fulfillment"
)

// Services lists the demo's services in call order.
var Services = []string{Frontend, Checkout, Payment, Fulfillment}

// Fault rates. Together they fail about 3 % of frontend requests; the slow path hits about 5 % of checkouts.
const (
	dbErrorRate      = 0.01 // checkout's database call fails (either route)
	paymentErrorRate = 0.05 // the payment gateway refuses, on the checkout route (40 % of requests)
	slowPathRate     = 0.05 // payment's fraud check takes ~1 s, on the checkout route
	checkoutShare    = 0.4  // share of requests that place an order; the rest read the cart
)

// Workload is a running demo: the services' SDK pipelines, the /metrics endpoint and the request loop.
type Workload struct {
	cfg      Config
	conn     *grpc.ClientConn
	svcs     map[string]*service
	prom     *promMetrics
	listener net.Listener
	server   *http.Server
	rng      *rand.Rand
	requests atomic.Int64
}

// New connects the four services' OTLP exporters (lazily: gRPC dials on first export, so the endpoint may come
// up later) and binds the /metrics listener. Run starts the traffic.
func New(ctx context.Context, cfg Config) (*Workload, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	target, _ := grpcTarget(cfg.Endpoint)
	extra, _ := ParseResourceAttributes(cfg.ResourceAttributes)

	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("otlp connection to %s: %w", target, err)
	}
	w := &Workload{
		cfg:  cfg,
		conn: conn,
		svcs: map[string]*service{},
		prom: newPromMetrics(),
		rng:  rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)>>1|1)),
	}
	for _, name := range Services {
		s, err := newService(ctx, name, extra, conn, cfg)
		if err != nil {
			_ = w.shutdown(ctx)
			return nil, err
		}
		w.svcs[name] = s
	}
	if cfg.MetricsAddr != "" {
		l, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			_ = w.shutdown(ctx)
			return nil, fmt.Errorf("metrics endpoint: %w", err)
		}
		w.listener = l
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", w.prom.handler())
		w.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	return w, nil
}

// MetricsURL is the address of the Prometheus endpoint, or "" when it is off.
func (w *Workload) MetricsURL() string {
	if w.listener == nil {
		return ""
	}
	return "http://" + w.listener.Addr().String() + "/metrics"
}

// Requests is the number of frontend requests simulated so far.
func (w *Workload) Requests() int64 { return w.requests.Load() }

// Run sends traffic until ctx ends, then flushes every pipeline (bounded by Config.ShutdownTimeout) and returns.
func (w *Workload) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	if w.server != nil {
		go func() { serveErr <- w.server.Serve(w.listener) }()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-serveErr:
			if !errors.Is(err, http.ErrServerClosed) {
				_ = w.shutdown(context.Background())
				return fmt.Errorf("metrics endpoint: %w", err)
			}
		case <-timer.C:
			w.plan().emit(time.Now(), w)
			w.requests.Add(1)
			// Poisson arrivals: exponential gaps with mean 1/rate.
			timer.Reset(time.Duration(w.rng.ExpFloat64() / w.cfg.Rate * float64(time.Second)))
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
	defer cancel()
	return w.shutdown(sctx)
}

func (w *Workload) shutdown(ctx context.Context) error {
	// The services flush in parallel so that one unreachable pipeline does not use up the others' deadline.
	errCh := make(chan error, len(w.svcs))
	for name, s := range w.svcs {
		go func() {
			if err := s.shutdown(ctx); err != nil {
				errCh <- fmt.Errorf("flush %s: %w", name, err)
				return
			}
			errCh <- nil
		}()
	}
	var errs []error
	for range w.svcs {
		errs = append(errs, <-errCh)
	}
	if w.server != nil {
		errs = append(errs, w.server.Shutdown(ctx))
	} else if w.listener != nil {
		errs = append(errs, w.listener.Close())
	}
	errs = append(errs, w.conn.Close())
	return errors.Join(errs...)
}

// lognormal draws a latency whose median is median and whose spread is sigma (0.5 ≈ p99 at 3.2× the median).
func (w *Workload) lognormal(median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median) * math.Exp(sigma*w.rng.NormFloat64()))
}

func (w *Workload) chance(p float64) bool { return w.rng.Float64() < p }

// Errors the demo's faults raise; their text becomes span status messages and log lines.
var (
	errDeadlock       = errors.New("pq: deadlock detected")
	errGatewayRefused = errors.New("payment gateway: 503 Service Unavailable")
	errUpstream       = errors.New("upstream returned 5xx")
)

func httpServerAttrs(method, route, path string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("http.route", route),
		attribute.String("url.path", path),
		attribute.String("url.scheme", "http"),
		attribute.String("network.protocol.version", "1.1"),
	}
}

func httpClientAttrs(method, host, path string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("server.address", host),
		attribute.Int("server.port", 8080),
		attribute.String("url.full", "http://"+host+":8080"+path),
	}
}

// dbAttrs carries both the current and the older database conventions, so service-graph code that keys virtual
// nodes on either (db.system/db.name or db.system.name/db.namespace) finds the database.
func dbAttrs(op, table, stmt string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("db.system", "postgresql"),
		attribute.String("db.system.name", "postgresql"),
		attribute.String("db.name", "shop"),
		attribute.String("db.namespace", "shop"),
		attribute.String("db.operation.name", op),
		attribute.String("db.collection.name", table),
		attribute.String("db.query.text", stmt),
		attribute.String("server.address", "postgres"),
		attribute.Int("server.port", 5432),
	}
}

func messagingAttrs(op, opType string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.destination.name", "orders"),
		attribute.String("messaging.operation.name", op),
		attribute.String("messaging.operation.type", opType),
		attribute.String("server.address", "kafka"),
	}
}

func status(code int) attribute.KeyValue { return attribute.Int("http.response.status_code", code) }

// plan lays out one frontend request: GET /cart (60 %) or POST /checkout (40 %).
//
//	frontend SERVER → frontend CLIENT → checkout SERVER → checkout CLIENT (postgres)
//	                                                   → checkout CLIENT → payment SERVER → INTERNAL fraud check
//	                                                                                    → payment CLIENT (postgres)
//	                                                   → checkout PRODUCER (kafka orders) ⇢ fulfillment CONSUMER → CLIENT (postgres)
func (w *Workload) plan() *timeline {
	tl := &timeline{}
	fe, co, pay, ful := w.svcs[Frontend], w.svcs[Checkout], w.svcs[Payment], w.svcs[Fulfillment]
	order := w.chance(checkoutShare)
	method, route, apiPath := "GET", "/cart", "/api/cart"
	if order {
		method, route, apiPath = "POST", "/checkout", "/api/checkout"
	}
	user := "user-" + strconv.Itoa(w.rng.IntN(500))

	root := tl.open(-1, fe, method+" "+route, trace.SpanKindServer, opHTTP, 0,
		append(httpServerAttrs(method, route, route), attribute.String("enduser.id", user))...)
	t := w.lognormal(800*time.Microsecond, 0.4)
	feClient := tl.open(root, fe, method, trace.SpanKindClient, opHTTP, t, httpClientAttrs(method, Checkout, apiPath)...)
	t += w.lognormal(300*time.Microsecond, 0.3)
	coServer := tl.open(feClient, co, method+" "+apiPath, trace.SpanKindServer, opHTTP, t, httpServerAttrs(method, apiPath, apiPath)...)
	t += w.lognormal(500*time.Microsecond, 0.4)

	db := tl.open(coServer, co, "SELECT shop.carts", trace.SpanKindClient, opDB, t,
		dbAttrs("SELECT", "carts", "SELECT * FROM carts WHERE user_id = $1")...)
	t += w.lognormal(3*time.Millisecond, 0.6)
	tl.close(db, t)
	var failure error
	if w.chance(dbErrorRate) {
		tl.fail(db, errDeadlock)
		tl.log(coServer, t, otellog.SeverityError, "loading cart failed: "+errDeadlock.Error(), otellog.String("enduser.id", user))
		failure = errDeadlock
	}

	orderID := ""
	if order && failure == nil {
		orderID = fmt.Sprintf("ord-%08x", w.rng.Uint32())
		amount := math.Round(w.lognormal(40*time.Second, 0.8).Seconds()*100) / 100
		t += w.lognormal(400*time.Microsecond, 0.3)
		coClient := tl.open(coServer, co, "POST", trace.SpanKindClient, opHTTP, t, httpClientAttrs("POST", Payment, "/api/charge")...)
		t += w.lognormal(300*time.Microsecond, 0.3)
		payServer := tl.open(coClient, pay, "POST /api/charge", trace.SpanKindServer, opHTTP, t, httpServerAttrs("POST", "/api/charge", "/api/charge")...)
		t += w.lognormal(300*time.Microsecond, 0.3)
		fraud := tl.open(payServer, pay, "fraud check", trace.SpanKindInternal, opInternal, t, attribute.String("order.id", orderID))
		if w.chance(slowPathRate) {
			t += w.lognormal(900*time.Millisecond, 0.3)
			tl.log(fraud, t, otellog.SeverityWarn, "fraud check slow: manual rules engine fallback",
				otellog.String("order.id", orderID))
			tl.close(fraud, t, attribute.Bool("fraud.fallback", true))
		} else {
			t += w.lognormal(8*time.Millisecond, 0.5)
			tl.close(fraud, t, attribute.Bool("fraud.fallback", false))
		}
		payDB := tl.open(payServer, pay, "INSERT shop.payments", trace.SpanKindClient, opDB, t,
			dbAttrs("INSERT", "payments", "INSERT INTO payments (order_id, amount) VALUES ($1, $2)")...)
		t += w.lognormal(4*time.Millisecond, 0.5)
		tl.close(payDB, t)
		if w.chance(paymentErrorRate) {
			t += w.lognormal(20*time.Millisecond, 0.5)
			tl.fail(payServer, errGatewayRefused)
			tl.close(payServer, t, status(503))
			tl.log(payServer, t, otellog.SeverityError, "charge failed: "+errGatewayRefused.Error(),
				otellog.String("order.id", orderID), otellog.Float64("amount", amount))
			failure = errUpstream
		} else {
			t += w.lognormal(15*time.Millisecond, 0.5)
			tl.close(payServer, t, status(200))
			tl.log(payServer, t, otellog.SeverityInfo, fmt.Sprintf("payment authorized order_id=%s amount=%.2f", orderID, amount),
				otellog.String("order.id", orderID), otellog.Float64("amount", amount))
		}
		t += w.lognormal(300*time.Microsecond, 0.3)
		if failure != nil {
			tl.fail(coClient, failure)
			tl.close(coClient, t, status(503))
		} else {
			tl.close(coClient, t, status(200))
			t += w.lognormal(200*time.Microsecond, 0.3)
			prod := tl.open(coServer, co, "publish orders", trace.SpanKindProducer, opMessaging, t, messagingAttrs("publish", "send")...)
			t += w.lognormal(2*time.Millisecond, 0.5)
			tl.close(prod, t, attribute.String("messaging.message.id", orderID))
			tl.log(coServer, t, otellog.SeverityInfo, "order placed order_id="+orderID, otellog.String("order.id", orderID))

			// The consumer runs after the message has waited in the queue; it is part of the trace but not
			// of the request's latency.
			wait := w.lognormal(15*time.Millisecond, 0.8)
			w.prom.queueWait.Observe(wait.Seconds())
			ct := t + wait
			cons := tl.open(prod, ful, "process orders", trace.SpanKindConsumer, opMessaging, ct, messagingAttrs("process", "process")...)
			ct += w.lognormal(time.Millisecond, 0.4)
			shipDB := tl.open(cons, ful, "UPDATE shop.orders", trace.SpanKindClient, opDB, ct,
				dbAttrs("UPDATE", "orders", "UPDATE orders SET state = 'shipping' WHERE id = $1")...)
			ct += w.lognormal(5*time.Millisecond, 0.5)
			tl.close(shipDB, ct)
			ct += w.lognormal(time.Millisecond, 0.4)
			tl.close(cons, ct, attribute.String("messaging.message.id", orderID))
			tl.log(cons, ct, otellog.SeverityInfo, "shipment scheduled order_id="+orderID, otellog.String("order.id", orderID))
		}
	}

	t += w.lognormal(700*time.Microsecond, 0.4)
	code := 200
	if order && failure == nil {
		code = 201
	}
	if failure != nil {
		code = 502
		if failure == errDeadlock {
			code = 500
		}
		tl.fail(coServer, failure)
	}
	tl.close(coServer, t, status(code))
	t += w.lognormal(300*time.Microsecond, 0.3)
	tl.close(feClient, t, status(code))
	if failure != nil {
		tl.fail(feClient, errUpstream)
	}
	t += w.lognormal(600*time.Microsecond, 0.4)
	feCode := code
	if failure != nil {
		feCode = 502
		tl.fail(root, errUpstream)
	}
	tl.close(root, t, status(feCode))
	sev, msg := otellog.SeverityInfo, "request completed"
	if failure != nil {
		sev, msg = otellog.SeverityError, "request failed: "+failure.Error()
	}
	tl.log(root, t, sev, fmt.Sprintf("%s method=%s route=%s status=%d duration_ms=%.1f", msg, method, route, feCode, float64(t)/1e6),
		otellog.String("http.route", route), otellog.Int("http.response.status_code", feCode), otellog.String("enduser.id", user))
	return tl
}

// record feeds a finished step into the OTLP instruments (with the span in ctx, so the SDK attaches exemplars)
// and into the Prometheus registry.
func (w *Workload) record(ctx context.Context, s *step) {
	sec := (s.end - s.start).Seconds()
	attr := attribute.NewSet(s.attrs...)
	get := func(k string) attribute.Value { v, _ := attr.Value(attribute.Key(k)); return v }
	switch s.class {
	case opHTTP:
		set := metric.WithAttributes(
			attribute.String("http.request.method", get("http.request.method").AsString()),
			attribute.Int64("http.response.status_code", get("http.response.status_code").AsInt64()))
		if s.kind == trace.SpanKindServer {
			route := get("http.route").AsString()
			s.svc.serverDuration.Record(ctx, sec, set, metric.WithAttributes(attribute.String("http.route", route)))
			w.prom.observe(ctx, s.svc.name, route, get("http.response.status_code").AsInt64(), sec)
		} else {
			s.svc.clientDuration.Record(ctx, sec, set, metric.WithAttributes(attribute.String("server.address", get("server.address").AsString())))
		}
		if s.svc.name == Checkout && s.kind == trace.SpanKindServer && get("http.route").AsString() == "/api/checkout" {
			outcome := "placed"
			if s.err != nil {
				outcome = "failed"
			}
			s.svc.orders.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
		}
	case opDB:
		s.svc.dbDuration.Record(ctx, sec, metric.WithAttributes(
			attribute.String("db.system.name", "postgresql"),
			attribute.String("db.operation.name", get("db.operation.name").AsString()),
			attribute.String("db.collection.name", get("db.collection.name").AsString())))
	case opMessaging:
		s.svc.messages.Add(ctx, 1, metric.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", get("messaging.operation.type").AsString())))
	}
}
