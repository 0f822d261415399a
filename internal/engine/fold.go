package engine

import (
	"fmt"

	"github.com/spindleml/spindle/internal/tensor"
)

// foldLimit caps the bytes a folded node may produce: a constant larger than this
// is kept only when it is no larger than the distinct constants it was computed
// from (a Transpose of a big weight), so folding never multiplies a model's
// memory.
const foldLimit = 64 << 20

// foldBudget is what folding may add to the memory of a model whose weights
// take weightBytes, over all its nodes: every instance holds the folded
// constants privately, and Compile holds them all until it ends, so a model
// of many nodes each under foldLimit (400 ConstantOfShape of 60 MiB) must not
// add up to more than a fixed allowance plus its weights once more. Nodes
// past the budget run per request instead, under Run's memory budget.
func foldBudget(weightBytes int64) int64 { return 4*foldLimit + weightBytes }

// neverFold lists ops that must run on every request even with constant inputs:
// their outputs are random.
var neverFold = map[string]bool{
	"RandomNormal": true, "RandomNormalLike": true, "RandomUniform": true,
	"RandomUniformLike": true, "Bernoulli": true, "Multinomial": true,
}

// expanding lists ops whose output can be far larger than their inputs; they are
// folded only when a shape rule bounds the output first.
var expanding = map[string]bool{
	"ConstantOfShape": true, "Expand": true, "Tile": true, "Range": true, "Resize": true,
	"Upsample": true, "Pad": true, "EyeLike": true, "OneHot": true, "ConvTranspose": true,
	"GatherND": true, "Einsum": true,
}

// fold executes st at compile time when every input it has is a constant (or,
// for Shape and Size, when its input's shape is statically known) and returns
// its outputs; nil means the node must run on every request. Before running
// the kernel it works out, with the rules Run's memory budget uses, what the
// step will allocate: a node over foldLimit (or the constants it reads) or
// over what is left of the model's fold budget is not folded, and one that
// would need more than a Run may hold is an error, as is a kernel that fails:
// its inputs are constant, so it would fail on every request.
func (c *compiler) fold(st *step) ([]*tensor.Tensor, error) {
	n := st.node
	if neverFold[n.OpType] || len(st.out) == 0 {
		return nil, nil
	}
	args := make([]*tensor.Tensor, len(st.in))
	for j, s := range st.in {
		if s < 0 {
			continue
		}
		if c.consts[s] == nil {
			return foldShapeOf(n), nil
		}
		args[j] = c.consts[s]
	}
	need, biggest := stepBytes(st, args, 1)
	if need > DefaultMaxBytes {
		return nil, n.Errorf("its inputs are constant and it needs %s on every request, more than the %s a request may hold", formatBytes(need), formatBytes(DefaultMaxBytes))
	}
	if expanding[n.OpType] && !sizeKnown(st, args) {
		return nil, nil
	}
	limit := max(foldLimit, distinctBytes(args))
	if biggest > limit || need > *c.foldLeft {
		return nil, nil
	}
	outs, err := runKernel(*st, args)
	if err != nil {
		return nil, fmt.Errorf("its inputs are constant, so it fails on every request: %w", err)
	}
	var outBytes int64
	for j, s := range st.out {
		if s < 0 {
			continue
		}
		if j >= len(outs) || outs[j] == nil {
			return nil, nil
		}
		outBytes += tensorBytes(outs[j])
	}
	if outBytes > limit || outBytes > *c.foldLeft {
		return nil, nil
	}
	*c.foldLeft -= outBytes
	return outs, nil
}

// sizeKnown reports whether a shape rule gives the size of every output of
// st on args before its kernel runs.
func sizeKnown(st *step, args []*tensor.Tensor) bool {
	return complete(stepShapes(st, args), len(st.out))
}

// distinctBytes sums the bytes of args, counting a tensor read more than
// once (Concat of one constant with itself) once.
func distinctBytes(args []*tensor.Tensor) int64 {
	var sum int64
	for i, a := range args {
		if a == nil {
			continue
		}
		dup := false
		for _, b := range args[:i] {
			if b == a || sameData(a, b) {
				dup = true
				break
			}
		}
		if !dup {
			sum += tensorBytes(a)
		}
	}
	return sum
}

// foldShapeOf folds Shape and Size nodes whose input's shape is statically
// known, although the input's values are not.
func foldShapeOf(n *Node) []*tensor.Tensor {
	x := n.InShape(0)
	if x == nil {
		return nil
	}
	switch n.OpType {
	case "Size":
		return []*tensor.Tensor{tensor.FromI64([]int64{int64(tensor.NumElements(x))})}
	case "Shape":
		lo, hi := shapeRange(n, len(x))
		v := make([]int64, 0, hi-lo)
		for _, d := range x[lo:hi] {
			v = append(v, int64(d))
		}
		return []*tensor.Tensor{tensor.FromI64(v, len(v))}
	}
	return nil
}

// shapeRange resolves Shape's start and end attributes (opset 15) for a rank-r
// input: negative values count from the end and both are clamped to [0, r].
func shapeRange(n *Node, r int) (lo, hi int) {
	clamp := func(v int64) int {
		if v < 0 {
			v += int64(r)
		}
		return int(min(max(v, 0), int64(r)))
	}
	lo = clamp(n.Int("start", 0))
	hi = clamp(n.Int("end", int64(r)))
	if hi < lo {
		hi = lo
	}
	return lo, hi
}
