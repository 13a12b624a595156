package diskguard

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/refusal"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		min     int64
		free    int64
		err     error
		refused bool
	}{
		{"plenty", 64 << 20, 1 << 30, nil, false},
		{"exactly the minimum", 64 << 20, 64 << 20, nil, false},
		{"below", 64 << 20, 64<<20 - 1, nil, true},
		{"full", 64 << 20, 0, nil, true},
		{"guard off", 0, 0, nil, false},
		{"statfs fails", 64 << 20, 0, errors.New("EIO"), false},
	} {
		g := New("log store", "/data/logs", tc.min)
		g.free = func(string) (int64, error) { return tc.free, tc.err }
		err := g.Check()
		if (err != nil) != tc.refused {
			t.Fatalf("%s: Check() = %v, refused %v", tc.name, err, tc.refused)
		}
		if err == nil {
			continue
		}
		r, ok := refusal.As(err)
		if !ok || r.HTTPStatus() != http.StatusServiceUnavailable || !r.Retryable() || r.Wait() != RetryAfter {
			t.Fatalf("%s: %#v, want a retryable 503 asking for %v", tc.name, err, RetryAfter)
		}
		for _, want := range []string{"log store", "disk nearly full", "/data/logs", "min_free_disk_bytes", "freed"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("%s: %q does not name %q", tc.name, err, want)
			}
		}
	}
	var nilGuard *Guard
	if err := nilGuard.Check(); err != nil {
		t.Fatalf("nil guard: %v", err)
	}
}

// TestFreeBytes reads a real filesystem's free space.
func TestFreeBytes(t *testing.T) {
	free, err := freeBytes(t.TempDir())
	if err != nil {
		t.Skipf("not measured here: %v", err)
	}
	if free <= 0 {
		t.Fatalf("free = %d on the test's temporary directory", free)
	}
	if err := New("x", t.TempDir(), 1).Check(); err != nil {
		t.Fatalf("1 byte minimum refused: %v", err)
	}
}

// TestCheckRecheck: a figure of at least twice the minimum is used for Recheck; nearer the minimum, after a
// failed statfs, or once Recheck has passed, every check asks again.
func TestCheckRecheck(t *testing.T) {
	g := New("metric store", "/data/metrics", 64<<20)
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	asked := 0
	free, freeErr := int64(1<<30), error(nil)
	g.free = func(string) (int64, error) { asked++; return free, freeErr }
	step := func(name string, d time.Duration, wantAsked int, wantRefused bool) {
		t.Helper()
		now = now.Add(d)
		before := asked
		err := g.Check()
		if asked-before != wantAsked || (err != nil) != wantRefused {
			t.Fatalf("%s: statfs asked %d times (want %d), refused %v (want %v)", name, asked-before, wantAsked, err != nil, wantRefused)
		}
	}
	step("first check", 0, 1, false)
	step("within Recheck", Recheck/2, 0, false)
	step("Recheck passed", Recheck, 1, false)
	free = 64<<20 + 1 // above the minimum, below twice it
	step("still the plenty figure", time.Millisecond, 0, false)
	step("Recheck passed, near the minimum", Recheck, 1, false)
	step("near the minimum: asked every time", 0, 1, false)
	free = 64<<20 - 1
	step("below: refused at once", 0, 1, true)
	free = 1 << 30
	step("freed", 0, 1, false)
	freeErr = errors.New("EIO")
	step("statfs fails after Recheck", Recheck, 1, false)
	step("after a failure: asked again", 0, 1, false)
	freeErr = nil
	step("clock stepped back", -time.Hour, 1, false)
	step("clock stepped back: asked once more", -time.Millisecond, 1, false)
}
