package engine

import (
	"context"
	"math"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// constOf adds a Constant node holding one float32 value with the given
// shape (each dimension 1) and returns its output.
func constOf(b *modelgen.Builder, v float32, shape ...int) string {
	return b.Node("Constant", nil, []modelgen.Attr{tensorAttr("value", f32([]float32{v}, shape...))})
}

// TestFusionKeepsBroadcastRank checks that a one-element constant of a
// higher rank than the tensor it meets, which broadcasting turns into extra
// leading axes, gives the fused plan the unfused plan's output shape: such a
// pattern is either not fused or handed back to the replaced steps. Inputs
// have dynamic shapes, so Run's check against inferred shapes cannot catch a
// difference.
func TestFusionKeepsBroadcastRank(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *modelgen.Builder) string // returns the output
		feeds map[string]*tensor.Tensor
	}{
		{"gelu, sqrt 2 of shape [1 1]", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{-1})
			e := b.Node("Erf", []string{b.Node("Div", []string{"x", constOf(b, float32(math.Sqrt2), 1, 1)}, nil)}, nil)
			a := b.Node("Add", []string{e, constOf(b, 1)}, nil)
			return b.Node("Mul", []string{b.Node("Mul", []string{"x", a}, nil), constOf(b, 0.5)}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(1, 3)}},
		{"gelu of a scalar, constants of shape [1]", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{})
			e := b.Node("Erf", []string{b.Node("Div", []string{"x", constOf(b, float32(math.Sqrt2), 1)}, nil)}, nil)
			a := b.Node("Add", []string{e, constOf(b, 1, 1)}, nil)
			return b.Node("Mul", []string{b.Node("Mul", []string{"x", a}, nil), constOf(b, 0.5, 1)}, nil)
		}, map[string]*tensor.Tensor{"x": f32([]float32{0.7})}},
		{"layernorm, epsilon of shape [1 1 1]", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{-1, 8})
			axes := []modelgen.Attr{modelgen.AInts("axes", -1)}
			mean := b.Node("ReduceMean", []string{"x"}, axes)
			d := b.Node("Sub", []string{"x", mean}, nil)
			v := b.Node("ReduceMean", []string{b.Node("Pow", []string{d, constOf(b, 2)}, nil)}, axes)
			s := b.Node("Sqrt", []string{b.Node("Add", []string{v, constOf(b, 1e-5, 1, 1, 1)}, nil)}, nil)
			y := b.Node("Mul", []string{b.Node("Div", []string{d, s}, nil), b.Normal("g", 1, 8)}, nil)
			return b.Node("Add", []string{y, b.Normal("beta", 1, 8)}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(2, 2, 8)}},
		{"attention, scale of shape [1 1 1]", func(b *modelgen.Builder) string {
			b.Input("q", tensor.Float32, []int64{-1, 4})
			b.Input("kt", tensor.Float32, []int64{4, -1})
			b.Input("v", tensor.Float32, []int64{-1, 5})
			s := b.Node("MatMul", []string{"q", "kt"}, nil)
			s = b.Node("Div", []string{s, constOf(b, 2, 1, 1, 1)}, nil)
			p := b.Node("Softmax", []string{s}, []modelgen.Attr{modelgen.AInt("axis", -1)})
			return b.Node("MatMul", []string{p, "v"}, nil)
		}, map[string]*tensor.Tensor{"q": randTensor(3, 6, 4), "kt": randTensor(4, 4, 6), "v": randTensor(5, 6, 5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := modelgen.NewBuilder("fuse_rank", 13, 1)
			out := tt.build(b)
			b.Output(out, tensor.Float32, nil)
			fused, plain := compileBoth(t, b)
			want, err := plain.Run(context.Background(), tt.feeds)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fused.Run(context.Background(), tt.feeds)
			if err != nil {
				t.Fatal(err)
			}
			w, g := want[out], got[out]
			if tensor.ShapeString(w.Shape) != tensor.ShapeString(g.Shape) {
				t.Fatalf("fused shape %s, unfused %s", tensor.ShapeString(g.Shape), tensor.ShapeString(w.Shape))
			}
			if d := maxDiff(w, g); d > 2e-5 {
				t.Errorf("fused output differs from unfused by %g", d)
			}
		})
	}
}
