package engine

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

func TestBinaryOps(t *testing.T) {
	tests := []struct {
		name string
		op   string
		a, b *tensor.Tensor
		want *tensor.Tensor
	}{
		{"same shape", "Add", f32([]float32{1, 2, 3, 4}, 2, 2), f32([]float32{10, 20, 30, 40}, 2, 2), f32([]float32{11, 22, 33, 44}, 2, 2)},
		{"scalar b", "Add", f32([]float32{1, 2, 3}, 3), f32([]float32{10}), f32([]float32{11, 12, 13}, 3)},
		{"scalar a", "Sub", f32([]float32{10}), f32([]float32{1, 2, 3}, 3), f32([]float32{9, 8, 7}, 3)},
		{"row vector", "Add", f32([]float32{1, 2, 3, 4, 5, 6}, 2, 3), f32([]float32{10, 20, 30}, 3), f32([]float32{11, 22, 33, 14, 25, 36}, 2, 3)},
		{"column vector", "Add", f32([]float32{1, 2, 3, 4, 5, 6}, 2, 3), f32([]float32{10, 20}, 2, 1), f32([]float32{11, 12, 13, 24, 25, 26}, 2, 3)},
		{"both sides expand", "Mul", f32([]float32{1, 2}, 2, 1), f32([]float32{1, 10, 100}, 1, 3), f32([]float32{1, 10, 100, 2, 20, 200}, 2, 3)},
		{"rank promotion", "Add", f32([]float32{1, 2}, 2), f32([]float32{10, 20, 30}, 3, 1, 1), f32([]float32{11, 12, 21, 22, 31, 32}, 3, 1, 2)},
		{"middle axis broadcast", "Sub", f32(seq(0, 8), 2, 2, 2), f32([]float32{1, 2, 3, 4}, 2, 1, 2), f32([]float32{-1, -1, 1, 1, 1, 1, 3, 3}, 2, 2, 2)},
		{"size-1 output axis", "Add", f32([]float32{1}, 1, 1), f32([]float32{2}, 1), f32([]float32{3}, 1, 1)},
		{"empty", "Add", f32(nil, 0, 3), f32([]float32{1, 2, 3}, 3), f32(nil, 0, 3)},
		{"div", "Div", f32([]float32{1, 9, -8}, 3), f32([]float32{2, 3, 4}, 3), f32([]float32{0.5, 3, -2}, 3)},
		{"int64 add broadcast", "Add", i64([]int64{1, 2, 3, 4}, 2, 2), i64([]int64{100}, 1), i64([]int64{101, 102, 103, 104}, 2, 2)},
		{"int64 div truncates", "Div", i64([]int64{7, -7}, 2), i64([]int64{2}), i64([]int64{3, -3}, 2)},
		{"float64 mul", "Mul", &tensor.Tensor{DType: tensor.Float64, Shape: []int{2}, F64: []float64{1.5, 2}}, &tensor.Tensor{DType: tensor.Float64, Shape: []int{}, F64: []float64{2}}, &tensor.Tensor{DType: tensor.Float64, Shape: []int{2}, F64: []float64{3, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{op: tt.op, inputs: []*tensor.Tensor{tt.a, tt.b}})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, got[0], tt.want, 0)
		})
	}
}

func TestBinaryOpErrors(t *testing.T) {
	tests := []struct {
		name string
		op   string
		a, b *tensor.Tensor
		frag []string
	}{
		{"not broadcastable", "Add", f32(seq(0, 6), 2, 3), f32(seq(0, 2), 2), []string{"do not broadcast", "[2 3]", "[2]"}},
		{"dtype mismatch", "Mul", f32([]float32{1}, 1), i64([]int64{1}, 1), []string{"same dtype"}},
		{"int division by zero", "Div", i64([]int64{1, 2}, 2), i64([]int64{1, 0}, 2), []string{"division by zero"}},
		{"unsupported dtype", "Add", &tensor.Tensor{DType: tensor.Bool, Shape: []int{1}, B: []bool{true}}, &tensor.Tensor{DType: tensor.Bool, Shape: []int{1}, B: []bool{true}}, []string{"bool", "Add supports"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runOp(t, opCase{op: tt.op, inputs: []*tensor.Tensor{tt.a, tt.b}})
			wantErr(t, err, append(tt.frag, tt.op+"_1")...)
			// A kernel refusing what a request brought is the request's
			// fault (400 at the server), not an internal error.
			if !errors.Is(err, ErrBadInput) {
				t.Errorf("kernel error %v does not wrap ErrBadInput", err)
			}
		})
	}
}

func TestBroadcastShapes(t *testing.T) {
	tests := []struct {
		a, b, want []int
		ok         bool
	}{
		{[]int{2, 3}, []int{3}, []int{2, 3}, true},
		{[]int{}, []int{4, 1}, []int{4, 1}, true},
		{[]int{8, 1, 6, 1}, []int{7, 1, 5}, []int{8, 7, 6, 5}, true},
		{[]int{0, 1}, []int{1, 5}, []int{0, 5}, true},
		{[]int{2, 1}, []int{8, 4, 3}, nil, false},
		{[]int{3}, []int{4}, nil, false},
	}
	for _, tt := range tests {
		got, err := broadcastShapes(tt.a, tt.b)
		if (err == nil) != tt.ok {
			t.Errorf("broadcastShapes(%v, %v): err %v, want ok=%v", tt.a, tt.b, err, tt.ok)
			continue
		}
		if tt.ok && tensor.ShapeString(got) != tensor.ShapeString(tt.want) {
			t.Errorf("broadcastShapes(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestUnsupportedOp checks that Compile rejects an unknown op, naming the op, the
// node and the opset.
func TestUnsupportedOp(t *testing.T) {
	_, err := runOp(t, opCase{opset: 13, op: "Foo", inputs: []*tensor.Tensor{f32([]float32{1}, 1)}})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v, want an error wrapping ErrUnsupported", err)
	}
	wantErr(t, err, "Foo", `"Foo_1"`, "opset 13")
	if errors.Is(err, onnx.ErrBadModel) {
		t.Errorf("unsupported op error %v also wraps ErrBadModel", err)
	}
}

// TestUnsupportedOpsAllNamed checks that one error names every unsupported
// op of a model, in the default domain and others, with its node count.
func TestUnsupportedOpsAllNamed(t *testing.T) {
	b := modelgen.NewBuilder("unsupported", 17, 1)
	b.Input("x", tensor.Float32, []int64{2})
	b.Output("y", tensor.Float32, []int64{2})
	x := b.Node("Foo", []string{"x"}, nil)
	x = b.Node("Relu", []string{x}, nil)
	x = b.Node("Foo", []string{x}, nil)
	x = b.Node("Bar", []string{x}, nil)
	b.Node("Custom", []string{x}, nil, "y")
	b.SetDomain("Custom_5", "com.example")
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	src, err := onnx.Load(path, onnx.Copy)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = Compile(src)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v, want an error wrapping ErrUnsupported", err)
	}
	wantErr(t, err, "3 ops", "opset 17", `Foo (2 nodes, the first "Foo_1")`, `Bar (node "Bar_4")`, `com.example:Custom (node "Custom_5")`)
	if strings.Contains(err.Error(), "Relu") {
		t.Errorf("error %v names Relu, which the engine implements", err)
	}
}

func TestBinaryOpsMore(t *testing.T) {
	tests := []struct {
		name  string
		op    string
		attrs []modelgen.Attr
		in    []*tensor.Tensor
		want  *tensor.Tensor
		tol   float64
	}{
		{"uint8 add wraps", "Add", nil, []*tensor.Tensor{tens([]uint8{250, 1}, 2), tens([]uint8{10}, 1)}, tens([]uint8{4, 11}, 2), 0},
		{"int8 mul", "Mul", nil, []*tensor.Tensor{tens([]int8{-3, 4}, 2), tens([]int8{5, -6}, 2)}, tens([]int8{-15, -24}, 2), 0},
		{"int32 div truncates", "Div", nil, []*tensor.Tensor{tens([]int32{7, -7}, 2), tens([]int32{2}, 1)}, tens([]int32{3, -3}, 2), 0},
		{"pow float", "Pow", nil, []*tensor.Tensor{f32([]float32{2, 4, -2}, 3), f32([]float32{3, 0.5, 2}, 3)}, f32([]float32{8, 2, 4}, 3), 0},
		{"pow broadcast scalar", "Pow", nil, []*tensor.Tensor{f32([]float32{1, 2, 3}, 3), f32([]float32{2})}, f32([]float32{1, 4, 9}, 3), 0},
		{"pow square raises rank", "Pow", nil, []*tensor.Tensor{f32([]float32{-1.5, 3}, 2), i64([]int64{2}, 1, 1)}, f32([]float32{2.25, 9}, 1, 2), 0},
		{"pow float base int64 exponent", "Pow", nil, []*tensor.Tensor{f32([]float32{1.5, 2}, 2), i64([]int64{2, -1}, 2)}, f32([]float32{2.25, 0.5}, 2), 0},
		{"pow int64 base int64 exponent exact", "Pow", nil, []*tensor.Tensor{i64([]int64{3, 7, 2}, 3), i64([]int64{39, 0, -1}, 3)}, i64([]int64{4052555153018976267, 1, 0}, 3), 0},
		{"pow int32 base float exponent truncates", "Pow", nil, []*tensor.Tensor{tens([]int32{2, 9}, 2), f32([]float32{0.5, 0.5}, 2)}, tens([]int32{1, 3}, 2), 0},
		{"mod python sign", "Mod", nil, []*tensor.Tensor{i64([]int64{-7, 7, -7, 7}, 4), i64([]int64{3, -3, -3, 3}, 4)}, i64([]int64{2, -2, -1, 1}, 4), 0},
		{"mod fmod int", "Mod", []modelgen.Attr{modelgen.AInt("fmod", 1)}, []*tensor.Tensor{tens([]int32{-7, 7}, 2), tens([]int32{3, -3}, 2)}, tens([]int32{-1, 1}, 2), 0},
		{"mod fmod float", "Mod", []modelgen.Attr{modelgen.AInt("fmod", 1)}, []*tensor.Tensor{f32([]float32{-7.5, 7.5}, 2), f32([]float32{2}, 1)}, f32([]float32{-1.5, 1.5}, 2), 0},
		{"max variadic broadcast", "Max", nil, []*tensor.Tensor{f32([]float32{1, 5}, 2), f32([]float32{3}, 1), f32([]float32{0, 2, 4, 6}, 2, 2)}, f32([]float32{3, 5, 4, 6}, 2, 2), 0},
		{"min one input", "Min", nil, []*tensor.Tensor{f32([]float32{1, -5}, 2)}, f32([]float32{1, -5}, 2), 0},
		{"min int64", "Min", nil, []*tensor.Tensor{i64([]int64{1, -5}, 2), i64([]int64{0, 0}, 2)}, i64([]int64{0, -5}, 2), 0},
		{"max propagates NaN", "Max", nil, []*tensor.Tensor{f32([]float32{float32(math.NaN()), 1}, 2), f32([]float32{1, float32(math.NaN())}, 2)}, f32([]float32{float32(math.NaN()), float32(math.NaN())}, 2), 0},
		{"sum", "Sum", nil, []*tensor.Tensor{f32([]float32{1, 2}, 2), f32([]float32{10}, 1), f32([]float32{100, 200}, 2)}, f32([]float32{111, 212}, 2), 0},
		{"mean", "Mean", nil, []*tensor.Tensor{f32([]float32{1, 2}, 2), f32([]float32{3, 6}, 2)}, f32([]float32{2, 4}, 2), 0},
		{"prelu per channel", "PRelu", nil, []*tensor.Tensor{f32([]float32{-1, 1, -2, 2}, 2, 2), f32([]float32{0.1, 0.5}, 2, 1)}, f32([]float32{-0.1, 1, -1, 2}, 2, 2), 1e-7},
		{"prelu scalar slope", "PRelu", nil, []*tensor.Tensor{f32([]float32{-4, 4}, 2), f32([]float32{0.25})}, f32([]float32{-1, 4}, 2), 0},
		// The 16-bit and unsigned 32/64-bit integers (opset 18 for the bitwise ops).
		{"uint64 add wraps", "Add", nil, []*tensor.Tensor{tens([]uint64{math.MaxUint64, 1}, 2), tens([]uint64{2}, 1)}, tens([]uint64{1, 3}, 2), 0},
		{"int16 sub broadcasts", "Sub", nil, []*tensor.Tensor{tens([]int16{-32768, 5}, 2, 1), tens([]int16{1, -1}, 2)}, tens([]int16{32767, -32767, 4, 6}, 2, 2), 0},
		{"uint32 div", "Div", nil, []*tensor.Tensor{tens([]uint32{math.MaxUint32, 9}, 2), tens([]uint32{2}, 1)}, tens([]uint32{math.MaxUint32 / 2, 4}, 2), 0},
		{"uint64 max beyond int64", "Max", nil, []*tensor.Tensor{tens([]uint64{1 << 63, 3}, 2), tens([]uint64{5, 4}, 2)}, tens([]uint64{1 << 63, 4}, 2), 0},
		{"uint16 min", "Min", nil, []*tensor.Tensor{tens([]uint16{65535, 2}, 2), tens([]uint16{7}, 1)}, tens([]uint16{7, 2}, 2), 0},
		{"int16 mod python sign", "Mod", nil, []*tensor.Tensor{tens([]int16{-7, 7}, 2), tens([]int16{3, -3}, 2)}, tens([]int16{2, -2}, 2), 0},
		{"uint64 mod", "Mod", nil, []*tensor.Tensor{tens([]uint64{1<<63 + 3}, 1), tens([]uint64{10}, 1)}, tens([]uint64{(1<<63 + 3) % 10}, 1), 0},
		{"pow float base uint64 exponent", "Pow", nil, []*tensor.Tensor{f32([]float32{2, 3}, 2), tens([]uint64{10, 2}, 2)}, f32([]float32{1024, 9}, 2), 0},
		{"bitshift left uint8 drops high bits", "BitShift", []modelgen.Attr{modelgen.AString("direction", "LEFT")}, []*tensor.Tensor{tens([]uint8{0x81, 1}, 2), tens([]uint8{1, 9}, 2)}, tens([]uint8{2, 0}, 2), 0},
		{"bitshift right uint64", "BitShift", []modelgen.Attr{modelgen.AString("direction", "RIGHT")}, []*tensor.Tensor{tens([]uint64{1 << 63, 16}, 2), tens([]uint64{63, 64}, 2)}, tens([]uint64{1, 0}, 2), 0},
		{"bitwise and int16", "BitwiseAnd", nil, []*tensor.Tensor{tens([]int16{-1, 0x0ff0}, 2), tens([]int16{0x00ff}, 1)}, tens([]int16{0x00ff, 0x00f0}, 2), 0},
		{"bitwise or uint32", "BitwiseOr", nil, []*tensor.Tensor{tens([]uint32{1 << 31, 1}, 2), tens([]uint32{2}, 1)}, tens([]uint32{1<<31 | 2, 3}, 2), 0},
		{"bitwise xor int64", "BitwiseXor", nil, []*tensor.Tensor{i64([]int64{-1, 6}, 2), i64([]int64{5}, 1)}, i64([]int64{-6, 3}, 2), 0},
		{"uint64 greater beyond int64", "Greater", nil, []*tensor.Tensor{tens([]uint64{1 << 63, 1}, 2), tens([]uint64{1}, 1)}, tens([]bool{true, false}, 2), 0},
		{"int16 equal", "Equal", nil, []*tensor.Tensor{tens([]int16{-2, 3}, 2), tens([]int16{-2}, 1)}, tens([]bool{true, false}, 2), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opset := int64(13)
			if strings.HasPrefix(tt.op, "Bitwise") {
				opset = 18
			}
			got, err := runOp(t, opCase{opset: opset, op: tt.op, attrs: tt.attrs, inputs: tt.in})
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, got[0], tt.want, tt.tol)
		})
	}
}

func TestBinaryOpMoreErrors(t *testing.T) {
	tests := []struct {
		name  string
		op    string
		attrs []modelgen.Attr
		in    []*tensor.Tensor
		frag  []string
	}{
		{"mod by zero", "Mod", nil, []*tensor.Tensor{i64([]int64{1}, 1), i64([]int64{0}, 1)}, []string{"division by zero"}},
		{"mod float without fmod", "Mod", nil, []*tensor.Tensor{f32([]float32{1}, 1), f32([]float32{1}, 1)}, []string{"float32", "fmod=0"}},
		{"uint8 div by zero", "Div", nil, []*tensor.Tensor{tens([]uint8{1}, 1), tens([]uint8{0}, 1)}, []string{"division by zero"}},
		{"pow bool exponent", "Pow", nil, []*tensor.Tensor{f32([]float32{1}, 1), tens([]bool{true}, 1)}, []string{"input Y", "bool"}},
		{"pow bool base", "Pow", nil, []*tensor.Tensor{tens([]bool{true}, 1), f32([]float32{1}, 1)}, []string{"input X", "bool"}},
		{"pow shapes", "Pow", nil, []*tensor.Tensor{f32([]float32{1, 2}, 2), f32([]float32{1, 2, 3}, 3)}, []string{"do not broadcast"}},
		{"max dtype mismatch", "Max", nil, []*tensor.Tensor{f32([]float32{1}, 1), i64([]int64{1}, 1)}, []string{"input 1", "same dtype"}},
		{"max bool", "Max", nil, []*tensor.Tensor{tens([]bool{true}, 1)}, []string{"bool", "Max supports"}},
		{"bitshift signed", "BitShift", []modelgen.Attr{modelgen.AString("direction", "LEFT")}, []*tensor.Tensor{tens([]int32{1}, 1), tens([]int32{1}, 1)}, []string{"int32", "BitShift supports", "uint"}},
		{"bitshift direction", "BitShift", []modelgen.Attr{modelgen.AString("direction", "UP")}, []*tensor.Tensor{tens([]uint8{1}, 1), tens([]uint8{1}, 1)}, []string{"direction", "LEFT or RIGHT"}},
		{"uint64 div by zero", "Div", nil, []*tensor.Tensor{tens([]uint64{1}, 1), tens([]uint64{0}, 1)}, []string{"division by zero"}},
		{"prelu slope wider than x", "PRelu", nil, []*tensor.Tensor{f32([]float32{1}, 1), f32([]float32{1, 2}, 2)}, []string{"slope", "[2]", "X's shape [1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runOp(t, opCase{opset: 13, op: tt.op, attrs: tt.attrs, inputs: tt.in})
			wantErr(t, err, tt.frag...)
		})
	}
}
