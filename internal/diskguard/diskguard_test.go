package diskguard

import (
	"errors"
	"net/http"
	"strings"
	"testing"

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
