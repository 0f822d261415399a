package difftest

import (
	"fmt"
	"math"
	"slices"

	"github.com/spindleml/spindle/internal/tensor"
)

// Diff summarises how one output differs from the reference.
type Diff struct {
	MaxAbs  float64 // largest |got - want|
	At      int     // flat index of MaxAbs
	WantMax float64 // largest |want|, the scale the tolerance is relative to
}

func (d Diff) String() string {
	rel := 0.0
	if d.WantMax > 0 {
		rel = d.MaxAbs / d.WantMax
	}
	return fmt.Sprintf("max |diff| %.3g at flat index %d, max |reference| %.3g, ratio %.3g", d.MaxAbs, d.At, d.WantMax, rel)
}

// Compare checks got against the reference want: equal dtypes and shapes, and
// every element within rel × max|want| of want (exactly equal for integer and
// bool outputs). A NaN or infinity in got must sit where want has the same
// value. It returns the difference found and an error when it is out of bounds.
func Compare(want, got *tensor.Tensor, rel float64) (Diff, error) {
	var d Diff
	if got == nil {
		return d, fmt.Errorf("output missing")
	}
	if want.DType != got.DType {
		return d, fmt.Errorf("dtype %v, reference %v", got.DType, want.DType)
	}
	if !slices.Equal(want.Shape, got.Shape) {
		return d, fmt.Errorf("shape %s, reference %s", tensor.ShapeString(got.Shape), tensor.ShapeString(want.Shape))
	}
	if want.Len() != got.Len() {
		return d, fmt.Errorf("%d elements, reference %d", got.Len(), want.Len())
	}
	w, ok := widen(want)
	g, _ := widen(got)
	if !ok {
		return d, fmt.Errorf("dtype %v cannot be compared", want.DType)
	}
	for i := range w {
		if a := math.Abs(w[i]); !math.IsInf(a, 0) && !math.IsNaN(a) {
			d.WantMax = max(d.WantMax, a)
		}
	}
	exact := want.DType != tensor.Float32 && want.DType != tensor.Float64
	tol := rel * d.WantMax
	if exact {
		tol = 0
	}
	bad := -1
	if want.DType == tensor.Int64 { // float64 would blur values past 2^53
		for i := range want.I64 {
			if want.I64[i] != got.I64[i] {
				return d, fmt.Errorf("element %d is %d, reference %d", i, got.I64[i], want.I64[i])
			}
		}
	}
	for i := range w {
		if math.IsNaN(w[i]) || math.IsInf(w[i], 0) || math.IsNaN(g[i]) || math.IsInf(g[i], 0) {
			same := math.IsNaN(w[i]) && math.IsNaN(g[i]) || w[i] == g[i]
			if !same && bad < 0 {
				bad = i
			}
			continue
		}
		if diff := math.Abs(g[i] - w[i]); diff > d.MaxAbs {
			d.MaxAbs, d.At = diff, i
		}
	}
	if bad >= 0 {
		return d, fmt.Errorf("element %d is %v, reference %v", bad, g[bad], w[bad])
	}
	if d.MaxAbs > tol {
		return d, fmt.Errorf("%v: over the tolerance %.3g (%g × max |reference|): element %d is %v, reference %v",
			d, tol, rel, d.At, g[d.At], w[d.At])
	}
	return d, nil
}

// widen returns t's elements as float64.
func widen(t *tensor.Tensor) ([]float64, bool) {
	conv := func(n int, at func(int) float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = at(i)
		}
		return out
	}
	switch t.DType {
	case tensor.Float32:
		return conv(len(t.F32), func(i int) float64 { return float64(t.F32[i]) }), true
	case tensor.Float64:
		return slices.Clone(t.F64), true
	case tensor.Int64:
		return conv(len(t.I64), func(i int) float64 { return float64(t.I64[i]) }), true
	case tensor.Int32:
		return conv(len(t.I32), func(i int) float64 { return float64(t.I32[i]) }), true
	case tensor.Int8:
		return conv(len(t.I8), func(i int) float64 { return float64(t.I8[i]) }), true
	case tensor.Uint8:
		return conv(len(t.U8), func(i int) float64 { return float64(t.U8[i]) }), true
	case tensor.Int16:
		return conv(len(t.I16), func(i int) float64 { return float64(t.I16[i]) }), true
	case tensor.Uint16:
		return conv(len(t.U16), func(i int) float64 { return float64(t.U16[i]) }), true
	case tensor.Uint32:
		return conv(len(t.U32), func(i int) float64 { return float64(t.U32[i]) }), true
	case tensor.Uint64:
		return conv(len(t.U64), func(i int) float64 { return float64(t.U64[i]) }), true
	case tensor.Bool:
		return conv(len(t.B), func(i int) float64 {
			if t.B[i] {
				return 1
			}
			return 0
		}), true
	}
	return nil, false
}
