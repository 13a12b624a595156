package generator

import "math"

// Native (exponential) histograms, in the layout OTLP's ExponentialHistogram and Prometheus' native
// histograms share: at scale s the bucket with index i holds the values in (base^i, base^(i+1)], base =
// 2^(2^-s). Durations are never negative, so only the positive buckets and the zero bucket are used.

const (
	minNativeScale = -4 // the coarsest schema Prometheus accepts
	maxNativeScale = 8  // the finest
)

// nativeScaleFor picks the scale whose bucket growth is at most factor, as Prometheus' client library
// does for NativeHistogramBucketFactor (1.1 gives 3: neighbouring bounds differ by 2^(1/8) = 1.09).
func nativeScaleFor(factor float64) int32 {
	floor := math.Floor(math.Log2(math.Log2(factor)))
	switch {
	case floor <= -maxNativeScale:
		return maxNativeScale
	case floor >= -minNativeScale:
		return minNativeScale
	default:
		return -int32(floor)
	}
}

// nativeIndex is the bucket index of v > 0 at scale.
func nativeIndex(v float64, scale int32) int32 {
	frac, exp := math.Frexp(v) // v = frac * 2^exp, frac in [0.5, 1)
	if frac == 0.5 {
		// An exact power of two is the upper bound of its bucket; computed exactly, not through Log2.
		e := int32(exp - 1)
		if scale >= 0 {
			return e<<scale - 1
		}
		return (e - 1) >> -scale // ceil(e / 2^-scale) - 1
	}
	return int32(math.Ceil(math.Ldexp(float64(exp)+math.Log2(frac), int(scale)))) - 1
}

// observeNative adds weight w at v to the native buckets, halving the resolution while more than maxBuckets
// buckets would be needed.
func (s *series) observeNative(v, w float64, maxBuckets int) {
	if v <= 0 {
		s.nZero += w
		return
	}
	idx := nativeIndex(v, s.nScale)
	for {
		if len(s.nCounts) == 0 {
			s.nOffset = idx
			s.nCounts = append(s.nCounts, w)
			return
		}
		lo, hi := s.nOffset, s.nOffset+int32(len(s.nCounts))-1
		lo, hi = min(lo, idx), max(hi, idx)
		if int(hi-lo+1) <= maxBuckets || s.nScale <= minNativeScale {
			s.growNative(lo, hi)
			s.nCounts[idx-s.nOffset] += w
			return
		}
		s.downscaleNative()
		idx = nativeIndex(v, s.nScale)
	}
}

// growNative widens the dense bucket slice to cover [lo, hi].
func (s *series) growNative(lo, hi int32) {
	if lo == s.nOffset && int(hi-lo+1) == len(s.nCounts) {
		return
	}
	n := make([]float64, hi-lo+1)
	copy(n[s.nOffset-lo:], s.nCounts)
	s.nOffset, s.nCounts = lo, n
}

// downscaleNative halves the resolution: buckets 2i and 2i+1 merge into bucket i (i >> 1 for either).
func (s *series) downscaleNative() {
	s.nScale--
	if len(s.nCounts) == 0 {
		return
	}
	lo := s.nOffset >> 1
	hi := (s.nOffset + int32(len(s.nCounts)) - 1) >> 1
	n := make([]float64, hi-lo+1)
	for i, c := range s.nCounts {
		n[(s.nOffset+int32(i))>>1-lo] += c
	}
	s.nOffset, s.nCounts = lo, n
}

// roundCounts turns weighted per-bucket counts into the integers OTLP carries: the cumulative sums are
// rounded and differenced, so the buckets add up to the rounded total.
func roundCounts(dst []uint64, counts []float64) (total uint64) {
	cum, prev := 0.0, uint64(0)
	for i, c := range counts {
		cum += c
		r := uint64(math.Round(cum))
		if r < prev {
			r = prev
		}
		dst[i] = r - prev
		prev = r
	}
	return prev
}
