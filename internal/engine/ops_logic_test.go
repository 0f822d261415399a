package engine

import (
	"math"
	"testing"

	"github.com/spindleml/spindle/internal/tensor"
)

func TestLogicOps(t *testing.T) {
	nan := float32(math.NaN())
	bools := func(v ...bool) []bool { return v }
	tests := []struct {
		name string
		op   string
		in   []*tensor.Tensor
		want *tensor.Tensor
	}{
		{"equal", "Equal", []*tensor.Tensor{f32([]float32{1, 2, nan}, 3), f32([]float32{1, 3, nan}, 3)}, tens(bools(true, false, false), 3)},
		{"equal int64 broadcast", "Equal", []*tensor.Tensor{i64([]int64{1, 2, 3, 4}, 2, 2), i64([]int64{2}, 1)}, tens(bools(false, true, false, false), 2, 2)},
		{"equal bool", "Equal", []*tensor.Tensor{tens(bools(true, false), 2), tens(bools(true, true), 2)}, tens(bools(true, false), 2)},
		{"less", "Less", []*tensor.Tensor{f32([]float32{1, 2, 3}, 3), f32([]float32{2}, 1)}, tens(bools(true, false, false), 3)},
		{"less or equal", "LessOrEqual", []*tensor.Tensor{tens([]int32{1, 2, 3}, 3), tens([]int32{2}, 1)}, tens(bools(true, true, false), 3)},
		{"greater column", "Greater", []*tensor.Tensor{f32([]float32{1, 2}, 2, 1), f32([]float32{0, 1, 2}, 3)}, tens(bools(true, false, false, true, true, false), 2, 3)},
		{"greater or equal uint8", "GreaterOrEqual", []*tensor.Tensor{tens([]uint8{0, 255}, 2), tens([]uint8{255}, 1)}, tens(bools(false, true), 2)},
		{"and", "And", []*tensor.Tensor{tens(bools(true, true, false, false), 4), tens(bools(true, false, true, false), 4)}, tens(bools(true, false, false, false), 4)},
		{"or", "Or", []*tensor.Tensor{tens(bools(true, true, false, false), 4), tens(bools(true, false, true, false), 4)}, tens(bools(true, true, true, false), 4)},
		{"xor broadcast", "Xor", []*tensor.Tensor{tens(bools(true, false), 2, 1), tens(bools(true, false), 2)}, tens(bools(false, true, true, false), 2, 2)},
		{"not", "Not", []*tensor.Tensor{tens(bools(true, false), 2)}, tens(bools(false, true), 2)},
		{"where", "Where", []*tensor.Tensor{tens(bools(true, false, true), 3), f32([]float32{1, 2, 3}, 3), f32([]float32{-1, -2, -3}, 3)}, f32([]float32{1, -2, 3}, 3)},
		{"where broadcast all three", "Where", []*tensor.Tensor{tens(bools(true, false), 2, 1), f32([]float32{1, 2, 3}, 3), f32([]float32{0})}, f32([]float32{1, 2, 3, 0, 0, 0}, 2, 3)},
		{"where int64 scalar cond", "Where", []*tensor.Tensor{tens(bools(false)), i64([]int64{1, 2}, 2), i64([]int64{7, 8}, 2)}, i64([]int64{7, 8}, 2)},
		{"where bool values", "Where", []*tensor.Tensor{tens(bools(true, false), 2), tens(bools(false, false), 2), tens(bools(true, true), 2)}, tens(bools(false, true), 2)},
		{"where uint8 strided", "Where", []*tensor.Tensor{tens(bools(true, false, false, true), 2, 2), tens([]uint8{1, 2}, 2, 1), tens([]uint8{9, 8}, 1, 2)}, tens([]uint8{1, 8, 9, 2}, 2, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{op: tt.op, inputs: tt.in})
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, got[0], tt.want, 0)
		})
	}
}

func TestLogicErrors(t *testing.T) {
	tests := []struct {
		name string
		op   string
		in   []*tensor.Tensor
		frag []string
	}{
		{"and on floats", "And", []*tensor.Tensor{f32([]float32{1}, 1), f32([]float32{1}, 1)}, []string{"float32", "And supports bool"}},
		{"less on bools", "Less", []*tensor.Tensor{tens([]bool{true}, 1), tens([]bool{true}, 1)}, []string{"bool", "Less supports"}},
		{"where condition not bool", "Where", []*tensor.Tensor{f32([]float32{1}, 1), f32([]float32{1}, 1), f32([]float32{1}, 1)}, []string{"condition", "must be bool"}},
		{"where dtype mismatch", "Where", []*tensor.Tensor{tens([]bool{true}, 1), f32([]float32{1}, 1), i64([]int64{1}, 1)}, []string{"same dtype"}},
		{"where shapes", "Where", []*tensor.Tensor{tens([]bool{true, false}, 2), f32([]float32{1, 2, 3}, 3), f32([]float32{1}, 1)}, []string{"do not broadcast"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runOp(t, opCase{op: tt.op, inputs: tt.in})
			wantErr(t, err, tt.frag...)
		})
	}
}
