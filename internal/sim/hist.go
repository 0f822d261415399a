package sim

import "math"

// Latency histogram in the manner of HdrHistogram: a bucket per power of two
// split into 128 linear sub-buckets, read straight from the float's bits, so
// a bucket is at most 1/128 of its value wide and a quantile, taken at the
// bucket's middle, is within 0.4%, in fixed memory however many requests a
// run has. Values below 2^-17 s (7.6 µs) share the first bucket, values above
// 2^17 s (36 h) the last.
const (
	histSubBits = 7
	histMinExp  = -17
	histMaxExp  = 17
	histBuckets = (histMaxExp - histMinExp) << histSubBits
)

type hist struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	max    float64
}

func bucketOf(x float64) int {
	if !(x >= 0x1p-17) {
		return 0
	}
	bits := math.Float64bits(x)
	exp := int(bits>>52&0x7ff) - 1023 // x = 1.m * 2^exp
	b := (exp-histMinExp)<<histSubBits | int(bits>>(52-histSubBits)&(1<<histSubBits-1))
	return min(b, histBuckets-1)
}

// bucketValue is the middle of bucket b.
func bucketValue(b int) float64 {
	exp := b>>histSubBits + histMinExp
	sub := b & (1<<histSubBits - 1)
	return math.Ldexp(1+(float64(sub)+0.5)/(1<<histSubBits), exp)
}

func (h *hist) add(x float64) {
	h.counts[bucketOf(x)]++
	h.n++
	h.sum += x
	h.max = max(h.max, x)
}

func (h *hist) reset() { *h = hist{} }

// quantile returns the q-quantile (nearest rank); 0 when empty. The largest
// value is returned exactly.
func (h *hist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(1, min(rank, h.n))
	if rank == h.n {
		return h.max
	}
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketValue(b), h.max)
		}
	}
	return h.max
}

func (h *hist) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}
