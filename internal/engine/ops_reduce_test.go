package engine

import (
	"math"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

func TestReduceOps(t *testing.T) {
	// x[i][j][k] = 1 + 6i + 2j + k.
	x := f32(seq(1, 12), 2, 3, 2)
	axes := func(v ...int64) modelgen.Attr { return modelgen.AInts("axes", v...) }
	keep0 := modelgen.AInt("keepdims", 0)
	tests := []struct {
		name   string
		opset  int64
		op     string
		attrs  []modelgen.Attr
		inputs []*tensor.Tensor
		want   *tensor.Tensor
		tol    float64
	}{
		{"sum axis attribute", 11, "ReduceSum", []modelgen.Attr{axes(1)}, []*tensor.Tensor{x}, f32([]float32{9, 12, 27, 30}, 2, 1, 2), 0},
		{"sum axes input", 13, "ReduceSum", []modelgen.Attr{keep0}, []*tensor.Tensor{x, i64([]int64{0, 2}, 2)}, f32([]float32{18, 26, 34}, 3), 0},
		{"sum all by default", 13, "ReduceSum", nil, []*tensor.Tensor{x}, f32([]float32{78}, 1, 1, 1), 0},
		{"sum all, no keepdims", 13, "ReduceSum", []modelgen.Attr{keep0}, []*tensor.Tensor{x}, f32([]float32{78}), 0},
		{"sum empty axes input reduces all", 13, "ReduceSum", []modelgen.Attr{keep0}, []*tensor.Tensor{x, i64(nil, 0)}, f32([]float32{78}), 0},
		{"sum noop with empty axes", 13, "ReduceSum", []modelgen.Attr{modelgen.AInt("noop_with_empty_axes", 1)}, []*tensor.Tensor{x}, x, 0},
		{"sum int64 exact", 13, "ReduceSum", []modelgen.Attr{keep0}, []*tensor.Tensor{i64([]int64{1 << 60, 1}, 2)}, i64([]int64{1<<60 + 1}), 0},
		{"mean negative axis", 13, "ReduceMean", []modelgen.Attr{axes(-1), keep0}, []*tensor.Tensor{x}, f32([]float32{1.5, 3.5, 5.5, 7.5, 9.5, 11.5}, 2, 3), 0},
		{"mean int32 truncates", 13, "ReduceMean", []modelgen.Attr{keep0}, []*tensor.Tensor{tens([]int32{1, 2}, 2)}, tens([]int32{1}), 0},
		{"max axis 0", 13, "ReduceMax", []modelgen.Attr{axes(0)}, []*tensor.Tensor{x}, f32(seq(7, 6), 1, 3, 2), 0},
		{"max axes input (opset 18)", 18, "ReduceMax", []modelgen.Attr{keep0}, []*tensor.Tensor{x, i64([]int64{0, 1}, 2)}, f32([]float32{11, 12}, 2), 0},
		{"min axis 0", 13, "ReduceMin", []modelgen.Attr{axes(0), keep0}, []*tensor.Tensor{x}, f32(seq(1, 6), 3, 2), 0},
		{"min int8", 13, "ReduceMin", []modelgen.Attr{keep0}, []*tensor.Tensor{tens([]int8{5, -7, 3}, 3)}, tens([]int8{-7}), 0},
		{"prod", 13, "ReduceProd", []modelgen.Attr{axes(2), keep0}, []*tensor.Tensor{x}, f32([]float32{2, 12, 30, 56, 90, 132}, 2, 3), 0},
		{"l1", 13, "ReduceL1", []modelgen.Attr{keep0}, []*tensor.Tensor{f32([]float32{-3, 4}, 2)}, f32([]float32{7}), 0},
		{"l2", 13, "ReduceL2", []modelgen.Attr{keep0}, []*tensor.Tensor{f32([]float32{-3, 4}, 2)}, f32([]float32{5}), 0},
		{"sum square", 13, "ReduceSumSquare", []modelgen.Attr{axes(1)}, []*tensor.Tensor{f32([]float32{-3, 4, 1, 2}, 2, 2)}, f32([]float32{25, 5}, 2, 1), 0},
		{"log sum", 13, "ReduceLogSum", []modelgen.Attr{keep0}, []*tensor.Tensor{f32([]float32{2, 3}, 2)}, f32([]float32{float32(math.Log(5))}), 1e-7},
		{"log sum exp large", 13, "ReduceLogSumExp", []modelgen.Attr{axes(1), keep0}, []*tensor.Tensor{f32([]float32{1000, 1000, 0, 0}, 2, 2)}, f32([]float32{1000 + math.Ln2, math.Ln2}, 2), 1e-4},
		{"empty reduced axis", 13, "ReduceSum", []modelgen.Attr{keep0}, []*tensor.Tensor{f32(nil, 2, 0), i64([]int64{1}, 1)}, f32([]float32{0, 0}, 2), 0},
		{"float64", 13, "ReduceMean", []modelgen.Attr{keep0}, []*tensor.Tensor{tens([]float64{1, 2}, 2)}, tens([]float64{1.5}), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{opset: tt.opset, op: tt.op, attrs: tt.attrs, inputs: tt.inputs})
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, got[0], tt.want, tt.tol)
		})
	}
}

func TestArgAndTopK(t *testing.T) {
	nan := float32(math.NaN())
	x := f32([]float32{1, 3, 3, 4, 4, 2}, 2, 3)
	tests := []struct {
		name   string
		opset  int64
		op     string
		attrs  []modelgen.Attr
		inputs []*tensor.Tensor
		want   []*tensor.Tensor
	}{
		{"argmax first tie", 13, "ArgMax", []modelgen.Attr{modelgen.AInt("axis", 1)}, []*tensor.Tensor{x}, []*tensor.Tensor{i64([]int64{1, 0}, 2, 1)}},
		{"argmax last tie", 13, "ArgMax", []modelgen.Attr{modelgen.AInt("axis", -1), modelgen.AInt("keepdims", 0), modelgen.AInt("select_last_index", 1)}, []*tensor.Tensor{x}, []*tensor.Tensor{i64([]int64{2, 1}, 2)}},
		{"argmin default axis 0", 13, "ArgMin", nil, []*tensor.Tensor{x}, []*tensor.Tensor{i64([]int64{0, 0, 1}, 1, 3)}},
		{"argmax NaN first", 13, "ArgMax", nil, []*tensor.Tensor{f32([]float32{1, nan, 3, nan}, 4)}, []*tensor.Tensor{i64([]int64{1}, 1)}},
		{"argmax NaN ignored with select_last_index", 13, "ArgMax", []modelgen.Attr{modelgen.AInt("select_last_index", 1)}, []*tensor.Tensor{f32([]float32{1, nan, 3, nan, 3, 2}, 6)}, []*tensor.Tensor{i64([]int64{4}, 1)}},
		{"argmin int64", 13, "ArgMin", []modelgen.Attr{modelgen.AInt("keepdims", 0)}, []*tensor.Tensor{i64([]int64{5, -1, -1}, 3)}, []*tensor.Tensor{i64([]int64{1})}},
		{"topk largest, ties by index", 11, "TopK", nil, []*tensor.Tensor{f32([]float32{3, 1, 3, 2}, 4), i64([]int64{2}, 1)}, []*tensor.Tensor{f32([]float32{3, 3}, 2), i64([]int64{0, 2}, 2)}},
		{"topk smallest", 11, "TopK", []modelgen.Attr{modelgen.AInt("largest", 0)}, []*tensor.Tensor{f32([]float32{3, 1, 3, 2}, 4), i64([]int64{3}, 1)}, []*tensor.Tensor{f32([]float32{1, 2, 3}, 3), i64([]int64{1, 3, 0}, 3)}},
		{"topk axis 0", 11, "TopK", []modelgen.Attr{modelgen.AInt("axis", 0)}, []*tensor.Tensor{f32([]float32{1, 5, 4, 2, 3, 6}, 3, 2), i64([]int64{2}, 1)}, []*tensor.Tensor{f32([]float32{4, 6, 3, 5}, 2, 2), i64([]int64{1, 2, 2, 0}, 2, 2)}},
		{"topk k attribute (opset 9)", 9, "TopK", []modelgen.Attr{modelgen.AInt("k", 1)}, []*tensor.Tensor{i64([]int64{4, 9, 1, 7}, 2, 2)}, []*tensor.Tensor{i64([]int64{9, 7}, 2, 1), i64([]int64{1, 1}, 2, 1)}},
		{"topk k=0", 11, "TopK", nil, []*tensor.Tensor{f32([]float32{1, 2}, 2), i64([]int64{0}, 1)}, []*tensor.Tensor{f32(nil, 0), i64(nil, 0)}},
	}
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

func TestReduceErrors(t *testing.T) {
	x := f32(seq(0, 6), 2, 3)
	tests := []struct {
		name   string
		op     string
		attrs  []modelgen.Attr
		inputs []*tensor.Tensor
		frag   []string
	}{
		{"axis out of range", "ReduceSum", nil, []*tensor.Tensor{x, i64([]int64{2}, 1)}, []string{"axes", "axis 2", "out of range"}},
		{"duplicate axes", "ReduceSum", nil, []*tensor.Tensor{x, i64([]int64{1, -1}, 2)}, []string{"appears twice"}},
		{"axes dtype", "ReduceSum", nil, []*tensor.Tensor{x, f32([]float32{1}, 1)}, []string{"axes", "int64 or int32"}},
		{"log sum on ints", "ReduceLogSum", nil, []*tensor.Tensor{i64([]int64{1}, 1)}, []string{"int64", "supports float32 and float64"}},
		{"argmax empty axis", "ArgMax", nil, []*tensor.Tensor{f32(nil, 0, 2)}, []string{"axis 0 is empty"}},
		{"topk k too large", "TopK", nil, []*tensor.Tensor{x, i64([]int64{4}, 1)}, []string{"k 4", "out of range"}},
		{"topk k negative", "TopK", nil, []*tensor.Tensor{x, i64([]int64{-1}, 1)}, []string{"k -1"}},
		{"axes input before opset 18", "ReduceMax", nil, []*tensor.Tensor{x, i64([]int64{0}, 1)}, []string{"input axes", "before opset 18", "attribute"}},
		{"axes attribute since opset 13", "ReduceSum", []modelgen.Attr{modelgen.AInts("axes", 0)}, []*tensor.Tensor{x}, []string{"attribute axes", "since opset 13", "input 1"}},
		{"topk bool", "TopK", nil, []*tensor.Tensor{tens([]bool{true}, 1), i64([]int64{1}, 1)}, []string{"bool"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runOp(t, opCase{op: tt.op, attrs: tt.attrs, inputs: tt.inputs, nout: map[bool]int{true: 2, false: 1}[tt.op == "TopK"]})
			wantErr(t, err, tt.frag...)
		})
	}
}
