package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestOnStepReportsEachStepOnce checks RunOptions.OnStep: one call per step
// of the compiled plan, with the fused step's joined name, also when the
// fused step's fast kernel declines and the steps it replaced run instead
// (a bias over two axes), whose own steps must not be reported again; and
// the work of each: the multiply's FLOPs (3x8 times 8x4: 2*96) and the bytes
// of inputs and outputs.
func TestOnStepReportsEachStepOnce(t *testing.T) {
	b := modelgen.NewBuilder("onstep", 13, 1)
	b.Input("x", tensor.Float32, []int64{3, 8})
	y := b.Node("MatMul", []string{"x", b.Normal("w", 0.3, 8, 4)}, nil)
	y = b.Node("Add", []string{y, b.Normal("bias", 0.3, 3, 4)}, nil)
	y = b.Node("Sigmoid", []string{y}, nil)
	b.Output(y, tensor.Float32, nil)
	fused, _ := compileBoth(t, b)
	var calls []StepTiming
	ro := RunOptions{Threads: 1, OnStep: func(s StepTiming) {
		if s.Took < 0 {
			t.Errorf("step %s took %v", s.Name, s.Took)
		}
		s.Took = 0
		calls = append(calls, s)
	}}
	if _, err := fused.RunWith(context.Background(), map[string]*tensor.Tensor{"x": randTensor(1, 3, 8)}, ro); err != nil {
		t.Fatal(err)
	}
	want := []StepTiming{
		{Name: "MatMul_1+Add_2", OpType: opEpilogue, FLOPs: 2 * 3 * 8 * 4, Bytes: 4 * (3*8 + 8*4 + 3*4 + 3*4)},
		{Name: "Sigmoid_3", OpType: "Sigmoid", Bytes: 4 * (3*4 + 3*4)},
	}
	if !slices.Equal(calls, want) {
		t.Errorf("OnStep calls %+v, want %+v", calls, want)
	}
}

// TestMultiplyAdds checks the multiply-adds counted for each multiplying op,
// strides, groups, broadcast batches and transposes included.
func TestMultiplyAdds(t *testing.T) {
	node := func(op string, attrs ...modelgen.Attr) *Node {
		n := &Node{Name: op, OpType: op, Opset: 17, attrs: map[string]*onnxpb.AttributeProto{}}
		for _, a := range attrs {
			n.attrs[a.GetName()] = a
		}
		return n
	}
	z := func(shape ...int) *tensor.Tensor { return tensor.New(tensor.Float32, shape...) }
	for _, tc := range []struct {
		name string
		n    *Node
		in   []*tensor.Tensor
		want int64
	}{
		{"conv 3x3 pad 1", node("Conv", modelgen.AInts("pads", 1, 1, 1, 1)), []*tensor.Tensor{z(2, 8, 10, 10), z(16, 8, 3, 3)}, 2 * 16 * 100 * 8 * 9},
		{"depthwise stride 2", node("Conv", modelgen.AInt("group", 8), modelgen.AInts("strides", 2, 2)), []*tensor.Tensor{z(1, 8, 9, 9), z(8, 1, 3, 3)}, 8 * 16 * 9},
		{"conv transpose", node("ConvTranspose"), []*tensor.Tensor{z(1, 4, 5, 5), z(4, 6, 2, 2)}, 4 * 25 * 6 * 4},
		{"matmul batched times 2-D", node("MatMul"), []*tensor.Tensor{z(2, 3, 5, 7), z(7, 4)}, 2 * 3 * 5 * 7 * 4},
		{"matmul 2-D times batched", node("MatMul"), []*tensor.Tensor{z(5, 7), z(3, 7, 4)}, 3 * 5 * 7 * 4},
		{"matmul vector", node("MatMul"), []*tensor.Tensor{z(7), z(7, 4)}, 7 * 4},
		{"gemm transA", node("Gemm", modelgen.AInt("transA", 1)), []*tensor.Tensor{z(7, 5), z(7, 4)}, 5 * 7 * 4},
		{"gemm transB", node("Gemm", modelgen.AInt("transB", 1)), []*tensor.Tensor{z(5, 7), z(4, 7)}, 5 * 7 * 4},
		{"not a multiply", node("Add"), []*tensor.Tensor{z(5, 7), z(5, 7)}, 0},
	} {
		if got := multiplyAdds(tc.n, tc.in); got != tc.want {
			t.Errorf("%s: %d multiply-adds, want %d", tc.name, got, tc.want)
		}
	}
}
