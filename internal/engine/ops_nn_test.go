package engine

import (
	"math"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

func ones(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

func TestConv(t *testing.T) {
	x33 := f32(seq(1, 9), 1, 1, 3, 3) // [[1 2 3] [4 5 6] [7 8 9]]
	k22 := f32(ones(4), 1, 1, 2, 2)
	x2c := f32([]float32{1, 2, 3, 4, 5, 6, 7, 8}, 1, 2, 2, 2) // channel 0: 1..4, channel 1: 5..8
	tests := []struct {
		name   string
		attrs  []modelgen.Attr
		inputs []*tensor.Tensor
		want   *tensor.Tensor
	}{
		{"valid 2x2", nil, []*tensor.Tensor{x33, k22}, f32([]float32{12, 16, 24, 28}, 1, 1, 2, 2)},
		{"bias", nil, []*tensor.Tensor{x33, k22, f32([]float32{-10}, 1)}, f32([]float32{2, 6, 14, 18}, 1, 1, 2, 2)},
		{"pad 1 stride 2", []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1), modelgen.AInts("strides", 2, 2)},
			[]*tensor.Tensor{x33, k22}, f32([]float32{1, 5, 11, 28}, 1, 1, 2, 2)},
		{"asymmetric pads", []modelgen.Attr{modelgen.AInts("pads", 0, 0, 1, 0)},
			[]*tensor.Tensor{x33, k22}, f32([]float32{12, 16, 24, 28, 15, 17}, 1, 1, 3, 2)},
		{"dilation 2", []modelgen.Attr{modelgen.AInts("dilations", 2, 2)}, []*tensor.Tensor{x33, k22}, f32([]float32{20}, 1, 1, 1, 1)},
		{"auto_pad SAME_UPPER", []modelgen.Attr{modelgen.AString("auto_pad", "SAME_UPPER")}, []*tensor.Tensor{x33, k22},
			f32([]float32{12, 16, 9, 24, 28, 15, 15, 17, 9}, 1, 1, 3, 3)},
		{"auto_pad SAME_LOWER", []modelgen.Attr{modelgen.AString("auto_pad", "SAME_LOWER")}, []*tensor.Tensor{x33, k22},
			f32([]float32{1, 3, 5, 5, 12, 16, 11, 24, 28}, 1, 1, 3, 3)},
		{"auto_pad VALID", []modelgen.Attr{modelgen.AString("auto_pad", "VALID")}, []*tensor.Tensor{x33, k22}, f32([]float32{12, 16, 24, 28}, 1, 1, 2, 2)},
		{"kernel_shape matches W", []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2)}, []*tensor.Tensor{x33, k22}, f32([]float32{12, 16, 24, 28}, 1, 1, 2, 2)},
		{"two in two out channels", nil,
			[]*tensor.Tensor{x2c, f32(append(ones(8), 1, 0, 0, 0, 0, 0, 0, 2), 2, 2, 2, 2)},
			f32([]float32{36, 1 + 16}, 1, 2, 1, 1)},
		{"group 2 pointwise with bias", []modelgen.Attr{modelgen.AInt("group", 2)},
			[]*tensor.Tensor{x2c, f32([]float32{2, 3}, 2, 1, 1, 1), f32([]float32{1, -1}, 2)},
			f32([]float32{3, 5, 7, 9, 14, 17, 20, 23}, 1, 2, 2, 2)},
		{"group 2 spatial", []modelgen.Attr{modelgen.AInt("group", 2)},
			[]*tensor.Tensor{x2c, f32([]float32{1, 1, 1, 1, 1, 0, 0, 1}, 2, 1, 2, 2)},
			f32([]float32{10, 13}, 1, 2, 1, 1)},
		{"depthwise batch 2", []modelgen.Attr{modelgen.AInt("group", 2)},
			[]*tensor.Tensor{f32(append(seq(1, 8), seq(-8, 8)...), 2, 2, 2, 2), f32([]float32{1, 1, 1, 1, 1, 0, 0, 1}, 2, 1, 2, 2)},
			f32([]float32{10, 13, -26, -5}, 2, 2, 1, 1)},
		{"1-D with pads", []modelgen.Attr{modelgen.AInts("pads", 1, 1)},
			[]*tensor.Tensor{f32([]float32{1, 2, 3, 4}, 1, 1, 4), f32([]float32{1, -1}, 1, 1, 2)},
			f32([]float32{-1, -1, -1, -1, 4}, 1, 1, 5)},
		{"3-D", nil, []*tensor.Tensor{f32(seq(1, 8), 1, 1, 2, 2, 2), f32(ones(8), 1, 1, 2, 2, 2)}, f32([]float32{36}, 1, 1, 1, 1, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{op: "Conv", attrs: tt.attrs, inputs: tt.inputs})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, got[0], tt.want, 1e-5)
		})
	}
}

func TestConvErrors(t *testing.T) {
	x := f32(seq(1, 9), 1, 1, 3, 3)
	tests := []struct {
		name   string
		attrs  []modelgen.Attr
		inputs []*tensor.Tensor
		frag   []string
	}{
		{"channel mismatch", nil, []*tensor.Tensor{x, f32(ones(8), 1, 2, 2, 2)}, []string{"must equal X's channels 1"}},
		{"rank mismatch", nil, []*tensor.Tensor{x, f32(ones(2), 1, 1, 2)}, []string{"rank of X"}},
		{"kernel larger than input", nil, []*tensor.Tensor{x, f32(ones(16), 1, 1, 4, 4)}, []string{"smaller than the dilated kernel"}},
		{"bias shape", nil, []*tensor.Tensor{x, f32(ones(4), 1, 1, 2, 2), f32([]float32{1, 2}, 2)}, []string{"input B", "float32[1]"}},
		{"kernel_shape mismatch", []modelgen.Attr{modelgen.AInts("kernel_shape", 3, 3)}, []*tensor.Tensor{x, f32(ones(4), 1, 1, 2, 2)}, []string{"kernel_shape", "does not match"}},
		{"strides length", []modelgen.Attr{modelgen.AInts("strides", 1)}, []*tensor.Tensor{x, f32(ones(4), 1, 1, 2, 2)}, []string{"strides", "want 2"}},
		{"bad auto_pad", []modelgen.Attr{modelgen.AString("auto_pad", "FULL")}, []*tensor.Tensor{x, f32(ones(4), 1, 1, 2, 2)}, []string{"auto_pad", "FULL"}},
		{"pads with auto_pad", []modelgen.Attr{modelgen.AString("auto_pad", "VALID"), modelgen.AInts("pads", 0, 0, 0, 0)}, []*tensor.Tensor{x, f32(ones(4), 1, 1, 2, 2)}, []string{"cannot be set together"}},
		{"2-D input", nil, []*tensor.Tensor{f32(ones(9), 3, 3), f32(ones(4), 2, 2)}, []string{"input X", "[N C ...]"}},
		{"int64 input", nil, []*tensor.Tensor{i64(make([]int64, 9), 1, 1, 3, 3), f32(ones(4), 1, 1, 2, 2)}, []string{"float32 only"}},
		{"zero group", []modelgen.Attr{modelgen.AInt("group", 0)}, []*tensor.Tensor{x, f32(ones(4), 1, 1, 2, 2)}, []string{"group", ">= 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runOp(t, opCase{op: "Conv", attrs: tt.attrs, inputs: tt.inputs})
			wantErr(t, err, append(tt.frag, "Conv")...)
		})
	}
}

func TestMaxPool(t *testing.T) {
	x33 := f32(seq(1, 9), 1, 1, 3, 3)
	tests := []struct {
		name  string
		attrs []modelgen.Attr
		x     *tensor.Tensor
		want  *tensor.Tensor
	}{
		{"2x2 stride 2", []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2)},
			f32(seq(1, 16), 1, 1, 4, 4), f32([]float32{6, 8, 14, 16}, 1, 1, 2, 2)},
		{"stride 1 default", []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2)}, x33, f32([]float32{5, 6, 8, 9}, 1, 1, 2, 2)},
		{"padding", []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2), modelgen.AInts("pads", 1, 1, 1, 1)},
			x33, f32([]float32{1, 3, 7, 9}, 1, 1, 2, 2)},
		{"padding never wins for negatives", []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2), modelgen.AInts("pads", 1, 1, 1, 1)},
			f32(seq(-9, 9), 1, 1, 3, 3), f32([]float32{-9, -7, -3, -1}, 1, 1, 2, 2)},
		{"floor mode", []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2)}, x33, f32([]float32{5}, 1, 1, 1, 1)},
		{"ceil mode", []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2), modelgen.AInt("ceil_mode", 1)},
			x33, f32([]float32{5, 6, 8, 9}, 1, 1, 2, 2)},
		{"ceil mode drops window starting in padding", []modelgen.Attr{modelgen.AInts("kernel_shape", 2), modelgen.AInts("strides", 2), modelgen.AInts("pads", 0, 1), modelgen.AInt("ceil_mode", 1)},
			f32([]float32{1, 2, 3, 4}, 1, 1, 4), f32([]float32{2, 4}, 1, 1, 2)},
		{"dilation", []modelgen.Attr{modelgen.AInts("kernel_shape", 2), modelgen.AInts("dilations", 2)},
			f32([]float32{1, 5, 2, 4, 3}, 1, 1, 5), f32([]float32{2, 5, 3}, 1, 1, 3)},
		{"SAME_UPPER", []modelgen.Attr{modelgen.AInts("kernel_shape", 2), modelgen.AString("auto_pad", "SAME_UPPER")},
			f32([]float32{1, 3, 2}, 1, 1, 3), f32([]float32{3, 3, 2}, 1, 1, 3)},
		{"SAME_LOWER", []modelgen.Attr{modelgen.AInts("kernel_shape", 2), modelgen.AString("auto_pad", "SAME_LOWER")},
			f32([]float32{1, 3, 2}, 1, 1, 3), f32([]float32{1, 3, 3}, 1, 1, 3)},
		{"channels and batch", []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2)},
			f32([]float32{1, 2, 3, 4, 8, 7, 6, 5, -1, -2, -3, -4}, 3, 1, 2, 2), f32([]float32{4, 8, -1}, 3, 1, 1, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{op: "MaxPool", attrs: tt.attrs, inputs: []*tensor.Tensor{tt.x}})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, got[0], tt.want, 0)
		})
	}

	_, err := runOp(t, opCase{op: "MaxPool", inputs: []*tensor.Tensor{x33}})
	wantErr(t, err, "kernel_shape", "required")
	_, err = runOp(t, opCase{op: "MaxPool", attrs: []modelgen.Attr{modelgen.AInts("kernel_shape", 2)}, inputs: []*tensor.Tensor{x33}})
	wantErr(t, err, "kernel_shape", "2 spatial axes")
}

func TestGemm(t *testing.T) {
	a := f32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	aT := f32([]float32{1, 4, 2, 5, 3, 6}, 3, 2)
	b := f32([]float32{1, 0, 0, 1, 1, 1}, 3, 2)
	bT := f32([]float32{1, 0, 1, 0, 1, 1}, 2, 3)
	ab := []float32{4, 5, 10, 11} // a×b
	tests := []struct {
		name   string
		attrs  []modelgen.Attr
		inputs []*tensor.Tensor
		want   []float32
	}{
		{"plain", nil, []*tensor.Tensor{a, b}, ab},
		{"transA", []modelgen.Attr{modelgen.AInt("transA", 1)}, []*tensor.Tensor{aT, b}, ab},
		{"transB", []modelgen.Attr{modelgen.AInt("transB", 1)}, []*tensor.Tensor{a, bT}, ab},
		{"both transposed", []modelgen.Attr{modelgen.AInt("transA", 1), modelgen.AInt("transB", 1)}, []*tensor.Tensor{aT, bT}, ab},
		{"alpha beta row C", []modelgen.Attr{modelgen.AFloat("alpha", 2), modelgen.AFloat("beta", 0.5)},
			[]*tensor.Tensor{a, b, f32([]float32{10, 20}, 2)}, []float32{13, 20, 25, 32}},
		{"column C", nil, []*tensor.Tensor{a, b, f32([]float32{1, 2}, 2, 1)}, []float32{5, 6, 12, 13}},
		{"scalar C", nil, []*tensor.Tensor{a, b, f32([]float32{-4})}, []float32{0, 1, 6, 7}},
		{"full C", nil, []*tensor.Tensor{a, b, f32([]float32{1, 2, 3, 4}, 2, 2)}, []float32{5, 7, 13, 15}},
		{"beta 0 ignores C", []modelgen.Attr{modelgen.AFloat("beta", 0)}, []*tensor.Tensor{a, b, f32([]float32{float32(math.NaN())})}, ab},
		{"omitted C", nil, []*tensor.Tensor{a, b, nil}, ab},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{opset: 13, op: "Gemm", attrs: tt.attrs, inputs: tt.inputs})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, got[0], f32(tt.want, 2, 2), 1e-5)
		})
	}

	_, err := runOp(t, opCase{op: "Gemm", inputs: []*tensor.Tensor{a, a}})
	wantErr(t, err, "inner dimensions 3 and 2")
	_, err = runOp(t, opCase{op: "Gemm", inputs: []*tensor.Tensor{a, b, f32([]float32{1, 2, 3}, 3)}})
	wantErr(t, err, "input C", "does not broadcast")
	_, err = runOp(t, opCase{op: "Gemm", inputs: []*tensor.Tensor{f32(ones(6), 1, 2, 3), b}})
	wantErr(t, err, "2-D")
}

func TestMatMul(t *testing.T) {
	a := f32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	b := f32([]float32{1, 0, 0, 1, 1, 1}, 3, 2)
	eye2 := []float32{1, 0, 0, 1}
	m := []float32{1, 2, 3, 4}
	tests := []struct {
		name string
		a, b *tensor.Tensor
		want *tensor.Tensor
	}{
		{"2-D", a, b, f32([]float32{4, 5, 10, 11}, 2, 2)},
		{"1-D × 2-D", f32([]float32{1, 2, 3}, 3), b, f32([]float32{4, 5}, 2)},
		{"2-D × 1-D", a, f32([]float32{1, 1, 1}, 3), f32([]float32{6, 15}, 2)},
		{"1-D × 1-D", f32([]float32{1, 2, 3}, 3), f32([]float32{4, 5, 6}, 3), f32([]float32{32})},
		{"batched × shared matrix", f32(append(eye2, 2, 0, 0, 2), 2, 2, 2), f32(m, 2, 2), f32([]float32{1, 2, 3, 4, 2, 4, 6, 8}, 2, 2, 2)},
		{"matrix × batched", f32(m, 2, 2), f32(append(append(eye2, 2, 0, 0, 2), 0, 0, 0, 0), 3, 2, 2),
			f32([]float32{1, 2, 3, 4, 2, 4, 6, 8, 0, 0, 0, 0}, 3, 2, 2)},
		{"batch broadcast both sides", f32([]float32{1, 2, 3, 4}, 2, 1, 1, 2), f32([]float32{1, 1, 1, 0, 0, 1}, 1, 3, 2, 1),
			f32([]float32{3, 1, 2, 7, 3, 4}, 2, 3, 1, 1)},
		{"batched × 1-D", f32(append(eye2, 2, 0, 0, 2), 2, 2, 2), f32([]float32{1, 2}, 2), f32([]float32{1, 2, 2, 4}, 2, 2)},
		{"size-1 batch of B folds", f32(append(eye2, 2, 0, 0, 2), 2, 2, 2), f32(m, 1, 2, 2), f32([]float32{1, 2, 3, 4, 2, 4, 6, 8}, 2, 2, 2)},
		{"empty K", f32(nil, 2, 0), f32(nil, 0, 3), f32(make([]float32, 6), 2, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{op: "MatMul", inputs: []*tensor.Tensor{tt.a, tt.b}})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, got[0], tt.want, 1e-5)
		})
	}
	_, err := runOp(t, opCase{op: "MatMul", inputs: []*tensor.Tensor{a, a}})
	wantErr(t, err, "inner dimensions 3 and 2")
	_, err = runOp(t, opCase{op: "MatMul", inputs: []*tensor.Tensor{f32(ones(12), 2, 2, 3), f32(ones(18), 3, 3, 2)}})
	wantErr(t, err, "batch axes", "do not broadcast")
}

func TestSoftmax(t *testing.T) {
	ln3 := float32(math.Log(3))
	x := f32([]float32{0, ln3, 0, ln3}, 1, 2, 2)
	tests := []struct {
		name  string
		op    string
		opset int64
		attrs []modelgen.Attr
		x     *tensor.Tensor
		want  *tensor.Tensor
	}{
		{"known values", "Softmax", 13, nil, f32([]float32{1, 2, 3}, 1, 3), f32([]float32{0.09003057, 0.24472847, 0.66524096}, 1, 3)},
		{"log known values", "LogSoftmax", 13, nil, f32([]float32{1, 2, 3}, 1, 3), f32([]float32{-2.4076059, -1.4076059, -0.4076059}, 1, 3)},
		{"opset 13 default axis -1", "Softmax", 13, nil, x, f32([]float32{0.25, 0.75, 0.25, 0.75}, 1, 2, 2)},
		{"opset 13 axis 1 only", "Softmax", 13, []modelgen.Attr{modelgen.AInt("axis", 1)}, x, f32([]float32{0.5, 0.5, 0.5, 0.5}, 1, 2, 2)},
		{"opset 13 axis 0 of 2-D", "Softmax", 13, []modelgen.Attr{modelgen.AInt("axis", 0)}, f32([]float32{0, 0, ln3, 0}, 2, 2), f32([]float32{0.25, 0.5, 0.75, 0.5}, 2, 2)},
		{"opset 11 default axis 1 flattens", "Softmax", 11, nil, x, f32([]float32{0.125, 0.375, 0.125, 0.375}, 1, 2, 2)},
		{"opset 11 axis 2", "Softmax", 11, []modelgen.Attr{modelgen.AInt("axis", 2)}, x, f32([]float32{0.25, 0.75, 0.25, 0.75}, 1, 2, 2)},
		{"opset 11 log flattens", "LogSoftmax", 11, nil, x,
			f32([]float32{float32(math.Log(0.125)), float32(math.Log(0.375)), float32(math.Log(0.125)), float32(math.Log(0.375))}, 1, 2, 2)},
		{"large inputs are stable", "Softmax", 13, nil, f32([]float32{1000, 1000, -1000}, 3), f32([]float32{0.5, 0.5, 0}, 3)},
		{"log large inputs", "LogSoftmax", 13, nil, f32([]float32{1000, 1000}, 2), f32([]float32{-float32(math.Ln2), -float32(math.Ln2)}, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{opset: tt.opset, op: tt.op, attrs: tt.attrs, inputs: []*tensor.Tensor{tt.x}})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, got[0], tt.want, 1e-6)
		})
	}
	_, err := runOp(t, opCase{op: "Softmax", attrs: []modelgen.Attr{modelgen.AInt("axis", 3)}, inputs: []*tensor.Tensor{x}})
	wantErr(t, err, "axis 3", "out of range")
	_, err = runOp(t, opCase{op: "LogSoftmax", inputs: []*tensor.Tensor{i64([]int64{1}, 1)}})
	wantErr(t, err, "int64", "LogSoftmax supports")
}

// TestSoftmaxRows checks the vectorised, threaded Softmax over contiguous
// rows against the float64 formula, at 1 and 3 threads, on rows shorter and
// longer than a vector, with -Inf masks and a NaN row: to 1e-5 relative, as
// the float32 sum of 6625 exponentials allows (the Go loop of the noasm
// build sums them one by one).
func TestSoftmaxRows(t *testing.T) {
	n := &Node{Name: "sm", OpType: "Softmax", Opset: 13, attrs: map[string]*onnxpb.AttributeProto{}}
	if _, err := newSoftmax(n, false); err != nil {
		t.Fatal(err)
	}
	for _, shape := range [][]int{{64, 7}, {3, 5, 37}, {40, 6625}} {
		x := randTensor(uint64(shape[len(shape)-1]), shape...)
		size := shape[len(shape)-1]
		x.F32[1] = float32(math.Inf(-1))
		x.F32[size+2] = float32(math.NaN())
		for _, threads := range []int{1, 3} {
			got, err := n.threaded(threads, []*tensor.Tensor{x})
			if err != nil {
				t.Fatal(err)
			}
			for o := 0; o < len(x.F32)/size; o++ {
				row := x.F32[o*size : (o+1)*size]
				m := math.Inf(-1)
				for _, v := range row {
					m = math.Max(m, float64(v))
				}
				var sum float64
				for _, v := range row {
					sum += math.Exp(float64(v) - m)
				}
				for i, v := range row {
					want := math.Exp(float64(v)-m) / sum
					g := float64(got[0].F32[o*size+i])
					if math.IsNaN(want) != math.IsNaN(g) || math.Abs(g-want) > 1e-5*want+1e-30 {
						t.Fatalf("shape %v, %d threads: row %d [%d] = %g, want %g", shape, threads, o, i, g, want)
					}
				}
			}
		}
	}
}

func TestMaxPoolIndices(t *testing.T) {
	x := f32([]float32{1, 4, 3, 2, 0, 9, 8, 7}, 2, 1, 2, 2)
	k := modelgen.AInts("kernel_shape", 2, 2)
	runOpTests(t, "MaxPool", []opTest{
		{name: "row-major", opset: 12, attrs: []modelgen.Attr{k}, inputs: []*tensor.Tensor{x},
			want: []*tensor.Tensor{f32([]float32{4, 9}, 2, 1, 1, 1), i64([]int64{1, 5}, 2, 1, 1, 1)}},
		// Column-major within a 2×2 plane: (h, w) is at h + w*2.
		{name: "column-major", opset: 12, attrs: []modelgen.Attr{k, modelgen.AInt("storage_order", 1)}, inputs: []*tensor.Tensor{x},
			want: []*tensor.Tensor{f32([]float32{4, 9}, 2, 1, 1, 1), i64([]int64{2, 6}, 2, 1, 1, 1)}},
	})
}

func TestAveragePool(t *testing.T) {
	x33 := f32(seq(1, 9), 1, 1, 3, 3)
	win := []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("pads", 1, 1, 1, 1), modelgen.AInts("strides", 2, 2)}
	runOpTests(t, "AveragePool", []opTest{
		// Windows: {1}, {2 3}, {4 7}, {5 6 8 9}.
		{name: "pads exclude padding", attrs: win, inputs: []*tensor.Tensor{x33}, want: []*tensor.Tensor{f32([]float32{1, 2.5, 5.5, 7}, 1, 1, 2, 2)}},
		{name: "count_include_pad", attrs: append(win, modelgen.AInt("count_include_pad", 1)), inputs: []*tensor.Tensor{x33},
			want: []*tensor.Tensor{f32([]float32{0.25, 1.25, 2.75, 7}, 1, 1, 2, 2)}},
		{name: "ceil_mode", attrs: []modelgen.Attr{modelgen.AInts("kernel_shape", 2), modelgen.AInts("strides", 2), modelgen.AInt("ceil_mode", 1)},
			inputs: []*tensor.Tensor{f32(seq(1, 5), 1, 1, 5)}, want: []*tensor.Tensor{f32([]float32{1.5, 3.5, 5}, 1, 1, 3)}},
		{name: "SAME_UPPER", attrs: []modelgen.Attr{modelgen.AInts("kernel_shape", 2), modelgen.AString("auto_pad", "SAME_UPPER")},
			inputs: []*tensor.Tensor{f32([]float32{1, 3, 2}, 1, 1, 3)}, want: []*tensor.Tensor{f32([]float32{2, 2.5, 2}, 1, 1, 3)}},
		{name: "dilations at opset 19", opset: 19, attrs: []modelgen.Attr{modelgen.AInts("kernel_shape", 2), modelgen.AInts("dilations", 2)},
			inputs: []*tensor.Tensor{f32(seq(1, 4), 1, 1, 4)}, want: []*tensor.Tensor{f32([]float32{2, 3}, 1, 1, 2)}},
	})
	runOpErrTests(t, "AveragePool", []opErrTest{
		{name: "kernel_shape required", inputs: []*tensor.Tensor{x33}, fragments: []string{"kernel_shape", "required"}},
		{name: "int64 input", attrs: []modelgen.Attr{modelgen.AInts("kernel_shape", 2)}, inputs: []*tensor.Tensor{i64([]int64{1, 2}, 1, 1, 2)},
			fragments: []string{"int64", "float32 only"}},
	})
}

func TestGlobalPools(t *testing.T) {
	x := f32([]float32{1, 2, 3, 4, 5, 6, 7, 8}, 1, 2, 2, 2)
	runOpTests(t, "GlobalAveragePool", []opTest{{name: "2-D", inputs: []*tensor.Tensor{x}, want: []*tensor.Tensor{f32([]float32{2.5, 6.5}, 1, 2, 1, 1)}}})
	runOpTests(t, "GlobalMaxPool", []opTest{{name: "2-D", inputs: []*tensor.Tensor{x}, want: []*tensor.Tensor{f32([]float32{4, 8}, 1, 2, 1, 1)}}})
}

func TestConvTranspose(t *testing.T) {
	x := f32([]float32{1, 2, 3}, 1, 1, 3)
	w2 := f32([]float32{1, 1}, 1, 1, 2)
	w3 := f32([]float32{1, 1, 1}, 1, 1, 3)
	s2 := modelgen.AInts("strides", 2)
	runOpTests(t, "ConvTranspose", []opTest{
		{name: "stride 1", inputs: []*tensor.Tensor{x, w2}, want: []*tensor.Tensor{f32([]float32{1, 3, 5, 3}, 1, 1, 4)}},
		{name: "stride 2 with bias", attrs: []modelgen.Attr{s2}, inputs: []*tensor.Tensor{x, w2, f32([]float32{10}, 1)}, consts: []int{1, 2},
			want: []*tensor.Tensor{f32([]float32{11, 11, 12, 12, 13, 13}, 1, 1, 6)}},
		{name: "pads", attrs: []modelgen.Attr{s2, modelgen.AInts("pads", 1, 1)}, inputs: []*tensor.Tensor{x, w2},
			want: []*tensor.Tensor{f32([]float32{1, 2, 2, 3}, 1, 1, 4)}},
		{name: "output_padding", attrs: []modelgen.Attr{s2, modelgen.AInts("output_padding", 1)}, inputs: []*tensor.Tensor{x, w2},
			want: []*tensor.Tensor{f32([]float32{1, 1, 2, 2, 3, 3, 0}, 1, 1, 7)}},
		{name: "output_shape beyond the taps", attrs: []modelgen.Attr{s2, modelgen.AInts("output_shape", 8)}, inputs: []*tensor.Tensor{x, w2},
			want: []*tensor.Tensor{f32([]float32{1, 1, 2, 2, 3, 3, 0, 0}, 1, 1, 8)}},
		// Full output [1 1 3 2 5 3 3]; SAME keeps 6 = 3*2, dropping the odd
		// padding unit at the end (SAME_UPPER) or the start (SAME_LOWER).
		{name: "SAME_UPPER", attrs: []modelgen.Attr{s2, modelgen.AString("auto_pad", "SAME_UPPER")}, inputs: []*tensor.Tensor{x, w3},
			want: []*tensor.Tensor{f32([]float32{1, 1, 3, 2, 5, 3}, 1, 1, 6)}},
		{name: "SAME_LOWER", attrs: []modelgen.Attr{s2, modelgen.AString("auto_pad", "SAME_LOWER")}, inputs: []*tensor.Tensor{x, w3},
			want: []*tensor.Tensor{f32([]float32{1, 3, 2, 5, 3, 3}, 1, 1, 6)}},
		{name: "dilation 2", attrs: []modelgen.Attr{modelgen.AInts("dilations", 2)}, inputs: []*tensor.Tensor{x, w2},
			want: []*tensor.Tensor{f32([]float32{1, 2, 4, 2, 3}, 1, 1, 5)}},
		{name: "group 2", attrs: []modelgen.Attr{modelgen.AInt("group", 2)},
			inputs: []*tensor.Tensor{f32([]float32{1, 2, 3, 4}, 1, 2, 2), f32([]float32{2, -1}, 2, 1, 1)},
			want:   []*tensor.Tensor{f32([]float32{2, 4, -3, -4}, 1, 2, 2)}},
		{name: "2-D, two output channels", inputs: []*tensor.Tensor{f32([]float32{1, 2, 3, 4}, 1, 1, 2, 2), f32([]float32{1, 0, 0, 2}, 1, 2, 1, 2)},
			want: []*tensor.Tensor{f32([]float32{1, 2, 0, 3, 4, 0, 0, 2, 4, 0, 6, 8}, 1, 2, 2, 3)}},
	})
	runOpErrTests(t, "ConvTranspose", []opErrTest{
		{name: "W channels", inputs: []*tensor.Tensor{x, f32(ones(4), 2, 1, 2)}, fragments: []string{"input W", "channels"}},
		{name: "output_padding too large", attrs: []modelgen.Attr{modelgen.AInts("output_padding", 2)}, inputs: []*tensor.Tensor{x, w2},
			fragments: []string{"output_padding", "stride"}},
	})
}

func TestHardmax(t *testing.T) {
	runOpTests(t, "Hardmax", []opTest{
		{name: "last axis, first of ties", inputs: []*tensor.Tensor{f32([]float32{1, 3, 3, 2, 0, 1}, 2, 3)},
			want: []*tensor.Tensor{f32([]float32{0, 1, 0, 1, 0, 0}, 2, 3)}},
		{name: "opset 11 flattens from axis", opset: 11, inputs: []*tensor.Tensor{f32([]float32{1, 4, 3, 2}, 1, 2, 2)},
			want: []*tensor.Tensor{f32([]float32{0, 1, 0, 0}, 1, 2, 2)}},
	})
}

func TestDepthSpace(t *testing.T) {
	x := f32(seq(0, 8), 1, 8, 1, 1)
	b2 := modelgen.AInt("blocksize", 2)
	dcr := f32([]float32{0, 2, 4, 6, 1, 3, 5, 7}, 1, 2, 2, 2)
	runOpTests(t, "DepthToSpace", []opTest{
		{name: "DCR", attrs: []modelgen.Attr{b2}, inputs: []*tensor.Tensor{x}, want: []*tensor.Tensor{dcr}},
		{name: "CRD", attrs: []modelgen.Attr{b2, modelgen.AString("mode", "CRD")}, inputs: []*tensor.Tensor{x},
			want: []*tensor.Tensor{f32(seq(0, 8), 1, 2, 2, 2)}},
		{name: "int64", attrs: []modelgen.Attr{b2}, inputs: []*tensor.Tensor{i64([]int64{5, 6, 7, 8}, 1, 4, 1, 1)},
			want: []*tensor.Tensor{i64([]int64{5, 6, 7, 8}, 1, 1, 2, 2)}},
	})
	runOpTests(t, "SpaceToDepth", []opTest{
		{name: "inverts DCR", attrs: []modelgen.Attr{b2}, inputs: []*tensor.Tensor{dcr}, want: []*tensor.Tensor{x}},
	})
	runOpErrTests(t, "SpaceToDepth", []opErrTest{
		{name: "not a multiple", attrs: []modelgen.Attr{modelgen.AInt("blocksize", 3)}, inputs: []*tensor.Tensor{dcr}, fragments: []string{"multiples of blocksize 3"}},
	})
}

// TestConvDepthwise checks the depthwise path (group == channels) against a
// naive direct convolution, over kernel sizes, strides, pads, dilations,
// bias and Relu, at 1 and 3 threads.
func TestConvDepthwise(t *testing.T) {
	tests := []struct {
		c, h, w, k, s, p, d int
		bias, relu          bool
	}{
		{4, 7, 9, 3, 1, 1, 1, true, false},
		{3, 8, 8, 3, 2, 1, 1, false, false},
		{5, 11, 13, 5, 2, 2, 1, true, true},
		{2, 6, 17, 3, 1, 2, 2, true, false},
		{6, 9, 40, 3, 3, 0, 1, false, true},
		{1, 5, 5, 5, 1, 0, 1, true, false},
		{3, 10, 21, 5, 1, 2, 1, false, false},
		{8, 14, 15, 3, 2, 0, 1, true, true},  // stride 2, no padding, odd width
		{17, 7, 7, 5, 1, 2, 1, true, false},  // a small map: the dropped columns outnumber nothing
		{2, 12, 33, 3, 2, 1, 2, false, true}, // stride and dilation 2: taps in both column phases
		{3, 40, 36, 3, 4, 1, 1, true, false}, // stride 4
	}
	for _, tt := range tests {
		x := randTensor(uint64(tt.c*100+tt.w), 2, tt.c, tt.h, tt.w)
		wt := randTensor(uint64(tt.k), tt.c, 1, tt.k, tt.k)
		b := randTensor(3, tt.c)
		in := []*tensor.Tensor{x, wt}
		if tt.bias {
			in = append(in, b)
		}
		n := &Node{Name: "dw", OpType: "Conv", Opset: 13, attrs: map[string]*onnxpb.AttributeProto{}}
		for _, a := range []modelgen.Attr{modelgen.AInt("group", int64(tt.c)), modelgen.AInts("strides", int64(tt.s), int64(tt.s)),
			modelgen.AInts("pads", int64(tt.p), int64(tt.p), int64(tt.p), int64(tt.p)), modelgen.AInts("dilations", int64(tt.d), int64(tt.d))} {
			n.attrs[a.GetName()] = a
		}
		if _, err := newConv(n); err != nil {
			t.Fatal(err)
		}
		oh := (tt.h+2*tt.p-tt.d*(tt.k-1)-1)/tt.s + 1
		ow := (tt.w+2*tt.p-tt.d*(tt.k-1)-1)/tt.s + 1
		want := tensor.New(tensor.Float32, 2, tt.c, oh, ow)
		for img := range 2 {
			for c := range tt.c {
				for i := range oh {
					for j := range ow {
						var sum float64
						if tt.bias {
							sum = float64(b.F32[c])
						}
						for ki := range tt.k {
							for kj := range tt.k {
								ih, iw := i*tt.s-tt.p+ki*tt.d, j*tt.s-tt.p+kj*tt.d
								if ih >= 0 && ih < tt.h && iw >= 0 && iw < tt.w {
									sum += float64(x.F32[((img*tt.c+c)*tt.h+ih)*tt.w+iw]) * float64(wt.F32[(c*tt.k+ki)*tt.k+kj])
								}
							}
						}
						if tt.relu && sum < 0 {
							sum = 0
						}
						want.F32[((img*tt.c+c)*oh+i)*ow+j] = float32(sum)
					}
				}
			}
		}
		for _, threads := range []int{1, 3} {
			run := n.threaded
			if tt.relu {
				run = n.reluThreaded
			}
			got, err := run(threads, in)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(got[0], want); d > 1e-5 {
				t.Errorf("%+v, %d threads: differs from the direct convolution by %g", tt, threads, d)
			}
		}
	}
}

// TestConvTransposeThreads checks that ConvTranspose gives the same result
// at 1 and 3 threads (the single-thread result is held to the ONNX
// conformance cases), for strides 1 and 2, pads and groups.
func TestConvTransposeThreads(t *testing.T) {
	for _, tt := range []struct {
		c, m, group, k, s, p int
	}{{8, 6, 1, 2, 2, 0}, {6, 4, 2, 3, 1, 1}, {4, 5, 1, 3, 2, 1}} {
		x := randTensor(5, 2, tt.c, 9, 11)
		w := randTensor(6, tt.c, tt.m/tt.group, tt.k, tt.k)
		b := randTensor(7, tt.m)
		n := &Node{Name: "ct", OpType: "ConvTranspose", Opset: 13, attrs: map[string]*onnxpb.AttributeProto{}}
		for _, a := range []modelgen.Attr{modelgen.AInt("group", int64(tt.group)), modelgen.AInts("strides", int64(tt.s), int64(tt.s)),
			modelgen.AInts("pads", int64(tt.p), int64(tt.p), int64(tt.p), int64(tt.p))} {
			n.attrs[a.GetName()] = a
		}
		if _, err := newConvTranspose(n); err != nil {
			t.Fatal(err)
		}
		one, err := n.threaded(1, []*tensor.Tensor{x, w, b})
		if err != nil {
			t.Fatal(err)
		}
		three, err := n.threaded(3, []*tensor.Tensor{x, w, b})
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(one[0], three[0]); d > 1e-5 {
			t.Errorf("%+v: 3 threads differ from 1 by %g", tt, d)
		}
	}
}

// TestConvTransposePatches checks ConvTranspose where each input pixel's
// taps fill a patch of their own (kernel = stride, no padding), computed
// without accumulation, against the definition summed directly: 2-D with
// 2x2 and 3x3 patches, groups and bias, 1-D, at 1 and 3 threads.
func TestConvTransposePatches(t *testing.T) {
	for _, tt := range []struct {
		c, m, group, k, h, w int
		bias                 bool
	}{{6, 4, 1, 2, 5, 37, true}, {4, 6, 2, 3, 4, 7, true}, {3, 5, 1, 2, 1, 40, false}, {8, 8, 1, 2, 33, 20, false}} {
		x := randTensor(11, 2, tt.c, tt.h, tt.w)
		wt := randTensor(12, tt.c, tt.m/tt.group, tt.k, tt.k)
		bias := randTensor(13, tt.m)
		in := []*tensor.Tensor{x, wt}
		if tt.bias {
			in = append(in, bias)
		}
		n := &Node{Name: "ct", OpType: "ConvTranspose", Opset: 13, attrs: map[string]*onnxpb.AttributeProto{}}
		for _, a := range []modelgen.Attr{modelgen.AInt("group", int64(tt.group)), modelgen.AInts("strides", int64(tt.k), int64(tt.k))} {
			n.attrs[a.GetName()] = a
		}
		if _, err := newConvTranspose(n); err != nil {
			t.Fatal(err)
		}
		oh, ow := tt.h*tt.k, tt.w*tt.k
		cg, mg := tt.c/tt.group, tt.m/tt.group
		want := tensor.New(tensor.Float32, 2, tt.m, oh, ow)
		for img := range 2 {
			for m := range tt.m {
				gi, mm := m/mg, m%mg
				for i := range oh {
					for j := range ow {
						var sum float64
						if tt.bias {
							sum = float64(bias.F32[m])
						}
						for c := gi * cg; c < (gi+1)*cg; c++ {
							xv := x.F32[((img*tt.c+c)*tt.h+i/tt.k)*tt.w+j/tt.k]
							sum += float64(xv) * float64(wt.F32[((c*mg+mm)*tt.k+i%tt.k)*tt.k+j%tt.k])
						}
						want.F32[((img*tt.m+m)*oh+i)*ow+j] = float32(sum)
					}
				}
			}
		}
		for _, threads := range []int{1, 3} {
			got, err := n.threaded(threads, in)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(got[0], want); d > 1e-5 {
				t.Errorf("%+v, %d threads: differs from the definition by %g", tt, threads, d)
			}
		}
	}
}
