package kernels

import (
	"math"
	"strings"
	"testing"
)

// TestSgemmPanicsOnWrappingSizes checks that sizes whose span overflows an
// int panic with the package's message before any kernel runs, instead of
// passing the length check after wrapping.
func TestSgemmPanicsOnWrappingSizes(t *testing.T) {
	buf := make([]float32, 100)
	const huge = 1 << 62 // (huge-1)*4 + 1 wraps to -3
	tests := []struct {
		name string
		call func()
		want string
	}{
		{"rows of a", func() { Sgemm(false, false, huge, 1, 4, 1, buf, 4, buf, 1, 0, buf, 1) }, "a has 100 floats"},
		{"rows of c", func() { Sgemm(false, false, huge, 1, 0, 1, buf, 1, buf, 1, 0, buf, 4) }, "c has 100 floats"},
		{"rows of b", func() { Sgemm(false, false, 0, 1, huge, 1, buf, huge, buf, 4, 0, buf, 1) }, "b has 100 floats"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "kernels: ") || !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q, want a kernels: panic containing %q", msg, tt.want)
				}
			}()
			tt.call()
		})
	}
}

func TestMatrixLen(t *testing.T) {
	tests := []struct{ rows, cols, ld, want int }{
		{1, 5, 5, 5},
		{3, 4, 6, 16},
		{1 << 62, 1, 4, math.MaxInt},
		{1 << 33, 1, 1 << 31, math.MaxInt},
		{1 << 32, 1, 1 << 31, 1<<63 - 1<<31 + 1},
		{2, math.MaxInt, math.MaxInt, math.MaxInt},
	}
	for _, tt := range tests {
		if got := matrixLen(tt.rows, tt.cols, tt.ld); got != tt.want {
			t.Errorf("matrixLen(%d, %d, %d) = %d, want %d", tt.rows, tt.cols, tt.ld, got, tt.want)
		}
	}
}
