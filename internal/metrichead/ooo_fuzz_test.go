package metrichead

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// FuzzOutOfOrder appends the same samples, in order and late, to a head and to Prometheus' DB with the same
// out-of-order window, one commit each, and checks that both answer each append alike and hold the same
// samples. Each input byte triple is a series (of three), a signed offset in seconds from a base that moves
// forward, and a value.
func FuzzOutOfOrder(f *testing.F) {
	f.Add([]byte{0, 10, 1, 0, 5, 2, 1, 200, 3, 0, 7, 4, 2, 0x80, 5, 0, 10, 6})
	f.Add([]byte{0, 0, 0, 0, 0xff, 1, 0, 0xfe, 2, 1, 0x7f, 3, 1, 0x81, 4})
	const window = 10 * 60 * 1000
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 3*200 {
			return
		}
		o := DefaultOptions()
		o.OutOfOrderTimeWindow = window
		h, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		ro := tsdb.DefaultOptions()
		ro.OutOfOrderTimeWindow = window
		ro.IsolationDisabled = true
		ref, err := tsdb.Open(t.TempDir(), nil, nil, ro, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Close()
		kind := func(err error) string {
			for _, e := range []error{storage.ErrOutOfOrderSample, storage.ErrDuplicateSampleForTimestamp,
				storage.ErrOutOfBounds, storage.ErrTooOldSample} {
				if errors.Is(err, e) {
					return e.Error()
				}
			}
			if err != nil {
				return "other: " + err.Error()
			}
			return ""
		}
		base := int64(1_700_000_000_000)
		for i := 0; i+2 < len(ops); i += 3 {
			l := labels.FromStrings("__name__", "m", "s", fmt.Sprint(ops[i]%3))
			ts := base + int64(int8(ops[i+1]))*10_000 // ±21 minutes in 10 s steps
			if int8(ops[i+1]) > 0 {
				base += int64(ops[i+1]) * 1000 // the newest moves on
			}
			v := float64(ops[i+2])
			a := h.Appender()
			_, herr := a.Append(0, l, ts, v)
			if herr == nil {
				herr = a.Commit()
			} else {
				_ = a.Rollback()
			}
			ra := ref.Appender(context.Background())
			_, rerr := ra.Append(0, l, ts, v)
			if rerr == nil {
				rerr = ra.Commit()
			} else {
				_ = ra.Rollback()
			}
			if kind(herr) != kind(rerr) {
				t.Fatalf("op %d (%s at %d = %v): head %q, Prometheus' DB %q", i/3, l, ts, v, kind(herr), kind(rerr))
			}
		}
		dump := func(q storage.Querier) string {
			defer q.Close()
			var out string
			ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
			var it chunkenc.Iterator
			for ss.Next() {
				out += ss.At().Labels().String() + ":"
				it = ss.At().Iterator(it)
				prev := int64(math.MinInt64)
				for it.Next() == chunkenc.ValFloat {
					ts, v := it.At()
					if ts <= prev {
						t.Fatalf("%s: %d after %d", ss.At().Labels(), ts, prev)
					}
					prev = ts
					out += fmt.Sprintf(" %d=%v", ts, v)
				}
				out += "\n"
			}
			if err := ss.Err(); err != nil {
				t.Fatal(err)
			}
			return out
		}
		hq, err := h.Querier(math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		oq, err := h.OOOQuerier(math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		rq, err := ref.Querier(math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		got := dump(storage.NewMergeQuerier([]storage.Querier{hq, oq}, nil, storage.ChainedSeriesMerge))
		if want := dump(rq); got != want {
			t.Fatalf("samples differ\nPrometheus' DB:\n%s\nhead:\n%s", want, got)
		}
	})
}
