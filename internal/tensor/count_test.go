package tensor

import (
	"strings"
	"testing"
)

func TestCount(t *testing.T) {
	tests := []struct {
		shape   []int
		want    int
		wantErr string
	}{
		{nil, 1, ""},
		{[]int{2, 3, 4}, 24, ""},
		{[]int{5, 0, 7}, 0, ""},
		{[]int{1 << 62, 0}, 0, ""}, // empty; the other dimension fits
		{[]int{-1, 2}, 0, "dimension 0 is negative"},
		{[]int{1 << 32, 1 << 32}, 0, "overflows"}, // wraps to 0 unchecked
		{[]int{1 << 32, 1 << 32, 0}, 0, "overflows"},
		{[]int{3, 1 << 62}, 0, "overflows"},
	}
	for _, tt := range tests {
		got, err := Count(tt.shape)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Count(%v) = %d, %v; want an error saying %q", tt.shape, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Count(%v) = %d, %v; want %d", tt.shape, got, err, tt.want)
		}
	}
}

func TestCheckShapeAndValidate(t *testing.T) {
	tests := []struct {
		name    string
		t       *Tensor
		wantErr string
	}{
		{"ok", FromF32(make([]float32, 6), 2, 3), ""},
		{"empty", FromF32(nil, 1<<20, 0), ""},
		{"empty at the bounds", FromF32(nil, MaxDim, 0, 1), ""},
		{"negative", FromF32(nil, -1, 0), "dimension 0 is negative"},
		{"dimension over MaxDim", FromF32(nil, 0, MaxDim+1), "dimension 1 is 2147483649, more than 2147483648"},
		{"empty, many elements were it not", FromF32(nil, 1<<20, 0, 1<<20), "non-zero dimensions is more than"},
		{"wraps to zero", FromF32(nil, 1<<32, 1<<32), "more than"},
		{"rank at the bound", FromF32([]float32{1}, ones(MaxRank)...), ""},
		{"rank over the bound", FromF32([]float32{1}, ones(MaxRank+1)...), "65 dimensions, more than 64"},
		{"data too short", FromF32(make([]float32, 5), 2, 3), "needs 6 elements, data has 5"},
	}
	for _, tt := range tests {
		err := tt.t.Validate()
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: Validate() = %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Validate() = %v, want an error saying %q", tt.name, err, tt.wantErr)
		}
	}
}

// TestViewDecodeHugeShapes checks that shapes whose byte count overflows
// are errors, not a panic or a tensor claiming data it does not have.
func TestViewDecodeHugeShapes(t *testing.T) {
	for _, shape := range [][]int{{1 << 62}, {1 << 32, 1 << 32}, {1 << 61, 1 << 2}} {
		if v, _, err := View(Float32, shape, nil); err == nil {
			t.Errorf("View(float32, %v, nil) = %v, want an error", shape, v)
		}
		if v, err := Decode(Float32, shape, nil); err == nil {
			t.Errorf("Decode(float32, %v, nil) = %v, want an error", shape, v)
		}
	}
}

// ones returns a shape of n dimensions of 1.
func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}
