package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// keyProbeEnv names a directory for sproutBinary to key on instead of building sprout
// (TestBuildFollowsTheSource).
const keyProbeEnv = "SPROUT_E2E_KEY_PROBE"

// TestKeyProbe is what TestBuildFollowsTheSource runs in a child `go test`: it asks for the binary, as every
// test that runs sprout does, with the key taken over the probe's directory.
func TestKeyProbe(t *testing.T) {
	if os.Getenv(keyProbeEnv) == "" {
		t.Skip("run by TestBuildFollowsTheSource")
	}
	sproutBinary(t)
}

// TestBuildFollowsTheSource runs this package's sproutBinary in a child `go test` with the source key taken over
// a small module: a second run is served from the test cache, and a run after a source file changed is not.
// This is what makes `go test ./tests/e2e/` test the current code after a change to a store, whose packages
// the e2e test binary does not link.
func TestBuildFollowsTheSource(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test in a child process")
	}
	// Inside this module: the go command rechecks only the files under the module's root. The leading "_"
	// keeps the go command from reading it as a package.
	mod, err := os.MkdirTemp(".", "_keyprobe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(mod) })
	if mod, err = filepath.Abs(mod); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(mod, "store.go")
	write := func(body string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(src, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		// The go command does not cache a result that read a file modified in the last two seconds.
		if err := os.Chtimes(src, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"go.mod": "module example.com/probe\n", "go.sum": ""} {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(filepath.Join(mod, name), time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))
	}
	write("package probe\n\nconst V = 1\n", time.Now().Add(-time.Hour))

	goTest := func() string {
		t.Helper()
		args := []string{"test", "-run", "^TestKeyProbe$"}
		if raceEnabled {
			args = append(args, "-race") // the packages the parent test binary was built with
		}
		cmd := exec.Command("go", append(args, ".")...)
		// The probe's directory is part of the cache key (an environment variable the test reads), so it is
		// unique per run of this test: the first child run is never served from an older one.
		cmd.Env = append(os.Environ(), keyProbeEnv+"="+mod, "SPROUT_BIN=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go test: %v\n%s", err, out)
		}
		return string(out)
	}
	cached := func(out string) bool { return strings.Contains(out, "(cached)") }

	if out := goTest(); cached(out) {
		t.Fatalf("first run was cached:\n%s", out)
	}
	if out := goTest(); !cached(out) {
		t.Fatalf("second run on the same source was not cached:\n%s", out)
	}
	write("package probe\n\nconst V = 2\n", time.Now().Add(-30*time.Minute))
	if out := goTest(); cached(out) {
		t.Fatalf("run after the source changed was served from the cache:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(mod, "new.go"), []byte("package probe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(filepath.Join(mod, "new.go"), time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))
	if out := goTest(); cached(out) {
		t.Fatalf("run after a source file was added was served from the cache:\n%s", out)
	}
}
