package migrate

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate limits what a migration sends: Items per second (spans, log lines, samples) or Bytes per second (of
// request bodies, before transport compression). Zero is no limit.
type Rate struct {
	Items float64
	Bytes float64
}

// ParseRate reads --rate: a number is items per second ("5000", "5000/s"); a number with a byte unit is bytes
// per second ("512KiB", "2MB/s", "1GiB/s"). Empty or "0" is no limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, "/s")
	if s == "" {
		return Rate{}, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
	}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v < 0 {
				return Rate{}, fmt.Errorf("rate %q: want a number of items per second, or of bytes with a unit (KiB, MB, …)", s)
			}
			return Rate{Bytes: v * u.mult}, nil
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "items"), 64)
	if err != nil || v < 0 {
		return Rate{}, fmt.Errorf("rate %q: want a number of items per second, or of bytes with a unit (KiB, MB, …)", s)
	}
	return Rate{Items: v}, nil
}

// pacer spaces requests so that the average stays at the rate: each batch books its share of time after the
// previous booking, and waits until its booking starts. A batch larger than a second's budget simply waits
// longer; nothing is split.
type pacer struct {
	rate  Rate
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
	next  time.Time
}

func newPacer(r Rate) *pacer {
	return &pacer{rate: r, now: time.Now, sleep: sleepCtx}
}

// wait blocks until a batch of items and bytes may go.
func (p *pacer) wait(ctx context.Context, items, bytes int) error {
	var cost time.Duration
	switch {
	case p.rate.Bytes > 0:
		cost = time.Duration(float64(bytes) / p.rate.Bytes * float64(time.Second))
	case p.rate.Items > 0:
		cost = time.Duration(float64(items) / p.rate.Items * float64(time.Second))
	default:
		return nil
	}
	now := p.now()
	if p.next.Before(now) {
		p.next = now
	}
	start := p.next
	p.next = p.next.Add(cost)
	if d := start.Sub(now); d > 0 {
		return p.sleep(ctx, d)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
