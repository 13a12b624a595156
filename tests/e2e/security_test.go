package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// writeCerts creates a CA and a server certificate for 127.0.0.1 signed by it, and returns the file paths and
// a client TLS config that trusts the CA.
func writeCerts(t *testing.T, dir string) (certFile, keyFile string, clientTLS *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sprout test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return certFile, keyFile, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// secureOverlay is merged over the embedded all-in-one config: basic auth (htpasswd inline) and TLS from cert
// files on the API port and on both OTLP receivers. It is the example in docs/reliability.md.
const secureOverlay = `extensions:
  basicauth/server:
    htpasswd:
      inline: |
        writer:s3cret
        team-b:pb
  sprout_api:
    multitenancy_enabled: true
    tenant_auth:
      user_is_tenant: true
    auth:
      authenticator: basicauth/server
    tls:
      cert_file: %[1]s
      key_file: %[2]s
receivers:
  otlp:
    protocols:
      grpc:
        auth:
          authenticator: basicauth/server
        tls:
          cert_file: %[1]s
          key_file: %[2]s
      http:
        auth:
          authenticator: basicauth/server
        tls:
          cert_file: %[1]s
          key_file: %[2]s
service:
  extensions: [health_check, basicauth/server, sprout_api, sprout_traces, sprout_metrics, sprout_logs, sprout_ruler, sprout_ui]
`

// TestAuthAndTLS runs the all-in-one config with basic auth and TLS on the API port and both OTLP receivers,
// and credentials tied to tenants (user name = tenant): credentials over TLS work end to end; no or wrong
// credentials get 401 / UNAUTHENTICATED; plain text on a TLS port is refused; a user naming another tenant in
// X-Scope-OrgID is refused (403 / PERMISSION_DENIED) on every write and read path.
func TestAuthAndTLS(t *testing.T) {
	env, api := defaultEnv(t)
	dir := t.TempDir()
	certFile, keyFile, clientTLS := writeCerts(t, dir)
	overlay := filepath.Join(dir, "secure.yaml")
	if err := os.WriteFile(overlay, []byte(fmt.Sprintf(secureOverlay, certFile, keyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startSprout(t, env, "--config", "sprout:all-in-one", "--config", overlay)
	https := strings.Replace(api, "http://", "https://", 1)
	otlpHTTPS := "https://" + envValue(env, "SPROUT_OTLP_HTTP_ENDPOINT")
	grpcAddr := envValue(env, "SPROUT_OTLP_GRPC_ENDPOINT")

	good := &client{user: "writer", pass: "s3cret", tlsConfig: clientTLS}
	noCreds := &client{tlsConfig: clientTLS}
	badCreds := &client{user: "writer", pass: "wrong", tlsConfig: clientTLS}
	plain := &client{user: "writer", pass: "s3cret"}

	if err := poll(60*time.Second, func() error {
		if ok, err := p.exited(); ok {
			t.Fatalf("sprout exited: %v", err)
		}
		if code, body := good.get(https + "/ready"); code != 200 {
			return fmt.Errorf("ready: %d %s", code, firstLine(body))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	checks, passed := 0, 0
	expect := func(what string, ok bool, detail string) {
		checks++
		if ok {
			passed++
		} else {
			t.Errorf("%s: %s", what, detail)
		}
	}

	// API port.
	for _, path := range []string{"/api/search/tags", "/api/v1/labels", "/loki/api/v1/labels", "/ready"} {
		code, body := good.get(https + path)
		expect("TLS+auth GET "+path, code == 200, fmt.Sprintf("%d %s", code, firstLine(body)))
		code, body = noCreds.get(https + path)
		expect("TLS, no credentials, GET "+path, code == 401, fmt.Sprintf("%d %s, want 401", code, firstLine(body)))
		code, body = badCreds.get(https + path)
		expect("TLS, wrong password, GET "+path, code == 401, fmt.Sprintf("%d %s, want 401", code, firstLine(body)))
		code, body = plain.get(api + path)
		expect("plain HTTP to the TLS API port "+path, code != 200 && !strings.Contains(body, "data"), fmt.Sprintf("%d %s, want refused", code, firstLine(body)))
	}
	code, body := good.pushLine(https, "secure", "secure line")
	expect("TLS+auth loki push", code == 204, fmt.Sprintf("%d %s", code, firstLine(body)))
	code, body = noCreds.pushLine(https, "secure", "anon line")
	expect("no credentials loki push", code == 401, fmt.Sprintf("%d %s", code, firstLine(body)))
	series := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "secure_metric"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}
	code, body = good.remoteWrite(https, series)
	expect("TLS+auth remote write", code/100 == 2, fmt.Sprintf("%d %s", code, firstLine(body)))
	code, body = noCreds.remoteWrite(https, series)
	expect("no credentials remote write", code == 401, fmt.Sprintf("%d %s", code, firstLine(body)))

	// OTLP gRPC.
	export := func(c *client, id string) error {
		conn, err := c.grpcConn(grpcAddr)
		if err != nil {
			return err
		}
		defer conn.Close()
		raw, _ := hex.DecodeString(id)
		var tid [16]byte
		copy(tid[:], raw)
		ctx, cancel := context.WithTimeout(c.grpcContext(context.Background()), 10*time.Second)
		defer cancel()
		_, err = ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(makeTrace(tid, "svc-secure", nil)))
		return err
	}
	grpcTrace := hex.EncodeToString([]byte("secure-grpc-trce"))
	err := export(good, grpcTrace)
	expect("OTLP gRPC TLS+auth", err == nil, fmt.Sprint(err))
	err = export(noCreds, hex.EncodeToString([]byte("secure-grpc-anon")))
	expect("OTLP gRPC TLS, no credentials", err != nil && grpcCode(err) == "Unauthenticated", fmt.Sprintf("%v, want Unauthenticated", err))
	err = export(badCreds, hex.EncodeToString([]byte("secure-grpc-bad!")))
	expect("OTLP gRPC TLS, wrong password", err != nil && grpcCode(err) == "Unauthenticated", fmt.Sprintf("%v, want Unauthenticated", err))
	err = export(plain, hex.EncodeToString([]byte("secure-grpc-plan")))
	expect("OTLP gRPC plain text to the TLS port", err != nil && grpcCode(err) == "Unavailable", fmt.Sprintf("%v, want Unavailable", err))

	// OTLP HTTP.
	httpTrace := hex.EncodeToString([]byte("secure-http-trce"))
	raw, _ := hex.DecodeString(httpTrace)
	var tid [16]byte
	copy(tid[:], raw)
	pb, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(makeTrace(tid, "svc-secure", nil))
	code, body = good.post(otlpHTTPS+"/v1/traces", "application/x-protobuf", pb, nil)
	expect("OTLP HTTP TLS+auth", code == 200, fmt.Sprintf("%d %s", code, firstLine(body)))
	code, body = noCreds.post(otlpHTTPS+"/v1/traces", "application/x-protobuf", pb, nil)
	expect("OTLP HTTP TLS, no credentials", code == 401, fmt.Sprintf("%d %s, want 401", code, firstLine(body)))
	code, body = plain.post("http://"+envValue(env, "SPROUT_OTLP_HTTP_ENDPOINT")+"/v1/traces", "application/x-protobuf", pb, nil)
	expect("OTLP HTTP plain text to the TLS port", code != 200, fmt.Sprintf("%d %s, want refused", code, firstLine(body)))

	// What was written with credentials is readable with them.
	for _, id := range []string{grpcTrace, httpTrace} {
		code, body = good.get(https + "/api/traces/" + id)
		expect("read back trace "+id, code == 200 && strings.Count(body, `"spanId"`) == 3, fmt.Sprintf("%d %s", code, firstLine(body)))
	}
	// Credentials tied to tenants: user "writer" (tenant "writer") may not act as tenant "team-b" on any path.
	asB := &client{user: "writer", pass: "s3cret", tenant: "team-b", tlsConfig: clientTLS}
	userB := &client{user: "team-b", pass: "pb", tlsConfig: clientTLS}
	for _, path := range []string{"/api/search/tags", "/api/search?q=%7B%7D", "/api/v1/labels", "/api/v1/query?query=up", "/api/v1/series?match[]=%7B__name__%3D~%22.%2B%22%7D", "/loki/api/v1/labels", "/loki/api/v1/query_range?query=%7Bjob%3D~%22.%2B%22%7D", "/api/traces/" + grpcTrace} {
		code, body = asB.get(https + path)
		expect("writer reads as team-b "+path, code == 403 && strings.Contains(body, "may not act as tenant"), fmt.Sprintf("%d %s, want 403", code, firstLine(body)))
	}
	code, body = asB.pushLine(https, "secure", "line as b")
	expect("writer pushes logs as team-b", code == 403, fmt.Sprintf("%d %s, want 403", code, firstLine(body)))
	code, body = asB.remoteWrite(https, series)
	expect("writer remote-writes as team-b", code == 403, fmt.Sprintf("%d %s, want 403", code, firstLine(body)))
	for what, o := range otlpExportAll(t, asB, env, "asb", 0) {
		want := "PermissionDenied"
		if strings.HasPrefix(what, "http") {
			want = "403"
		}
		expect("writer OTLP "+what+" as team-b", o.code == want && strings.Contains(o.msg, "may not act as tenant"), fmt.Sprintf("%s, want %s", o, want))
	}
	// team-b writes as itself (no header needed: its credentials name one tenant) and reads it back; writer
	// cannot see it as its own tenant either.
	bTrace := hex.EncodeToString([]byte("secure-team-b-tr"))
	err = export(userB, bTrace)
	expect("team-b OTLP gRPC as itself", err == nil, fmt.Sprint(err))
	code, body = userB.get(https + "/api/traces/" + bTrace)
	expect("team-b reads its trace", code == 200 && strings.Count(body, `"spanId"`) == 3, fmt.Sprintf("%d %s", code, firstLine(body)))
	code, body = good.get(https + "/api/traces/" + bTrace)
	expect("writer reads team-b's trace id as itself", code == 404, fmt.Sprintf("%d %s, want 404", code, firstLine(body)))
	code, body = userB.get(https + "/api/traces/" + grpcTrace)
	expect("team-b reads writer's trace id as itself", code == 404, fmt.Sprintf("%d %s, want 404", code, firstLine(body)))

	// The UI's security headers (set by sprout_ui on every UI response).
	resp, err := good.httpClient().Do(func() *http.Request {
		req, _ := http.NewRequest(http.MethodGet, https+"/ui/", nil)
		good.decorate(req)
		return req
	}())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	expect("UI CSP frame-ancestors", strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "frame-ancestors 'self'"), csp)
	expect("UI CSP without inline scripts", strings.Contains(csp, "script-src") && !strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src") && strings.Contains(csp, "default-src 'self'") && !strings.Contains(csp, "unsafe-inline"), csp)
	expect("UI nosniff", resp.Header.Get("X-Content-Type-Options") == "nosniff", resp.Header.Get("X-Content-Type-Options"))
	t.Logf("UI headers: CSP %q, X-Frame-Options %q, Referrer-Policy %q", csp, resp.Header.Get("X-Frame-Options"), resp.Header.Get("Referrer-Policy"))
	t.Logf("FIGURE auth+TLS: %d of %d checks passed", passed, checks)
}
