package difftest

import (
	"math"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/tensor"
)

func TestCompare(t *testing.T) {
	f32 := func(shape []int, v ...float32) *tensor.Tensor { return tensor.FromF32(v, shape...) }
	i64 := func(v ...int64) *tensor.Tensor { return tensor.FromI64(v, len(v)) }
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		name      string
		want, got *tensor.Tensor
		wantErr   string // empty: within tolerance
		maxAbs    float64
	}{
		{"equal", f32([]int{2}, 1, -2), f32([]int{2}, 1, -2), "", 0},
		{"within tolerance", f32([]int{2}, 1000, 1), f32([]int{2}, 1000, 1.09), "", 0.09},
		{"over tolerance", f32([]int{2}, 1000, 1), f32([]int{2}, 1000, 1.11), "over the tolerance", 0.11},
		{"scale is the reference's largest magnitude", f32([]int{2}, -10, 0), f32([]int{2}, -10, 0.002), "over the tolerance", 0.002},
		{"all zero needs exact", f32([]int{1}, 0), f32([]int{1}, 1e-30), "over the tolerance", 1e-30},
		{"shape", f32([]int{2}, 1, 2), f32([]int{1, 2}, 1, 2), "shape [1 2], reference [2]", 0},
		{"dtype", f32([]int{1}, 1), i64(1), "dtype int64, reference float32", 0},
		{"missing", f32([]int{1}, 1), nil, "missing", 0},
		{"NaN in output", f32([]int{2}, 1, 2), f32([]int{2}, 1, nan), "element 1 is NaN", 0},
		{"NaN where the reference has NaN", f32([]int{2}, 1, nan), f32([]int{2}, 1, nan), "", 0},
		{"Inf in output", f32([]int{2}, 1, 2), f32([]int{2}, inf, 2), "element 0 is +Inf", 0},
		{"int64 exact", i64(1, 2, 3), i64(1, 2, 3), "", 0},
		{"int64 off by one", i64(1, 2, 3), i64(1, 2, 4), "element 2 is 4, reference 3", 0},
		{"int64 past 2^53", i64(1<<60 + 1), i64(1 << 60), "element 0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Compare(tt.want, tt.got, 0.1/1000)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if math.Abs(d.MaxAbs-tt.maxAbs) > 1e-6*math.Max(1, tt.maxAbs) {
				t.Errorf("MaxAbs %g, want %g", d.MaxAbs, tt.maxAbs)
			}
		})
	}
}
