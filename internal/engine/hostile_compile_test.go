package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestCompileRefusesModelsThatCanOnlyFail compiles models whose every request
// would fail (an attribute or constant input no input can make valid): Compile
// must refuse each with an error wrapping onnx.ErrBadModel that names the node
// and the rule, instead of accepting a function that answers only 500s.
func TestCompileRefusesModelsThatCanOnlyFail(t *testing.T) {
	tests := []struct {
		name  string
		opset int64
		build func(b *modelgen.Builder)
		want  []string
	}{
		{"DepthToSpace blocksize 2^62", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(4))
			b.Node("DepthToSpace", []string{"x"}, []modelgen.Attr{modelgen.AInt("blocksize", 1<<62)}, "y")
		}, []string{"blocksize"}},
		{"Transpose perm [5 -7]", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(2))
			b.Node("Transpose", []string{"x"}, []modelgen.Attr{modelgen.AInts("perm", 5, -7)}, "y")
		}, []string{"perm"}},
		{"Concat axis MinInt64", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(2))
			b.Node("Concat", []string{"x", "x"}, []modelgen.Attr{modelgen.AInt("axis", math.MinInt64)}, "y")
		}, []string{"axis"}},
		{"Gather axis MinInt64", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(2))
			b.Ints64("i", 0)
			b.Node("Gather", []string{"x", "i"}, []modelgen.Attr{modelgen.AInt("axis", math.MinInt64)}, "y")
		}, []string{"axis"}},
		{"CumSum axis MinInt64", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(2))
			b.InitTensor("a", tensor.FromI64([]int64{math.MinInt64}))
			b.Node("CumSum", []string{"x", "a"}, nil, "y")
		}, []string{"axis"}},
		{"Slice axes MinInt64", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(2))
			b.Ints64("s", 0)
			b.Ints64("e", 1)
			b.Ints64("a", math.MinInt64)
			b.Node("Slice", []string{"x", "s", "e", "a"}, nil, "y")
		}, []string{"axes"}},
		{"TopK k MaxInt64", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(2))
			b.Ints64("k", math.MaxInt64)
			b.Node("TopK", []string{"x", "k"}, nil, "y", "yi")
		}, []string{"k"}},
		{"Reshape [-1 -1 -5]", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(2))
			b.Ints64("s", -1, -1, -5)
			b.Node("Reshape", []string{"x", "s"}, nil, "y")
		}, []string{"shape"}},
		{"Range delta 0", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(1))
			b.InitTensor("lo", tensor.FromF32([]float32{0}))
			b.InitTensor("hi", tensor.FromF32([]float32{10}))
			b.InitTensor("d", tensor.FromF32([]float32{0}))
			b.Node("Range", []string{"lo", "hi", "d"}, nil, "r")
			b.Node("Add", []string{"x", "r"}, nil, "y")
		}, []string{"delta"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := modelgen.NewBuilder("bad", tt.opset, 1)
			tt.build(b)
			b.Output("y", tensor.Float32, nil)
			m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
			if err == nil {
				x := tensor.FromF32(make([]float32, 16), 1, 4, 2, 2)
				if len(m.Inputs) > 0 && len(m.Inputs[0].Shape) != 4 {
					x = tensor.FromF32(make([]float32, 4), 2, 2)
					if len(m.Inputs[0].Shape) == 1 {
						x = tensor.FromF32(make([]float32, 10), 10)
					}
				}
				_, rerr := m.Run(context.Background(), map[string]*tensor.Tensor{"x": x})
				t.Fatalf("Compile accepted it; a request then got: %v", rerr)
			}
			if !errors.Is(err, onnx.ErrBadModel) {
				t.Errorf("error %v does not wrap onnx.ErrBadModel", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// TestCompileFoldBudget compiles models whose constant folding would ask for
// more memory than the machine has (each crashed the process that compiled
// it with a fatal out-of-memory error): Compile must work out what a node
// would allocate before running its kernel, refuse a node that needs more
// than a request may hold on every request, and keep all folded constants of
// a model within one budget.
func TestCompileFoldBudget(t *testing.T) {
	const mib = 1 << 20
	t.Run("GatherND of 4 TiB", func(t *testing.T) {
		b := modelgen.NewBuilder("gathernd", 17, 1)
		b.Input("x", tensor.Float32, []int64{1})
		data := b.Node("ConstantOfShape", []string{b.Ints64("s1", 1, 1<<20)}, []modelgen.Attr{tensorAttr("value", tensor.FromF32([]float32{1}, 1))})
		idx := b.Node("ConstantOfShape", []string{b.Ints64("s2", 1<<20, 1)}, []modelgen.Attr{tensorAttr("value", tensor.FromI64([]int64{0}, 1))})
		g := b.Node("GatherND", []string{data, idx}, nil)
		b.Node("Add", []string{"x", g}, nil, "y")
		b.Output("y", tensor.Float32, nil)
		_, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
		if !errors.Is(err, onnx.ErrBadModel) || !strings.Contains(err.Error(), "GatherND") || !strings.Contains(err.Error(), "4 TiB") {
			t.Errorf("Compile error %v, want ErrBadModel naming GatherND and its 4 TiB", err)
		}
	})
	t.Run("one 60 MiB constant concatenated 2000 times", func(t *testing.T) {
		b := modelgen.NewBuilder("concat", 17, 1)
		b.Input("x", tensor.Float32, []int64{1})
		c := b.Node("ConstantOfShape", []string{b.Ints64("s", 60*mib/4)}, nil)
		ins := make([]string, 2000)
		for i := range ins {
			ins[i] = c
		}
		cat := b.Node("Concat", ins, []modelgen.Attr{modelgen.AInt("axis", 0)})
		b.Node("Add", []string{"x", cat}, nil, "y")
		b.Output("y", tensor.Float32, nil)
		_, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
		if !errors.Is(err, onnx.ErrBadModel) || !strings.Contains(err.Error(), "Concat") {
			t.Errorf("Compile error %v, want ErrBadModel naming the Concat", err)
		}
	})
	t.Run("many constants each under the node limit", func(t *testing.T) {
		b := modelgen.NewBuilder("many", 17, 1)
		b.Input("x", tensor.Float32, []int64{1})
		const nodes = 40
		for i := range nodes {
			c := b.Node("ConstantOfShape", []string{b.Ints64(fmt.Sprintf("s%d", i), 60*mib/4)}, nil)
			b.Node("Add", []string{"x", c}, nil, fmt.Sprintf("y%d", i))
			b.Output(fmt.Sprintf("y%d", i), tensor.Float32, nil)
		}
		m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st := m.Stats()
		if st.FoldedBytes > foldBudget(0) {
			t.Errorf("folded %d bytes, over the model's fold budget of %d", st.FoldedBytes, foldBudget(0))
		}
		if st.Folded == 0 || st.Folded == nodes {
			t.Errorf("folded %d of %d constants, want some but not all (budget %d bytes, 60 MiB each)", st.Folded, nodes, foldBudget(0))
		}
	})
}
