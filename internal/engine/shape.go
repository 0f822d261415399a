package engine

import (
	"fmt"

	"github.com/spindleml/spindle/internal/tensor"
)

// Static shape inference. Compile propagates shapes from the graph's declared
// input shapes and the constants through the graph so that Shape nodes of
// intermediate tensors fold into constants (and with them the
// Shape->Gather->Unsqueeze->Concat->Reshape chains exporters emit). Inference is
// optional per op and per call: an op without a rule, or a rule that cannot
// decide (an input shape unknown, a shape-determining input not constant),
// leaves its outputs unknown. Run checks every kernel output against the
// inferred shape, so a wrong rule is an error, never a silently wrong constant.

// shapeFn returns the shapes of a node's outputs from its inputs' shapes (nil
// entries are unknown or omitted inputs); a nil output entry is unknown.
type shapeFn func(n *Node, in [][]int) ([][]int, error)

// shapeFns maps op types to their inference rule.
var shapeFns = map[string]shapeFn{}

func init() {
	for _, op := range []string{
		"Identity", "Relu", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Erf", "Tanh",
		"Sigmoid", "LeakyRelu", "Gelu", "HardSigmoid", "HardSwish", "Clip", "Not", "Cast",
		"CastLike", "Softmax", "LogSoftmax", "Hardmax", "Floor", "Ceil", "Round", "Sign",
		"Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh",
		"Atanh", "Elu", "Selu", "Celu", "Softplus", "Softsign", "ThresholdedRelu", "Shrink",
		"Mish", "IsNaN", "IsInf", "PRelu", "BatchNormalization", "InstanceNormalization",
		"LRN", "MeanVarianceNormalization", "Trilu", "CumSum", "BitwiseNot",
	} {
		shapeFns[op] = sameAsFirst
	}
	for _, op := range []string{
		"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Equal", "Less", "Greater", "LessOrEqual",
		"GreaterOrEqual", "And", "Or", "Xor", "BitShift", "Where", "Min", "Max", "Sum",
		"Mean", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
	} {
		shapeFns[op] = broadcastAll
	}
	shapeFns["Dropout"] = func(n *Node, in [][]int) ([][]int, error) { return [][]int{in[0], in[0]}, nil }
	shapeFns["MatMul"] = inferMatMul
	shapeFns["Gemm"] = inferGemm
	shapeFns["Conv"] = inferConv
	shapeFns["ConvTranspose"] = inferConvTranspose
	shapeFns["MaxPool"] = inferPool
	shapeFns["AveragePool"] = inferPool
	shapeFns["LpPool"] = inferPool
	shapeFns["GlobalAveragePool"] = inferGlobalPool
	shapeFns["GlobalMaxPool"] = inferGlobalPool
	shapeFns["GlobalLpPool"] = inferGlobalPool
	shapeFns["LayerNormalization"] = inferLayerNorm
	shapeFns["Flatten"] = inferFlatten
	shapeFns["Reshape"] = inferReshape
	shapeFns["Transpose"] = inferTranspose
	shapeFns["Unsqueeze"] = inferUnsqueeze
	shapeFns["Squeeze"] = inferSqueeze
	shapeFns["Concat"] = inferConcat
	shapeFns["Gather"] = inferGather
	shapeFns["Shape"] = func(n *Node, in [][]int) ([][]int, error) {
		if in[0] == nil {
			return nil, nil
		}
		lo, hi := shapeRange(n, len(in[0]))
		return [][]int{{hi - lo}}, nil
	}
	shapeFns["Size"] = func(n *Node, in [][]int) ([][]int, error) { return [][]int{{}}, nil }
	shapeFns["Expand"] = inferExpand
	shapeFns["Tile"] = inferTile
	shapeFns["ConstantOfShape"] = inferConstantOfShape
	shapeFns["Slice"] = inferSlice
	for _, op := range []string{"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
		"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"} {
		shapeFns[op] = inferReduce
	}
	shapeFns["Split"] = inferSplit
	shapeFns["TopK"] = inferTopK
	shapeFns["GatherElements"] = func(n *Node, in [][]int) ([][]int, error) { return [][]int{in[1]}, nil }
	shapeFns["ScatterND"] = sameAsFirst
	shapeFns["ScatterElements"] = sameAsFirst
	shapeFns["DepthToSpace"] = inferDepthSpace
	shapeFns["SpaceToDepth"] = inferDepthSpace
	shapeFns["ArgMax"] = inferArgReduce
	shapeFns["ArgMin"] = inferArgReduce
}

// inferShapes applies n's rule; nil means nothing is known. A rule that errs or
// panics (an input it did not expect) makes everything unknown: the kernel
// reports the problem at run time.
func inferShapes(n *Node, in [][]int) [][]int {
	f := shapeFns[n.OpType]
	if f == nil {
		return nil
	}
	return applyRule(f, n, in)
}

// applyRule is inferShapes with the rule given.
func applyRule(f shapeFn, n *Node, in [][]int) (out [][]int) {
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	out, err := f(n, in)
	if err != nil {
		return nil
	}
	for i, s := range out {
		if s != nil && !staticShape(s) {
			out[i] = nil
		}
	}
	return out
}

func sameAsFirst(n *Node, in [][]int) ([][]int, error) {
	if len(in) == 0 {
		return nil, nil
	}
	return [][]int{in[0]}, nil
}

func broadcastAll(n *Node, in [][]int) ([][]int, error) {
	var out []int
	for i, s := range in {
		if s == nil {
			return nil, nil
		}
		if i == 0 {
			out = s
			continue
		}
		var err error
		if out, err = broadcastShapes(out, s); err != nil {
			return nil, err
		}
	}
	return [][]int{out}, nil
}

func inferMatMul(n *Node, in [][]int) ([][]int, error) {
	a, b := in[0], in[1]
	if a == nil || b == nil || len(a) == 0 || len(b) == 0 {
		return nil, nil
	}
	g, err := matMulGeometry(a, b)
	if err != nil {
		return nil, err
	}
	return [][]int{g.out}, nil
}

func inferGemm(n *Node, in [][]int) ([][]int, error) {
	a, b := in[0], in[1]
	if len(a) != 2 || len(b) != 2 {
		return nil, nil
	}
	M, N := a[0], b[1]
	if n.Int("transA", 0) != 0 {
		M = a[1]
	}
	if n.Int("transB", 0) != 0 {
		N = b[0]
	}
	return [][]int{{M, N}}, nil
}

func inferConv(n *Node, in [][]int) ([][]int, error) {
	x, w := in[0], in[1]
	if len(x) < 3 || len(w) != len(x) {
		return nil, nil
	}
	a, err := readWindowAttrs(n)
	if err != nil {
		return nil, err
	}
	k := make([]int64, len(w)-2)
	for i := range k {
		k[i] = int64(w[2+i])
	}
	sp, _, _, err := a.geometry(x[2:], k)
	if err != nil {
		return nil, err
	}
	return [][]int{append([]int{x[0], w[0]}, sp...)}, nil
}

func inferConvTranspose(n *Node, in [][]int) ([][]int, error) {
	x, w := in[0], in[1]
	if len(x) < 3 || len(w) != len(x) {
		return nil, nil
	}
	a, err := readWindowAttrs(n)
	if err != nil {
		return nil, err
	}
	k := make([]int64, len(w)-2)
	for i := range k {
		k[i] = int64(w[2+i])
	}
	sp, _, err := convTransposeGeometry(&a, n.Ints("output_padding", nil), n.Ints("output_shape", nil), x[2:], k)
	if err != nil {
		return nil, err
	}
	return [][]int{append([]int{x[0], w[1] * int(n.Int("group", 1))}, sp...)}, nil
}

func inferPool(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	if len(x) < 3 {
		return nil, nil
	}
	a, err := readWindowAttrs(n)
	if err != nil {
		return nil, err
	}
	if n.OpType == "AveragePool" && n.Opset < 19 {
		a.dilations = nil // ignored there, as newAveragePool does
	}
	sp, _, _, err := a.geometry(x[2:], a.kernel)
	if err != nil {
		return nil, err
	}
	y := append([]int{x[0], x[1]}, sp...)
	return [][]int{y, y}, nil
}

func inferGlobalPool(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	if len(x) < 2 {
		return nil, nil
	}
	y := append([]int{}, x...)
	for i := 2; i < len(y); i++ {
		y[i] = 1
	}
	return [][]int{y}, nil
}

func inferLayerNorm(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	if x == nil {
		return nil, nil
	}
	a, err := normAxis(n.Int("axis", -1), len(x), false)
	if err != nil {
		return nil, err
	}
	stat := append([]int{}, x...)
	for i := a; i < len(stat); i++ {
		stat[i] = 1
	}
	return [][]int{x, stat, stat}, nil
}

func inferFlatten(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	if x == nil {
		return nil, nil
	}
	a, err := normAxis(n.Int("axis", 1), len(x), true)
	if err != nil {
		return nil, err
	}
	return [][]int{{tensor.NumElements(x[:a]), tensor.NumElements(x[a:])}}, nil
}

// constInts returns constant input i as int64 values, or nil when it is not a
// constant integer tensor.
func constInts(n *Node, i int) []int64 {
	t := n.Const(i)
	if t == nil {
		return nil
	}
	switch t.DType {
	case tensor.Int64:
		return t.I64
	case tensor.Int32:
		v := make([]int64, len(t.I32))
		for j, x := range t.I32 {
			v[j] = int64(x)
		}
		return v
	}
	return nil
}

func inferReshape(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	s := n.Const(1)
	if x == nil || s == nil || s.DType != tensor.Int64 {
		return nil, nil
	}
	out, err := reshapeTarget(x, s.I64, n.Int("allowzero", 0) == 1)
	if err != nil {
		return nil, err
	}
	return [][]int{out}, nil
}

func inferTranspose(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	if x == nil {
		return nil, nil
	}
	perm := n.Ints("perm", nil)
	out := make([]int, len(x))
	if len(perm) == 0 {
		for i := range x {
			out[i] = x[len(x)-1-i]
		}
		return [][]int{out}, nil
	}
	if len(perm) != len(x) {
		return nil, fmt.Errorf("perm length")
	}
	seen := make([]bool, len(x))
	for i, p := range perm {
		if p < 0 || int(p) >= len(x) || seen[p] {
			return nil, fmt.Errorf("bad perm")
		}
		seen[p] = true
		out[i] = x[p]
	}
	return [][]int{out}, nil
}

// axesOf returns a node's axes from the attribute (before opset fromOpset) or
// from constant input idx (from then on). ok is false when they are an input
// that is not constant; nil axes with ok mean none were given.
func axesOf(n *Node, fromOpset int64, idx int) (axes []int64, ok bool) {
	if n.Opset < fromOpset {
		return n.Ints("axes", nil), true
	}
	if len(n.Inputs) <= idx || n.Inputs[idx] == "" {
		return nil, true
	}
	v := constInts(n, idx)
	if v == nil {
		return nil, false
	}
	return v, true
}

func inferUnsqueeze(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	axes, ok := axesOf(n, 13, 1)
	if x == nil || !ok || len(axes) == 0 {
		return nil, nil
	}
	r := len(x) + len(axes)
	ins := make([]bool, r)
	for _, a := range axes {
		ax, err := normAxis(a, r, false)
		if err != nil {
			return nil, err
		}
		if ins[ax] {
			return nil, fmt.Errorf("duplicate axis")
		}
		ins[ax] = true
	}
	out := make([]int, 0, r)
	j := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			out = append(out, 1)
			continue
		}
		out = append(out, x[j])
		j++
	}
	return [][]int{out}, nil
}

func inferSqueeze(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	axes, ok := axesOf(n, 13, 1)
	if x == nil || !ok {
		return nil, nil
	}
	drop := make([]bool, len(x))
	if len(axes) == 0 {
		for i, d := range x {
			drop[i] = d == 1
		}
	}
	for _, a := range axes {
		ax, err := normAxis(a, len(x), false)
		if err != nil {
			return nil, err
		}
		if x[ax] != 1 {
			return nil, fmt.Errorf("axis %d is not 1", ax)
		}
		drop[ax] = true
	}
	out := []int{}
	for i, d := range x {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return [][]int{out}, nil
}

func inferConcat(n *Node, in [][]int) ([][]int, error) {
	if len(in) == 0 || in[0] == nil {
		return nil, nil
	}
	r := len(in[0])
	a, err := normAxis(n.Int("axis", 0), r, false)
	if err != nil {
		return nil, err
	}
	out := append([]int{}, in[0]...)
	out[a] = 0
	for _, s := range in {
		if s == nil {
			return nil, nil
		}
		if len(s) != r {
			return nil, fmt.Errorf("rank mismatch")
		}
		for i := range s {
			if i != a && s[i] != out[i] {
				return nil, fmt.Errorf("dimension mismatch")
			}
		}
		out[a] += s[a]
	}
	return [][]int{out}, nil
}

func inferGather(n *Node, in [][]int) ([][]int, error) {
	x, idx := in[0], in[1]
	if x == nil || idx == nil {
		return nil, nil
	}
	a, err := normAxis(n.Int("axis", 0), len(x), false)
	if err != nil {
		return nil, err
	}
	out := append(append(append([]int{}, x[:a]...), idx...), x[a+1:]...)
	return [][]int{out}, nil
}

func inferExpand(n *Node, in [][]int) ([][]int, error) {
	s := constInts(n, 1)
	if in[0] == nil || s == nil {
		return nil, nil
	}
	target := make([]int, len(s))
	for i, d := range s {
		target[i] = int(d)
	}
	out, err := broadcastShapes(in[0], target)
	if err != nil {
		return nil, err
	}
	return [][]int{out}, nil
}

func inferTile(n *Node, in [][]int) ([][]int, error) {
	r := constInts(n, 1)
	x := in[0]
	if x == nil || r == nil || len(r) != len(x) {
		return nil, nil
	}
	out := make([]int, len(x))
	for i := range x {
		out[i] = x[i] * int(r[i])
	}
	return [][]int{out}, nil
}

func inferConstantOfShape(n *Node, in [][]int) ([][]int, error) {
	s := constInts(n, 0)
	if s == nil {
		return nil, nil
	}
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return [][]int{out}, nil
}

func inferSlice(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	if x == nil {
		return nil, nil
	}
	var starts, ends, axes, steps []int64
	if n.Opset < 10 {
		starts, ends, axes = n.Ints("starts", nil), n.Ints("ends", nil), n.Ints("axes", nil)
	} else {
		starts, ends = constInts(n, 1), constInts(n, 2)
		if starts == nil || ends == nil {
			return nil, nil
		}
		var ok bool
		if axes, ok = optionalConstInts(n, 3); !ok {
			return nil, nil
		}
		if steps, ok = optionalConstInts(n, 4); !ok {
			return nil, nil
		}
	}
	if len(starts) != len(ends) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, fmt.Errorf("slice parameter lengths differ")
	}
	out := append([]int{}, x...)
	for i := range starts {
		ax := i
		if axes != nil {
			a, err := normAxis(axes[i], len(x), false)
			if err != nil {
				return nil, err
			}
			ax = a
		}
		step := int64(1)
		if steps != nil {
			step = steps[i]
		}
		if step == 0 {
			return nil, fmt.Errorf("step 0")
		}
		out[ax] = sliceLen(int64(x[ax]), starts[i], ends[i], step)
	}
	return [][]int{out}, nil
}

// optionalConstInts returns optional input i's constant values: nil, true when
// the input is omitted; nil, false when it is given but not constant.
func optionalConstInts(n *Node, i int) ([]int64, bool) {
	if len(n.Inputs) <= i || n.Inputs[i] == "" {
		return nil, true
	}
	v := constInts(n, i)
	return v, v != nil
}

// sliceLen is the number of elements Slice takes from an axis of size d (ONNX
// Slice: negative indices count from the end, then starts and ends are clamped
// to [0, d] for positive steps and [-1, d-1] for negative ones).
func sliceLen(d, start, end, step int64) int {
	if start < 0 {
		start += d
	}
	if end < 0 {
		end += d
	}
	if step > 0 {
		start = min(max(start, 0), d)
		end = min(max(end, 0), d)
		if end <= start {
			return 0
		}
		return int((end - start + step - 1) / step)
	}
	start = min(max(start, -1), d-1)
	end = min(max(end, -1), d-1)
	if start <= end {
		return 0
	}
	return int((start - end - step - 1) / -step)
}

func inferReduce(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	if x == nil {
		return nil, nil
	}
	from := int64(18)
	if n.OpType == "ReduceSum" {
		from = 13
	}
	axes, ok := axesOf(n, from, 1)
	if !ok {
		return nil, nil
	}
	keep := n.Int("keepdims", 1) != 0
	if len(axes) == 0 && n.Int("noop_with_empty_axes", 0) != 0 {
		return [][]int{x}, nil
	}
	red := make([]bool, len(x))
	if len(axes) == 0 {
		for i := range red {
			red[i] = true
		}
	}
	for _, a := range axes {
		ax, err := normAxis(a, len(x), false)
		if err != nil {
			return nil, err
		}
		red[ax] = true
	}
	out := []int{}
	for i, d := range x {
		switch {
		case !red[i]:
			out = append(out, d)
		case keep:
			out = append(out, 1)
		}
	}
	return [][]int{out}, nil
}

func inferArgReduce(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	if x == nil {
		return nil, nil
	}
	ax, err := normAxis(n.Int("axis", 0), len(x), false)
	if err != nil {
		return nil, err
	}
	out := append([]int{}, x[:ax]...)
	if n.Int("keepdims", 1) != 0 {
		out = append(out, 1)
	}
	return [][]int{append(out, x[ax+1:]...)}, nil
}

func inferDepthSpace(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	b := int(n.Int("blocksize", 0))
	if len(x) != 4 || b < 1 {
		return nil, nil
	}
	if n.OpType == "SpaceToDepth" {
		return [][]int{{x[0], x[1] * b * b, x[2] / b, x[3] / b}}, nil
	}
	return [][]int{{x[0], x[1] / (b * b), x[2] * b, x[3] * b}}, nil
}

func inferSplit(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	nout := len(n.Outputs)
	if x == nil || nout == 0 {
		return nil, nil
	}
	ax, err := normAxis(n.Int("axis", 0), len(x), false)
	if err != nil {
		return nil, err
	}
	dim := x[ax]
	req := n.Ints("split", nil)
	if len(n.Inputs) > 1 && n.Inputs[1] != "" {
		if req = constInts(n, 1); req == nil {
			return nil, nil
		}
	}
	sizes := make([]int, nout)
	switch {
	case req != nil:
		if len(req) != nout {
			return nil, fmt.Errorf("split length")
		}
		for i, s := range req {
			sizes[i] = int(s)
		}
	case n.Has("num_outputs"):
		chunk, rest := (dim+nout-1)/nout, dim
		for i := range sizes {
			sizes[i] = min(chunk, rest)
			rest -= sizes[i]
		}
	default:
		if dim%nout != 0 {
			return nil, fmt.Errorf("uneven split")
		}
		for i := range sizes {
			sizes[i] = dim / nout
		}
	}
	out := make([][]int, nout)
	for i, s := range sizes {
		out[i] = append([]int{}, x...)
		out[i][ax] = s
	}
	return out, nil
}

func inferTopK(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	if x == nil {
		return nil, nil
	}
	var k int64
	if n.Opset < 10 {
		k = n.Int("k", -1)
	} else {
		v := constInts(n, 1)
		if len(v) != 1 {
			return nil, nil
		}
		k = v[0]
	}
	ax, err := normAxis(n.Int("axis", -1), len(x), false)
	if err != nil {
		return nil, err
	}
	if k < 0 || k > int64(x[ax]) {
		return nil, fmt.Errorf("k out of range")
	}
	out := append([]int{}, x...)
	out[ax] = int(k)
	return [][]int{out, out}, nil
}
