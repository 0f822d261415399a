package engine

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/spindleml/spindle/internal/tensor"
)

// Elementwise binary and variadic ops with NumPy multidirectional broadcasting
// (ONNX Broadcasting.md): Add, Sub, Mul, Div, Pow, Mod, Min, Max, Sum, Mean
// and PRelu (whose slope broadcasts to X only). Outputs are freshly allocated.

func init() {
	registerBinary("Add", numTableOf("Add"))
	registerBinary("Sub", numTableOf("Sub"))
	registerBinary("Mul", numTableOf("Mul"))
	registerBinary("Div", numTableOf("Div"))
	register("Mod", newMod)
	register("Pow", newPow)
	register("PRelu", newPRelu)
	registerVariadic("Max", numTableOf("Max"), false)
	registerVariadic("Min", numTableOf("Min"), false)
	registerVariadic("Sum", numTableOf("Add"), false)
	registerVariadic("Mean", binaryTable{tensor.Float32: addKernels[float32](), tensor.Float64: addKernels[float64]()}, true)
	register("BitShift", newBitShift)
	registerBinary("BitwiseAnd", intTableOf("BitwiseAnd"))
	registerBinary("BitwiseOr", intTableOf("BitwiseOr"))
	registerBinary("BitwiseXor", intTableOf("BitwiseXor"))
}

// numTableOf instantiates the kernel of a binary op for every numeric dtype.
// Go cannot pass a generic function uninstantiated, so the op is named by
// key and numKernel switches on it.
func numTableOf(key string) binaryTable {
	return binaryTable{
		tensor.Float32: numKernel[float32](key), tensor.Float64: numKernel[float64](key),
		tensor.Int64: numKernel[int64](key), tensor.Int32: numKernel[int32](key),
		tensor.Int16: numKernel[int16](key), tensor.Int8: numKernel[int8](key),
		tensor.Uint64: numKernel[uint64](key), tensor.Uint32: numKernel[uint32](key),
		tensor.Uint16: numKernel[uint16](key), tensor.Uint8: numKernel[uint8](key),
	}
}

func numKernel[T num](key string) binaryFn {
	switch key {
	case "Add":
		return addKernels[T]()
	case "Sub":
		return subKernels[T]()
	case "Mul":
		return mulKernels[T]()
	case "Div":
		return nonZeroDivisor[T](divKernels[T]())
	case "Max":
		return bin(maxOf[T])
	case "Min":
		return bin(minOf[T])
	}
	panic("engine: numKernel: unknown op " + key)
}

// intTableOf is numTableOf for ops defined on integers only.
func intTableOf(key string) binaryTable {
	return binaryTable{
		tensor.Int64: intKernel[int64](key), tensor.Int32: intKernel[int32](key),
		tensor.Int16: intKernel[int16](key), tensor.Int8: intKernel[int8](key),
		tensor.Uint64: intKernel[uint64](key), tensor.Uint32: intKernel[uint32](key),
		tensor.Uint16: intKernel[uint16](key), tensor.Uint8: intKernel[uint8](key),
	}
}

func intKernel[T integer](key string) binaryFn {
	switch key {
	case "Mod":
		return nonZeroDivisor[T](bin(floorMod[T]))
	case "fmod":
		return nonZeroDivisor[T](bin(func(x, y T) T { return x % y }))
	case "BitwiseAnd":
		return bin(func(x, y T) T { return x & y })
	case "BitwiseOr":
		return bin(func(x, y T) T { return x | y })
	case "BitwiseXor":
		return bin(func(x, y T) T { return x ^ y })
	case "LEFT":
		return bin(func(x, y T) T { return x << uint64(y) })
	case "RIGHT":
		return bin(func(x, y T) T { return x >> uint64(y) })
	}
	panic("engine: intKernel: unknown op " + key)
}

// newBitShift shifts X by Y bits, direction LEFT or RIGHT, on unsigned
// integers (shifts of the type's width or more give 0).
func newBitShift(n *Node) (Kernel, error) {
	dir := n.String("direction", "")
	if dir != "LEFT" && dir != "RIGHT" {
		return nil, fmt.Errorf("attribute direction: %q, must be LEFT or RIGHT", dir)
	}
	t := intTableOf(dir)
	for _, dt := range []tensor.DType{tensor.Int64, tensor.Int32, tensor.Int16, tensor.Int8} {
		delete(t, dt)
	}
	return binaryKernel("BitShift", t), nil
}

// Row kernels of the four arithmetic ops: vector-vector, vector-scalar and
// scalar-vector. Instantiated per element type they compile to plain loops,
// so broadcasting pays one indirect call per row rather than per element.

func addKernels[T num]() binaryFn {
	return binVec(add[T], func(d, a, b []T) {
		b = b[:len(a)]
		for i := range a {
			d[i] = a[i] + b[i]
		}
	}, func(d, a []T, y T) {
		for i := range a {
			d[i] = a[i] + y
		}
	}, func(d []T, x T, b []T) {
		for i := range b {
			d[i] = x + b[i]
		}
	})
}

func subKernels[T num]() binaryFn {
	return binVec(sub[T], func(d, a, b []T) {
		b = b[:len(a)]
		for i := range a {
			d[i] = a[i] - b[i]
		}
	}, func(d, a []T, y T) {
		for i := range a {
			d[i] = a[i] - y
		}
	}, func(d []T, x T, b []T) {
		for i := range b {
			d[i] = x - b[i]
		}
	})
}

func mulKernels[T num]() binaryFn {
	return binVec(mul[T], func(d, a, b []T) {
		b = b[:len(a)]
		for i := range a {
			d[i] = a[i] * b[i]
		}
	}, func(d, a []T, y T) {
		for i := range a {
			d[i] = a[i] * y
		}
	}, func(d []T, x T, b []T) {
		for i := range b {
			d[i] = x * b[i]
		}
	})
}

func divKernels[T num]() binaryFn {
	return binVec(div[T], func(d, a, b []T) {
		b = b[:len(a)]
		for i := range a {
			d[i] = a[i] / b[i]
		}
	}, func(d, a []T, y T) {
		for i := range a {
			d[i] = a[i] / y
		}
	}, func(d []T, x T, b []T) {
		for i := range b {
			d[i] = x / b[i]
		}
	})
}

// binVec lifts an element function with its row kernels to a broadcasting
// binaryFn. Every row of the (coalesced) broadcast walks each operand with
// stride 0 or 1, so one of the three row kernels always applies except when
// both operands are constant along the row.
func binVec[T num](f func(x, y T) T, vv func(d, a, b []T), vs func(d, a []T, y T), sv func(d []T, x T, b []T)) binaryFn {
	return func(at, bt *tensor.Tensor, shape []int) (*tensor.Tensor, error) {
		out := newOf[T](shape)
		dst, a, b := dataOf[T](out), dataOf[T](at), dataOf[T](bt)
		n := len(dst)
		switch {
		case n == 0:
		case len(a) == n && len(b) == n:
			vv(dst, a, b)
		case len(b) == 1 && len(a) == n:
			vs(dst, a, b[0])
		case len(a) == 1 && len(b) == n:
			sv(dst, a[0], b)
		default:
			strides := [][]int{contiguousStrides(shape), broadcastStrides(at.Shape, shape), broadcastStrides(bt.Shape, shape)}
			forRows(shape, strides, func(offs []int, n int, step []int) {
				o, i, j := offs[0], offs[1], offs[2]
				d := dst[o : o+n]
				switch {
				case step[1] == 1 && step[2] == 1:
					vv(d, a[i:i+n], b[j:j+n])
				case step[1] == 1:
					vs(d, a[i:i+n], b[j])
				case step[2] == 1:
					sv(d, a[i], b[j:j+n])
				default:
					v := f(a[i], b[j])
					for k := range d {
						d[k] = v
					}
				}
			})
		}
		return out, nil
	}
}

func add[T num](x, y T) T { return x + y }
func sub[T num](x, y T) T { return x - y }
func mul[T num](x, y T) T { return x * y }
func div[T num](x, y T) T { return x / y }

// maxOf and minOf propagate NaN from either side, as NumPy's maximum does.
func maxOf[T num](x, y T) T {
	if x > y || x != x {
		return x
	}
	return y
}

func minOf[T num](x, y T) T {
	if x < y || x != x {
		return x
	}
	return y
}

// binaryFn computes one dtype's elementwise op of a and b (already checked to
// share that dtype) into a new tensor of the broadcast shape.
type binaryFn func(a, b *tensor.Tensor, shape []int) (*tensor.Tensor, error)

// binaryTable holds an op's implementations by input dtype.
type binaryTable map[tensor.DType]binaryFn

// bin lifts an element function to a broadcasting binaryFn.
func bin[T, R elem](f func(x, y T) R) binaryFn {
	return func(a, b *tensor.Tensor, shape []int) (*tensor.Tensor, error) {
		out := newOf[R](shape)
		broadcastApply(dataOf[R](out), shape, dataOf[T](a), a.Shape, dataOf[T](b), b.Shape, f)
		return out, nil
	}
}

// nonZeroDivisor wraps an integer division so a zero divisor is an error, not
// a panic; float divisions are returned as they are.
func nonZeroDivisor[T num](f binaryFn) binaryFn {
	var z T
	switch any(z).(type) {
	case float32, float64:
		return f
	}
	return func(a, b *tensor.Tensor, shape []int) (*tensor.Tensor, error) {
		if hasZero(dataOf[T](b)) {
			return nil, fmt.Errorf("input B: integer division by zero")
		}
		return f(a, b, shape)
	}
}

func hasZero[T num](s []T) bool {
	for _, v := range s {
		if v == 0 {
			return true
		}
	}
	return false
}

// dtypeNames lists a table's dtypes for error messages.
func (t binaryTable) dtypeNames() string {
	var names []string
	for dt := range t {
		names = append(names, dt.String())
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// apply checks that a and b share a dtype the table supports and broadcast,
// then runs the op.
func (t binaryTable) apply(op string, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	if a.DType != b.DType {
		return nil, fmt.Errorf("inputs A %s and B %s: both must have the same dtype", a, b)
	}
	f, ok := t[a.DType]
	if !ok {
		return nil, fmt.Errorf("input A: dtype %s, %s supports %s", a.DType, op, t.dtypeNames())
	}
	shape, err := broadcastShapes(a.Shape, b.Shape)
	if err != nil {
		return nil, fmt.Errorf("inputs A and B: %w", err)
	}
	return f(a, b, shape)
}

// registerBinary registers a two-input broadcasting op.
func registerBinary(op string, t binaryTable) {
	register(op, func(n *Node) (Kernel, error) {
		n.fresh = true
		return binaryKernel(op, t), nil
	})
}

func binaryKernel(op string, t binaryTable) Kernel {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		out, err := t.apply(op, in[0], in[1])
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{out}, nil
	}
}

// registerVariadic registers an op over one or more inputs that folds them
// left to right with t, all broadcasting together. mean divides the result by
// the number of inputs.
func registerVariadic(op string, t binaryTable, mean bool) {
	register(op, func(n *Node) (Kernel, error) {
		return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
			if err := checkInputs(in, 1, len(in)); err != nil {
				return nil, err
			}
			acc := in[0]
			if _, ok := t[acc.DType]; !ok {
				return nil, fmt.Errorf("input 0: dtype %s, %s supports %s", acc.DType, op, t.dtypeNames())
			}
			for i, x := range in[1:] {
				if x == nil {
					return nil, fmt.Errorf("input %d is required", i+1)
				}
				var err error
				if acc, err = t.apply(op, acc, x); err != nil {
					return nil, fmt.Errorf("input %d: %w", i+1, err)
				}
			}
			if len(in) == 1 {
				acc = tensor.New(acc.DType, acc.Shape...)
				copy(acc.Bytes(), in[0].Bytes())
			}
			if mean {
				switch acc.DType {
				case tensor.Float32:
					for i := range acc.F32 {
						acc.F32[i] /= float32(len(in))
					}
				case tensor.Float64:
					for i := range acc.F64 {
						acc.F64[i] /= float64(len(in))
					}
				}
			}
			return []*tensor.Tensor{acc}, nil
		}, nil
	})
}

// newMod: fmod=0 (the default) is Python's integer modulo, whose result takes
// the divisor's sign; fmod=1 is C's fmod, taking the dividend's sign, and is
// the only mode ONNX allows for floating-point inputs.
func newMod(n *Node) (Kernel, error) {
	fmod := n.Int("fmod", 0)
	if fmod != 0 && fmod != 1 {
		return nil, fmt.Errorf("attribute fmod: %d, must be 0 or 1", fmod)
	}
	t := intTableOf("Mod")
	if fmod == 1 {
		t = intTableOf("fmod")
		t[tensor.Float32] = bin(fmodF[float32])
		t[tensor.Float64] = bin(fmodF[float64])
	}
	return binaryKernel("Mod (fmod="+fmt.Sprint(fmod)+")", t), nil
}

func fmodF[T floating](x, y T) T { return T(math.Mod(float64(x), float64(y))) }
func floorMod[T integer](x, y T) T {
	r := x % y
	if r != 0 && (r < 0) != (y < 0) {
		r += y
	}
	return r
}

// newPow raises X to Y elementwise. The output has X's dtype; Y may be of any
// numeric dtype (opset 12 allows mixed types). Integer bases
// with integer exponents are exact; other integer results truncate toward
// zero as a C cast of pow() does.
func newPow(n *Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x, y := in[0], in[1]
		if !castTypes[y.DType] || y.DType == tensor.Bool {
			return nil, fmt.Errorf("input Y: dtype %s, Pow supports numeric exponents", y.DType)
		}
		shape, err := broadcastShapes(x.Shape, y.Shape)
		if err != nil {
			return nil, fmt.Errorf("inputs X and Y: %w", err)
		}
		intExp := y.DType != tensor.Float32 && y.DType != tensor.Float64
		var yy *tensor.Tensor
		if intExp {
			yy, err = castTensor(y, tensor.Int64)
		} else {
			yy, err = castTensor(y, tensor.Float64)
		}
		if err != nil {
			return nil, err
		}
		var out *tensor.Tensor
		switch x.DType {
		case tensor.Float32:
			out = powFloat[float32](x, yy, shape, intExp)
		case tensor.Float64:
			out = powFloat[float64](x, yy, shape, intExp)
		case tensor.Int64:
			out = powInt[int64](x, yy, shape, intExp)
		case tensor.Int32:
			out = powInt[int32](x, yy, shape, intExp)
		default:
			return nil, fmt.Errorf("input X: dtype %s, Pow supports float32, float64, int64 and int32 bases", x.DType)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

func powFloat[T floating](x, y *tensor.Tensor, shape []int, intExp bool) *tensor.Tensor {
	out := newOf[T](shape)
	if squareExponent(y, intExp) && x.Len() == out.Len() {
		// x**2, as LayerNorm decompositions write it: x*x is the correctly
		// rounded square, the same value as rounding the exact pow once.
		dst := dataOf[T](out)
		for i, v := range dataOf[T](x) {
			dst[i] = v * v
		}
		return out
	}
	if intExp {
		broadcastApply(dataOf[T](out), shape, dataOf[T](x), x.Shape, y.I64, y.Shape, func(a T, b int64) T {
			return T(math.Pow(float64(a), float64(b)))
		})
		return out
	}
	broadcastApply(dataOf[T](out), shape, dataOf[T](x), x.Shape, y.F64, y.Shape, func(a T, b float64) T {
		return T(math.Pow(float64(a), b))
	})
	return out
}

// squareExponent reports whether the (already converted) exponent tensor is
// the single value 2.
func squareExponent(y *tensor.Tensor, intExp bool) bool {
	if intExp {
		return len(y.I64) == 1 && y.I64[0] == 2
	}
	return len(y.F64) == 1 && y.F64[0] == 2
}

func powInt[T int64 | int32](x, y *tensor.Tensor, shape []int, intExp bool) *tensor.Tensor {
	out := newOf[T](shape)
	if intExp {
		broadcastApply(dataOf[T](out), shape, dataOf[T](x), x.Shape, y.I64, y.Shape, ipow[T])
		return out
	}
	broadcastApply(dataOf[T](out), shape, dataOf[T](x), x.Shape, y.F64, y.Shape, func(a T, b float64) T {
		return T(math.Pow(float64(a), b))
	})
	return out
}

// ipow is x**e by squaring, wrapping on overflow like C integer arithmetic. A
// negative exponent gives the truncated real result (0 unless |x| is 1).
func ipow[T int64 | int32](x T, e int64) T {
	if e < 0 {
		return T(math.Pow(float64(x), float64(e)))
	}
	r := T(1)
	for e > 0 {
		if e&1 == 1 {
			r *= x
		}
		x *= x
		e >>= 1
	}
	return r
}

// newPRelu: y = x for x >= 0, slope*x otherwise; slope broadcasts to X's
// shape (unidirectionally: the output always has X's shape).
func newPRelu(n *Node) (Kernel, error) {
	t := binaryTable{tensor.Float32: bin(prelu[float32]), tensor.Float64: bin(prelu[float64]),
		tensor.Int64: bin(prelu[int64]), tensor.Int32: bin(prelu[int32])}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x, s := in[0], in[1]
		shape, err := broadcastShapes(x.Shape, s.Shape)
		if err != nil || tensor.ShapeString(shape) != tensor.ShapeString(x.Shape) {
			return nil, fmt.Errorf("input slope: shape %s does not broadcast to X's shape %s", tensor.ShapeString(s.Shape), tensor.ShapeString(x.Shape))
		}
		out, err := t.apply("PRelu", x, s)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

func prelu[T float32 | float64 | int64 | int32](x, s T) T {
	if x < 0 {
		return s * x
	}
	return x
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
func broadcastApply[A, B, C any](dst []C, shape []int, a []A, ashape []int, b []B, bshape []int, f func(x A, y B) C) {
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
