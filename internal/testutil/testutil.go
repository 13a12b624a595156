// Package testutil holds helpers shared by Sprout's tests: free ports, polling with a deadline, and real peer
// servers (an S3-compatible server) started as child processes. It is imported only from _test files.
package testutil

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, and that this process has not handed out
// before. It is taken below the kernel's ephemeral range where there is room: a port the kernel picked for
// ":0" is also what it picks for outgoing connections, and one of those (a client in a test running beside)
// took such a port before the server it was meant for could bind it.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	if low := ephemeralLow(); low > minPort+1000 {
		for range 200 {
			p := minPort + rand.IntN(low-minPort)
			if handedOut[p] {
				continue
			}
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
				l.Close()
				handedOut[p] = true
				return p
			}
		}
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut[p] {
			handedOut[p] = true
			return p
		}
	}
	t.Fatal("free port: none left that was not handed out already")
	return 0
}

// minPort is the lowest port FreePort picks: above the well-known and registered services tests might meet.
const minPort = 20000

var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range, 0 when it is not known.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil {
		return 0
	}
	return low
}

// Eventually polls cond every 50 ms until it returns nil or the deadline passes, then fails with its last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RequireBinary finds a program on PATH (or in $GOPATH/bin). When it is missing the test is skipped on a
// developer machine, but fails under CI (CI=true), where .ci/run must have installed it.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(os.Getenv("HOME"), "go", "bin"), "/root/go/bin"} {
		if dir == "" {
			continue
		}
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; .ci/run must install it", name)
	}
	t.Skipf("%s is not installed (see .ci/run for how to install it)", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// S3Server is a real S3-compatible server (versitygw, storing objects as files) running as a child process.
type S3Server struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
	Dir       string
	cmd       *exec.Cmd
	bin       string
	t         testing.TB
}

// StartS3 starts versitygw on a free loopback port with a fresh root directory, and stops it when the test ends.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	s := &S3Server{
		bin:       RequireBinary(t, "versitygw"),
		AccessKey: "sprout-test",
		SecretKey: "sprout-test-secret",
		Dir:       t.TempDir(),
		t:         t,
	}
	s.Endpoint = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start (re)starts the server process on the same endpoint and directory.
func (s *S3Server) Start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "--port", s.Endpoint, "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	s.cmd = cmd
	Eventually(s.t, 15*time.Second, func() error {
		resp, err := http.Get("http://" + s.Endpoint + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// Stop kills the server; the stored objects stay in Dir.
func (s *S3Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// MakeBucket creates a bucket through the S3 API.
func (s *S3Server) MakeBucket(name string) {
	s.t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Secure: false, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		s.t.Fatalf("s3 client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		s.t.Fatalf("make bucket %s: %v", name, err)
	}
}

// ServeECSMetadata stands in for the ECS task metadata endpoint v4, which cannot run outside ECS: it serves
// dir/container.json at the container path and dir/task.json at .../task, and returns the URL to put in
// ECS_CONTAINER_METADATA_URI_V4.
func ServeECSMetadata(t testing.TB, dir string) string {
	t.Helper()
	container, err := os.ReadFile(filepath.Join(dir, "container.json"))
	if err != nil {
		t.Fatal(err)
	}
	task, err := os.ReadFile(filepath.Join(dir, "task.json"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v4/task-meta", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(container) })
	mux.HandleFunc("GET /v4/task-meta/task", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(task) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/v4/task-meta"
}
