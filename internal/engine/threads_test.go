package engine

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// randTensor returns a float32 tensor of normal values from a fixed seed.
func randTensor(seed uint64, shape ...int) *tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, 7))
	t := tensor.New(tensor.Float32, shape...)
	for i := range t.F32 {
		t.F32[i] = float32(r.NormFloat64())
	}
	return t
}

// maxDiff returns the largest absolute difference between two float32
// tensors of one shape, or +Inf when the shapes differ.
func maxDiff(a, b *tensor.Tensor) float64 {
	if a == nil || b == nil || len(a.F32) != len(b.F32) || tensor.ShapeString(a.Shape) != tensor.ShapeString(b.Shape) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a.F32 {
		d = max(d, math.Abs(float64(a.F32[i])-float64(b.F32[i])))
	}
	return d
}

// TestThreadBudget runs the ops that split their work (MatMul with a weight or
// a batch of runtime matrices, Gemm, Conv over a batch and a single image) with
// budgets of 1 to 4 threads and checks every budget gives the 1-thread answer.
func TestThreadBudget(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *modelgen.Builder)
		feeds map[string]*tensor.Tensor
		opset int64 // 0 means 13
	}{
		{"matmul weight", func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, []int64{2, 40, 96})
			b.Node("MatMul", []string{"x", b.Normal("w", 0.1, 96, 200)}, nil, "y")
		}, map[string]*tensor.Tensor{"x": randTensor(1, 2, 40, 96)}, 0},
		{"matmul batched heads", func(b *modelgen.Builder) {
			b.Input("q", tensor.Float32, []int64{1, 6, 33, 16})
			b.Input("k", tensor.Float32, []int64{1, 6, 16, 33})
			b.Node("MatMul", []string{"q", "k"}, nil, "y")
		}, map[string]*tensor.Tensor{"q": randTensor(2, 1, 6, 33, 16), "k": randTensor(3, 1, 6, 16, 33)}, 0},
		{"gemm transB", func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, []int64{64, 128})
			b.Node("Gemm", []string{"x", b.Normal("w", 0.1, 300, 128), b.Normal("c", 0.1, 300)}, []modelgen.Attr{modelgen.AInt("transB", 1)}, "y")
		}, map[string]*tensor.Tensor{"x": randTensor(4, 64, 128)}, 0},
		{"conv batch", func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, []int64{3, 4, 12, 12})
			b.Node("Conv", []string{"x", b.Normal("w", 0.1, 8, 4, 3, 3), b.Normal("bias", 0.1, 8)}, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)}, "y")
		}, map[string]*tensor.Tensor{"x": randTensor(5, 3, 4, 12, 12)}, 0},
		{"conv one image", func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, []int64{1, 16, 40, 40})
			b.Node("Conv", []string{"x", b.Normal("w", 0.1, 64, 16, 3, 3)}, nil, "y")
		}, map[string]*tensor.Tensor{"x": randTensor(6, 1, 16, 40, 40)}, 0},
		{"conv image in blocks", func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, []int64{1, 64, 48, 48})
			b.Node("Conv", []string{"x", b.Normal("w", 0.1, 8, 64, 3, 3)}, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)}, "y")
		}, map[string]*tensor.Tensor{"x": randTensor(7, 1, 64, 48, 48)}, 0},
		{"maxpool planes", func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, []int64{2, 16, 40, 40})
			b.Node("MaxPool", []string{"x"}, []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2)}, "y")
		}, map[string]*tensor.Tensor{"x": randTensor(8, 2, 16, 40, 40)}, 0},
		{"transpose heads", func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, []int64{1, 128, 12, 32})
			b.Node("Transpose", []string{"x"}, []modelgen.Attr{modelgen.AInts("perm", 0, 2, 1, 3)}, "y")
		}, map[string]*tensor.Tensor{"x": randTensor(9, 1, 128, 12, 32)}, 0},
		{"layernorm rows", func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, []int64{2, 100, 384})
			b.Node("LayerNormalization", []string{"x", b.Normal("g", 1, 384), b.Normal("beta", 1, 384)}, nil, "y")
		}, map[string]*tensor.Tensor{"x": randTensor(10, 2, 100, 384)}, 17},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := modelgen.NewBuilder("threads", cmp.Or(tt.opset, 13), 1)
			tt.build(b)
			b.Output("y", tensor.Float32, nil)
			m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var want *tensor.Tensor
			for threads := 1; threads <= 4; threads++ {
				out, err := m.RunWith(context.Background(), tt.feeds, RunOptions{Threads: threads})
				if err != nil {
					t.Fatalf("threads %d: %v", threads, err)
				}
				if threads == 1 {
					want = out["y"]
					continue
				}
				if d := maxDiff(want, out["y"]); d > 1e-5 {
					t.Errorf("threads %d: output differs from 1 thread by %g", threads, d)
				}
			}
		})
	}
}
