package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// runOpConsts is runOp with the inputs whose indices are in consts stored as
// initializers, so that the op's factory sees them through Node.Const and
// Compile can infer shapes and fold.
func runOpConsts(t *testing.T, c opCase, consts ...int) ([]*tensor.Tensor, error) {
	t.Helper()
	opset := c.opset
	if opset == 0 {
		opset = 13
	}
	nout := max(c.nout, 1)
	isConst := map[int]bool{}
	for _, i := range consts {
		isConst[i] = true
	}
	b := modelgen.NewBuilder("op_test", opset, 1)
	feeds := map[string]*tensor.Tensor{}
	var ins []string
	for i, in := range c.inputs {
		name := fmt.Sprintf("in%d", i)
		switch {
		case in == nil:
			ins = append(ins, "")
			continue
		case isConst[i]:
			b.InitTensor(name, in)
		default:
			shape := make([]int64, len(in.Shape))
			for j, d := range in.Shape {
				shape[j] = int64(d)
			}
			b.Input(name, in.DType, shape)
			feeds[name] = in
		}
		ins = append(ins, name)
	}
	var outs []string
	for i := 0; i < nout; i++ {
		name := fmt.Sprintf("out%d", i)
		b.Output(name, tensor.Float32, nil)
		outs = append(outs, name)
	}
	b.Node(c.op, ins, c.attrs, outs...)
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		return nil, err
	}
	res, err := m.Run(context.Background(), feeds)
	if err != nil {
		return nil, err
	}
	got := make([]*tensor.Tensor, nout)
	for i, name := range outs {
		got[i] = res[name]
	}
	return got, nil
}

// opTest is one hand-checked case of an op: its outputs are compared with want
// (nil entries are not checked) within 1e-5.
type opTest struct {
	name   string
	opset  int64
	attrs  []modelgen.Attr
	inputs []*tensor.Tensor
	consts []int // indices of inputs stored as initializers
	want   []*tensor.Tensor
}

func runOpTests(t *testing.T, op string, tests []opTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOpConsts(t, opCase{opset: tt.opset, op: op, attrs: tt.attrs, inputs: tt.inputs, nout: len(tt.want)}, tt.consts...)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tt.want {
				if w != nil {
					checkTensor(t, got[i], w, 1e-5)
				}
			}
		})
	}
}

// opErrTest is a node the engine must reject, at compile or run time, with an
// error mentioning every fragment; unsupported says it must wrap ErrUnsupported.
type opErrTest struct {
	name        string
	opset       int64
	attrs       []modelgen.Attr
	inputs      []*tensor.Tensor
	nout        int
	unsupported bool
	fragments   []string
}

func runOpErrTests(t *testing.T, op string, tests []opErrTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runOp(t, opCase{opset: tt.opset, op: op, attrs: tt.attrs, inputs: tt.inputs, nout: tt.nout})
			wantErr(t, err, tt.fragments...)
			if errors.Is(err, ErrUnsupported) != tt.unsupported {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %v, want %v", err, !tt.unsupported, tt.unsupported)
			}
		})
	}
}

func TestLayerNormalization(t *testing.T) {
	x := f32([]float32{1, 2, 3, 2, 4, 6}, 2, 3)
	const r = 1.2247449 // 1/sqrt(2/3): rows [1 2 3] and [2 4 6] both normalise to [-r 0 r]
	eps := modelgen.AFloat("epsilon", 0)
	runOpTests(t, "LayerNormalization", []opTest{
		{name: "last axis", opset: 17, attrs: []modelgen.Attr{eps}, inputs: []*tensor.Tensor{x, f32([]float32{1, 1, 1}, 3)},
			want: []*tensor.Tensor{f32([]float32{-r, 0, r, -r, 0, r}, 2, 3)}},
		{name: "scale bias and statistics", opset: 17, attrs: []modelgen.Attr{eps},
			inputs: []*tensor.Tensor{x, f32([]float32{1, 2, 3}, 3), f32([]float32{0, 1, 0}, 3)}, consts: []int{1, 2},
			want: []*tensor.Tensor{f32([]float32{-r, 1, 3 * r, -r, 1, 3 * r}, 2, 3),
				f32([]float32{2, 4}, 2, 1), f32([]float32{r, r / 2}, 2, 1)}},
		{name: "axis 0", opset: 17, attrs: []modelgen.Attr{eps, modelgen.AInt("axis", 0)},
			inputs: []*tensor.Tensor{x, f32(ones(6), 2, 3)},
			want:   []*tensor.Tensor{f32([]float32{-2 * r / 2, -r / 2, 0, -r / 2, r / 2, 3 * r / 2}, 2, 3)}},
		{name: "scale broadcast", opset: 17, attrs: []modelgen.Attr{eps}, inputs: []*tensor.Tensor{x, f32([]float32{2}, 1)},
			want: []*tensor.Tensor{f32([]float32{-2 * r, 0, 2 * r, -2 * r, 0, 2 * r}, 2, 3)}},
	})
	runOpErrTests(t, "LayerNormalization", []opErrTest{
		{name: "stash_type", opset: 17, attrs: []modelgen.Attr{modelgen.AInt("stash_type", 0)},
			inputs: []*tensor.Tensor{x, f32(ones(3), 3)}, unsupported: true, fragments: []string{"stash_type"}},
		{name: "scale shape", opset: 17, inputs: []*tensor.Tensor{x, f32(ones(2), 2)}, fragments: []string{"Scale", "broadcast"}},
		{name: "axis", opset: 17, attrs: []modelgen.Attr{modelgen.AInt("axis", 2)}, inputs: []*tensor.Tensor{x, f32(ones(3), 3)},
			fragments: []string{"axis 2", "out of range"}},
	})
}

func TestBatchNormalization(t *testing.T) {
	x := f32([]float32{1, 2, 3, 4}, 1, 2, 1, 2)
	params := []*tensor.Tensor{f32([]float32{1, 2}, 2), f32([]float32{0, 1}, 2), f32([]float32{1, 3}, 2), f32([]float32{4, 1}, 2)}
	in := append([]*tensor.Tensor{x}, params...)
	want := []*tensor.Tensor{f32([]float32{0, 0.5, 1, 3}, 1, 2, 1, 2)}
	eps := modelgen.AFloat("epsilon", 0)
	runOpTests(t, "BatchNormalization", []opTest{
		{name: "parameters at run time", opset: 15, attrs: []modelgen.Attr{eps}, inputs: in, want: want},
		{name: "constant parameters", opset: 15, attrs: []modelgen.Attr{eps}, inputs: in, consts: []int{1, 2, 3, 4}, want: want},
		{name: "2-D input", opset: 9, attrs: []modelgen.Attr{eps}, inputs: append([]*tensor.Tensor{f32([]float32{1, 3, 2, 4}, 2, 2)}, params...),
			want: []*tensor.Tensor{f32([]float32{0, 1, 0.5, 3}, 2, 2)}},
		{name: "spatial 0 before opset 9", opset: 7, attrs: []modelgen.Attr{eps, modelgen.AInt("spatial", 0)},
			inputs: []*tensor.Tensor{x, f32(ones(4), 2, 1, 2), f32([]float32{0, 1, 2, 3}, 2, 1, 2), f32(make([]float32, 4), 2, 1, 2), f32(ones(4), 2, 1, 2)},
			want:   []*tensor.Tensor{f32([]float32{1, 3, 5, 7}, 1, 2, 1, 2)}},
	})
	runOpErrTests(t, "BatchNormalization", []opErrTest{
		{name: "training mode", opset: 15, attrs: []modelgen.Attr{modelgen.AInt("training_mode", 1)}, inputs: in,
			unsupported: true, fragments: []string{"training_mode"}},
		{name: "running statistics output", opset: 9, inputs: in, nout: 3, unsupported: true, fragments: []string{"output 1", "training"}},
		{name: "parameter length", opset: 15, inputs: []*tensor.Tensor{x, params[0], params[1], params[2], f32(ones(3), 3)},
			fragments: []string{"input_var", "2 elements"}},
	})
}

func TestInstanceNormalizationAndLRN(t *testing.T) {
	runOpTests(t, "InstanceNormalization", []opTest{
		{name: "one plane", attrs: []modelgen.Attr{modelgen.AFloat("epsilon", 0)},
			inputs: []*tensor.Tensor{f32([]float32{1, 3, 5, 7}, 1, 2, 2), f32([]float32{2, 1}, 2), f32([]float32{1, 7}, 2)},
			want:   []*tensor.Tensor{f32([]float32{-1, 3, 6, 8}, 1, 2, 2)}},
	})
	runOpTests(t, "LRN", []opTest{
		// c=0 sums channels 0..1 (1+4), c=1 sums channel 1 (4): y = x / (1 + 2/2*sum).
		{name: "size 2", attrs: []modelgen.Attr{modelgen.AInt("size", 2), modelgen.AFloat("alpha", 2), modelgen.AFloat("beta", 1)},
			inputs: []*tensor.Tensor{f32([]float32{1, 2}, 1, 2, 1, 1)},
			want:   []*tensor.Tensor{f32([]float32{1.0 / 6, 0.4}, 1, 2, 1, 1)}},
	})
	runOpErrTests(t, "LRN", []opErrTest{
		{name: "size required", inputs: []*tensor.Tensor{f32([]float32{1, 2}, 1, 2, 1, 1)}, fragments: []string{"size", "required"}},
	})
}

func TestMeanVarianceNormalization(t *testing.T) {
	runOpTests(t, "MeanVarianceNormalization", []opTest{
		// Per channel over N, H, W: channel 0 holds 1, 3 (mean 2, std 1), channel 1 holds 5, 5 (std 0).
		{name: "default axes", inputs: []*tensor.Tensor{f32([]float32{1, 5, 3, 5}, 2, 2, 1, 1)},
			want: []*tensor.Tensor{f32([]float32{-1, 0, 1, 0}, 2, 2, 1, 1)}},
		{name: "last axis", attrs: []modelgen.Attr{modelgen.AInts("axes", -1)}, inputs: []*tensor.Tensor{f32([]float32{1, 3, 10, 14}, 2, 2)},
			want: []*tensor.Tensor{f32([]float32{-1, 1, -1, 1}, 2, 2)}},
	})
}
