package engine

import (
	"fmt"

	"github.com/spindleml/spindle/internal/tensor"
)

// Comparison and logic ops, broadcasting like the arithmetic ones: Equal,
// Less, LessOrEqual, Greater, GreaterOrEqual (any numeric dtype, bool output;
// Equal also compares bools), And, Or, Xor, Not (bool) and Where.

func init() {
	registerBinary("Equal", withBool(cmpTable(eq[float32], eq[float64], eq[int64], eq[int32], eq[int8], eq[uint8]), func(x, y bool) bool { return x == y }))
	registerBinary("Less", cmpTable(lt[float32], lt[float64], lt[int64], lt[int32], lt[int8], lt[uint8]))
	registerBinary("LessOrEqual", cmpTable(le[float32], le[float64], le[int64], le[int32], le[int8], le[uint8]))
	registerBinary("Greater", cmpTable(gt[float32], gt[float64], gt[int64], gt[int32], gt[int8], gt[uint8]))
	registerBinary("GreaterOrEqual", cmpTable(ge[float32], ge[float64], ge[int64], ge[int32], ge[int8], ge[uint8]))
	registerBinary("And", binaryTable{tensor.Bool: bin(func(x, y bool) bool { return x && y })})
	registerBinary("Or", binaryTable{tensor.Bool: bin(func(x, y bool) bool { return x || y })})
	registerBinary("Xor", binaryTable{tensor.Bool: bin(func(x, y bool) bool { return x != y })})
	registerUnary("Not", fixed(unaryTable{tensor.Bool: un(func(x bool) bool { return !x })}))
	register("Where", newWhere)
}

func eq[T num](x, y T) bool { return x == y }
func lt[T num](x, y T) bool { return x < y }
func le[T num](x, y T) bool { return x <= y }
func gt[T num](x, y T) bool { return x > y }
func ge[T num](x, y T) bool { return x >= y }

// cmpTable builds a table of comparisons producing bool.
func cmpTable(f32 func(x, y float32) bool, f64 func(x, y float64) bool, i64 func(x, y int64) bool,
	i32 func(x, y int32) bool, i8 func(x, y int8) bool, u8 func(x, y uint8) bool) binaryTable {
	return binaryTable{
		tensor.Float32: bin(f32), tensor.Float64: bin(f64), tensor.Int64: bin(i64),
		tensor.Int32: bin(i32), tensor.Int8: bin(i8), tensor.Uint8: bin(u8),
	}
}

func withBool(t binaryTable, f func(x, y bool) bool) binaryTable {
	t[tensor.Bool] = bin(f)
	return t
}

// newWhere selects X where condition is true and Y elsewhere, all three
// broadcasting together. X and Y may have any (equal) dtype.
func newWhere(n *Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 3, 3); err != nil {
			return nil, err
		}
		c, x, y := in[0], in[1], in[2]
		if c.DType != tensor.Bool {
			return nil, fmt.Errorf("input condition: dtype %s, must be bool", c.DType)
		}
		if x.DType != y.DType {
			return nil, fmt.Errorf("inputs X %s and Y %s: both must have the same dtype", x, y)
		}
		shape, err := broadcastShapes(c.Shape, x.Shape)
		if err == nil {
			shape, err = broadcastShapes(shape, y.Shape)
		}
		if err != nil {
			return nil, fmt.Errorf("inputs condition %s, X %s and Y %s: %w", tensor.ShapeString(c.Shape), tensor.ShapeString(x.Shape), tensor.ShapeString(y.Shape), err)
		}
		out := tensor.New(x.DType, shape...)
		strides := [][]int{contiguousStrides(shape), broadcastStrides(c.Shape, shape), broadcastStrides(x.Shape, shape), broadcastStrides(y.Shape, shape)}
		switch x.DType.Size() {
		case 1:
			where(words[uint8](out), c.B, words[uint8](x), words[uint8](y), shape, strides)
		case 4:
			where(words[uint32](out), c.B, words[uint32](x), words[uint32](y), shape, strides)
		case 8:
			where(words[uint64](out), c.B, words[uint64](x), words[uint64](y), shape, strides)
		default:
			return nil, fmt.Errorf("input X: dtype %s is not supported", x.DType)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

func where[W word](dst []W, c []bool, x, y []W, shape []int, strides [][]int) {
	forRows(shape, strides, func(offs []int, n int, step []int) {
		o, ci, xi, yi := offs[0], offs[1], offs[2], offs[3]
		for i := 0; i < n; i++ {
			if c[ci] {
				dst[o+i] = x[xi]
			} else {
				dst[o+i] = y[yi]
			}
			ci += step[1]
			xi += step[2]
			yi += step[3]
		}
	})
}
