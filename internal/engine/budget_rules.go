package engine

import (
	"math"

	"github.com/spindleml/spindle/internal/tensor"
)

// Rules only the memory budget uses (budget.go): output shapes of ops that
// Compile's shape inference leaves alone, and the scratch memory of kernels
// that take more than their outputs. They may overestimate, never
// underestimate by much: a wrong size rejects or admits a request, it does
// not change a result.

// sizeFns are output-shape rules for ops without one in shapeFns.
var sizeFns = map[string]shapeFn{
	"EyeLike":  sameAsFirst,
	"Scatter":  sameAsFirst,
	"GatherND": sizeGatherND,
	"Pad":      sizePad,
	"Range":    sizeRange,
	"OneHot":   sizeOneHot,

	"RandomNormal":      sizeFromShapeAttr,
	"RandomUniform":     sizeFromShapeAttr,
	"RandomNormalLike":  sameAsFirst,
	"RandomUniformLike": sameAsFirst,
	"Bernoulli":         sameAsFirst,
	"Multinomial":       sizeMultinomial,

	"DFT":            sizeDFT,
	"HannWindow":     sizeWindow,
	"HammingWindow":  sizeWindow,
	"BlackmanWindow": sizeWindow,
	"CenterCropPad":  sizeCenterCropPad,
	"AffineGrid":     sizeAffineGrid,
}

// sizeDFT is the input's shape with the signal axis dft_length long (or
// half of it plus one, one-sided) and 2 components: sized as float64, the
// transform's working type, by assuming the axis is the longest one.
func sizeDFT(n *Node, in [][]int) ([][]int, error) {
	if len(in) == 0 || in[0] == nil {
		return nil, nil
	}
	out := append([]int(nil), in[0]...)
	out[len(out)-1] = 4 // 2 components, as float64: twice float32's bytes
	l := constInts(n, 1)
	if len(n.Inputs) > 1 && n.Inputs[1] != "" && l == nil {
		return nil, nil // the length is known at run time only
	}
	if len(l) == 1 && len(out) > 1 {
		longest := 0
		for a := range out[:len(out)-1] {
			if out[a] > out[longest] {
				longest = a
			}
		}
		out[longest] = max(out[longest], int(min(max(l[0], 1), math.MaxInt32)))
	}
	return [][]int{out}, nil
}

// sizeWindow is [size].
func sizeWindow(n *Node, in [][]int) ([][]int, error) {
	if v := constInts(n, 0); len(v) == 1 && v[0] >= 0 {
		return [][]int{{int(min(v[0], math.MaxInt32))}}, nil
	}
	return nil, nil
}

// sizeCenterCropPad is the input's shape with the cropped or padded axes
// at the sizes shape gives (all axes when axes is absent).
func sizeCenterCropPad(n *Node, in [][]int) ([][]int, error) {
	v := constInts(n, 1)
	if len(in) == 0 || in[0] == nil || v == nil {
		return nil, nil
	}
	out := append([]int(nil), in[0]...)
	axes := n.Ints("axes", nil)
	for i, s := range v {
		a := int64(i)
		if axes != nil && i < len(axes) {
			a = axes[i]
		}
		if a < 0 {
			a += int64(len(out))
		}
		if a >= 0 && a < int64(len(out)) {
			out[a] = int(min(max(s, 0), math.MaxInt32))
		}
	}
	return [][]int{out}, nil
}

// sizeAffineGrid is [N spatial... rank] from the size input.
func sizeAffineGrid(n *Node, in [][]int) ([][]int, error) {
	v := constInts(n, 1)
	if len(v) != 4 && len(v) != 5 {
		return nil, nil
	}
	out := []int{int(min(max(v[0], 0), math.MaxInt32))}
	for _, d := range v[2:] {
		out = append(out, int(min(max(d, 0), math.MaxInt32)))
	}
	return [][]int{append(out, len(v)-2)}, nil
}

// sizeFromShapeAttr is the output of an op whose shape attribute gives it
// (RandomNormal, RandomUniform).
func sizeFromShapeAttr(n *Node, in [][]int) ([][]int, error) {
	var shape []int
	for _, d := range n.Ints("shape", nil) {
		shape = append(shape, int(max(d, 0)))
	}
	return [][]int{shape}, nil
}

// sizeMultinomial is [batch sample_size].
func sizeMultinomial(n *Node, in [][]int) ([][]int, error) {
	if len(in) == 0 || len(in[0]) != 2 {
		return nil, nil
	}
	return [][]int{{in[0][0], int(max(n.Int("sample_size", 1), 1))}}, nil
}

// scratchFn returns the bytes of working memory a step's kernel takes beyond
// its outputs (shapes, nil where unknown) on args.
type scratchFn func(st *step, shapes [][]int, args []*tensor.Tensor, threads int) int64

// scratchFns are the ops whose kernels take working memory of the order of
// their inputs or outputs.
var scratchFns = map[string]scratchFn{}

func init() {
	for _, op := range []string{"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
		"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceSumSquare"} {
		scratchFns[op] = reduceScratch
	}
	scratchFns["ReduceLogSumExp"] = func(st *step, shapes [][]int, args []*tensor.Tensor, threads int) int64 {
		// A float64 copy of the input and of its shifted exponentials, then
		// the maxima and sums (ops_reduce.go, newReduceLogSumExp).
		var in []int
		if len(args) > 0 && args[0] != nil {
			in = args[0].Shape
		}
		return satAdd(shapeBytes(in, 16), 2*reduceScratch(st, shapes, args, threads))
	}
}

// reduceScratch is a reduction's float64 or int64 accumulator, one per
// output element.
func reduceScratch(st *step, shapes [][]int, args []*tensor.Tensor, threads int) int64 {
	if len(shapes) == 0 || shapes[0] == nil {
		return 0
	}
	return shapeBytes(shapes[0], 8)
}

// attentionNeed returns the bytes of attentionFast's output [batch... S Dv]
// and of the S×T scores buffer each of its goroutines keeps, for q
// [batch... S D], kt [batch... D T] and v [batch... T Dv].
func attentionNeed(threads int, q, k, v *tensor.Tensor, lay attnLayout) (out, scratch int64) {
	a, ok := attnDims(q, k, v, lay)
	if !ok {
		return 0, 0
	}
	nb, err := tensor.Count(a.batch)
	if err != nil {
		return math.MaxInt64, math.MaxInt64
	}
	parts := max(1, min(threads, nb))
	return shapeBytes([]int{nb, a.S, a.Dv}, 4), shapeBytes([]int{parts, a.S, a.T}, 4)
}

// sizeGatherND: indices [q-1 leading dims..., k] select slices of data
// [batch..., k indexed dims, slice...]: the output is the leading dims of
// indices followed by the slice's dims.
func sizeGatherND(n *Node, in [][]int) ([][]int, error) {
	x, ind := in[0], in[1]
	if x == nil || ind == nil || len(ind) == 0 {
		return nil, nil
	}
	k := ind[len(ind)-1]
	bd := int(n.Int("batch_dims", 0))
	if k < 1 || bd < 0 || bd+k > len(x) {
		return nil, nil
	}
	return [][]int{append(append([]int{}, ind[:len(ind)-1]...), x[bd+k:]...)}, nil
}

// sizePad adds the pads (an attribute before opset 11, input 1 since, for
// the axes of input 3 or all) to the data's dimensions.
func sizePad(n *Node, in [][]int) ([][]int, error) {
	x := in[0]
	if x == nil {
		return nil, nil
	}
	var pads, axes []int64
	if n.Opset < 11 {
		pads = n.Ints("pads", nil)
	} else {
		if pads = constInts(n, 1); pads == nil {
			return nil, nil
		}
		if len(n.Inputs) > 3 && n.Inputs[3] != "" {
			if axes = constInts(n, 3); axes == nil {
				return nil, nil
			}
		}
	}
	if axes == nil {
		for i := range x {
			axes = append(axes, int64(i))
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, nil
	}
	out := append([]int{}, x...)
	for i, a := range axes {
		ax, err := normAxis(a, len(x), false)
		if err != nil {
			return nil, nil
		}
		d := int64(x[ax]) + pads[i] + pads[i+len(axes)]
		if d < 0 {
			return nil, nil
		}
		out[ax] = int(min(d, 1<<62))
	}
	return [][]int{out}, nil
}

// sizeRange: ceil((limit - start) / delta) elements, at least 0.
func sizeRange(n *Node, in [][]int) ([][]int, error) {
	var v [3]float64
	for i := range v {
		t := n.Const(i)
		if t == nil || t.Len() != 1 {
			return nil, nil
		}
		f, err := castTensor(t, tensor.Float64)
		if err != nil {
			return nil, nil
		}
		v[i] = f.F64[0]
	}
	if v[2] == 0 {
		return nil, nil // the kernel reports it
	}
	c := math.Ceil((v[1] - v[0]) / v[2])
	if !(c > 0) {
		return [][]int{{0}}, nil
	}
	return [][]int{{int(min(c, 1<<62))}}, nil
}

// sizeOneHot inserts depth into the indices' shape at axis.
func sizeOneHot(n *Node, in [][]int) ([][]int, error) {
	ind := in[0]
	d := n.Const(1)
	if ind == nil || d == nil || d.Len() != 1 {
		return nil, nil
	}
	f, err := castTensor(d, tensor.Float64)
	if err != nil || !(f.F64[0] >= 0) {
		return nil, nil
	}
	ax, err := normAxis(n.Int("axis", -1), len(ind)+1, false)
	if err != nil {
		return nil, nil
	}
	depth := int(min(f.F64[0], 1<<62))
	return [][]int{append(append(append([]int{}, ind[:ax]...), depth), ind[ax:]...)}, nil
}
