package testutil

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the peer of the StartPeer tests (the os/exec helper-process pattern): with
// SPROUT_TESTUTIL_PEER set, TestMain runs peerMain instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SPROUT_TESTUTIL_PEER"); mode != "" {
		peerMain(mode, os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

// peerMain is a small server: it reads the port from the config file named by its first argument (the only
// line "port: N"), serves /ready there, and prints what it was given. In mode "exit" it prints and fails
// instead.
func peerMain(mode string, args []string) {
	fmt.Println("peer args:", strings.Join(args, " "), "spare:", os.Getenv("PEER_SPARE"))
	if mode == "exit" {
		fmt.Println("boom: cannot start")
		os.Exit(3)
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	var port int
	if _, err := fmt.Sscanf(string(b), "port: %d", &port); err != nil {
		fmt.Println("config:", err)
		os.Exit(1)
	}
	http.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ready") })
	fmt.Println(http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", port), nil))
	os.Exit(1)
}

func self(t *testing.T) string {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestStartPeer(t *testing.T) {
	spare := FreePort(t)
	p := StartPeer(t, PeerSpec{
		Name:       "helper",
		Bin:        self(t),
		Ports:      []string{"http", "spare"},
		FixedPorts: map[string]int{"spare": spare},
		Config:     `port: {{.Port "http"}}`,
		Args:       []string{"{{.Config}}", "--data={{.Dir}}/data", `--spare={{.Addr "spare"}}`},
		Environ:    []string{"SPROUT_TESTUTIL_PEER=serve", "PEER_SPARE={{.Port \"spare\"}}"},
		Ready:      `{{.URL "http"}}/ready`,
		Timeout:    30 * time.Second,
	})
	if p.Port("spare") != spare {
		t.Errorf("fixed port spare: %d, want %d", p.Port("spare"), spare)
	}
	if p.Port("http") == p.Port("spare") {
		t.Fatalf("two names got port %d", p.Port("http"))
	}
	if got := p.Config(); got != p.Dir+"/helper.yaml" {
		t.Errorf("config written to %s", got)
	}
	resp, err := http.Get(p.URL("http") + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := fmt.Sprintf("peer args: %s --data=%s/data --spare=127.0.0.1:%d spare: %d", p.Config(), p.Dir, p.Port("spare"), p.Port("spare"))
	if log := p.LogTail(5); !strings.Contains(log, want) {
		t.Errorf("log %q does not hold the rendered arguments %q", log, want)
	}
	p.Stop()
	if ok, _ := p.Exited(); !ok {
		t.Error("Stop returned before the peer exited")
	}
	p.Stop() // a second Stop, and the clean-up's, do nothing
}

func TestStartPeerExitsEarly(t *testing.T) {
	start := time.Now()
	p, err := startPeer(t, self(t), PeerSpec{
		Name:    "helper",
		Ports:   []string{"http"},
		Environ: []string{"SPROUT_TESTUTIL_PEER=exit"},
		Ready:   `{{.URL "http"}}/ready`,
		Timeout: time.Minute,
	})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("err = %v, want the peer's early exit", err)
	}
	// The wait ends with the process, not with the deadline (a bound, not a measurement).
	if waited := time.Since(start); waited > 30*time.Second {
		t.Errorf("waited %s for a peer that had exited", waited)
	}
	if log := p.LogTail(1); log != "boom: cannot start" {
		t.Errorf("last log line %q", log)
	}
}

func TestStartPeerBadTemplate(t *testing.T) {
	for _, spec := range []PeerSpec{
		{Name: "helper", Config: `port: {{.Port "nope"}}`},
		{Name: "helper", Args: []string{"{{.Missing}}"}},
		{Name: "helper", Config: "a: 1", Overlay: "a: [", Ports: nil},
	} {
		if _, err := func() (p *Peer, err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%v", r)
				}
			}()
			return startPeer(t, self(t), spec)
		}(); err == nil {
			t.Errorf("%+v: no error", spec)
		}
	}
}
