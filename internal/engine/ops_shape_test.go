package engine

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

func TestFlatten(t *testing.T) {
	x := f32(seq(0, 24), 2, 3, 4)
	tests := []struct {
		axis  int64
		shape []int
	}{
		{0, []int{1, 24}},
		{1, []int{2, 12}},
		{2, []int{6, 4}},
		{3, []int{24, 1}},
		{-1, []int{6, 4}},
		{-3, []int{1, 24}},
	}
	for _, tt := range tests {
		got, err := runOp(t, opCase{op: "Flatten", attrs: []modelgen.Attr{modelgen.AInt("axis", tt.axis)}, inputs: []*tensor.Tensor{x}})
		if err != nil {
			t.Fatalf("axis %d: %v", tt.axis, err)
		}
		checkTensor(t, got[0], f32(seq(0, 24), tt.shape...), 0)
	}
	_, err := runOp(t, opCase{op: "Flatten", attrs: []modelgen.Attr{modelgen.AInt("axis", 4)}, inputs: []*tensor.Tensor{x}})
	wantErr(t, err, "axis 4", "out of range")
	// Default axis is 1.
	got, err := runOp(t, opCase{op: "Flatten", inputs: []*tensor.Tensor{x}})
	if err != nil {
		t.Fatal(err)
	}
	checkTensor(t, got[0], f32(seq(0, 24), 2, 12), 0)
}

func TestReshape(t *testing.T) {
	x := f32(seq(0, 24), 2, 3, 4)
	tests := []struct {
		name      string
		x         *tensor.Tensor
		shape     []int64
		allowZero bool
		want      []int
	}{
		{"infer last", x, []int64{0, -1}, false, []int{2, 12}},
		{"infer only", x, []int64{-1}, false, []int{24}},
		{"zero copies dim", x, []int64{4, 0, 2}, false, []int{4, 3, 2}},
		{"infer first", x, []int64{-1, 6}, false, []int{4, 6}},
		{"explicit", x, []int64{3, 2, 2, 2}, false, []int{3, 2, 2, 2}},
		{"to scalar", f32([]float32{7}, 1, 1), []int64{}, false, []int{}},
		{"allowzero empty", f32(nil, 0, 3), []int64{3, 0}, true, []int{3, 0}},
		{"zero copies a zero dim", f32(nil, 0, 3), []int64{0, 3}, false, []int{0, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attrs []modelgen.Attr
			if tt.allowZero {
				attrs = append(attrs, modelgen.AInt("allowzero", 1))
			}
			got, err := runOp(t, opCase{opset: 14, op: "Reshape", attrs: attrs, inputs: []*tensor.Tensor{tt.x, i64(tt.shape, len(tt.shape))}})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, got[0], f32(tt.x.F32, tt.want...), 0)
		})
	}
}

func TestReshapeErrors(t *testing.T) {
	x := f32(seq(0, 24), 2, 3, 4)
	tests := []struct {
		name      string
		shape     *tensor.Tensor
		allowZero bool
		frag      []string
	}{
		{"two inferred", i64([]int64{-1, -1}, 2), false, []string{"both -1"}},
		{"below -1", i64([]int64{-2, 12}, 2), false, []string{"must be >= -1"}},
		{"count mismatch", i64([]int64{5, 5}, 2), false, []string{"25 elements", "24"}},
		{"not divisible", i64([]int64{5, -1}, 2), false, []string{"cannot infer"}},
		{"zero past rank", i64([]int64{2, 3, 4, 0}, 4), false, []string{"dimension 3 is 0", "rank 3"}},
		{"allowzero with -1", i64([]int64{0, -1}, 2), true, []string{"both 0 and -1"}},
		{"allowzero zero dim", i64([]int64{0, 24}, 2), true, []string{"0 elements", "24"}},
		{"int32 shape", &tensor.Tensor{DType: tensor.Int32, Shape: []int{1}, I32: []int32{24}}, false, []string{"int32", "must be int64"}},
		{"2-D shape", i64([]int64{2, 12}, 1, 2), false, []string{"must be 1-D"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attrs []modelgen.Attr
			if tt.allowZero {
				attrs = append(attrs, modelgen.AInt("allowzero", 1))
			}
			_, err := runOp(t, opCase{opset: 14, op: "Reshape", attrs: attrs, inputs: []*tensor.Tensor{x, tt.shape}})
			wantErr(t, err, append(tt.frag, "Reshape")...)
		})
	}
}

func TestIdentity(t *testing.T) {
	x := i64([]int64{1, 2, 3}, 3)
	got, err := runOp(t, opCase{op: "Identity", inputs: []*tensor.Tensor{x}})
	if err != nil {
		t.Fatal(err)
	}
	checkTensor(t, got[0], i64([]int64{1, 2, 3}, 3), 0)
	if &got[0].Shape[0] == &x.Shape[0] {
		t.Error("Identity output shares its Shape slice with the input")
	}
}

func TestDropout(t *testing.T) {
	x := f32([]float32{1, -2, 3, 4}, 2, 2)
	ratio := f32([]float32{0.5})
	falseT := &tensor.Tensor{DType: tensor.Bool, Shape: []int{}, B: []bool{false}}
	trueT := &tensor.Tensor{DType: tensor.Bool, Shape: []int{}, B: []bool{true}}
	allTrue := &tensor.Tensor{DType: tensor.Bool, Shape: []int{2, 2}, B: []bool{true, true, true, true}}

	tests := []struct {
		name   string
		opset  int64
		attrs  []modelgen.Attr
		inputs []*tensor.Tensor
		nout   int
	}{
		{"opset 13 data only", 13, nil, []*tensor.Tensor{x}, 1},
		{"opset 13 ratio and training false", 13, nil, []*tensor.Tensor{x, ratio, falseT}, 2},
		{"opset 13 mask", 13, nil, []*tensor.Tensor{x}, 2},
		{"opset 11 ratio attribute", 11, []modelgen.Attr{modelgen.AFloat("ratio", 0.3)}, []*tensor.Tensor{x}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{opset: tt.opset, op: "Dropout", attrs: tt.attrs, inputs: tt.inputs, nout: tt.nout})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, got[0], f32([]float32{1, -2, 3, 4}, 2, 2), 0)
			if tt.nout > 1 {
				checkTensor(t, got[1], allTrue, 0)
			}
		})
	}
	_, err := runOp(t, opCase{opset: 13, op: "Dropout", inputs: []*tensor.Tensor{x, ratio, trueT}})
	wantErr(t, err, "training_mode", "only inference")
}

// tensorAttr builds a TENSOR attribute by hand (modelgen has no helper for it).
func tensorAttr(name string, t *tensor.Tensor) modelgen.Attr {
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = int64(d)
	}
	dt := int32(t.DType)
	typ := onnxpb.AttributeProto_TENSOR
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &typ,
		T: &onnxpb.TensorProto{Dims: dims, DataType: &dt, RawData: append([]byte(nil), t.Bytes()...)}}
}

func TestConstant(t *testing.T) {
	floatsAttr := &onnxpb.AttributeProto{Name: proto.String("value_floats"), Type: onnxpb.AttributeProto_FLOATS.Enum(), Floats: []float32{1.5, -2}}
	tests := []struct {
		name string
		attr modelgen.Attr
		want *tensor.Tensor
	}{
		{"value float tensor", tensorAttr("value", f32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)), f32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)},
		{"value int64 tensor", tensorAttr("value", i64([]int64{0, -1}, 2)), i64([]int64{0, -1}, 2)},
		{"value_float", modelgen.AFloat("value_float", 2.5), f32([]float32{2.5})},
		{"value_floats", floatsAttr, f32([]float32{1.5, -2}, 2)},
		{"value_int", modelgen.AInt("value_int", 7), i64([]int64{7})},
		{"value_ints", modelgen.AInts("value_ints", 3, 4, 5), i64([]int64{3, 4, 5}, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{op: "Constant", attrs: []modelgen.Attr{tt.attr}})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, got[0], tt.want, 0)
		})
	}

	_, err := runOp(t, opCase{op: "Constant", attrs: []modelgen.Attr{modelgen.AInt("value_int", 1), modelgen.AFloat("value_float", 1)}})
	wantErr(t, err, "2 value attributes", "exactly one")
	_, err = runOp(t, opCase{op: "Constant"})
	wantErr(t, err, "0 value attributes")
	_, err = runOp(t, opCase{op: "Constant", attrs: []modelgen.Attr{modelgen.AString("value_string", "x")}})
	wantErr(t, err, "value_string", "not supported")
}

// TestConstantFeedsReshape checks a Constant's output used as another node's
// input, the way exporters write Reshape targets.
func TestConstantFeedsReshape(t *testing.T) {
	b := modelgen.NewBuilder("c", 13, 1)
	b.Input("x", tensor.Float32, []int64{2, 3})
	b.Output("y", tensor.Float32, []int64{3, 2})
	s := b.Node("Constant", nil, []modelgen.Attr{modelgen.AInts("value_ints", 3, -1)})
	b.Node("Reshape", []string{"x", s}, nil, "y")
	m, err := compileGraph(t, b, "copy", modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the shared constant must survive a run
		out, err := m.Run(t.Context(), map[string]*tensor.Tensor{"x": f32(seq(1, 6), 2, 3)})
		if err != nil {
			t.Fatal(err)
		}
		checkTensor(t, out["y"], f32(seq(1, 6), 3, 2), 0)
	}
}

func TestSqueezeUnsqueeze(t *testing.T) {
	x := f32(seq(0, 6), 1, 3, 1, 2)
	runTensorCases(t, []tensorCase{
		{name: "squeeze all ones", op: "Squeeze", inputs: ins(x), want: outs(f32(seq(0, 6), 3, 2))},
		{name: "squeeze axes input", op: "Squeeze", inputs: ins(x, i64([]int64{-2}, 1)), want: outs(f32(seq(0, 6), 1, 3, 2))},
		{name: "squeeze axes attribute (opset 11)", opset: 11, op: "Squeeze", attrs: []modelgen.Attr{modelgen.AInts("axes", 0)}, inputs: ins(x), want: outs(f32(seq(0, 6), 3, 1, 2))},
		{name: "squeeze to scalar", op: "Squeeze", inputs: ins(i64([]int64{4}, 1, 1)), want: outs(i64([]int64{4}))},
		{name: "unsqueeze", op: "Unsqueeze", inputs: ins(f32(seq(0, 6), 3, 2), i64([]int64{0, 3}, 2)), want: outs(f32(seq(0, 6), 1, 3, 2, 1))},
		{name: "unsqueeze negative unsorted", op: "Unsqueeze", inputs: ins(f32(seq(0, 6), 3, 2), i64([]int64{-1, 1}, 2)), want: outs(f32(seq(0, 6), 3, 1, 2, 1))},
		{name: "unsqueeze attribute (opset 11)", opset: 11, op: "Unsqueeze", attrs: []modelgen.Attr{modelgen.AInts("axes", 1)}, inputs: ins(f32(seq(0, 6), 3, 2)), want: outs(f32(seq(0, 6), 3, 1, 2))},
		{name: "unsqueeze scalar", op: "Unsqueeze", inputs: ins(tens([]bool{true}), i64([]int64{0}, 1)), want: outs(tens([]bool{true}, 1))},
	})
	runErrCases(t, []errCase{
		{name: "squeeze non-one", op: "Squeeze", inputs: ins(x, i64([]int64{1}, 1)), frag: []string{"dimension 1", "is 3", "size-1"}},
		{name: "squeeze axis range", op: "Squeeze", inputs: ins(x, i64([]int64{4}, 1)), frag: []string{"axis 4", "out of range"}},
		{name: "unsqueeze missing axes", op: "Unsqueeze", inputs: ins(x), frag: []string{"axes", "required"}},
		{name: "unsqueeze duplicate", op: "Unsqueeze", inputs: ins(x, i64([]int64{0, 0}, 2)), frag: []string{"appears twice"}},
		{name: "unsqueeze axis range", op: "Unsqueeze", inputs: ins(f32([]float32{1}, 1), i64([]int64{2}, 1)), frag: []string{"axis 2", "out of range"}},
	})
}
