package metrichead

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// TestAppendableWindow: an appender refuses samples more than half a block range behind the newest, as
// Prometheus' head does, and those before the truncation point.
func TestAppendableWindow(t *testing.T) {
	h, err := New(DefaultOptions()) // 2 h ranges: a 1 h window
	if err != nil {
		t.Fatal(err)
	}
	const hour = int64(time.Hour / time.Millisecond)
	lset := labels.FromStrings("__name__", "a")
	app := h.Appender()
	for _, c := range []struct {
		t    int64
		want error
	}{
		{10 * hour, nil},
		{8 * hour, storage.ErrOutOfBounds},
		{9*hour + 1, nil}, // inside the window (for another series: this one is past it)
	} {
		l := lset
		if c.t != 10*hour {
			l = labels.FromStrings("__name__", "b")
		}
		if _, err := app.Append(0, l, c.t, 1); !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
			t.Fatalf("append at %d: %v, want %v", c.t, err, c.want)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.AppendableMinValidTime(); got != 9*hour {
		t.Fatalf("appendable from %d, want %d", got, 9*hour)
	}
}

// TestWaitForAppendersOverlapping: writing a block waits for an appender that holds a sample in its range, so
// the sample is in the head when the block is written.
func TestWaitForAppendersOverlapping(t *testing.T) {
	h, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	app := h.Appender()
	if _, err := app.Append(0, labels.FromStrings("__name__", "a"), 1000, 1); err != nil {
		t.Fatal(err)
	}
	seen := make(chan int)
	go func() {
		h.WaitForAppendersOverlapping(2000)
		q, err := h.Querier(math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Error(err)
		}
		seen <- len(selectAll(t, q, labels.MustNewMatcher(labels.MatchEqual, "__name__", "a")))
		q.Close()
	}()
	time.Sleep(50 * time.Millisecond) // gives a wait that does not wait the time to look too early
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := <-seen; n != 1 {
		t.Fatalf("the wait returned before the appender committed: %d series seen", n)
	}
	h.WaitForAppendersOverlapping(math.MaxInt64) // none left
}

// TestAppendCleansLabels: empty label values are dropped and a repeated name is refused, as in Prometheus' head.
func TestAppendCleansLabels(t *testing.T) {
	h, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	app := h.Appender()
	ref, err := app.Append(0, labels.FromStrings("__name__", "m", "empty", ""), 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if h.Lookup(labels.FromStrings("__name__", "m")) != ref {
		t.Fatal("the empty label was kept")
	}
	dup := labels.New(labels.Label{Name: "__name__", Value: "m"}, labels.Label{Name: "a", Value: "1"}, labels.Label{Name: "a", Value: "2"})
	if _, err := app.Append(0, dup, 1000, 1); err == nil || !strings.Contains(err.Error(), "not unique") {
		t.Fatalf("a repeated label name: %v", err)
	}
	if _, err := app.Append(0, labels.FromStrings("only", ""), 1000, 1); err == nil {
		t.Fatal("a label set of empty values was accepted")
	}
}
