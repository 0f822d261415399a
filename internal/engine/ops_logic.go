package engine

import (
	"fmt"

	"github.com/spindleml/spindle/internal/tensor"
)

// Comparison and logic ops, broadcasting like the arithmetic ones: Equal,
// Less, LessOrEqual, Greater, GreaterOrEqual (any numeric dtype, bool output;
// Equal also compares bools), And, Or, Xor, Not (bool) and Where.

func init() {
	equal := cmpTable("Equal")
	equal[tensor.Bool] = bin(func(x, y bool) bool { return x == y })
	registerBinary("Equal", equal)
	registerBinary("Less", cmpTable("Less"))
	registerBinary("LessOrEqual", cmpTable("LessOrEqual"))
	registerBinary("Greater", cmpTable("Greater"))
	registerBinary("GreaterOrEqual", cmpTable("GreaterOrEqual"))
	registerBinary("And", binaryTable{tensor.Bool: bin(func(x, y bool) bool { return x && y })})
	registerBinary("Or", binaryTable{tensor.Bool: bin(func(x, y bool) bool { return x || y })})
	registerBinary("Xor", binaryTable{tensor.Bool: bin(func(x, y bool) bool { return x != y })})
	registerUnary("Not", fixed(unaryTable{tensor.Bool: un(func(x bool) bool { return !x })}))
	register("Where", newWhere)
}

// cmpTable instantiates a comparison producing bool for every numeric dtype,
// named by key as numTableOf's are.
func cmpTable(key string) binaryTable {
	return binaryTable{
		tensor.Float32: cmpKernel[float32](key), tensor.Float64: cmpKernel[float64](key),
		tensor.Int64: cmpKernel[int64](key), tensor.Int32: cmpKernel[int32](key),
		tensor.Int16: cmpKernel[int16](key), tensor.Int8: cmpKernel[int8](key),
		tensor.Uint64: cmpKernel[uint64](key), tensor.Uint32: cmpKernel[uint32](key),
		tensor.Uint16: cmpKernel[uint16](key), tensor.Uint8: cmpKernel[uint8](key),
	}
}

func cmpKernel[T num](key string) binaryFn {
	switch key {
	case "Equal":
		return bin(func(x, y T) bool { return x == y })
	case "Less":
		return bin(func(x, y T) bool { return x < y })
	case "LessOrEqual":
		return bin(func(x, y T) bool { return x <= y })
	case "Greater":
		return bin(func(x, y T) bool { return x > y })
	case "GreaterOrEqual":
		return bin(func(x, y T) bool { return x >= y })
	}
	panic("engine: cmpKernel: unknown op " + key)
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
		case 2:
			where(words[uint16](out), c.B, words[uint16](x), words[uint16](y), shape, strides)
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
