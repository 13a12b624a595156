package metricstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.uber.org/zap"
)

// testConfig is a store configuration under a test's temporary directory, with shipping off.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Storage.Enabled = false
	cfg.Storage.Filesystem.Dir = filepath.Join(cfg.DataDir, ".bucket")
	return cfg
}

// openTestStore opens a store and serves its API on an httptest server; both are closed when the test ends.
func openTestStore(t testing.TB, cfg Config) (*Store, *httptest.Server) {
	t.Helper()
	s, err := Open(context.Background(), cfg, Options{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry(), Version: "test"})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return serveStore(t, s)
}

// serveStore serves s's API on an httptest server closed when the test ends.
func serveStore(t testing.TB, s *Store) (*Store, *httptest.Server) {
	t.Helper()
	mux := http.NewServeMux()
	api := &API{Store: s}
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv
}

func series(name string, kv ...string) []prompb.Label {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

func encodeV1(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

func encodeV2(t testing.TB, req *writev2.Request) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

const (
	contentTypeV1 = "application/x-protobuf"
	contentTypeV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

// post sends body and returns the status and response body.
func post(t testing.TB, u, contentType string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if contentType != "application/x-protobuf-otlp" {
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// apiGet calls a Prometheus API path with query parameters.
func apiGet(t testing.TB, base, path string, params url.Values) (int, apiResponse) {
	t.Helper()
	resp, err := http.Get(base + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r apiResponse
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %s", path, resp.StatusCode, b)
	}
	return resp.StatusCode, r
}

type vectorResult struct {
	ResultType string `json:"resultType"`
	Result     []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
		Values [][2]any          `json:"values"`
	} `json:"result"`
}

// instant runs an instant query and returns "labels=value" strings.
func instant(t testing.TB, base, q string, ts time.Time) map[string]string {
	t.Helper()
	code, r := apiGet(t, base, "/api/v1/query", url.Values{"query": {q}, "time": {fmt.Sprint(float64(ts.UnixMilli()) / 1000)}})
	if code != 200 || r.Status != "success" {
		t.Fatalf("query %q: %d %s %s", q, code, r.ErrorType, r.Error)
	}
	var v vectorResult
	if err := json.Unmarshal(r.Data, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range v.Result {
		out[fmt.Sprint(s.Metric)] = fmt.Sprint(s.Value[1])
	}
	return out
}
