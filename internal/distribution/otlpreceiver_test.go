package distribution

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sprout-otel/sprout/internal/testutil"
)

func TestOTLPReceiverTimeouts(t *testing.T) {
	f := newOTLPReceiverFactory()
	cases := []struct {
		name     string
		conf     map[string]any
		http     bool
		read     time.Duration
		header   time.Duration
		idle     time.Duration
		writeOut time.Duration
	}{
		{"http from a user's config gets the defaults", map[string]any{"protocols": map[string]any{"http": map[string]any{"endpoint": "localhost:0"}}},
			true, otlpReadTimeout, otlpReadHeaderTimeout, otlpIdleTimeout, otlpWriteTimeout},
		{"set values win", map[string]any{"protocols": map[string]any{"http": map[string]any{"read_timeout": "0s", "read_header_timeout": "2s"}}},
			true, 0, 2 * time.Second, otlpIdleTimeout, otlpWriteTimeout},
		{"grpc only has no HTTP server", map[string]any{"protocols": map[string]any{"grpc": map[string]any{}}}, false, 0, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
			if err := confmap.NewFromStringMap(tc.conf).Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			if got := cfg.Protocols.HTTP.HasValue(); got != tc.http {
				t.Fatalf("HTTP enabled = %v, want %v", got, tc.http)
			}
			if !tc.http {
				return
			}
			sc := cfg.Protocols.HTTP.Get().ServerConfig
			if sc.ReadTimeout != tc.read || sc.ReadHeaderTimeout != tc.header || sc.IdleTimeout != tc.idle || sc.WriteTimeout != tc.writeOut {
				t.Fatalf("timeouts read %v header %v idle %v write %v", sc.ReadTimeout, sc.ReadHeaderTimeout, sc.IdleTimeout, sc.WriteTimeout)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if f.Type().String() != "otlp" {
		t.Fatalf("type %s", f.Type())
	}
}

func TestOTLPReceiverGRPCAgesConnections(t *testing.T) {
	f := newOTLPReceiverFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	if err := confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{"grpc": map[string]any{}}}).Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	sp := cfg.Protocols.GRPC.Get().Keepalive.Get().ServerParameters.Get()
	if sp.MaxConnectionAge != otlpGRPCMaxConnectionAge || sp.MaxConnectionAgeGrace != otlpGRPCMaxConnectionAgeGrace {
		t.Fatalf("defaults: max_connection_age %v grace %v", sp.MaxConnectionAge, sp.MaxConnectionAgeGrace)
	}
	// A user's own keepalive settings are unmarshalled over the defaults: what they set wins, the rest stays.
	cfg = f.CreateDefaultConfig().(*otlpreceiver.Config)
	if err := confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{"grpc": map[string]any{
		"keepalive": map[string]any{"server_parameters": map[string]any{"max_connection_age": "1s", "max_connection_idle": "2s"}}}}}).Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	sp = cfg.Protocols.GRPC.Get().Keepalive.Get().ServerParameters.Get()
	if sp.MaxConnectionAge != time.Second || sp.MaxConnectionIdle != 2*time.Second || sp.MaxConnectionAgeGrace != otlpGRPCMaxConnectionAgeGrace {
		t.Fatalf("user values: %+v", sp)
	}
}

// TestOTLPReceiverGRPCCutsTrickledMessage: a client that sends an Export message a byte at a time, slower than
// any deadline, loses its connection once the connection's age and grace are over (here 1 s + 1 s).
func TestOTLPReceiverGRPCCutsTrickledMessage(t *testing.T) {
	f := newOTLPReceiverFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	if err := confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{"grpc": map[string]any{
		"endpoint":  addr,
		"keepalive": map[string]any{"server_parameters": map[string]any{"max_connection_age": "1s", "max_connection_age_grace": "1s"}}}}}).Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	r, err := f.CreateTraces(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Shutdown(context.Background()) }()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", addr},
		{":path", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// A gRPC message header announcing 1000 bytes, then the bytes, slowly.
	if err := fr.WriteData(1, false, []byte{0, 0, 0, 0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		for {
			if _, err := fr.ReadFrame(); err != nil {
				closed <- err
				return
			}
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case <-closed:
			return // the server closed the connection
		case <-tick.C:
			_ = fr.WriteData(1, false, []byte{0x0a})
		case <-deadline:
			t.Fatal("connection still open after 20 s with max_connection_age 1s and grace 1s")
		}
	}
}

// TestMemoryLimiterPerPipeline: each pipeline naming the same memory_limiter gets a limiter of its own (the
// upstream factory shares one and races on its host when the pipelines start; see memoryLimiterFactory).
func TestMemoryLimiterPerPipeline(t *testing.T) {
	f := newMemoryLimiterFactory()
	cfg := f.CreateDefaultConfig()
	if err := confmap.NewFromStringMap(map[string]any{"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20}).Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	if c := ownConfig(cfg); c == cfg || !reflect.DeepEqual(c, cfg) {
		t.Fatalf("ownConfig: same pointer %v, equal %v", c == cfg, reflect.DeepEqual(c, cfg))
	}
	set := processortest.NewNopSettings(f.Type())
	tr, err := f.CreateTraces(context.Background(), set, cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	lg, err := f.CreateLogs(context.Background(), set, cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// Both start and run their checks while the other starts and stops: under -race, a shared limiter reports
	// the upstream race here.
	host := componenttest.NewNopHost()
	for i := 0; i < 3; i++ {
		if err := tr.Start(context.Background(), host); err != nil {
			t.Fatal(err)
		}
		if err := lg.Start(context.Background(), host); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		if err := lg.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
