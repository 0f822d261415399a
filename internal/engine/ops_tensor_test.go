package engine

import (
	"fmt"
	"math"
	"testing"

	"github.com/spindleml/spindle/internal/tensor"
)

// tens builds a tensor of element type T holding vals (not copied).
func tens[T elem](vals []T, shape ...int) *tensor.Tensor {
	t := &tensor.Tensor{DType: dtypeOf[T](), Shape: append([]int{}, shape...)}
	switch v := any(vals).(type) {
	case []float32:
		t.F32 = v
	case []float64:
		t.F64 = v
	case []int64:
		t.I64 = v
	case []int32:
		t.I32 = v
	case []int8:
		t.I8 = v
	case []uint8:
		t.U8 = v
	case []bool:
		t.B = v
	}
	if t.Len() == 0 && tensor.NumElements(shape) == 0 {
		*t = *tensor.New(t.DType, shape...)
	}
	return t
}

// checkClose fails unless got has want's dtype and shape and equal elements:
// floats within tol (NaN matches NaN, infinities exactly), others exactly.
func checkClose(t *testing.T, got, want *tensor.Tensor, tol float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("got no tensor, want %s", want)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("invalid output %s: %v", got, err)
	}
	if got.DType != want.DType || tensor.ShapeString(got.Shape) != tensor.ShapeString(want.Shape) {
		t.Fatalf("got %s, want %s", got, want)
	}
	g, w := elems(got), elems(want)
	for i := range w {
		if !closeTo(g[i], w[i], tol) {
			t.Fatalf("element %d: got %v, want %v (tol %g)\n got  %v\n want %v", i, g[i], w[i], tol, g, w)
		}
	}
}

func closeTo(g, w any, tol float64) bool {
	gf, isFloat := g.(float64)
	if !isFloat {
		return g == w
	}
	wf := w.(float64)
	switch {
	case math.IsNaN(wf) || math.IsNaN(gf):
		return math.IsNaN(wf) && math.IsNaN(gf)
	case math.IsInf(wf, 0) || math.IsInf(gf, 0):
		return gf == wf
	}
	return math.Abs(gf-wf) <= tol
}

// elems lists a tensor's elements: floats as float64, integers as int64,
// bools as bool.
func elems(x *tensor.Tensor) []any {
	var out []any
	switch x.DType {
	case tensor.Float32:
		for _, v := range x.F32 {
			out = append(out, float64(v))
		}
	case tensor.Float64:
		for _, v := range x.F64 {
			out = append(out, v)
		}
	case tensor.Int64:
		for _, v := range x.I64 {
			out = append(out, v)
		}
	case tensor.Int32:
		for _, v := range x.I32 {
			out = append(out, int64(v))
		}
	case tensor.Int8:
		for _, v := range x.I8 {
			out = append(out, int64(v))
		}
	case tensor.Uint8:
		for _, v := range x.U8 {
			out = append(out, int64(v))
		}
	case tensor.Bool:
		for _, v := range x.B {
			out = append(out, v)
		}
	default:
		panic(fmt.Sprintf("elems: dtype %s", x.DType))
	}
	return out
}
