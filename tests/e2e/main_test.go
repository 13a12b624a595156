// Package e2e runs the real sprout binary, built once per test run, against real peers: Prometheus from
// Debian, the Collector's own OTLP receiver, the OpenTelemetry Go SDK and stand-ins only for what cannot run
// here (the ECS task metadata endpoint).
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

// sproutBinary returns the binary under test: SPROUT_BIN, or sprout built once per run from this module.
//
// It is called from the tests, not from TestMain, on purpose: the go command caches a test result on the files
// the test opened (and the environment it read), and it records them only while m.Run runs. Reading the
// module's source here (testutil.SourceKey) makes `go test ./tests/e2e/` run again after a change to a store,
// whose packages the e2e test binary does not link. The go command rechecks only files inside the module: a
// SPROUT_BIN outside it is keyed by its name alone, so run with -count=1 after rebuilding it.
func sproutBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SPROUT_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("SPROUT_BIN: %v", err)
		}
		return p
	}
	buildOnce.Do(func() {
		root := filepath.Join("..", "..")
		if probe := os.Getenv(keyProbeEnv); probe != "" {
			root = probe
		}
		key, err := testutil.SourceKey(root)
		if err != nil {
			buildErr = err
			return
		}
		if root != filepath.Join("..", "..") {
			return // TestBuildFollowsTheSource's probe: the key, no build
		}
		if buildDir, err = os.MkdirTemp("", "sprout-e2e-bin"); err != nil {
			buildErr = err
			return
		}
		bin := filepath.Join(buildDir, "sprout")
		args := []string{"build", "-o", bin}
		if raceEnabled {
			// Same flags as the test binary, so the build reuses its compiled packages.
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "../../cmd/sprout")...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("build sprout: %w", err)
			return
		}
		fmt.Fprintf(os.Stderr, "built sprout (source %s) in %s\n", key, time.Since(start).Round(time.Second))
		builtBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// proc is a running sprout process.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startSprout runs the binary with args and extra environment; its output is printed if the test fails.
func startSprout(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(sproutBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	if raceEnabled {
		// The race detector's default exit code (66) would turn a race inside an upstream Collector package
		// (one is known in v0.158: memory_limiter reporting status while the service starts) into a failed
		// exit; races are judged from the output instead, and fail the test when Sprout's own code is in them.
		cmd.Env = append(cmd.Env, "GORACE=exitcode=0")
	}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sprout: %v", err)
	}
	p := &proc{t: t, cmd: cmd, logs: logs, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		p.kill()
		checkRaces(t, logs.String())
		if t.Failed() {
			t.Logf("sprout output:\n%s", tail(logs.String(), 8000))
		}
	})
	return p
}

// exited reports whether the process has exited, and its error.
func (p *proc) exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

func (p *proc) kill() {
	if ok, _ := p.exited(); ok {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.done <- nil
}

// stop sends SIGTERM and waits up to timeout for a clean exit.
func (p *proc) stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		return fmt.Errorf("sprout did not exit within %s of SIGTERM", timeout)
	}
}

// waitHTTP polls url until it answers 200.
func (p *proc) waitHTTP(url string, timeout time.Duration) {
	p.t.Helper()
	testutil.Eventually(p.t, timeout, func() error {
		if ok, err := p.exited(); ok {
			p.t.Fatalf("sprout exited early (%v):\n%s", err, tail(p.logs.String(), 4000))
		}
		return httpOK(url)
	})
}

func httpOK(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// checkRaces fails the test for every data race report of the sprout process that has a frame in Sprout's own
// packages, and logs the others (races wholly inside upstream modules, which Sprout cannot fix).
func checkRaces(t testing.TB, out string) {
	t.Helper()
	const start, end = "WARNING: DATA RACE", "=================="
	for {
		i := strings.Index(out, start)
		if i < 0 {
			return
		}
		out = out[i+len(start):]
		report := out
		if j := strings.Index(out, end); j >= 0 {
			report, out = out[:j], out[j:]
		}
		if strings.Contains(report, "sprout-otel/sprout/internal/") || strings.Contains(report, "sprout-otel/sprout/components/") {
			t.Errorf("data race in Sprout's code:%s", report)
		} else {
			t.Logf("data race inside an upstream module (not Sprout's code):%s", tail(report, 1500))
		}
	}
}
