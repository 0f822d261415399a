package engine

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// opCase describes a one-node graph: the node's op and attributes, its inputs
// (nil entries are omitted optional inputs) and how many outputs it has.
type opCase struct {
	opset  int64
	op     string
	attrs  []modelgen.Attr
	inputs []*tensor.Tensor
	nout   int
}

// compileGraph saves b to a temporary folder, loads it in mode and compiles it.
func compileGraph(t *testing.T, b *modelgen.Builder, mode onnx.LoadMode, opt modelgen.SaveOptions) (*Model, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, opt); err != nil {
		t.Fatalf("save: %v", err)
	}
	src, err := onnx.Load(path, mode)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return Compile(src)
}

// runOp builds a graph holding one node per c, runs it and returns its outputs
// in order. A compile or run error is returned as is.
func runOp(t *testing.T, c opCase) ([]*tensor.Tensor, error) {
	t.Helper()
	return runOpConsts(t, c)
}

// f32 builds a float32 tensor from values and a shape.
func f32(vals []float32, shape ...int) *tensor.Tensor {
	return tensor.FromF32(vals, shape...)
}

// i64 builds an int64 tensor from values and a shape.
func i64(vals []int64, shape ...int) *tensor.Tensor {
	return tensor.FromI64(vals, shape...)
}

// checkTensor fails unless got has want's dtype and shape and every element is
// within tol of want's (exactly equal for integer and bool tensors).
func checkTensor(t *testing.T, got, want *tensor.Tensor, tol float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("got no tensor, want %s", want)
	}
	if got.DType != want.DType || tensor.ShapeString(got.Shape) != tensor.ShapeString(want.Shape) {
		t.Fatalf("got %s, want %s", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("invalid output: %v", err)
	}
	switch want.DType {
	case tensor.Float32:
		for i := range want.F32 {
			g, w := float64(got.F32[i]), float64(want.F32[i])
			if math.IsNaN(w) != math.IsNaN(g) || math.Abs(g-w) > tol || (math.IsInf(w, 0) && g != w) {
				t.Fatalf("element %d: got %v, want %v (tol %g)\n got  %v\n want %v", i, g, w, tol, got.F32, want.F32)
			}
		}
	case tensor.Float64:
		for i := range want.F64 {
			if math.Abs(got.F64[i]-want.F64[i]) > tol {
				t.Fatalf("element %d: got %v, want %v\n got  %v\n want %v", i, got.F64[i], want.F64[i], got.F64, want.F64)
			}
		}
	case tensor.Int64:
		for i := range want.I64 {
			if got.I64[i] != want.I64[i] {
				t.Fatalf("element %d: got %v, want %v\n got  %v\n want %v", i, got.I64[i], want.I64[i], got.I64, want.I64)
			}
		}
	case tensor.Int32:
		for i := range want.I32 {
			if got.I32[i] != want.I32[i] {
				t.Fatalf("element %d: got %v, want %v", i, got.I32[i], want.I32[i])
			}
		}
	case tensor.Bool:
		for i := range want.B {
			if got.B[i] != want.B[i] {
				t.Fatalf("element %d: got %v, want %v", i, got.B[i], want.B[i])
			}
		}
	default:
		t.Fatalf("checkTensor: dtype %s not handled", want.DType)
	}
}

// wantErr fails unless err is non-nil and mentions every fragment.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", fragments)
	}
	for _, f := range fragments {
		if !containsFold(err.Error(), f) {
			t.Fatalf("error %q does not mention %q", err, f)
		}
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// seq returns the float32 values from, from+1, ... (n of them).
func seq(from float32, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = from + float32(i)
	}
	return out
}
