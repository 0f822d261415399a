package engine

import (
	"context"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestSequenceOpErrors checks that a sequence op given a position outside
// the sequence, an empty sequence to erase or concatenate, a tensor where a
// sequence belongs or an empty optional fails with an error naming the input
// and the rule: at run time where the position comes from a request, at
// compile time where constant folding meets it (the model can only fail).
func TestSequenceOpErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *modelgen.Builder) string // returns the value to output
		pos   int64
		frag  []string
	}{
		{"at past the end", func(b *modelgen.Builder) string {
			s := b.Node("SplitToSequence", []string{"x"}, nil)
			return b.Node("SequenceAt", []string{s, "pos"}, nil)
		}, 2, []string{"input position", "2", "[-2, 1]"}},
		{"at before the start", func(b *modelgen.Builder) string {
			s := b.Node("SplitToSequence", []string{"x"}, nil)
			return b.Node("SequenceAt", []string{s, "pos"}, nil)
		}, -3, []string{"input position", "-3"}},
		{"insert past the end", func(b *modelgen.Builder) string {
			s := b.Node("SplitToSequence", []string{"x"}, nil)
			return b.Node("SequenceLength", []string{b.Node("SequenceInsert", []string{s, "x", "pos"}, nil)}, nil)
		}, 4, []string{"input position", "4", "[-2, 2]"}},
		{"erase from empty", func(b *modelgen.Builder) string {
			s := b.Node("SequenceEmpty", nil, nil)
			return b.Node("SequenceLength", []string{b.Node("SequenceErase", []string{s}, nil)}, nil)
		}, 0, []string{"input_sequence", "empty"}},
		{"concat empty", func(b *modelgen.Builder) string {
			s := b.Node("SequenceEmpty", nil, nil)
			return b.Node("ConcatFromSequence", []string{s}, []modelgen.Attr{modelgen.AInt("axis", 0)})
		}, 0, []string{"input_sequence", "empty"}},
		{"tensor for a sequence", func(b *modelgen.Builder) string {
			return b.Node("SequenceLength", []string{"x"}, nil)
		}, 0, []string{"input_sequence", "must be a sequence"}},
		{"insert a different dtype", func(b *modelgen.Builder) string {
			s := b.Node("SplitToSequence", []string{"x"}, nil)
			return b.Node("SequenceLength", []string{b.Node("SequenceInsert", []string{s, "pos"}, nil)}, nil)
		}, 0, []string{"input tensor", "int64", "float32"}},
		{"split sizes", func(b *modelgen.Builder) string {
			s := b.Node("SplitToSequence", []string{"x", b.Ints64("sizes", 1, 2)}, nil)
			return b.Node("SequenceLength", []string{s}, nil)
		}, 0, []string{"input split", "sums to 3", "has 2"}},
		{"get from an empty optional", func(b *modelgen.Builder) string {
			o := b.Node("Optional", nil, []modelgen.Attr{modelgen.AType("type", modelgen.TensorType(tensor.Float32))})
			return b.Node("OptionalGetElement", []string{o}, nil)
		}, 0, []string{"holds no value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := modelgen.NewBuilder("seq", 18, 1)
			b.Input("x", tensor.Float32, []int64{2, 3})
			b.Input("pos", tensor.Int64, []int64{})
			out := tt.build(b)
			b.Node("Identity", []string{out}, nil, "y")
			b.Output("y", tensor.Float32, nil)
			m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
			if err == nil {
				_, err = m.Run(context.Background(), map[string]*tensor.Tensor{
					"x": tensor.New(tensor.Float32, 2, 3), "pos": tensor.FromI64([]int64{tt.pos})})
			}
			wantErr(t, err, tt.frag...)
		})
	}
}

// TestSequenceValuesAtTheEdges feeds a sequence and an optional as graph
// inputs and reads a sequence back: Run checks them as it checks tensors.
func TestSequenceValuesAtTheEdges(t *testing.T) {
	b := modelgen.NewBuilder("seqio", 18, 1)
	b.InputTyped("s", modelgen.SequenceOf(modelgen.TensorType(tensor.Float32)))
	b.InputTyped("o", modelgen.OptionalOf(modelgen.TensorType(tensor.Int64)))
	b.Node("SequenceInsert", []string{"s", b.Node("Cast", []string{b.Node("OptionalGetElement", []string{"o"}, nil)},
		[]modelgen.Attr{modelgen.AInt("to", int64(tensor.Float32))})}, nil, "s2")
	b.OutputTyped("s2", modelgen.SequenceOf(modelgen.TensorType(tensor.Float32)))
	b.Node("OptionalHasElement", []string{"o"}, nil, "has")
	b.Output("has", tensor.Bool, []int64{})
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seq := tensor.NewSequence([]*tensor.Tensor{tensor.FromF32([]float32{1, 2}, 2)})
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"s": seq, "o": tensor.FromI64([]int64{7}, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if s2 := out["s2"]; s2.DType != tensor.Sequence || len(s2.Seq) != 2 || s2.Seq[1].F32[0] != 7 || len(seq.Seq) != 1 {
		t.Fatalf("s2 = %v (input now %v), want a sequence of 2 ending in [7] and the input unchanged", s2, seq)
	}
	if !out["has"].B[0] {
		t.Fatal("OptionalHasElement of a value: false")
	}
	_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"s": seq, "o": {DType: tensor.None}})
	wantErr(t, err, "holds no value")
	_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"s": tensor.FromF32([]float32{1}, 1), "o": tensor.FromI64([]int64{7}, 1)})
	wantErr(t, err, `input "s"`, "float32", "sequence")
	bad := tensor.NewSequence([]*tensor.Tensor{{DType: tensor.Float32, Shape: []int{3}}})
	_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"s": bad, "o": tensor.FromI64([]int64{7}, 1)})
	wantErr(t, err, `input "s"`, "sequence element 0")
}
