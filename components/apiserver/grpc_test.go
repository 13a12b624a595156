package apiserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/basicauthextension"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/internal/grpcwire"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// raw is a message that is its bytes.
type raw struct{ b []byte }

func (r *raw) Marshal() ([]byte, error) { return r.b, nil }
func (r *raw) Unmarshal(b []byte) error { r.b = append([]byte(nil), b...); return nil }

// whoService answers the tenant of the call: a service of a store in miniature.
func whoService(s *Server) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "sprout.test.Who",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Tenant", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in raw
			if err := dec(&in); err != nil {
				return nil, err
			}
			id, err := s.TenantFromContext(ctx)
			if err != nil {
				return nil, err
			}
			return &raw{b: []byte(id)}, nil
		}}},
	}
}

func callWho(ctx context.Context, cc *grpc.ClientConn, body []byte) (string, error) {
	var out raw
	err := cc.Invoke(ctx, "/sprout.test.Who/Tenant", &raw{b: body}, &out, grpc.ForceCodecV2(grpcwire.Codec{}))
	return string(out.b), err
}

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// TestGRPCOnAPIPort: plaintext HTTP/2 gRPC and HTTP/1.1 share the port; gRPC calls are authenticated by the
// server's authenticator and resolve their tenant from metadata as HTTP requests do from headers.
func TestGRPCOnAPIPort(t *testing.T) {
	authID := component.MustNewIDWithName("basicauth", "server")
	bf := basicauthextension.NewFactory()
	bcfg := bf.CreateDefaultConfig().(*basicauthextension.Config)
	bcfg.Htpasswd = &basicauthextension.HtpasswdSettings{Inline: "team-a:pa\nops:po\n"}
	auth, err := bf.Create(context.Background(), extensiontest.NewNopSettings(bf.Type()), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = auth.Shutdown(context.Background()) })
	s := startOn(t, host{map[component.ID]component.Component{authID: auth}}, func(c *Config) {
		c.MultitenancyEnabled = true
		c.Auth = configoptional.Some(confighttp.AuthConfig{Config: configauth.Config{AuthenticatorID: authID}})
		c.TenantAuth = TenantAuthConfig{UserIsTenant: true, Users: map[string][]string{"ops": {"team-a", "team-b"}}}
	})
	s.RegisterService(whoService(s), struct{}{})
	_ = s.Ready()
	cc := dialGRPC(t, s.Addr())
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	for _, tc := range []struct {
		name, authz, org string
		code             codes.Code
		want             string
	}{
		{"own tenant", basic("team-a", "pa"), "", codes.OK, "team-a"},
		{"listed tenant", basic("ops", "po"), "team-b", codes.OK, "team-b"},
		{"other tenant", basic("team-a", "pa"), "team-b", codes.PermissionDenied, "may not act"},
		{"no org id", basic("ops", "po"), "", codes.Unauthenticated, "must name one"},
		{"wrong password", basic("team-a", "nope"), "team-a", codes.Unauthenticated, ""},
		{"no credentials", "", "team-a", codes.Unauthenticated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := metadata.MD{}
			if tc.authz != "" {
				md.Set("authorization", tc.authz)
			}
			if tc.org != "" {
				md.Set(tenant.Header, tc.org)
			}
			got, err := callWho(metadata.NewOutgoingContext(context.Background(), md), cc, []byte("x"))
			st, _ := status.FromError(err)
			if st.Code() != tc.code || (tc.code == codes.OK && got != tc.want) || (tc.code != codes.OK && !strings.Contains(st.Message(), tc.want)) {
				t.Fatalf("got %q, %v %q; want %v %q", got, st.Code(), st.Message(), tc.code, tc.want)
			}
		})
	}

	// HTTP/1.1 and HTTP/2 (prior knowledge) requests on the same port reach the mux.
	s.HandleFunc("GET /proto", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) })
	for _, h2 := range []bool{false, true} {
		var p http.Protocols
		if h2 {
			p.SetUnencryptedHTTP2(true)
		} else {
			p.SetHTTP1(true)
		}
		c := &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{}}}
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/proto", nil)
		req.SetBasicAuth("team-a", "pa")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "HTTP/1.1"
		if h2 {
			want = "HTTP/2.0"
		}
		if resp.StatusCode != http.StatusOK || string(b) != want {
			t.Fatalf("h2=%v: %d %q, want 200 %q", h2, resp.StatusCode, b, want)
		}
	}
}

// TestGRPCMessageSize: a message larger than grpc_server_max_recv_msg_size is refused with ResourceExhausted.
func TestGRPCMessageSize(t *testing.T) {
	s := start(t, func(c *Config) { c.GRPCServerMaxRecvMsgSize = 1024 })
	s.RegisterService(whoService(s), struct{}{})
	_ = s.Ready()
	cc := dialGRPC(t, s.Addr())
	if got, err := callWho(context.Background(), cc, make([]byte, 512)); err != nil || got != tenant.Default {
		t.Fatalf("small message: %q, %v", got, err)
	}
	_, err := callWho(context.Background(), cc, make([]byte, 4096))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("large message: %v, want ResourceExhausted", err)
	}
}

// TestGRPCOff: without stream_over_http_enabled the port speaks HTTP/1.1 only, and registering is harmless.
func TestGRPCOff(t *testing.T) {
	s := start(t, func(c *Config) { c.StreamOverHTTPEnabled = false })
	s.RegisterService(whoService(s), struct{}{})
	_ = s.Ready()
	if s.GRPCEnabled() {
		t.Fatal("gRPC enabled")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := callWho(ctx, dialGRPC(t, s.Addr()), nil); status.Code(err) == codes.OK {
		t.Fatal("a gRPC call succeeded with gRPC off")
	}
}

// TestH2CBounds: HTTP/2 keeps the server's bounds: the configured stream limit is announced, and a connection
// that sends the preface and then nothing is closed after idle_timeout.
func TestH2CBounds(t *testing.T) {
	s := start(t, func(c *Config) {
		c.GRPCServerMaxConcurrentStreams = 7
		c.IdleTimeout = 300 * time.Millisecond
	})
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// the client preface and an empty SETTINGS frame
	_, _ = io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	_, _ = conn.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a bound for the test, not the measure
	r := bufio.NewReader(conn)
	hdr := make([]byte, 9)
	if _, err := io.ReadFull(r, hdr); err != nil {
		t.Fatalf("no server SETTINGS: %v", err)
	}
	n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	if hdr[3] != 4 {
		t.Fatalf("first frame type %d, want SETTINGS", hdr[3])
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatal(err)
	}
	streams := -1
	for i := 0; i+6 <= len(payload); i += 6 {
		if binary.BigEndian.Uint16(payload[i:]) == 3 { // SETTINGS_MAX_CONCURRENT_STREAMS
			streams = int(binary.BigEndian.Uint32(payload[i+2:]))
		}
	}
	if streams != 7 {
		t.Fatalf("MAX_CONCURRENT_STREAMS %d, want 7", streams)
	}
	// Idle: the server sends its frames (ack, GOAWAY) and closes; reading ends in EOF, not the test's bound.
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("the idle HTTP/2 connection was not closed: %v", err)
	}

	// A header block that never ends (HEADERS without END_HEADERS, no CONTINUATION) opens no stream, so the
	// connection stays idle and is closed after idle_timeout too.
	conn2, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	_, _ = io.WriteString(conn2, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	_, _ = conn2.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})
	_, _ = conn2.Write([]byte{0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82}) // HEADERS, stream 1, ":method: GET", not ended
	_ = conn2.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, conn2); err != nil {
		t.Fatalf("the HTTP/2 connection with an unfinished header block was not closed: %v", err)
	}
}

// TestGRPCTrickledBodyIsCut: a gRPC call whose request never arrives is ended by read_timeout, as a trickled
// HTTP body is: HTTP/2 streams are held to the same per-request body deadline.
func TestGRPCTrickledBodyIsCut(t *testing.T) {
	s := start(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	s.RegisterService(whoService(s), struct{}{})
	_ = s.Ready()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &p}}
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr()+"/sprout.test.Who/Tenant", pr)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a bound for the test, not the measure
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("no answer to a call whose request never came: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	code := resp.Header.Get("Grpc-Status")
	if code == "" {
		code = resp.Trailer.Get("Grpc-Status")
	}
	if code == "" || code == "0" {
		t.Fatalf("grpc-status %q (headers %v, trailers %v), want an error", code, resp.Header, resp.Trailer)
	}
	msg := resp.Header.Get("Grpc-Message") + resp.Trailer.Get("Grpc-Message")
	if !strings.Contains(msg, "timeout") {
		t.Fatalf("grpc-message %q, want the read timeout", msg)
	}
}

// TestGRPCBeforeReady: until every component has started, gRPC calls are answered Unavailable (the service
// table is still being filled), and answered once the server is ready.
func TestGRPCBeforeReady(t *testing.T) {
	s := start(t, nil)
	s.RegisterService(whoService(s), struct{}{})
	cc := dialGRPC(t, s.Addr())
	if _, err := callWho(context.Background(), cc, nil); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("before Ready: %v, want Unavailable", err)
	}
	_ = s.Ready()
	if got, err := callWho(context.Background(), cc, nil); err != nil || got != tenant.Default {
		t.Fatalf("after Ready: %q, %v", got, err)
	}
}

// TestGRPCBrowserWall: a gRPC-typed request a browser sends from another site is refused by the cross-origin
// wall before it reaches the gRPC server, as any state-changing request is.
func TestGRPCBrowserWall(t *testing.T) {
	s := start(t, nil)
	s.RegisterService(whoService(s), struct{}{})
	_ = s.Ready()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &p}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr()+"/sprout.test.Who/Tenant", strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Grpc-Status") != "" {
		t.Fatalf("status %d, grpc-status %q: want 403 before the gRPC server", resp.StatusCode, resp.Header.Get("Grpc-Status"))
	}
}
