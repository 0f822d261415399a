package window

import "math/bits"

// The histogram is log-linear: values below subCount are counted exactly, and
// each power-of-two range [2^e, 2^(e+1)) above it is split into subCount equal
// sub-buckets of width 2^(e-subBits). A bucket's midpoint is therefore within
// half a width, 2^(e-subBits-1) <= v/128, of any value in it.
const (
	subBits  = 6
	subCount = 1 << subBits
	// maxExp is the largest power of two tracked: latencies of 2^(maxExp+1) ns
	// (about 73 minutes) and more are counted in the top bucket. Max and Mean
	// stay exact beyond it.
	maxExp  = 41
	numRows = maxExp - subBits + 2

	// MaxTracked is the largest latency, in nanoseconds, that the percentile
	// histogram resolves; larger latencies are counted as MaxTracked, so a
	// percentile that falls among them is reported as about MaxTracked.
	MaxTracked = 1<<(maxExp+1) - 1

	// RelativeError bounds the relative difference between a reported
	// percentile and the exact order statistic it stands for.
	RelativeError = 1.0 / (2 * subCount)
)

// locate returns the histogram row and sub-bucket that count v.
func locate(v uint64) (row, sub int) {
	if v > MaxTracked {
		v = MaxTracked
	}
	if v < subCount {
		return 0, int(v)
	}
	e := bits.Len64(v) - 1 // v in [2^e, 2^(e+1)), e >= subBits
	return e - subBits + 1, int(v>>(e-subBits)) - subCount
}

// bounds returns the smallest value counted by (row, sub) and the bucket's width.
func bounds(row, sub int) (low, width uint64) {
	if row == 0 {
		return uint64(sub), 1
	}
	width = 1 << (row - 1)
	return (subCount + uint64(sub)) * width, width
}

// midpoint is the value reported for anything counted in (row, sub).
func midpoint(row, sub int) uint64 {
	low, width := bounds(row, sub)
	return low + (width-1)/2
}

// hist counts latencies in nanoseconds. Rows are allocated on first use: a
// stream whose latencies span a few powers of two costs a few rows, and the
// worst case is numRows rows of subCount counters.
type hist struct {
	rows [numRows]*[subCount]uint64
}

func (h *hist) add(v uint64) {
	r, s := locate(v)
	row := h.rows[r]
	if row == nil {
		row = new([subCount]uint64)
		h.rows[r] = row
	}
	row[s]++
}

// reset zeroes the counts and keeps the rows for reuse.
func (h *hist) reset() {
	for _, row := range h.rows {
		if row != nil {
			*row = [subCount]uint64{}
		}
	}
}

// addTo adds h's counts into dst.
func (h *hist) addTo(dst *[numRows][subCount]uint64) {
	for r, row := range h.rows {
		if row == nil {
			continue
		}
		d := &dst[r]
		for s, c := range row {
			d[s] += c
		}
	}
}

// quantiles fills out[i] with the nearest-rank value of ranks[i] (1-based,
// ascending) from the merged counts m, clamped to [lo, hi], the smallest and
// largest value counted (so a window of one value reports it exactly).
func quantiles(m *[numRows][subCount]uint64, ranks []uint64, lo, hi uint64, out []uint64) {
	var cum uint64
	i := 0
	for r := range m {
		for s, c := range m[r] {
			if c == 0 {
				continue
			}
			cum += c
			for i < len(ranks) && ranks[i] <= cum {
				out[i] = min(max(midpoint(r, s), lo), hi)
				i++
			}
			if i == len(ranks) {
				return
			}
		}
	}
	for ; i < len(ranks); i++ {
		out[i] = hi
	}
}
