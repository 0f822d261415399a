package engine

import (
	"fmt"
	"math"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// Quantized ops (issue 14): QuantizeLinear, DequantizeLinear and
// DynamicQuantizeLinear convert between float32 and 8-bit integers;
// MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv multiply 8-bit
// operands exactly in int32 (kernels.QGemm) and correct for the zero points
// afterwards. The arithmetic is ONNX Runtime's CPU provider's: divisions by
// the scale in float32, rounding half to even, saturation to the type's
// range, requantisation by the float32 multiplier a_scale*b_scale/y_scale.

func init() {
	register("QuantizeLinear", newQuantizeLinear)
	register("DequantizeLinear", newDequantizeLinear)
	register("DynamicQuantizeLinear", newDynamicQuantizeLinear)
	register("MatMulInteger", func(n *Node) (Kernel, error) { return newMatMulInteger(n, false) })
	register("QLinearMatMul", func(n *Node) (Kernel, error) { return newMatMulInteger(n, true) })
	register("ConvInteger", func(n *Node) (Kernel, error) { return newConvInteger(n, false) })
	register("QLinearConv", func(n *Node) (Kernel, error) { return newConvInteger(n, true) })

	// Working memory: the integer products copy A into the kernels' layout
	// and pack a B that is not constant; convolutions first write their
	// patches, output positions × (C/group · kernel size) bytes, twice.
	scratchFns["MatMulInteger"] = qmatmulScratch(0, 1)
	scratchFns["QLinearMatMul"] = qmatmulScratch(0, 3)
	scratchFns["ConvInteger"] = qconvScratch(1)
	scratchFns["QLinearConv"] = qconvScratch(3)

	shapeFns["QuantizeLinear"] = sameAsFirst
	shapeFns["DequantizeLinear"] = sameAsFirst
	shapeFns["DynamicQuantizeLinear"] = func(n *Node, in [][]int) ([][]int, error) {
		return [][]int{in[0], {}, {}}, nil
	}
	shapeFns["MatMulInteger"] = inferMatMul
	shapeFns["ConvInteger"] = inferConv
	// The QLinear forms take their operands at inputs 0 and 3.
	shapeFns["QLinearMatMul"] = func(n *Node, in [][]int) ([][]int, error) {
		if len(in) < 4 {
			return nil, nil
		}
		return inferMatMul(n, [][]int{in[0], in[3]})
	}
	shapeFns["QLinearConv"] = func(n *Node, in [][]int) ([][]int, error) {
		if len(in) < 4 {
			return nil, nil
		}
		return inferConv(n, [][]int{in[0], in[3]})
	}
}

func qmatmulScratch(ia, ib int) scratchFn {
	return func(st *step, shapes [][]int, args []*tensor.Tensor, threads int) int64 {
		var n int64
		for _, i := range []int{ia, ib} {
			if i < len(args) && args[i] != nil {
				n = satAdd(n, satMul(2, int64(args[i].Len())))
			}
		}
		return n
	}
}

func qconvScratch(iw int) scratchFn {
	return func(st *step, shapes [][]int, args []*tensor.Tensor, threads int) int64 {
		if len(shapes) == 0 || len(shapes[0]) < 2 || iw >= len(args) || args[iw] == nil || len(args[iw].Shape) < 2 {
			return 0
		}
		w := args[iw].Shape
		return satMul(2, satMul(shapeBytes(shapes[0][2:], 1), shapeBytes(w[1:], 1)))
	}
}

// quantRange returns the integer range of an 8-bit dtype.
func quantRange(dt tensor.DType) (lo, hi int32, err error) {
	switch dt {
	case tensor.Uint8:
		return 0, 255, nil
	case tensor.Int8:
		return -128, 127, nil
	}
	return 0, 0, fmt.Errorf("dtype %s: %w (uint8 and int8 are)", dt, ErrUnsupported)
}

// byteData returns the bytes of an int8 or uint8 tensor.
func byteData(t *tensor.Tensor) []byte {
	if t.DType == tensor.Int8 {
		return t.Bytes()
	}
	return t.U8
}

// intValues returns the elements of an integer tensor as int32s.
func intValues(t *tensor.Tensor) ([]int32, error) {
	switch t.DType {
	case tensor.Uint8:
		out := make([]int32, len(t.U8))
		for i, v := range t.U8 {
			out[i] = int32(v)
		}
		return out, nil
	case tensor.Int8:
		out := make([]int32, len(t.I8))
		for i, v := range t.I8 {
			out[i] = int32(v)
		}
		return out, nil
	case tensor.Int32:
		return t.I32, nil
	}
	return nil, fmt.Errorf("dtype %s, must be uint8, int8 or int32", t.DType)
}

// quantLayout says which scale and zero point each element of x uses: one
// for all (per tensor), one per index of axis (per axis), or one per block of
// block elements along axis (blocked, opset 21), as the scale's shape says.
type quantLayout struct {
	outer, dim, inner int // x as [outer, dim, inner] around axis
	block             int // 0 unless blocked
	params            int // scales (and zero points) expected
}

// newQuantLayout checks the scale's shape against x and the attributes.
func newQuantLayout(x []int, scale []int, axis int64, block int64) (quantLayout, error) {
	n := 1
	for _, d := range scale {
		n *= d
	}
	var l quantLayout
	if n == 1 && len(scale) <= 1 && block == 0 {
		l.outer, l.dim, l.inner, l.params = 1, 1, tensor.NumElements(x), 1
		return l, nil
	}
	a := int(axis)
	if a < 0 {
		a += len(x)
	}
	if a < 0 || a >= len(x) {
		return l, fmt.Errorf("attribute axis: %d is out of range for an input of rank %d", axis, len(x))
	}
	l.outer, l.dim, l.inner = tensor.NumElements(x[:a]), x[a], tensor.NumElements(x[a+1:])
	if block > 0 {
		if len(scale) != len(x) {
			return l, fmt.Errorf("input scale: shape %s, blocked quantization needs the input's rank %d", tensor.ShapeString(scale), len(x))
		}
		for i := range x {
			want := x[i]
			if i == a {
				want = (x[i] + int(block) - 1) / int(block)
			}
			if scale[i] != want {
				return l, fmt.Errorf("input scale: shape %s, block_size %d along axis %d of %s needs %d there", tensor.ShapeString(scale), block, a, tensor.ShapeString(x), want)
			}
		}
		l.block = int(block)
		l.params = n
		return l, nil
	}
	if len(scale) != 1 || scale[0] != x[a] {
		return l, fmt.Errorf("input scale: shape %s, must be a scalar or [%d] (axis %d of %s)", tensor.ShapeString(scale), x[a], a, tensor.ShapeString(x))
	}
	l.params = x[a]
	return l, nil
}

// each calls fn for every run of elements sharing one scale: elements
// [lo, hi) of x take parameter p.
func (l *quantLayout) each(fn func(lo, hi, p int)) {
	if l.block == 0 {
		for o := 0; o < l.outer; o++ {
			for a := 0; a < l.dim; a++ {
				lo := (o*l.dim + a) * l.inner
				p := a
				if l.params == 1 {
					p = 0
				}
				fn(lo, lo+l.inner, p)
			}
		}
		return
	}
	nb := (l.dim + l.block - 1) / l.block
	for o := 0; o < l.outer; o++ {
		for a := 0; a < l.dim; a++ {
			base := (o*l.dim + a) * l.inner
			pb := (o*nb + a/l.block) * l.inner
			for i := 0; i < l.inner; i++ {
				fn(base+i, base+i+1, pb+i)
			}
		}
	}
}

// zeroPoints returns the zero point input as int32s (params of them), all
// zero when it is absent.
func zeroPoints(zp *tensor.Tensor, params int) ([]int32, error) {
	if zp == nil {
		return make([]int32, params), nil
	}
	v, err := intValues(zp)
	if err != nil {
		return nil, fmt.Errorf("input zero_point: %w", err)
	}
	if len(v) != params {
		return nil, fmt.Errorf("input zero_point: %d elements, the scale has %d", len(v), params)
	}
	return v, nil
}

func newQuantizeLinear(n *Node) (Kernel, error) {
	axis, block := n.Int("axis", 1), n.Int("block_size", 0)
	if block < 0 {
		return nil, fmt.Errorf("attribute block_size: %d, must be >= 0", block)
	}
	if n.Int("saturate", 1) != 1 {
		return nil, fmt.Errorf("attribute saturate: %w (only 1, for float8 outputs, is)", ErrUnsupported)
	}
	outType := tensor.DType(n.Int("output_dtype", 0))
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 3); err != nil {
			return nil, err
		}
		x, scale := in[0], in[1]
		switch x.DType {
		case tensor.Float32:
		case tensor.Int32:
			f := make([]float32, len(x.I32))
			for i, v := range x.I32 {
				f[i] = float32(v)
			}
			x = tensor.FromF32(f, x.Shape...)
		default:
			return nil, fmt.Errorf("input x: dtype %s, must be float32 or int32", x.DType)
		}
		if scale.DType != tensor.Float32 {
			return nil, fmt.Errorf("input y_scale: dtype %s, must be float32", scale.DType)
		}
		dt := tensor.Uint8
		var zpT *tensor.Tensor
		if len(in) > 2 && in[2] != nil {
			zpT = in[2]
			dt = zpT.DType
			if outType != 0 && outType != dt {
				return nil, fmt.Errorf("attribute output_dtype: %s, the zero point is %s", outType, dt)
			}
		} else if outType != 0 {
			dt = outType
		}
		qlo, qhi, err := quantRange(dt)
		if err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		l, err := newQuantLayout(x.Shape, scale.Shape, axis, block)
		if err != nil {
			return nil, err
		}
		zp, err := zeroPoints(zpT, l.params)
		if err != nil {
			return nil, err
		}
		y := newTyped(dt, x.Shape...)
		out := byteData(y)
		if l.params == 1 {
			// Per tensor (a QDQ model's activations): one run, split
			// between the threads.
			parallelFor(threads, len(out), elementGrain, func(lo, hi int) {
				kernels.Quantize(out[lo:hi], x.F32[lo:hi], scale.F32[0], zp[0], qlo, qhi)
			})
			return []*tensor.Tensor{y}, nil
		}
		l.each(func(lo, hi, p int) {
			kernels.Quantize(out[lo:hi], x.F32[lo:hi], scale.F32[p], zp[p], qlo, qhi)
		})
		return []*tensor.Tensor{y}, nil
	}
	n.fresh = true
	return withThreads(n.threaded, 1), nil
}

func newDequantizeLinear(n *Node) (Kernel, error) {
	axis, block := n.Int("axis", 1), n.Int("block_size", 0)
	if block < 0 {
		return nil, fmt.Errorf("attribute block_size: %d, must be >= 0", block)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 3); err != nil {
			return nil, err
		}
		x, scale := in[0], in[1]
		xv, err := intValues(x)
		if err != nil {
			return nil, fmt.Errorf("input x: %w", err)
		}
		if scale.DType != tensor.Float32 {
			return nil, fmt.Errorf("input x_scale: dtype %s, must be float32", scale.DType)
		}
		var zpT *tensor.Tensor
		if len(in) > 2 && in[2] != nil {
			zpT = in[2]
			if zpT.DType != x.DType {
				return nil, fmt.Errorf("input x_zero_point: dtype %s, x is %s", zpT.DType, x.DType)
			}
		}
		l, err := newQuantLayout(x.Shape, scale.Shape, axis, block)
		if err != nil {
			return nil, err
		}
		zp, err := zeroPoints(zpT, l.params)
		if err != nil {
			return nil, err
		}
		y := newF32Dirty(x.Shape...)
		l.each(func(lo, hi, p int) {
			s, z := scale.F32[p], zp[p]
			for i := lo; i < hi; i++ {
				y.F32[i] = float32(xv[i]-z) * s
			}
		})
		return []*tensor.Tensor{y}, nil
	}, nil
}

// dynamicQuantParams returns DynamicQuantizeLinear's scale and uint8 zero
// point for a tensor whose values lie in [lo, hi], as ONNX Runtime computes
// them: the range widened to hold 0, scale = (max-min)/255 (1 for an empty
// range), zero point = round(clamp(0 - min/scale, 0, 255)), half to even.
func dynamicQuantParams(lo, hi float32) (scale float32, zp int32) {
	lo, hi = min(lo, 0), max(hi, 0)
	scale = 1
	if hi != lo {
		scale = (hi - lo) / 255
	}
	z := 0 - lo/scale
	z = max(0, min(255, z))
	return scale, int32(math.RoundToEven(float64(z)))
}

func newDynamicQuantizeLinear(n *Node) (Kernel, error) {
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input x: dtype %s, must be float32", x.DType)
		}
		y := tensor.New(tensor.Uint8, x.Shape...)
		scale, zp := dynamicQuantize(threads, y.U8, x.F32)
		return []*tensor.Tensor{y, tensor.FromF32([]float32{scale}), {DType: tensor.Uint8, U8: []uint8{uint8(zp)}}}, nil
	}
	n.fresh = true
	return withThreads(n.threaded, 1), nil
}

// dynamicQuantize quantizes x into dst as DynamicQuantizeLinear does and
// returns the scale and zero point.
func dynamicQuantize(threads int, dst []byte, x []float32) (float32, int32) {
	const grain = 1 << 14
	parts := max(1, min(threads, len(x)/grain))
	los, his := make([]float32, parts), make([]float32, parts)
	chunk := (len(x) + parts - 1) / parts
	parallelFor(parts, parts, 1, func(p0, p1 int) {
		for p := p0; p < p1; p++ {
			lo, hi := min(p*chunk, len(x)), min((p+1)*chunk, len(x))
			los[p], his[p] = kernels.MinMax(x[lo:hi])
		}
	})
	lo, hi := los[0], his[0]
	for p := 1; p < parts; p++ {
		lo, hi = min(lo, los[p]), max(hi, his[p])
	}
	scale, zp := dynamicQuantParams(lo, hi)
	parallelFor(threads, len(x), grain, func(i0, i1 int) {
		kernels.Quantize(dst[i0:i1], x[i0:i1], scale, zp, 0, 255)
	})
	return scale, zp
}
