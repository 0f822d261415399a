package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/spindleml/spindle/internal/tensor"
)

// Reductions (ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
// ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum, ReduceLogSumExp), ArgMax,
// ArgMin, TopK and CumSum.
//
// Floating-point reductions accumulate in float64 and round once, integer
// ones in int64 (then wrap to the input's width, as fixed-width arithmetic
// would). The axes are an attribute before opset 13 (ReduceSum) or 18 (the
// others) and an optional input since; a node using the other form is
// rejected, as the static shape inference (shape.go) reads the same one.
// With noop_with_empty_axes and no axes the output is the input itself.

func init() {
	var sum func(a, v float64) float64 // nil: reduceInto's inlined sum
	var sumI func(a, v int64) int64
	sq := func(a, v float64) float64 { return a + v*v }
	sqI := func(a, v int64) int64 { return a + v*v }
	specs := map[string]reduceSpec{
		"ReduceSum": {f: sum, i: sumI, intOK: true},
		"ReduceMean": {f: sum, i: sumI, intOK: true,
			finF: func(a float64, n int) float64 { return a / float64(n) },
			finI: func(a int64, n int) int64 {
				if n == 0 {
					return 0
				}
				return a / int64(n)
			}},
		"ReduceMax": {f: math.Max, i: func(a, v int64) int64 { return max(a, v) }, intOK: true, initF: math.Inf(-1), initI: math.MinInt64},
		"ReduceMin": {f: math.Min, i: func(a, v int64) int64 { return min(a, v) }, intOK: true, initF: math.Inf(1), initI: math.MaxInt64},
		"ReduceProd": {f: func(a, v float64) float64 { return a * v }, i: func(a, v int64) int64 { return a * v }, intOK: true,
			initF: 1, initI: 1},
		"ReduceL1": {f: func(a, v float64) float64 { return a + math.Abs(v) },
			i: func(a, v int64) int64 { return a + max(v, -v) }, intOK: true},
		"ReduceL2": {f: sq, i: sqI, intOK: true,
			finF: func(a float64, _ int) float64 { return math.Sqrt(a) },
			finI: func(a int64, _ int) int64 { return int64(math.Sqrt(float64(a))) }},
		"ReduceSumSquare": {f: sq, i: sqI, intOK: true},
		"ReduceLogSum":    {f: sum, finF: func(a float64, _ int) float64 { return math.Log(a) }},
	}
	for op, s := range specs {
		register(op, func(n *Node) (Kernel, error) { return newReduce(n, op, s) })
	}
	register("ReduceLogSumExp", newReduceLogSumExp)
	register("ArgMax", func(n *Node) (Kernel, error) { return newArg(n, true) })
	register("ArgMin", func(n *Node) (Kernel, error) { return newArg(n, false) })
	register("TopK", newTopK)
	register("CumSum", newCumSum)
}

// reduceSpec is one reduction: an accumulator step from init, for floats (f,
// nil for a plain sum) and integers (i, nil for a plain sum; intOK false when
// the op is float-only), and an optional finish given the number of reduced
// elements.
type reduceSpec struct {
	f     func(acc, v float64) float64
	i     func(acc, v int64) int64
	intOK bool
	initF float64
	initI int64
	finF  func(acc float64, n int) float64
	finI  func(acc int64, n int) int64
}

// reduceAxes resolves a Reduce node's axes: nil with all=true means every
// axis; identity=true means noop_with_empty_axes asked for no reduction.
type reduceAxes struct {
	attr      []int64
	axesInput bool // the opset takes axes as input 1, not as an attribute
	keepdims  bool
	noop      bool
}

func newReduceAxes(n *Node) (reduceAxes, error) {
	from := int64(18)
	if n.OpType == "ReduceSum" {
		from = 13
	}
	r := reduceAxes{attr: n.Ints("axes", nil), axesInput: n.Opset >= from,
		keepdims: n.Int("keepdims", 1) != 0, noop: n.Int("noop_with_empty_axes", 0) != 0}
	if r.axesInput && n.Has("axes") {
		return r, fmt.Errorf("attribute axes: since opset %d the axes are input 1", from)
	}
	if !r.axesInput && len(n.Inputs) > 1 && n.Inputs[1] != "" {
		return r, fmt.Errorf("input axes: before opset %d the axes are an attribute", from)
	}
	return r, nil
}

// resolve returns, for input x, which axes to reduce, or identity=true.
func (r reduceAxes) resolve(in []*tensor.Tensor) (reduced []bool, identity bool, err error) {
	if err := checkInputs(in, 1, 2); err != nil {
		return nil, false, err
	}
	x := in[0]
	axes := r.attr
	if r.axesInput && len(in) > 1 && in[1] != nil {
		if axes, err = intList(in[1], "axes"); err != nil {
			return nil, false, err
		}
	}
	reduced = make([]bool, len(x.Shape))
	if len(axes) == 0 {
		if r.noop {
			return nil, true, nil
		}
		for i := range reduced {
			reduced[i] = true
		}
		return reduced, false, nil
	}
	ax, err := normAxes(axes, len(x.Shape), "axes")
	if err != nil {
		return nil, false, err
	}
	for _, a := range ax {
		reduced[a] = true
	}
	return reduced, false, nil
}

// shapes returns the output shape and the output's strides over x's shape
// (0 along reduced axes), plus the number of elements each output reduces.
func (r reduceAxes) shapes(xshape []int, reduced []bool) (out, kept, strides []int, count int) {
	count = 1
	for d, v := range xshape {
		if reduced[d] {
			kept = append(kept, 1)
			count *= v
			continue
		}
		kept = append(kept, v)
		out = append(out, v)
	}
	if r.keepdims {
		out = kept
	}
	if out == nil {
		out = []int{}
	}
	strides = contiguousStrides(kept)
	for d := range strides {
		if reduced[d] {
			strides[d] = 0
		}
	}
	return out, kept, strides, count
}

func newReduce(n *Node, op string, s reduceSpec) (Kernel, error) {
	ra, err := newReduceAxes(n)
	if err != nil {
		return nil, err
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		reduced, identity, err := ra.resolve(in)
		if err != nil {
			return nil, err
		}
		x := in[0]
		if identity {
			return []*tensor.Tensor{reshaped(x, x.Shape)}, nil
		}
		shape, _, st, count := ra.shapes(x.Shape, reduced)
		var out *tensor.Tensor
		switch x.DType {
		case tensor.Float32:
			out = reduceFloat[float32](x, shape, st, count, s)
		case tensor.Float64:
			out = reduceFloat[float64](x, shape, st, count, s)
		default:
			if !s.intOK {
				return nil, fmt.Errorf("input data: dtype %s, %s supports float32 and float64", x.DType, op)
			}
			switch x.DType {
			case tensor.Int64:
				out = reduceInt[int64](x, shape, st, count, s)
			case tensor.Int32:
				out = reduceInt[int32](x, shape, st, count, s)
			case tensor.Int8:
				out = reduceInt[int8](x, shape, st, count, s)
			case tensor.Uint8:
				out = reduceInt[uint8](x, shape, st, count, s)
			default:
				return nil, fmt.Errorf("input data: dtype %s, %s supports float32, float64, int64, int32, int8 and uint8", x.DType, op)
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// reduceInto folds every element of x (shape xshape) into acc at its output
// offset (outStrides over xshape, 0 along reduced axes). A nil f is a plain
// sum, inlined because Sum and Mean (LayerNorm decompositions) are hot.
func reduceInto[T num, A float64 | int64](acc []A, x []T, xshape, outStrides []int, f func(a, v A) A) {
	forRows(xshape, [][]int{contiguousStrides(xshape), outStrides}, func(offs []int, n int, step []int) {
		xi, o := offs[0], offs[1]
		row := x[xi : xi+n]
		if f == nil {
			if step[1] == 0 {
				a := acc[o]
				for _, v := range row {
					a += A(v)
				}
				acc[o] = a
				return
			}
			for _, v := range row {
				acc[o] += A(v)
				o += step[1]
			}
			return
		}
		if step[1] == 0 {
			a := acc[o]
			for _, v := range row {
				a = f(a, A(v))
			}
			acc[o] = a
			return
		}
		for _, v := range row {
			acc[o] = f(acc[o], A(v))
			o += step[1]
		}
	})
}

func reduceFloat[T floating](x *tensor.Tensor, shape, st []int, count int, s reduceSpec) *tensor.Tensor {
	acc := make([]float64, tensor.NumElements(shape))
	for i := range acc {
		acc[i] = s.initF
	}
	reduceInto(acc, dataOf[T](x), x.Shape, st, s.f)
	out := newOf[T](shape)
	dst := dataOf[T](out)
	for i, a := range acc {
		if s.finF != nil {
			a = s.finF(a, count)
		}
		dst[i] = T(a)
	}
	return out
}

func reduceInt[T integer](x *tensor.Tensor, shape, st []int, count int, s reduceSpec) *tensor.Tensor {
	acc := make([]int64, tensor.NumElements(shape))
	for i := range acc {
		acc[i] = s.initI
	}
	reduceInto(acc, dataOf[T](x), x.Shape, st, s.i)
	out := newOf[T](shape)
	dst := dataOf[T](out)
	for i, a := range acc {
		if s.finI != nil {
			a = s.finI(a, count)
		}
		dst[i] = T(a)
	}
	return out
}

// newReduceLogSumExp computes log(Σ exp(x)) as m + log(Σ exp(x - m)) with m
// the maximum, so large inputs do not overflow.
func newReduceLogSumExp(n *Node) (Kernel, error) {
	ra, err := newReduceAxes(n)
	if err != nil {
		return nil, err
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		reduced, identity, err := ra.resolve(in)
		if err != nil {
			return nil, err
		}
		x := in[0]
		if identity {
			return []*tensor.Tensor{reshaped(x, x.Shape)}, nil
		}
		var xs []float64
		switch x.DType {
		case tensor.Float32:
			xs = make([]float64, len(x.F32))
			for i, v := range x.F32 {
				xs[i] = float64(v)
			}
		case tensor.Float64:
			xs = x.F64
		default:
			return nil, fmt.Errorf("input data: dtype %s, ReduceLogSumExp supports float32 and float64", x.DType)
		}
		shape, kept, st, _ := ra.shapes(x.Shape, reduced)
		m := make([]float64, tensor.NumElements(shape))
		for i := range m {
			m[i] = math.Inf(-1)
		}
		reduceInto(m, xs, x.Shape, st, math.Max)
		for i, v := range m {
			if math.IsInf(v, 0) {
				m[i] = 0 // all -Inf (or an +Inf): shifting would give NaN
			}
		}
		centered := make([]float64, len(xs))
		broadcastApply(centered, x.Shape, xs, x.Shape, m, kept, func(v, mv float64) float64 { return math.Exp(v - mv) })
		acc := make([]float64, len(m))
		reduceInto(acc, centered, x.Shape, st, nil)
		out := tensor.New(x.DType, shape...)
		for i, a := range acc {
			r := m[i] + math.Log(a)
			if out.DType == tensor.Float32 {
				out.F32[i] = float32(r)
			} else {
				out.F64[i] = r
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newArg returns the int64 index of the largest (isMax) or smallest element
// along axis; ties go to the first index, or the last with select_last_index.
func newArg(n *Node, isMax bool) (Kernel, error) {
	axis := n.Int("axis", 0)
	keep := n.Int("keepdims", 1) != 0
	last := n.Int("select_last_index", 0) != 0
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		ax, err := normAxis(axis, len(x.Shape), false)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		if x.Shape[ax] == 0 {
			return nil, fmt.Errorf("input data: shape %s, axis %d is empty", tensor.ShapeString(x.Shape), ax)
		}
		shape := append([]int{}, x.Shape...)
		shape[ax] = 1
		if !keep {
			shape = append(shape[:ax], shape[ax+1:]...)
		}
		out := tensor.New(tensor.Int64, shape...)
		outer, dim, inner := tensor.NumElements(x.Shape[:ax]), x.Shape[ax], tensor.NumElements(x.Shape[ax+1:])
		switch x.DType {
		case tensor.Float32:
			argAlong(out.I64, x.F32, outer, dim, inner, isMax, last)
		case tensor.Float64:
			argAlong(out.I64, x.F64, outer, dim, inner, isMax, last)
		case tensor.Int64:
			argAlong(out.I64, x.I64, outer, dim, inner, isMax, last)
		case tensor.Int32:
			argAlong(out.I64, x.I32, outer, dim, inner, isMax, last)
		case tensor.Int8:
			argAlong(out.I64, x.I8, outer, dim, inner, isMax, last)
		case tensor.Uint8:
			argAlong(out.I64, x.U8, outer, dim, inner, isMax, last)
		default:
			return nil, fmt.Errorf("input data: dtype %s is not supported", x.DType)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// argAlong writes the index of the best element of each run along the axis.
// As in ONNX Runtime, NaN beats every number by default (the first NaN wins,
// as in NumPy), while with select_last_index comparisons are plain, so a NaN
// after the first element never wins.
func argAlong[T num](dst []int64, x []T, outer, dim, inner int, isMax, last bool) {
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*dim*inner + i
			best, bi := x[base], 0
			for j := 1; j < dim; j++ {
				v := x[base+j*inner]
				var better bool
				switch {
				case !last && (v != v || best != best):
					better = v != v && best == best
				case isMax && last:
					better = v >= best
				case isMax:
					better = v > best
				case last:
					better = v <= best
				default:
					better = v < best
				}
				if better {
					best, bi = v, j
				}
			}
			dst[o*inner+i] = int64(bi)
		}
	}
}

// newTopK returns the k largest (or smallest) elements along axis and their
// int64 indices, sorted, equal values in index order (as ONNX Runtime does).
// k is an attribute before opset 10 and a one-element input since.
func newTopK(n *Node) (Kernel, error) {
	axis := n.Int("axis", -1)
	largest := n.Int("largest", 1) != 0
	attrK := n.Int("k", -1)
	attrMode := n.Opset < 10
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		k := attrK
		if attrMode {
			if err := checkInputs(in, 1, 1); err != nil {
				return nil, err
			}
		} else {
			if err := checkInputs(in, 2, 2); err != nil {
				return nil, err
			}
			ks, err := intList(in[1], "K")
			if err != nil {
				return nil, err
			}
			if len(ks) != 1 {
				return nil, fmt.Errorf("input K: %d elements, must be 1", len(ks))
			}
			k = ks[0]
		}
		x := in[0]
		ax, err := normAxis(axis, len(x.Shape), false)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		dim := x.Shape[ax]
		if k < 0 || k > int64(dim) {
			return nil, fmt.Errorf("k %d is out of range [0, %d] for axis %d of shape %s", k, dim, ax, tensor.ShapeString(x.Shape))
		}
		shape := append([]int{}, x.Shape...)
		shape[ax] = int(k)
		vals := tensor.New(x.DType, shape...)
		idx := tensor.New(tensor.Int64, shape...)
		outer, inner := tensor.NumElements(x.Shape[:ax]), tensor.NumElements(x.Shape[ax+1:])
		switch x.DType {
		case tensor.Float32:
			topK(vals.F32, idx.I64, x.F32, outer, dim, inner, int(k), largest)
		case tensor.Float64:
			topK(vals.F64, idx.I64, x.F64, outer, dim, inner, int(k), largest)
		case tensor.Int64:
			topK(vals.I64, idx.I64, x.I64, outer, dim, inner, int(k), largest)
		case tensor.Int32:
			topK(vals.I32, idx.I64, x.I32, outer, dim, inner, int(k), largest)
		case tensor.Int8:
			topK(vals.I8, idx.I64, x.I8, outer, dim, inner, int(k), largest)
		case tensor.Uint8:
			topK(vals.U8, idx.I64, x.U8, outer, dim, inner, int(k), largest)
		default:
			return nil, fmt.Errorf("input X: dtype %s is not supported", x.DType)
		}
		return []*tensor.Tensor{vals, idx}, nil
	}, nil
}

func topK[T num](vals []T, idx []int64, x []T, outer, dim, inner, k int, largest bool) {
	order := make([]int, dim)
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*dim*inner + i
			for j := range order {
				order[j] = j
			}
			slices.SortStableFunc(order, func(a, b int) int {
				va, vb := x[base+a*inner], x[base+b*inner]
				switch {
				case va == vb:
					return 0
				case (va > vb) == largest:
					return -1
				}
				return 1
			})
			ob := o*k*inner + i
			for j := 0; j < k; j++ {
				vals[ob+j*inner] = x[base+order[j]*inner]
				idx[ob+j*inner] = int64(order[j])
			}
		}
	}
}

// newCumSum is the running sum along axis (a scalar input), optionally
// exclusive (each sum leaves out its own element) and reversed (summing from
// the end).
func newCumSum(n *Node) (Kernel, error) {
	exclusive := n.Int("exclusive", 0) != 0
	reverse := n.Int("reverse", 0) != 0
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x := in[0]
		axes, err := intList(in[1], "axis")
		if err != nil {
			return nil, err
		}
		if len(axes) != 1 {
			return nil, fmt.Errorf("input axis: %d elements, must be a scalar", len(axes))
		}
		ax, err := normAxis(axes[0], len(x.Shape), false)
		if err != nil {
			return nil, fmt.Errorf("input axis: %w", err)
		}
		outer, dim, inner := tensor.NumElements(x.Shape[:ax]), x.Shape[ax], tensor.NumElements(x.Shape[ax+1:])
		out := tensor.New(x.DType, x.Shape...)
		switch x.DType {
		case tensor.Float32:
			cumSum(out.F32, x.F32, outer, dim, inner, exclusive, reverse)
		case tensor.Float64:
			cumSum(out.F64, x.F64, outer, dim, inner, exclusive, reverse)
		case tensor.Int64:
			cumSum(out.I64, x.I64, outer, dim, inner, exclusive, reverse)
		case tensor.Int32:
			cumSum(out.I32, x.I32, outer, dim, inner, exclusive, reverse)
		default:
			return nil, fmt.Errorf("input x: dtype %s, CumSum supports float32, float64, int64 and int32", x.DType)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

func cumSum[T float32 | float64 | int64 | int32](dst, x []T, outer, dim, inner int, exclusive, reverse bool) {
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			var acc T
			for s := 0; s < dim; s++ {
				j := s
				if reverse {
					j = dim - 1 - s
				}
				p := (o*dim+j)*inner + i
				if exclusive {
					dst[p] = acc
					acc += x[p]
				} else {
					acc += x[p]
					dst[p] = acc
				}
			}
		}
	}
}
