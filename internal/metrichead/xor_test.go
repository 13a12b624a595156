package metrichead

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

type sample struct {
	t int64
	v float64
}

// referenceChunk encodes samples with the TSDB's own XOR appender.
func referenceChunk(t testing.TB, ss []sample) []byte {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		app.Append(0, s.t, s.v)
	}
	return c.Bytes()
}

func ownChunk(ss []sample) []byte {
	var st xorState
	b := newChunk(0)
	for _, s := range ss {
		b = xorAppend(b, &st, s.t, s.v)
	}
	return b
}

// decode reads a chunk back with the TSDB's iterator.
func decode(t testing.TB, b []byte) []sample {
	c, err := chunkenc.FromData(chunkenc.EncXOR, b)
	if err != nil {
		t.Fatal(err)
	}
	var out []sample
	it := c.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		ts, v := it.At()
		out = append(out, sample{ts, v})
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSamples(a, b []sample) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].t != b[i].t || math.Float64bits(a[i].v) != math.Float64bits(b[i].v) {
			return false
		}
	}
	return true
}

// samplesFrom turns fuzz bytes into increasing timestamps and values, covering every timestamp bucket and both
// value windows.
func samplesFrom(data []byte) []sample {
	var ss []sample
	t := int64(binary.LittleEndian.Uint64(append(data, make([]byte, 8)...)[:8]))
	if len(data) > 8 {
		data = data[8:]
	} else {
		data = nil
	}
	v := 0.0
	for len(data) >= 3 && len(ss) < 1000 {
		step := int64(data[0])
		switch data[1] % 6 {
		case 0:
			step *= 1000
		case 1:
			step <<= 13
		case 2:
			step <<= 16
		case 3:
			step <<= 19
		case 4:
			step <<= 40
		}
		if t > math.MaxInt64-step-1 {
			break
		}
		t += step + 1
		switch data[2] % 5 {
		case 0:
		case 1:
			v += float64(data[2])
		case 2:
			v = math.Float64frombits(math.Float64bits(v) ^ uint64(data[0])<<uint(data[1]%64))
		case 3:
			v = math.NaN()
		default:
			v = -v * 1.5
		}
		ss = append(ss, sample{t, v})
		data = data[3:]
	}
	return ss
}

func TestXORAppendMatchesTSDB(t *testing.T) {
	cases := map[string][]sample{
		"one":         {{1000, 1}},
		"two":         {{-5, 1}, {10, 1}},
		"regular":     nil,
		"counter":     nil,
		"jitter":      nil,
		"large steps": {{0, 0}, {1 << 13, 1}, {1 << 30, 2}, {1<<30 + 1<<19, 3}, {1<<31 + 7, -4}, {1 << 50, math.Inf(1)}},
		"equal values and NaN": {{1, math.NaN()}, {2, math.NaN()}, {3, 0}, {4, math.Copysign(0, -1)},
			{5, math.MaxFloat64}, {6, math.SmallestNonzeroFloat64}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 120 {
		cases["regular"] = append(cases["regular"], sample{int64(i) * 15000, float64(i % 7)})
		cases["counter"] = append(cases["counter"], sample{1700000000000 + int64(i)*10000, float64(i * i)})
		cases["jitter"] = append(cases["jitter"], sample{int64(i)*15000 + rng.Int64N(200), rng.NormFloat64() * 1e6})
	}
	for name, ss := range cases {
		t.Run(name, func(t *testing.T) {
			want, got := referenceChunk(t, ss), ownChunk(ss)
			if !bytes.Equal(want, got) {
				t.Fatalf("chunk bytes differ from the TSDB's\nwant %x\ngot  %x", want, got)
			}
			if back := decode(t, got); !sameSamples(back, ss) {
				t.Fatalf("decoded %v, appended %v", back, ss)
			}
		})
	}
}

// TestXORAppendResumes appends to a chunk across many calls with the state alone, as the head does.
func TestXORAppendResumes(t *testing.T) {
	ss := samplesFrom(bytes.Repeat([]byte{3, 1, 2, 250, 4, 9, 7, 2, 1}, 50))
	var st xorState
	b := newChunk(0)
	for i, s := range ss {
		b = xorAppend(b, &st, s.t, s.v)
		if chunkSamples(b) != i+1 {
			t.Fatalf("count %d after %d appends", chunkSamples(b), i+1)
		}
	}
	if !bytes.Equal(b, referenceChunk(t, ss)) {
		t.Fatal("bytes differ from the TSDB's")
	}
}

func FuzzXORAppend(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 10, 0, 1, 200, 4, 2})
	f.Add(bytes.Repeat([]byte{255, 5, 3}, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		ss := samplesFrom(data)
		want, got := referenceChunk(t, ss), ownChunk(ss)
		if !bytes.Equal(want, got) {
			t.Fatalf("chunk bytes differ\nwant %x\ngot  %x", want, got)
		}
	})
}

func BenchmarkXORAppend(b *testing.B) {
	var st xorState
	buf := newChunk(256)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%120 == 0 {
			buf, st = buf[:chunkHeader], xorState{}
			buf[0], buf[1] = 0, 0
		}
		buf = xorAppend(buf, &st, int64(i)*15000, float64(i))
	}
}
