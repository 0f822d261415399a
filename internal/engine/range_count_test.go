package engine

import (
	"errors"
	"math"
	"testing"
)

func TestRangeCount(t *testing.T) {
	tests := []struct {
		start, limit, delta int64
		want                uint64
	}{
		{0, 5, 1, 5},
		{0, 5, 2, 3},
		{5, 0, -2, 3},
		{0, 5, -1, 0},
		{3, 3, 1, 0},
		{math.MinInt64, math.MaxInt64, 1, math.MaxUint64}, // limit-start wraps to -1 in int64
		{math.MinInt64, math.MaxInt64, math.MaxInt64, 3},
		{math.MaxInt64, math.MinInt64, math.MinInt64, 2}, // 2^63-1, then -1
		{math.MaxInt64, math.MinInt64, -1, math.MaxUint64},
	}
	for _, tt := range tests {
		if got := rangeCount(tt.start, tt.limit, tt.delta); got != tt.want {
			t.Errorf("rangeCount(%d, %d, %d) = %d, want %d", tt.start, tt.limit, tt.delta, got, tt.want)
		}
	}
}

// TestRangeOverflowIsAnError checks that an int64 Range whose limit-start
// overflows is refused as too long rather than answered with an empty
// tensor, and that one of a few elements spanning the whole int64 range
// works.
func TestRangeOverflowIsAnError(t *testing.T) {
	if out, err := rangeOf[int64](math.MinInt64, math.MaxInt64, 1); !errors.Is(err, ErrBadInput) {
		t.Errorf("Range(-2^63, 2^63-1, 1) = %v, %v; want an error wrapping ErrBadInput", out, err)
	}
	out, err := rangeOf[int64](math.MinInt64, math.MaxInt64, math.MaxInt64)
	if err != nil || len(out[0].I64) != 3 || out[0].I64[2] != math.MaxInt64-1 {
		t.Errorf("Range(-2^63, 2^63-1, 2^63-1) = %v, %v; want [-2^63 -1 2^63-2]", out, err)
	}
}
