package engine

import (
	"github.com/spindleml/spindle/internal/tensor"
)

// foldLimit caps the bytes a folded node may produce: a constant larger than this
// is kept only when it is no larger than the constants it was computed from (a
// Transpose of a big weight), so folding never multiplies a model's memory.
const foldLimit = 64 << 20

// neverFold lists ops that must run on every request even with constant inputs:
// their outputs are random.
var neverFold = map[string]bool{
	"RandomNormal": true, "RandomNormalLike": true, "RandomUniform": true,
	"RandomUniformLike": true, "Bernoulli": true, "Multinomial": true,
}

// expanding lists ops whose output can be far larger than their inputs; they are
// folded only when shape inference bounds the output first.
var expanding = map[string]bool{
	"ConstantOfShape": true, "Expand": true, "Tile": true, "Range": true, "Resize": true,
	"Upsample": true, "Pad": true, "EyeLike": true, "OneHot": true, "ConvTranspose": true,
}

// fold executes st at compile time when every input it has is a constant (or,
// for Shape and Size, when its input's shape is statically known) and returns
// its outputs; nil means the node must run on every request. consts holds each
// slot's constant or nil. A node that fails here is left to fail at run time,
// where the error reaches the caller with its request.
func fold(st step, consts []*tensor.Tensor) []*tensor.Tensor {
	n := st.node
	if neverFold[n.OpType] || len(st.out) == 0 {
		return nil
	}
	args := make([]*tensor.Tensor, len(st.in))
	inBytes := 0
	allConst := true
	for j, s := range st.in {
		if s < 0 {
			continue
		}
		if consts[s] == nil {
			allConst = false
			break
		}
		args[j] = consts[s]
		inBytes += len(args[j].Bytes())
	}
	if !allConst {
		return foldShapeOf(n)
	}
	limit := max(foldLimit, inBytes)
	if pred := inferShapes(n, n.inShapes); len(pred) > 0 {
		for _, s := range pred {
			if s == nil {
				if expanding[n.OpType] {
					return nil
				}
				continue
			}
			if !checkedFits(s, limit) {
				return nil
			}
		}
	} else if expanding[n.OpType] {
		return nil
	}
	outs, err := runKernel(st, args)
	if err != nil {
		return nil
	}
	outBytes := 0
	for j, s := range st.out {
		if s < 0 {
			continue
		}
		if j >= len(outs) || outs[j] == nil {
			return nil
		}
		outBytes += len(outs[j].Bytes())
	}
	if outBytes > limit {
		return nil
	}
	return outs
}

// checkedFits reports whether a tensor of shape with 4-byte elements fits in
// limit bytes, without overflowing on absurd shapes. It is a cheap first bound:
// fold checks the real size after running the kernel.
func checkedFits(shape []int, limit int) bool {
	n := 4
	for _, d := range shape {
		if d != 0 && n > limit/d {
			return false
		}
		n *= d
	}
	return n <= limit
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
