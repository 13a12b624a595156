package testutil

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/peerconfig"
)

// PeerSpec describes a peer server that a side-by-side test runs as a child process: a real Tempo, Loki or
// Prometheus built from its own source. Config, Args and Ready are text/template strings executed with the
// *Peer, so they can name its directory ({{.Dir}}), its config file ({{.Config}}) and the loopback ports
// allocated for it ({{.Port "http"}}).
type PeerSpec struct {
	// Name names the peer in messages and its log file ("tempo", "loki").
	Name string
	// Bin is the peer's binary. When empty, the environment variable Env names it, and the test is skipped
	// when that is unset: peers are built outside the repository, so a machine without them skips the test.
	Bin string
	Env string
	// Ports are the names of the free loopback ports to allocate before the templates are executed.
	Ports []string
	// FixedPorts gives some of those names a port chosen by the test (a peer that comes up where a client has
	// been trying to reach it).
	FixedPorts map[string]int
	// ConfigFile is the name of the config file written into the peer's directory from Config; none when
	// Config is empty.
	ConfigFile string
	Config     string
	// Overlay is YAML merged over Config before it is written (maps merge key by key, anything else replaces,
	// and null removes the key), so a test states only how its peer differs from the usual one.
	Overlay string
	Args    []string
	// WorkDir is the directory the peer runs in (default: its own directory, Dir).
	WorkDir string
	// Environ is added to the peer's environment (NAME=value, each a template).
	Environ []string
	// Ready is the URL polled until it answers 200; empty for a peer that has no readiness endpoint.
	Ready string
	// Timeout bounds the wait for Ready (default 2 minutes: Loki takes a while to join its own ring).
	Timeout time.Duration
}

// Peer is a running peer server. It is stopped, and its log tail printed if the test failed, when the test
// ends.
type Peer struct {
	Name string
	// Host is the peer's working directory (Dir, a fresh temporary one: its data, its config file and its log)
	// and its ports; Port, Addr and URL name them (a name the spec did not list panics: a mistake in the test).
	peerconfig.Host
	cfg  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Config is the path of the written config file.
func (p *Peer) Config() string { return p.cfg }

// LogTail returns the last n lines of the peer's output.
func (p *Peer) LogTail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(read %s log: %v)", p.Name, err)
	}
	return lastLines(string(b), n)
}

// Exited reports whether the process has ended, and how.
func (p *Peer) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop ends the peer: SIGTERM, and SIGKILL if it has not exited after a few seconds. It is safe to call more
// than once; t.Cleanup calls it too.
func (p *Peer) Stop() {
	if ok, _ := p.Exited(); ok {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(peerStopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// peerStopGrace is how long a peer may take to exit after SIGTERM before it is killed. The test's data is
// thrown away with the directory, so there is nothing to flush that a test could miss.
const peerStopGrace = 5 * time.Second

// peerLogLines is how many lines of a peer's output a failed test prints.
const peerLogLines = 40

// StartPeer allocates the spec's ports, writes its config file, starts the binary in a fresh directory with
// its output going to <dir>/<name>.log, and waits until Ready answers 200. The test fails with the last lines
// of the log if the peer exits or is not ready in time; the peer is stopped when the test ends.
func StartPeer(t testing.TB, spec PeerSpec) *Peer {
	t.Helper()
	bin := spec.Bin
	if bin == "" {
		bin = PeerBinary(t, spec.Env)
	}
	p, err := startPeer(t, bin, spec)
	if err != nil {
		// The clean-up, registered once the process started, prints the last lines of its log.
		t.Fatalf("%s: %v", spec.Name, err)
	}
	return p
}

// startPeer is StartPeer without the test's verdict: it returns the peer (nil when it did not start) and why
// it is not ready.
func startPeer(t testing.TB, bin string, spec PeerSpec) (*Peer, error) {
	p := &Peer{Name: spec.Name, Host: peerconfig.Host{Dir: t.TempDir(), Ports: map[string]int{}}, done: make(chan struct{})}
	for _, name := range spec.Ports {
		if n, ok := spec.FixedPorts[name]; ok {
			p.Ports[name] = n
			continue
		}
		p.Ports[name] = FreePort(t)
	}
	if spec.Config != "" {
		text, err := peerconfig.Render(spec.Config, spec.Overlay, p)
		if err != nil {
			return nil, err
		}
		name := spec.ConfigFile
		if name == "" {
			name = spec.Name + ".yaml"
		}
		p.cfg = filepath.Join(p.Dir, name)
		if err := os.WriteFile(p.cfg, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("write config: %w", err)
		}
	}
	args := make([]string, len(spec.Args))
	for i, a := range spec.Args {
		var err error
		if args[i], err = p.render(a); err != nil {
			return nil, fmt.Errorf("argument %q: %w", a, err)
		}
	}
	environ := append([]string(nil), os.Environ()...)
	for _, e := range spec.Environ {
		v, err := p.render(e)
		if err != nil {
			return nil, fmt.Errorf("environment %q: %w", e, err)
		}
		environ = append(environ, v)
	}
	ready, err := p.render(spec.Ready)
	if err != nil {
		return nil, fmt.Errorf("ready URL: %w", err)
	}
	p.log = filepath.Join(p.Dir, spec.Name+".log")
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = p.Dir
	if spec.WorkDir != "" {
		p.cmd.Dir = spec.WorkDir
	}
	p.cmd.Env = environ
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s log (%s, last %d lines):\n%s", spec.Name, p.log, peerLogLines, p.LogTail(peerLogLines))
		}
	})
	if ready == "" {
		return p, nil
	}
	timeout := spec.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	return p, p.waitReady(ready, timeout)
}

func (p *Peer) render(text string) (string, error) { return peerconfig.Execute(text, p) }

// waitReady polls url until it answers 200, the process exits, or timeout passes.
func (p *Peer) waitReady(url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if ok, err := p.Exited(); ok {
			return fmt.Errorf("exited before it was ready (%v)", err)
		}
		last = probe(client, url)
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s: %w", timeout, last)
		}
		select {
		case <-p.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func probe(client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), client.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// PeerBinary returns the binary named by the environment variable env, skipping the test when it is unset and
// failing it when it names no file.
func PeerBinary(t testing.TB, env string) string {
	t.Helper()
	if env == "" {
		t.Fatal("peer spec names neither a binary nor the environment variable that names one")
	}
	p := os.Getenv(env)
	if p == "" {
		t.Skipf("%s (the peer binary for this side-by-side test) is not set", env)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v", env, p, err)
	}
	return p
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
