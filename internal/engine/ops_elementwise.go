package engine

import (
	"fmt"

	"github.com/spindleml/spindle/internal/tensor"
)

func init() {
	registerBinary("Add",
		func(x, y float32) float32 { return x + y },
		func(x, y float64) float64 { return x + y },
		func(x, y int32) int32 { return x + y },
		func(x, y int64) int64 { return x + y }, false)
	registerBinary("Sub",
		func(x, y float32) float32 { return x - y },
		func(x, y float64) float64 { return x - y },
		func(x, y int32) int32 { return x - y },
		func(x, y int64) int64 { return x - y }, false)
	registerBinary("Mul",
		func(x, y float32) float32 { return x * y },
		func(x, y float64) float64 { return x * y },
		func(x, y int32) int32 { return x * y },
		func(x, y int64) int64 { return x * y }, false)
	registerBinary("Div",
		func(x, y float32) float32 { return x / y },
		func(x, y float64) float64 { return x / y },
		func(x, y int32) int32 { return x / y },
		func(x, y int64) int64 { return x / y }, true)
	register("Relu", func(n *Node) (Kernel, error) {
		return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
			if err := checkInputs(in, 1, 1); err != nil {
				return nil, err
			}
			x := in[0]
			switch x.DType {
			case tensor.Float32:
				out := tensor.New(tensor.Float32, x.Shape...)
				for i, v := range x.F32 {
					if v > 0 {
						out.F32[i] = v
					}
				}
				return []*tensor.Tensor{out}, nil
			case tensor.Float64:
				out := tensor.New(tensor.Float64, x.Shape...)
				for i, v := range x.F64 {
					if v > 0 {
						out.F64[i] = v
					}
				}
				return []*tensor.Tensor{out}, nil
			}
			return nil, fmt.Errorf("input X: dtype %s, Relu supports float32 and float64", x.DType)
		}, nil
	})
}

// registerBinary registers an elementwise binary op with NumPy multidirectional
// broadcasting (ONNX Broadcasting.md) over float32, float64, int32 and int64.
// intDiv marks integer division, whose zero divisors are an error, not a panic.
func registerBinary(op string, f32 func(x, y float32) float32, f64 func(x, y float64) float64,
	i32 func(x, y int32) int32, i64 func(x, y int64) int64, intDiv bool) {
	register(op, func(n *Node) (Kernel, error) {
		return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
			if err := checkInputs(in, 2, 2); err != nil {
				return nil, err
			}
			a, b := in[0], in[1]
			if a.DType != b.DType {
				return nil, fmt.Errorf("inputs A %s and B %s: both must have the same dtype", a, b)
			}
			shape, err := broadcastShapes(a.Shape, b.Shape)
			if err != nil {
				return nil, fmt.Errorf("inputs A and B: %w", err)
			}
			out := tensor.New(a.DType, shape...)
			switch a.DType {
			case tensor.Float32:
				broadcastApply(out.F32, shape, a.F32, a.Shape, b.F32, b.Shape, f32)
			case tensor.Float64:
				broadcastApply(out.F64, shape, a.F64, a.Shape, b.F64, b.Shape, f64)
			case tensor.Int32:
				if intDiv && hasZero(b.I32) {
					return nil, fmt.Errorf("input B: integer division by zero")
				}
				broadcastApply(out.I32, shape, a.I32, a.Shape, b.I32, b.Shape, i32)
			case tensor.Int64:
				if intDiv && hasZero(b.I64) {
					return nil, fmt.Errorf("input B: integer division by zero")
				}
				broadcastApply(out.I64, shape, a.I64, a.Shape, b.I64, b.Shape, i64)
			default:
				return nil, fmt.Errorf("input A: dtype %s, %s supports float32, float64, int32 and int64", a.DType, op)
			}
			return []*tensor.Tensor{out}, nil
		}, nil
	})
}

func hasZero[T int32 | int64](s []T) bool {
	for _, v := range s {
		if v == 0 {
			return true
		}
	}
	return false
}

// broadcastShapes returns the shape two tensors broadcast to under NumPy rules:
// shapes are right-aligned and each pair of dimensions must be equal or one of
// them 1.
func broadcastShapes(a, b []int) ([]int, error) {
	r := max(len(a), len(b))
	out := make([]int, r)
	for i := 0; i < r; i++ {
		da, db := 1, 1
		if j := i - (r - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (r - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("shapes %s and %s do not broadcast (dimension %d: %d vs %d; each pair must be equal or 1)",
				tensor.ShapeString(a), tensor.ShapeString(b), i, da, db)
		}
	}
	return out, nil
}

// broadcastStrides returns, for each dimension of out, the element stride of a
// tensor of shape in right-aligned against out: 0 where in broadcasts (its
// dimension is 1 or missing). in must broadcast to out.
func broadcastStrides(in, out []int) []int {
	st := make([]int, len(out))
	s := 1
	for i := len(in) - 1; i >= 0; i-- {
		j := i + len(out) - len(in)
		if in[i] != 1 {
			st[j] = s
		}
		s *= in[i]
	}
	return st
}

// broadcastApply sets dst[i] = f(a[ia], b[ib]) over shape, the broadcast shape of
// ashape and bshape. It is the one broadcasting loop every elementwise binary op
// shares: a fast path for equal shapes and scalars, otherwise an odometer over
// the outer dimensions with a strided inner loop.
func broadcastApply[T any](dst []T, shape []int, a []T, ashape []int, b []T, bshape []int, f func(x, y T) T) {
	if len(dst) == 0 {
		return
	}
	switch {
	case len(a) == len(dst) && len(b) == len(dst):
		for i := range dst {
			dst[i] = f(a[i], b[i])
		}
		return
	case len(b) == 1 && len(a) == len(dst):
		y := b[0]
		for i := range dst {
			dst[i] = f(a[i], y)
		}
		return
	case len(a) == 1 && len(b) == len(dst):
		x := a[0]
		for i := range dst {
			dst[i] = f(x, b[i])
		}
		return
	}
	sa := broadcastStrides(ashape, shape)
	sb := broadcastStrides(bshape, shape)
	r := len(shape)
	inner := shape[r-1]
	ia, ib := sa[r-1], sb[r-1]
	idx := make([]int, r-1)
	offA, offB := 0, 0
	for o := 0; o < len(dst); o += inner {
		pa, pb := offA, offB
		row := dst[o : o+inner]
		for j := range row {
			row[j] = f(a[pa], b[pb])
			pa += ia
			pb += ib
		}
		// Advance the odometer over dimensions r-2 .. 0.
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			offA += sa[d]
			offB += sb[d]
			if idx[d] < shape[d] {
				break
			}
			offA -= sa[d] * shape[d]
			offB -= sb[d] * shape[d]
			idx[d] = 0
		}
	}
}
