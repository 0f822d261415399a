package engine

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// tensorCase is one run of a tensor op: inputs, expected outputs in order.
type tensorCase struct {
	name   string
	opset  int64
	op     string
	attrs  []modelgen.Attr
	inputs []*tensor.Tensor
	want   []*tensor.Tensor
}

func runTensorCases(t *testing.T, tests []tensorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{opset: tt.opset, op: tt.op, attrs: tt.attrs, inputs: tt.inputs, nout: len(tt.want)})
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tt.want {
				checkClose(t, got[i], w, 0)
			}
		})
	}
}

// errCase is one run of an op that must fail with an error naming frag.
type errCase struct {
	name   string
	opset  int64
	op     string
	attrs  []modelgen.Attr
	inputs []*tensor.Tensor
	nout   int
	frag   []string
	unsup  bool // the error must wrap ErrUnsupported
}

func runErrCases(t *testing.T, tests []errCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runOp(t, opCase{opset: tt.opset, op: tt.op, attrs: tt.attrs, inputs: tt.inputs, nout: tt.nout})
			wantErr(t, err, tt.frag...)
			if errors.Is(err, ErrUnsupported) != tt.unsup {
				t.Errorf("errors.Is(err, ErrUnsupported) = %v, want %v", !tt.unsup, tt.unsup)
			}
		})
	}
}

func outs(ts ...*tensor.Tensor) []*tensor.Tensor { return ts }

func ins(ts ...*tensor.Tensor) []*tensor.Tensor { return ts }

func TestGatherFamily(t *testing.T) {
	runTensorCases(t, []tensorCase{
		{name: "gather axis 0", op: "Gather", inputs: ins(f32(seq(1, 6), 3, 2), i64([]int64{2, 0}, 2)), want: outs(f32([]float32{5, 6, 1, 2}, 2, 2))},
		{name: "gather axis 1, negative, 2-D indices", op: "Gather", attrs: []modelgen.Attr{modelgen.AInt("axis", 1)},
			inputs: ins(f32(seq(0, 6), 2, 3), i64([]int64{-1, 0}, 1, 2)), want: outs(f32([]float32{2, 0, 5, 3}, 2, 1, 2))},
		{name: "gather scalar int32 index", op: "Gather", inputs: ins(i64([]int64{10, 20, 30}, 3), tens([]int32{1})), want: outs(i64([]int64{20}))},
		{name: "gather bool rows", op: "Gather", inputs: ins(tens([]bool{true, false, false, true}, 2, 2), i64([]int64{1, 1, 0}, 3)),
			want: outs(tens([]bool{false, true, false, true, true, false}, 3, 2))},
		{name: "gather empty indices", op: "Gather", inputs: ins(f32(seq(0, 4), 2, 2), i64(nil, 0)), want: outs(f32(nil, 0, 2))},
		{name: "gather elements axis 1", op: "GatherElements", attrs: []modelgen.Attr{modelgen.AInt("axis", 1)},
			inputs: ins(f32([]float32{1, 2, 3, 4}, 2, 2), i64([]int64{0, 0, 1, 0}, 2, 2)), want: outs(f32([]float32{1, 1, 4, 3}, 2, 2))},
		{name: "gather elements axis 0, negative", op: "GatherElements",
			inputs: ins(f32([]float32{1, 2, 3, 4}, 2, 2), i64([]int64{-1, 0}, 1, 2)), want: outs(f32([]float32{3, 2}, 1, 2))},
		{name: "scatternd", op: "ScatterND", inputs: ins(f32(seq(1, 8), 8), i64([]int64{4, 3, 1, 7}, 4, 1), f32([]float32{9, 10, 11, 12}, 4)),
			want: outs(f32([]float32{1, 11, 3, 10, 9, 6, 7, 12}, 8))},
		{name: "scatternd slices add", opset: 16, op: "ScatterND", attrs: []modelgen.Attr{modelgen.AString("reduction", "add")},
			inputs: ins(f32([]float32{1, 1, 1, 1}, 2, 2), i64([]int64{0, 0}, 2, 1), f32([]float32{5, 6, 1, 1}, 2, 2)),
			want:   outs(f32([]float32{7, 8, 1, 1}, 2, 2))},
	})
	runErrCases(t, []errCase{
		{name: "gather index out of range", op: "Gather", inputs: ins(f32(seq(0, 3), 3), i64([]int64{3}, 1)), frag: []string{"indices", "3", "out of range [-3, 2]"}},
		{name: "gather float indices", op: "Gather", inputs: ins(f32(seq(0, 3), 3), f32([]float32{0}, 1)), frag: []string{"indices", "float32"}},
		{name: "gather axis", op: "Gather", attrs: []modelgen.Attr{modelgen.AInt("axis", 1)}, inputs: ins(f32(seq(0, 3), 3), i64([]int64{0}, 1)), frag: []string{"axis 1", "out of range"}},
		{name: "gather scalar data", op: "Gather", inputs: ins(f32([]float32{1}), i64([]int64{0}, 1)), frag: []string{"axis 0", "rank 0"}},
		{name: "gather elements rank", op: "GatherElements", inputs: ins(f32(seq(0, 4), 2, 2), i64([]int64{0}, 1)), frag: []string{"indices", "rank 2"}},
		{name: "scatternd index range", op: "ScatterND", inputs: ins(f32(seq(1, 2), 2), i64([]int64{2}, 1, 1), f32([]float32{9}, 1)), frag: []string{"indices", "out of range"}},
		{name: "scatternd updates shape", op: "ScatterND", inputs: ins(f32(seq(1, 2), 2), i64([]int64{1}, 1, 1), f32([]float32{9, 9}, 2)), frag: []string{"updates", "must be [1]"}},
		{name: "scatternd reduction", opset: 16, op: "ScatterND", attrs: []modelgen.Attr{modelgen.AString("reduction", "xor")}, inputs: ins(f32(seq(1, 2), 2), i64([]int64{1}, 1, 1), f32([]float32{9}, 1)), frag: []string{"reduction", "xor"}, unsup: true},
	})
}

func TestTransposeShapeSize(t *testing.T) {
	x := f32(seq(0, 12), 2, 3, 2)
	runTensorCases(t, []tensorCase{
		{name: "transpose default reverses", op: "Transpose", inputs: ins(f32(seq(0, 6), 2, 3)), want: outs(f32([]float32{0, 3, 1, 4, 2, 5}, 3, 2))},
		{name: "transpose perm", op: "Transpose", attrs: []modelgen.Attr{modelgen.AInts("perm", 1, 0, 2)}, inputs: ins(x),
			want: outs(f32([]float32{0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11}, 3, 2, 2))},
		{name: "transpose perm last two", op: "Transpose", attrs: []modelgen.Attr{modelgen.AInts("perm", 0, 2, 1)}, inputs: ins(x),
			want: outs(f32([]float32{0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11}, 2, 2, 3))},
		{name: "transpose int8", op: "Transpose", inputs: ins(tens([]int8{1, 2, 3, 4}, 2, 2)), want: outs(tens([]int8{1, 3, 2, 4}, 2, 2))},
		{name: "transpose scalar", op: "Transpose", inputs: ins(f32([]float32{5})), want: outs(f32([]float32{5}))},
		{name: "shape", op: "Shape", inputs: ins(x), want: outs(i64([]int64{2, 3, 2}, 3))},
		{name: "shape start", opset: 15, op: "Shape", attrs: []modelgen.Attr{modelgen.AInt("start", 1)}, inputs: ins(x), want: outs(i64([]int64{3, 2}, 2))},
		{name: "shape negative end", opset: 15, op: "Shape", attrs: []modelgen.Attr{modelgen.AInt("end", -1)}, inputs: ins(x), want: outs(i64([]int64{2, 3}, 2))},
		{name: "shape clamps", opset: 15, op: "Shape", attrs: []modelgen.Attr{modelgen.AInt("start", -10), modelgen.AInt("end", 10)}, inputs: ins(x), want: outs(i64([]int64{2, 3, 2}, 3))},
		{name: "shape empty range", opset: 15, op: "Shape", attrs: []modelgen.Attr{modelgen.AInt("start", 2), modelgen.AInt("end", 1)}, inputs: ins(x), want: outs(i64(nil, 0))},
		{name: "shape of scalar", op: "Shape", inputs: ins(f32([]float32{1})), want: outs(i64(nil, 0))},
		{name: "size", op: "Size", inputs: ins(x), want: outs(i64([]int64{12}))},
	})
	runErrCases(t, []errCase{
		{name: "perm length", op: "Transpose", attrs: []modelgen.Attr{modelgen.AInts("perm", 1, 0)}, inputs: ins(x), frag: []string{"perm", "rank 3"}},
		{name: "perm repeats", op: "Transpose", attrs: []modelgen.Attr{modelgen.AInts("perm", 0, 0, 1)}, inputs: ins(x), frag: []string{"perm", "not a permutation"}},
	})
}

func TestConcatSplit(t *testing.T) {
	a, b := f32([]float32{1, 2}, 2, 1), f32([]float32{3, 4, 5, 6}, 2, 2)
	runTensorCases(t, []tensorCase{
		{name: "concat axis 1", op: "Concat", attrs: []modelgen.Attr{modelgen.AInt("axis", 1)}, inputs: ins(a, b), want: outs(f32([]float32{1, 3, 4, 2, 5, 6}, 2, 3))},
		{name: "concat axis -1 with empty", op: "Concat", attrs: []modelgen.Attr{modelgen.AInt("axis", -1)}, inputs: ins(a, f32(nil, 2, 0), a), want: outs(f32([]float32{1, 1, 2, 2}, 2, 2))},
		{name: "concat axis 0 int64", op: "Concat", attrs: []modelgen.Attr{modelgen.AInt("axis", 0)}, inputs: ins(i64([]int64{1}, 1), i64([]int64{2, 3}, 2)), want: outs(i64([]int64{1, 2, 3}, 3))},
		{name: "split equal", op: "Split", attrs: []modelgen.Attr{modelgen.AInt("axis", 1)}, inputs: ins(f32(seq(0, 8), 2, 4)),
			want: outs(f32([]float32{0, 1, 4, 5}, 2, 2), f32([]float32{2, 3, 6, 7}, 2, 2))},
		{name: "split input", op: "Split", inputs: ins(f32(seq(0, 6), 6), i64([]int64{1, 0, 5}, 3)),
			want: outs(f32([]float32{0}, 1), f32(nil, 0), f32(seq(1, 5), 5))},
		{name: "split attribute (opset 11)", opset: 11, op: "Split", attrs: []modelgen.Attr{modelgen.AInts("split", 2, 1)}, inputs: ins(f32(seq(0, 3), 3, 1)),
			want: outs(f32([]float32{0, 1}, 2, 1), f32([]float32{2}, 1, 1))},
		{name: "split num_outputs uneven (opset 18)", opset: 18, op: "Split", attrs: []modelgen.Attr{modelgen.AInt("num_outputs", 3)}, inputs: ins(i64([]int64{1, 2, 3, 4, 5}, 5)),
			want: outs(i64([]int64{1, 2}, 2), i64([]int64{3, 4}, 2), i64([]int64{5}, 1))},
	})
	runErrCases(t, []errCase{
		{name: "concat shapes", op: "Concat", attrs: []modelgen.Attr{modelgen.AInt("axis", 0)}, inputs: ins(a, b), frag: []string{"input 1", "other than axis 0 must match"}},
		{name: "concat dtypes", op: "Concat", attrs: []modelgen.Attr{modelgen.AInt("axis", 0)}, inputs: ins(a, i64([]int64{1, 2}, 2, 1)), frag: []string{"input 1", "int64"}},
		{name: "concat no axis", op: "Concat", inputs: ins(a), frag: []string{"axis", "required"}},
		{name: "split uneven", op: "Split", inputs: ins(f32(seq(0, 3), 3)), nout: 2, frag: []string{"split equally into 2"}},
		{name: "split sum", op: "Split", inputs: ins(f32(seq(0, 3), 3), i64([]int64{1, 1}, 2)), nout: 2, frag: []string{"sums to 2", "has 3"}},
		{name: "split count", op: "Split", inputs: ins(f32(seq(0, 3), 3), i64([]int64{3}, 1)), nout: 2, frag: []string{"1 entries", "2 outputs"}},
	})
}

func TestSlice(t *testing.T) {
	x := f32(seq(0, 12), 3, 4)
	const maxI, minI = math.MaxInt64, math.MinInt64
	runTensorCases(t, []tensorCase{
		{name: "basic", op: "Slice", inputs: ins(x, i64([]int64{0, 1}, 2), i64([]int64{2, 3}, 2)), want: outs(f32([]float32{1, 2, 5, 6}, 2, 2))},
		{name: "reverse rows", op: "Slice", inputs: ins(x, i64([]int64{-1}, 1), i64([]int64{minI}, 1), i64([]int64{1}, 1), i64([]int64{-1}, 1)),
			want: outs(f32([]float32{3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8}, 3, 4))},
		{name: "step 2 to end", op: "Slice", inputs: ins(x, i64([]int64{0}, 1), i64([]int64{maxI}, 1), i64([]int64{0}, 1), i64([]int64{2}, 1)),
			want: outs(f32([]float32{0, 1, 2, 3, 8, 9, 10, 11}, 2, 4))},
		{name: "negative axis and step -2", op: "Slice", inputs: ins(x, i64([]int64{10}, 1), i64([]int64{0}, 1), i64([]int64{-1}, 1), i64([]int64{-2}, 1)),
			want: outs(f32([]float32{3, 1, 7, 5, 11, 9}, 3, 2))},
		{name: "start past the end is empty", op: "Slice", inputs: ins(x, i64([]int64{5}, 1), i64([]int64{maxI}, 1)), want: outs(f32(nil, 0, 4))},
		{name: "int32 inputs", op: "Slice", inputs: ins(x, tens([]int32{1}, 1), tens([]int32{-1}, 1), tens([]int32{1}, 1)),
			want: outs(f32([]float32{1, 2, 5, 6, 9, 10}, 3, 2))},
		{name: "attributes (opset 9)", opset: 9, op: "Slice", attrs: []modelgen.Attr{modelgen.AInts("starts", 1), modelgen.AInts("ends", 2), modelgen.AInts("axes", 0)},
			inputs: ins(x), want: outs(f32([]float32{4, 5, 6, 7}, 1, 4))},
		{name: "bool", op: "Slice", inputs: ins(tens([]bool{true, false, true}, 3), i64([]int64{1}, 1), i64([]int64{3}, 1)), want: outs(tens([]bool{false, true}, 2))},
		{name: "huge steps take one element", op: "Slice", inputs: ins(x, i64([]int64{1, -1}, 2), i64([]int64{maxI, minI}, 2), i64([]int64{0, 1}, 2), i64([]int64{maxI, minI}, 2)),
			want: outs(f32([]float32{7}, 1, 1))},
	})
	runErrCases(t, []errCase{
		{name: "zero step", op: "Slice", inputs: ins(x, i64([]int64{0}, 1), i64([]int64{1}, 1), i64([]int64{0}, 1), i64([]int64{0}, 1)), frag: []string{"steps", "is 0"}},
		{name: "length mismatch", op: "Slice", inputs: ins(x, i64([]int64{0, 0}, 2), i64([]int64{1}, 1)), frag: []string{"starts has 2", "ends 1"}},
		{name: "repeated axis", op: "Slice", inputs: ins(x, i64([]int64{0, 0}, 2), i64([]int64{1, 1}, 2), i64([]int64{0, -2}, 2)), frag: []string{"appears twice"}},
		{name: "float starts", op: "Slice", inputs: ins(x, f32([]float32{0}, 1), i64([]int64{1}, 1)), frag: []string{"starts", "int64 or int32"}},
	})
}

func TestExpandTilePad(t *testing.T) {
	runTensorCases(t, []tensorCase{
		{name: "expand", op: "Expand", inputs: ins(f32([]float32{1, 2, 3}, 3, 1), i64([]int64{2, 1, 2}, 3)),
			want: outs(f32([]float32{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}, 2, 3, 2))},
		{name: "expand to smaller shape keeps input", op: "Expand", inputs: ins(f32([]float32{1, 2}, 2), i64([]int64{1}, 1)), want: outs(f32([]float32{1, 2}, 2))},
		{name: "expand int64 scalar", op: "Expand", inputs: ins(i64([]int64{7}), i64([]int64{3}, 1)), want: outs(i64([]int64{7, 7, 7}, 3))},
		{name: "tile", op: "Tile", inputs: ins(f32([]float32{1, 2}, 1, 2), i64([]int64{2, 2}, 2)), want: outs(f32([]float32{1, 2, 1, 2, 1, 2, 1, 2}, 2, 4))},
		{name: "tile rows", op: "Tile", inputs: ins(tens([]int32{1, 2, 3, 4}, 2, 2), i64([]int64{2, 1}, 2)), want: outs(tens([]int32{1, 2, 3, 4, 1, 2, 3, 4}, 4, 2))},
		{name: "pad constant", op: "Pad", inputs: ins(f32([]float32{1, 2, 3, 4}, 2, 2), i64([]int64{0, 1, 1, 0}, 4), f32([]float32{9})),
			want: outs(f32([]float32{9, 1, 2, 9, 3, 4, 9, 9, 9}, 3, 3))},
		{name: "pad constant default zero int64", op: "Pad", inputs: ins(i64([]int64{5}, 1), i64([]int64{1, 2}, 2)), want: outs(i64([]int64{0, 5, 0, 0}, 4))},
		{name: "pad reflect", op: "Pad", attrs: []modelgen.Attr{modelgen.AString("mode", "reflect")}, inputs: ins(f32([]float32{1, 2, 3}, 3), i64([]int64{2, 2}, 2)),
			want: outs(f32([]float32{3, 2, 1, 2, 3, 2, 1}, 7))},
		{name: "pad edge", op: "Pad", attrs: []modelgen.Attr{modelgen.AString("mode", "edge")}, inputs: ins(f32([]float32{1, 2, 3}, 3), i64([]int64{2, 2}, 2)),
			want: outs(f32([]float32{1, 1, 1, 2, 3, 3, 3}, 7))},
		{name: "pad wrap", opset: 19, op: "Pad", attrs: []modelgen.Attr{modelgen.AString("mode", "wrap")}, inputs: ins(f32([]float32{1, 2, 3}, 3), i64([]int64{2, 2}, 2)),
			want: outs(f32([]float32{2, 3, 1, 2, 3, 1, 2}, 7))},
		{name: "pad negative crops", op: "Pad", inputs: ins(f32([]float32{1, 2, 3}, 3), i64([]int64{-1, 1}, 2)), want: outs(f32([]float32{2, 3, 0}, 3))},
		{name: "pad axes (opset 18)", opset: 18, op: "Pad", inputs: ins(f32([]float32{1, 2, 3, 4}, 2, 2), i64([]int64{1, 0}, 2), nil, i64([]int64{-1}, 1)),
			want: outs(f32([]float32{0, 1, 2, 0, 3, 4}, 2, 3))},
		{name: "pad attributes (opset 2)", opset: 2, op: "Pad", attrs: []modelgen.Attr{modelgen.AInts("pads", 1, 0), modelgen.AFloat("value", -1)},
			inputs: ins(f32([]float32{1, 2}, 2)), want: outs(f32([]float32{-1, 1, 2}, 3))},
		{name: "pad reflect 2-D", op: "Pad", attrs: []modelgen.Attr{modelgen.AString("mode", "reflect")}, inputs: ins(f32([]float32{1, 2, 3, 4}, 2, 2), i64([]int64{1, 1, 0, 0}, 4)),
			want: outs(f32([]float32{4, 3, 4, 2, 1, 2, 4, 3, 4}, 3, 3))},
	})
	runErrCases(t, []errCase{
		{name: "expand shapes", op: "Expand", inputs: ins(f32([]float32{1, 2}, 2), i64([]int64{3}, 1)), frag: []string{"do not broadcast"}},
		{name: "expand too large", op: "Expand", inputs: ins(f32([]float32{1}, 1), i64([]int64{1 << 20, 1 << 20}, 2)), frag: []string{"more than"}},
		{name: "expand negative", op: "Expand", inputs: ins(f32([]float32{1}, 1), i64([]int64{-2}, 1)), frag: []string{"dimension 0 is -2"}},
		{name: "tile repeats length", op: "Tile", inputs: ins(f32([]float32{1}, 1), i64([]int64{1, 2}, 2)), frag: []string{"repeats", "rank 1"}},
		{name: "tile huge", op: "Tile", inputs: ins(f32([]float32{1, 2}, 2), i64([]int64{1 << 62}, 1)), frag: []string{"more than"}},
		{name: "pad count", op: "Pad", inputs: ins(f32([]float32{1}, 1), i64([]int64{1}, 1)), frag: []string{"pads", "2 x 1 axes"}},
		{name: "pad reflect too wide", op: "Pad", attrs: []modelgen.Attr{modelgen.AString("mode", "reflect")}, inputs: ins(f32([]float32{1, 2}, 2), i64([]int64{2, 0}, 2)), frag: []string{"reflect", "smaller than its size 2"}},
		{name: "pad value dtype", op: "Pad", inputs: ins(f32([]float32{1}, 1), i64([]int64{1, 1}, 2), i64([]int64{0})), frag: []string{"constant_value", "float32"}},
		{name: "pad mode", op: "Pad", attrs: []modelgen.Attr{modelgen.AString("mode", "mirror")}, inputs: ins(f32([]float32{1}, 1), i64([]int64{1, 1}, 2)), frag: []string{"mode", "mirror"}, unsup: true},
	})
}

func TestCastAndCreation(t *testing.T) {
	to := func(dt tensor.DType) []modelgen.Attr { return []modelgen.Attr{modelgen.AInt("to", int64(dt))} }
	runTensorCases(t, []tensorCase{
		{name: "float to int32 truncates", op: "Cast", attrs: to(tensor.Int32), inputs: ins(f32([]float32{-1.7, 1.7, 2.5, -0.5}, 4)), want: outs(tens([]int32{-1, 1, 2, 0}, 4))},
		{name: "float to uint8", op: "Cast", attrs: to(tensor.Uint8), inputs: ins(f32([]float32{3.9, 255}, 2)), want: outs(tens([]uint8{3, 255}, 2))},
		{name: "int64 to bool", op: "Cast", attrs: to(tensor.Bool), inputs: ins(i64([]int64{0, -3, 1}, 3)), want: outs(tens([]bool{false, true, true}, 3))},
		{name: "float to bool, NaN is true", op: "Cast", attrs: to(tensor.Bool), inputs: ins(f32([]float32{0, float32(math.NaN()), 0.1}, 3)), want: outs(tens([]bool{false, true, true}, 3))},
		{name: "bool to float", op: "Cast", attrs: to(tensor.Float32), inputs: ins(tens([]bool{true, false}, 2)), want: outs(f32([]float32{1, 0}, 2))},
		{name: "float64 to float32", op: "Cast", attrs: to(tensor.Float32), inputs: ins(tens([]float64{0.1, 1e300}, 2)), want: outs(f32([]float32{0.1, float32(math.Inf(1))}, 2))},
		// float16 values held as float32: 0.1 rounds to 0.0999755859375, 65520 (a tie) to infinity, int64 through float32.
		{name: "float to float16 rounds", op: "Cast", attrs: to(tensor.Float16), inputs: ins(f32([]float32{0.1, 65519, 65520, -1e-8, 2049}, 5)),
			want: outs(f32([]float32{0.0999755859375, 65504, float32(math.Inf(1)), float32(math.Copysign(0, -1)), 2048}, 5))},
		{name: "int64 to float16", op: "Cast", attrs: to(tensor.Float16), inputs: ins(i64([]int64{2051, -7}, 2)), want: outs(f32([]float32{2052, -7}, 2))},
		// bfloat16 values held as float32: ties go to even, NaN stays NaN.
		{name: "float to bfloat16 rounds", op: "Cast", attrs: to(tensor.BFloat16), inputs: ins(f32([]float32{1.00390625, 1.01171875, 0.1, float32(math.NaN()), 3e38}, 5)),
			want: outs(f32([]float32{1, 1.015625, 0.10009765625, float32(math.NaN()), 3.0040553e38}, 5))},
		{name: "uint64 to float and int16 wraps", op: "Cast", attrs: to(tensor.Int16), inputs: ins(tens([]uint64{1<<63 + 5, 65535, 7}, 3)), want: outs(tens([]int16{5, -1, 7}, 3))},
		{name: "int16 to uint32", op: "Cast", attrs: to(tensor.Uint32), inputs: ins(tens([]int16{-1, 300}, 2)), want: outs(tens([]uint32{math.MaxUint32, 300}, 2))},
		{name: "float to string", op: "Cast", attrs: to(tensor.String), inputs: ins(f32([]float32{0.1, -2, float32(math.Inf(-1)), float32(math.NaN()), 1e30}, 5)),
			want: outs(strs([]string{"0.1", "-2", "-INF", "NaN", "1e+30"}, 5))},
		{name: "uint64 to string", op: "Cast", attrs: to(tensor.String), inputs: ins(tens([]uint64{math.MaxUint64}, 1)), want: outs(strs([]string{"18446744073709551615"}, 1))},
		{name: "string to float", op: "Cast", attrs: to(tensor.Float32), inputs: ins(strs([]string{"0.5", " -1e3", "INF", "-inf", "1e40"}, 5)),
			want: outs(f32([]float32{0.5, -1000, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Inf(1))}, 5))},
		{name: "string to int64 exactly", op: "Cast", attrs: to(tensor.Int64), inputs: ins(strs([]string{"9007199254740993", "-4", "2.9"}, 3)), want: outs(i64([]int64{9007199254740993, -4, 2}, 3))},
		{name: "string to bool", op: "Cast", attrs: to(tensor.Bool), inputs: ins(strs([]string{"0", "0.5", "-2"}, 3)), want: outs(tens([]bool{false, true, true}, 3))},
		{name: "int8 to int64 sign extends", op: "Cast", attrs: to(tensor.Int64), inputs: ins(tens([]int8{-1, 127}, 2)), want: outs(i64([]int64{-1, 127}, 2))},
		{name: "castlike", op: "CastLike", inputs: ins(f32([]float32{2.9}, 1), i64(nil, 0)), want: outs(i64([]int64{2}, 1))},
		{name: "constantofshape default", op: "ConstantOfShape", inputs: ins(i64([]int64{2, 1}, 2)), want: outs(f32([]float32{0, 0}, 2, 1))},
		{name: "constantofshape int64 value", op: "ConstantOfShape", attrs: []modelgen.Attr{tensorAttr("value", i64([]int64{7}, 1))}, inputs: ins(i64([]int64{3}, 1)), want: outs(i64([]int64{7, 7, 7}, 3))},
		{name: "constantofshape scalar", op: "ConstantOfShape", attrs: []modelgen.Attr{tensorAttr("value", tens([]bool{true}, 1))}, inputs: ins(i64(nil, 0)), want: outs(tens([]bool{true}))},
		{name: "constantofshape zero dim", op: "ConstantOfShape", inputs: ins(i64([]int64{0, 4}, 2)), want: outs(f32(nil, 0, 4))},
		// float32 sums 0.3+0.3 = 0.6 and 0.6+0.3 = 0.90000004 (accumulated, as ONNX Runtime does).
		{name: "range float", op: "Range", inputs: ins(f32([]float32{0}), f32([]float32{1}), f32([]float32{0.3})), want: outs(f32([]float32{0, 0.3, 0.6, 0.90000004}, 4))},
		// ONNX Runtime 1.30 gives these float32 values for Range(0, 1, 0.1).
		{name: "range float accumulates", op: "Range", inputs: ins(f32([]float32{0}), f32([]float32{1}), f32([]float32{0.1})),
			want: outs(f32([]float32{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.70000005, 0.80000007, 0.9000001}, 10))},
		{name: "range int32 negative delta", op: "Range", inputs: ins(tens([]int32{10}), tens([]int32{4}), tens([]int32{-3})), want: outs(tens([]int32{10, 7}, 2))},
		{name: "range int64 empty", op: "Range", inputs: ins(i64([]int64{5}), i64([]int64{0}), i64([]int64{1})), want: outs(i64(nil, 0))},
		{name: "nonzero", op: "NonZero", inputs: ins(f32([]float32{1, float32(math.Copysign(0, -1)), 0, 3}, 2, 2)), want: outs(i64([]int64{0, 1, 0, 1}, 2, 2))},
		{name: "nonzero scalar", op: "NonZero", inputs: ins(i64([]int64{3})), want: outs(i64([]int64{0}, 1, 1))},
		{name: "nonzero bool 1-D", op: "NonZero", inputs: ins(tens([]bool{false, true, true}, 3)), want: outs(i64([]int64{1, 2}, 1, 2))},
	})
	runErrCases(t, []errCase{
		{name: "cast to complex64", op: "Cast", attrs: to(14), inputs: ins(f32([]float32{1}, 1)), frag: []string{"attribute to", "dtype(14)"}, unsup: true},
		{name: "cast a non-number string", op: "Cast", attrs: to(tensor.Float32), inputs: ins(strs([]string{"1", "one"}, 2)), frag: []string{"element 1", `"one"`, "not a number"}},
		{name: "cast without to", op: "Cast", inputs: ins(f32([]float32{1}, 1)), frag: []string{"attribute to", "required"}},
		{name: "constantofshape negative", op: "ConstantOfShape", inputs: ins(i64([]int64{-1}, 1)), frag: []string{"dimension 0 is -1"}},
		{name: "constantofshape huge dim of an empty shape", op: "ConstantOfShape", inputs: ins(i64([]int64{0, 1 << 40}, 2)), frag: []string{"dimension 1", "more than"}},
		{name: "constantofshape huge", op: "ConstantOfShape", inputs: ins(i64([]int64{1 << 40, 1 << 40}, 2)), frag: []string{"more than"}},
		{name: "range zero delta", op: "Range", inputs: ins(f32([]float32{0}), f32([]float32{1}), f32([]float32{0})), frag: []string{"delta", "must not be 0"}},
		{name: "range huge", op: "Range", inputs: ins(i64([]int64{0}), i64([]int64{math.MaxInt64}), i64([]int64{1})), frag: []string{"intermediate tensor of more than 8 EiB", "more than the limit"}},
		{name: "range dtypes", op: "Range", inputs: ins(f32([]float32{0}), i64([]int64{1}), f32([]float32{1})), frag: []string{"limit", "int64"}},
	})
}

// tens builds a tensor of element type T holding vals (not copied).
func tens[T elem](vals []T, shape ...int) *tensor.Tensor {
	t := tensor.New(dtypeOf[T](), shape...)
	if len(vals) != t.Len() {
		panic(fmt.Sprintf("tens: %d values for shape %v", len(vals), shape))
	}
	copy(dataOf[T](t), vals)
	return t
}

// strs builds a string tensor from values and a shape.
func strs(vals []string, shape ...int) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.String, Shape: append([]int{}, shape...), S: vals}
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
	case tensor.Int16:
		for _, v := range x.I16 {
			out = append(out, int64(v))
		}
	case tensor.Int8:
		for _, v := range x.I8 {
			out = append(out, int64(v))
		}
	case tensor.Uint64:
		for _, v := range x.U64 {
			out = append(out, v)
		}
	case tensor.Uint32:
		for _, v := range x.U32 {
			out = append(out, int64(v))
		}
	case tensor.Uint16:
		for _, v := range x.U16 {
			out = append(out, int64(v))
		}
	case tensor.Uint8:
		for _, v := range x.U8 {
			out = append(out, int64(v))
		}
	case tensor.String:
		for _, v := range x.S {
			out = append(out, v)
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

func TestIndexAndMatrixOps(t *testing.T) {
	m := f32(seq(1, 12), 3, 4)
	runTensorCases(t, []tensorCase{
		{name: "gathernd points", op: "GatherND", inputs: ins(f32([]float32{1, 2, 3, 4}, 2, 2), i64([]int64{0, 0, 1, 1, -1, 0}, 3, 2)), want: outs(f32([]float32{1, 4, 3}, 3))},
		{name: "gathernd rows", op: "GatherND", inputs: ins(f32([]float32{1, 2, 3, 4}, 2, 2), i64([]int64{1, 0}, 2, 1)), want: outs(f32([]float32{3, 4, 1, 2}, 2, 2))},
		{name: "gathernd batch_dims 1", op: "GatherND", attrs: []modelgen.Attr{modelgen.AInt("batch_dims", 1)},
			inputs: ins(tens([]int32{1, 2, 3, 4, 5, 6, 7, 8}, 2, 2, 2), i64([]int64{1, 0, 0, 1}, 2, 2)), want: outs(tens([]int32{3, 6}, 2))},
		{name: "scatter elements axis 1", op: "ScatterElements", attrs: []modelgen.Attr{modelgen.AInt("axis", 1)},
			inputs: ins(f32([]float32{1, 2, 3, 4, 5, 6}, 2, 3), i64([]int64{2, -3}, 2, 1), f32([]float32{9, 8}, 2, 1)), want: outs(f32([]float32{1, 2, 9, 8, 5, 6}, 2, 3))},
		{name: "scatter elements add duplicates", opset: 16, op: "ScatterElements", attrs: []modelgen.Attr{modelgen.AString("reduction", "add")},
			inputs: ins(f32([]float32{1, 1}, 2), i64([]int64{1, 1}, 2), f32([]float32{2, 3}, 2)), want: outs(f32([]float32{1, 6}, 2))},
		{name: "trilu upper", op: "Trilu", inputs: ins(m), want: outs(f32([]float32{1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12}, 3, 4))},
		{name: "trilu upper k=2", op: "Trilu", inputs: ins(m, i64([]int64{2})), want: outs(f32([]float32{0, 0, 3, 4, 0, 0, 0, 8, 0, 0, 0, 0}, 3, 4))},
		{name: "trilu lower k=-1", op: "Trilu", attrs: []modelgen.Attr{modelgen.AInt("upper", 0)}, inputs: ins(m, i64([]int64{-1})),
			want: outs(f32([]float32{0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0}, 3, 4))},
		{name: "trilu huge k keeps nothing", op: "Trilu", inputs: ins(m, i64([]int64{math.MaxInt64})), want: outs(f32(make([]float32, 12), 3, 4))},
		{name: "trilu lower batched bool", op: "Trilu", attrs: []modelgen.Attr{modelgen.AInt("upper", 0)}, inputs: ins(tens([]bool{true, true, true, true, true, true, true, true}, 2, 2, 2)),
			want: outs(tens([]bool{true, false, true, true, true, false, true, true}, 2, 2, 2))},
		{name: "cumsum", op: "CumSum", inputs: ins(f32([]float32{1, 2, 3, 4, 5, 6}, 2, 3), i64([]int64{1})), want: outs(f32([]float32{1, 3, 6, 4, 9, 15}, 2, 3))},
		{name: "cumsum axis 0 exclusive reverse", op: "CumSum", attrs: []modelgen.Attr{modelgen.AInt("exclusive", 1), modelgen.AInt("reverse", 1)},
			inputs: ins(i64([]int64{1, 2, 3, 4, 5, 6}, 3, 2), tens([]int32{0})), want: outs(i64([]int64{8, 10, 5, 6, 0, 0}, 3, 2))},
		{name: "eyelike", op: "EyeLike", inputs: ins(i64(make([]int64, 6), 2, 3)), want: outs(i64([]int64{1, 0, 0, 0, 1, 0}, 2, 3))},
		{name: "eyelike k and dtype", op: "EyeLike", attrs: []modelgen.Attr{modelgen.AInt("k", 1), modelgen.AInt("dtype", int64(tensor.Float32))},
			inputs: ins(tens(make([]int32, 9), 3, 3)), want: outs(f32([]float32{0, 1, 0, 0, 0, 1, 0, 0, 0}, 3, 3))},
		{name: "onehot", op: "OneHot", inputs: ins(i64([]int64{0, 2, -1, 5}, 4), i64([]int64{3}), f32([]float32{0, 1}, 2)),
			want: outs(f32([]float32{1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0}, 4, 3))},
		{name: "onehot axis 0 float indices", op: "OneHot", attrs: []modelgen.Attr{modelgen.AInt("axis", 0)}, inputs: ins(f32([]float32{1, 0}, 2), f32([]float32{2}), i64([]int64{-1, 7}, 2)),
			want: outs(i64([]int64{-1, 7, 7, -1}, 2, 2))},
		{name: "shrink", op: "Shrink", attrs: []modelgen.Attr{modelgen.AFloat("lambd", 1), modelgen.AFloat("bias", 0.5)}, inputs: ins(f32([]float32{-2, -1, 0, 1, 2}, 5)),
			want: outs(f32([]float32{-1.5, 0, 0, 0, 1.5}, 5))},
	})
	runErrCases(t, []errCase{
		{name: "gathernd index range", op: "GatherND", inputs: ins(f32(seq(0, 4), 2, 2), i64([]int64{2, 0}, 1, 2)), frag: []string{"index 2", "out of range"}},
		{name: "gathernd tuple too long", op: "GatherND", inputs: ins(f32(seq(0, 4), 2, 2), i64([]int64{0, 0, 0}, 1, 3)), frag: []string{"last dimension 3"}},
		{name: "scatter elements shapes", op: "ScatterElements", inputs: ins(f32(seq(0, 4), 2, 2), i64([]int64{0}, 1, 1), f32([]float32{1, 2}, 1, 2)), frag: []string{"indices", "updates", "one shape"}},
		{name: "trilu rank", op: "Trilu", inputs: ins(f32(seq(0, 3), 3)), frag: []string{"rank >= 2"}},
		{name: "cumsum axis", op: "CumSum", inputs: ins(f32(seq(0, 3), 3), i64([]int64{1})), frag: []string{"axis 1", "out of range"}},
		{name: "onehot depth", op: "OneHot", inputs: ins(i64([]int64{0}, 1), i64([]int64{0}), f32([]float32{0, 1}, 2)), frag: []string{"depth", "must be in [1"}},
		{name: "onehot NaN depth", op: "OneHot", inputs: ins(i64([]int64{0}, 1), f32([]float32{float32(math.NaN())}), f32([]float32{0, 1}, 2)), frag: []string{"depth", "NaN"}},
		{name: "onehot values", op: "OneHot", inputs: ins(i64([]int64{0}, 1), i64([]int64{2}), f32([]float32{1}, 1)), frag: []string{"values", "off_value, on_value"}},
	})
}

// fuzzOps are the ops FuzzOps drives: every op of the unary, elementwise,
// logic, reduction and tensor files.
var fuzzOps = []string{
	"Neg", "Abs", "Exp", "Sqrt", "Erf", "Sigmoid", "Relu", "Sign", "Round", "Gelu", "Clip", "IsInf", "Not",
	"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "PRelu",
	"Equal", "Less", "And", "Xor", "Where",
	"ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2", "ReduceLogSumExp", "ArgMax", "ArgMin", "TopK", "CumSum",
	"Gather", "GatherElements", "GatherND", "ScatterND", "ScatterElements", "Transpose", "Shape", "Size",
	"Concat", "Split", "Slice", "Expand", "Tile", "Pad", "Cast", "CastLike", "ConstantOfShape", "Range",
	"NonZero", "Trilu", "EyeLike", "OneHot", "Squeeze", "Unsqueeze",
}

// fuzzBytes hands out the fuzz input a byte at a time (zeros once it runs out).
type fuzzBytes []byte

func (b *fuzzBytes) next() int {
	if len(*b) == 0 {
		return 0
	}
	v := (*b)[0]
	*b = (*b)[1:]
	return int(v)
}

// intVal maps a byte to a small integer or, now and then, an extreme one.
func (b *fuzzBytes) intVal() int64 {
	switch v := b.next(); v % 16 {
	case 15:
		return math.MaxInt64
	case 14:
		return math.MinInt64
	case 13:
		return 1 << 40
	default:
		return int64(v%9) - 4
	}
}

func (b *fuzzBytes) tensor() *tensor.Tensor {
	dts := []tensor.DType{tensor.Float32, tensor.Int64, tensor.Int32, tensor.Bool, tensor.Uint8, tensor.Float64}
	dt := dts[b.next()%len(dts)]
	shape := make([]int, b.next()%4)
	for i := range shape {
		shape[i] = b.next() % 4
	}
	x := tensor.New(dt, shape...)
	for i := 0; i < x.Len(); i++ {
		v := b.intVal()
		switch dt {
		case tensor.Float32:
			x.F32[i] = float32(v)
		case tensor.Float64:
			x.F64[i] = float64(v)
		case tensor.Int64:
			x.I64[i] = v
		case tensor.Int32:
			x.I32[i] = int32(v)
		case tensor.Uint8:
			x.U8[i] = uint8(v)
		case tensor.Bool:
			x.B[i] = v > 0
		}
	}
	return x
}

// FuzzOps calls kernels directly (outside Run's panic recovery) on random
// small inputs and attributes. The property: an error or a result, never a
// panic. Run longer with go test -fuzz FuzzOps ./internal/engine.
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 3, 3})
	f.Add([]byte{38, 3, 0, 2, 2, 2, 1, 2, 3, 4, 1, 1, 1, 15, 14, 2})
	f.Add([]byte{48, 3, 0, 2, 3, 2, 1, 2, 3, 4, 5, 6, 1, 1, 1, 9, 1, 1, 1, 15, 1, 1, 1, 14})
	f.Add([]byte{51, 2, 0, 1, 3, 1, 2, 3, 1, 1, 2, 15, 14, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := fuzzBytes(data)
		op := fuzzOps[b.next()%len(fuzzOps)]
		opset := []int64{9, 11, 13, 18}[b.next()%4]
		n := &Node{Name: "fuzz", OpType: op, Opset: opset, Outputs: []string{"y", "z"}[:1+b.next()%2],
			attrs: map[string]*onnxpb.AttributeProto{}, Const: func(int) *tensor.Tensor { return nil }}
		for range b.next() % 4 {
			v := b.intVal()
			var a *onnxpb.AttributeProto
			switch b.next() % 8 {
			case 0:
				a = modelgen.AInt("axis", v)
			case 1:
				a = modelgen.AInts("axes", v, b.intVal())
			case 2:
				a = modelgen.AInt("keepdims", v)
			case 3:
				a = modelgen.AInts("perm", v, b.intVal(), b.intVal())
			case 4:
				a = modelgen.AInt("to", v)
			case 5:
				a = modelgen.AString("mode", []string{"constant", "reflect", "edge", "wrap"}[b.next()%4])
			case 6:
				a = modelgen.AInt("batch_dims", v)
			case 7:
				a = modelgen.AInts("split", v, b.intVal())
			}
			n.attrs[a.GetName()] = a
		}
		factory := ops[op]
		k, err := factory(n)
		if err != nil {
			return
		}
		in := make([]*tensor.Tensor, b.next()%4)
		for i := range in {
			in[i] = b.tensor()
		}
		outs, err := k(in)
		if err != nil {
			return
		}
		for i, o := range outs {
			if err := o.Validate(); err != nil {
				t.Fatalf("%s output %d: %v", op, i, err)
			}
		}
	})
}

// TestWideIntegerTypes runs the data-movement ops and the unary integer ops
// on the 16-bit and unsigned 32/64-bit integers: 2-byte elements take their
// own move, take and fill loops.
func TestWideIntegerTypes(t *testing.T) {
	runTensorCases(t, []tensorCase{
		{name: "transpose int16", op: "Transpose", inputs: ins(tens([]int16{1, 2, 3, -4, 5, 6}, 2, 3)), want: outs(tens([]int16{1, -4, 2, 5, 3, 6}, 3, 2))},
		{name: "gather uint16", op: "Gather", inputs: ins(tens([]uint16{10, 20, 65535}, 3), i64([]int64{2, 0, 2}, 3)), want: outs(tens([]uint16{65535, 10, 65535}, 3))},
		{name: "concat uint64", op: "Concat", attrs: []modelgen.Attr{modelgen.AInt("axis", 0)}, inputs: ins(tens([]uint64{1 << 63}, 1), tens([]uint64{2, 3}, 2)), want: outs(tens([]uint64{1 << 63, 2, 3}, 3))},
		{name: "expand uint16", op: "Expand", inputs: ins(tens([]uint16{7, 8}, 2), i64([]int64{2, 2}, 2)), want: outs(tens([]uint16{7, 8, 7, 8}, 2, 2))},
		{name: "pad int16 constant", op: "Pad", inputs: ins(tens([]int16{5}, 1), i64([]int64{1, 1}, 2), tens([]int16{-9})), want: outs(tens([]int16{-9, 5, -9}, 3))},
		{name: "where uint16", op: "Where", inputs: ins(tens([]bool{true, false}, 2), tens([]uint16{1, 2}, 2), tens([]uint16{65535}, 1)), want: outs(tens([]uint16{1, 65535}, 2))},
		{name: "abs int16", op: "Abs", inputs: ins(tens([]int16{-3, 4}, 2)), want: outs(tens([]int16{3, 4}, 2))},
		{name: "abs uint32 is itself", op: "Abs", inputs: ins(tens([]uint32{math.MaxUint32}, 1)), want: outs(tens([]uint32{math.MaxUint32}, 1))},
		{name: "sign uint64", op: "Sign", inputs: ins(tens([]uint64{0, 9}, 2)), want: outs(tens([]uint64{0, 1}, 2))},
		{name: "neg int16", op: "Neg", inputs: ins(tens([]int16{-32768, 7}, 2)), want: outs(tens([]int16{-32768, -7}, 2))},
		{name: "bitwise not uint16", opset: 18, op: "BitwiseNot", inputs: ins(tens([]uint16{0, 0xff00}, 2)), want: outs(tens([]uint16{0xffff, 0x00ff}, 2))},
		{name: "bitwise not int8", opset: 18, op: "BitwiseNot", inputs: ins(tens([]int8{0, -1}, 2)), want: outs(tens([]int8{-1, 0}, 2))},
	})
	runErrCases(t, []errCase{
		{name: "neg uint32", op: "Neg", inputs: ins(tens([]uint32{1}, 1)), frag: []string{"uint32"}},
		{name: "bitwise not float", opset: 18, op: "BitwiseNot", inputs: ins(f32([]float32{1}, 1)), frag: []string{"float32"}},
	})
}
