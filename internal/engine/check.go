package engine

import (
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/spindleml/spindle/internal/tensor"
)

// Compile-time checks of the values a node fixes: its attributes and its
// constant inputs. A value no request can make valid (an axis outside every
// rank the input may have, a perm that is no permutation, a Range step of 0)
// means every request would fail at that node, so Compile refuses the model
// with an error naming the node, the value and the rule, instead of
// deploying a function that can only answer errors. The kernels keep their
// own run-time checks: these catch what is decidable before any input
// arrives, the kernels what depends on it.
//
// An axis is checked against the input's rank where Compile knows it (the
// graph declares it, even with dynamic dimensions, or it follows through
// shape-preserving ops), else against tensor.MaxRank, the most dimensions a
// tensor may have.

// nodeCheck returns an error when n's attributes or constant inputs make it
// fail on every input.
type nodeCheck func(n *Node) error

// nodeChecks maps op types to their checks.
var nodeChecks = map[string][]nodeCheck{}

func init() {
	// Ops with an "axis" attribute over their first input's dimensions.
	for _, op := range []string{"Concat", "Gather", "GatherElements", "ScatterElements", "Softmax",
		"LogSoftmax", "Hardmax", "ArgMax", "ArgMin", "TopK", "Split", "Compress",
		"LayerNormalization", "LpNormalization"} {
		nodeChecks[op] = append(nodeChecks[op], axisAttr("axis", 0, 0, false))
	}
	// Flatten's axis may equal the rank; OneHot's counts in the output, one
	// dimension more than its indices.
	nodeChecks["Flatten"] = []nodeCheck{axisAttr("axis", 0, 0, true)}
	nodeChecks["OneHot"] = []nodeCheck{axisAttr("axis", 0, 1, false)}
	nodeChecks["CumSum"] = []nodeCheck{axesInput(1, "axis", 0)}
	for _, op := range []string{"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
		"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "Squeeze"} {
		nodeChecks[op] = []nodeCheck{axesAttr("axes", 0), axesInput(1, "axes", 0)}
	}
	nodeChecks["MeanVarianceNormalization"] = []nodeCheck{axesAttr("axes", 0)}
	nodeChecks["Slice"] = []nodeCheck{axesInput(3, "axes", 0)}
	nodeChecks["Unsqueeze"] = []nodeCheck{checkUnsqueeze}
	nodeChecks["Transpose"] = []nodeCheck{checkPerm}
	nodeChecks["DepthToSpace"] = []nodeCheck{checkBlocksize}
	nodeChecks["SpaceToDepth"] = []nodeCheck{checkBlocksize}
	nodeChecks["TopK"] = append(nodeChecks["TopK"], checkTopK)
	nodeChecks["Reshape"] = []nodeCheck{checkReshape}
	nodeChecks["Range"] = []nodeCheck{checkRange}
	nodeChecks["Expand"] = []nodeCheck{dimsInput(1, "shape")}
	nodeChecks["ConstantOfShape"] = []nodeCheck{dimsInput(0, "input")}
	nodeChecks["Tile"] = []nodeCheck{dimsInput(1, "repeats")}
}

// checkNode runs n's checks; the error names the node.
func checkNode(n *Node) error {
	for _, c := range nodeChecks[n.OpType] {
		if err := c(n); err != nil {
			return n.Errorf("%v", err)
		}
	}
	return nil
}

// InRank returns the rank of input i when Compile knows it, or -1.
func (n *Node) InRank(i int) int {
	if s := n.InShape(i); s != nil {
		return len(s)
	}
	if i < 0 || i >= len(n.inRanks) {
		return -1
	}
	return n.inRanks[i]
}

// inferRank returns the rank of n's first output when its shape is unknown
// but its rank follows from its inputs' (element-wise ops, Transpose, a
// Reshape to a constant shape), or -1.
func inferRank(n *Node) int {
	switch {
	case n.OpType == "Transpose", ruleIs(n.OpType, sameAsFirst), keepsRank[n.OpType]:
		return n.InRank(0)
	case n.OpType == "Flatten":
		return 2
	case strings.HasPrefix(n.OpType, "Reduce") && n.Int("keepdims", 1) == 1:
		return n.InRank(0)
	case n.OpType == "MatMul":
		if a, b := n.InRank(0), n.InRank(1); a >= 2 && b >= 2 {
			return max(a, b)
		}
	case ruleIs(n.OpType, broadcastAll):
		r := -1
		for i, in := range n.Inputs {
			if in == "" {
				continue
			}
			ri := n.InRank(i)
			if ri < 0 {
				return -1
			}
			r = max(r, ri)
		}
		return r
	case n.OpType == "Reshape":
		if dims := constInts(n, 1); dims != nil {
			return len(dims)
		}
	}
	return -1
}

// keepsRank lists ops whose output has their first input's rank.
var keepsRank = map[string]bool{"Conv": true, "ConvTranspose": true, "MaxPool": true, "AveragePool": true, "LpPool": true,
	"GlobalAveragePool": true, "GlobalMaxPool": true, "GlobalLpPool": true, "Resize": true, "Upsample": true, "Pad": true,
	"Concat": true, "Slice": true, "Tile": true, "DepthToSpace": true, "SpaceToDepth": true, "LRN": true,
	"InstanceNormalization": true, "LayerNormalization": true, "Split": true, "TopK": true, "Softmax": true, "LogSoftmax": true}

// ruleIs reports whether op's shape rule is f.
func ruleIs(op string, f shapeFn) bool {
	g := shapeFns[op]
	return g != nil && reflect.ValueOf(g).Pointer() == reflect.ValueOf(f).Pointer()
}

// checkAxis returns an error unless axis names a dimension of a tensor of
// rank dimensions (or, inclusive, the end of one, as Flatten allows), as the
// kernels' normAxis does, or of a tensor of some rank up to tensor.MaxRank
// when rank is unknown (-1).
func checkAxis(axis int64, rank int, inclusive bool) error {
	if rank < 0 {
		if _, err := normAxis(axis, tensor.MaxRank, inclusive); err != nil {
			return fmt.Errorf("axis %d is out of range for every rank up to %d", axis, tensor.MaxRank)
		}
		return nil
	}
	_, err := normAxis(axis, rank, inclusive)
	return err
}

// axisAttr checks integer attribute name as an axis of input data, whose
// rank the op's output exceeds by extra (OneHot adds a dimension).
func axisAttr(name string, data, extra int, inclusive bool) nodeCheck {
	return func(n *Node) error {
		if !n.Has(name) {
			return nil
		}
		rank := n.InRank(data)
		if rank >= 0 {
			rank += extra
		}
		if err := checkAxis(n.Int(name, 0), rank, inclusive); err != nil {
			return fmt.Errorf("attribute %s: %w", name, err)
		}
		return nil
	}
}

// axesAttr checks ints attribute name as axes of input data.
func axesAttr(name string, data int) nodeCheck {
	return func(n *Node) error {
		for _, a := range n.Ints(name, nil) {
			if err := checkAxis(a, n.InRank(data), false); err != nil {
				return fmt.Errorf("attribute %s: %w", name, err)
			}
		}
		return nil
	}
}

// axesInput checks constant input i, named name, as axes of input data.
func axesInput(i int, name string, data int) nodeCheck {
	return func(n *Node) error {
		for _, a := range constInts(n, i) {
			if err := checkAxis(a, n.InRank(data), false); err != nil {
				return fmt.Errorf("input %s: %w", name, err)
			}
		}
		return nil
	}
}

// checkUnsqueeze checks Unsqueeze's axes against the output's rank, the
// input's plus one per axis.
func checkUnsqueeze(n *Node) error {
	axes, src := n.Ints("axes", nil), "attribute axes"
	if !n.Has("axes") {
		axes, src = constInts(n, 1), "input axes"
	}
	rank := n.InRank(0)
	if rank >= 0 {
		rank += len(axes)
	}
	for _, a := range axes {
		if err := checkAxis(a, rank, false); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
	}
	return nil
}

// checkPerm requires Transpose's perm to be a permutation of 0..r-1, for the
// input's rank r where known.
func checkPerm(n *Node) error {
	if !n.Has("perm") {
		return nil
	}
	perm := n.Ints("perm", nil)
	if r := n.InRank(0); r >= 0 && len(perm) != r {
		return fmt.Errorf("attribute perm: %v has %d entries for an input of rank %d", perm, len(perm), r)
	}
	seen := make([]bool, len(perm))
	for _, p := range perm {
		if p < 0 || p >= int64(len(perm)) || seen[p] {
			return fmt.Errorf("attribute perm: %v is not a permutation of 0..%d", perm, len(perm)-1)
		}
		seen[p] = true
	}
	return nil
}

// maxBlocksize is the largest DepthToSpace/SpaceToDepth block whose square
// (the channels it moves) is a possible dimension.
var maxBlocksize = int64(math.Sqrt(tensor.MaxDim))

func checkBlocksize(n *Node) error {
	if b := n.Int("blocksize", 0); b < 1 || b > maxBlocksize {
		return fmt.Errorf("attribute blocksize: %d must be between 1 and %d", b, maxBlocksize)
	}
	return nil
}

// checkTopK bounds a constant k by the largest dimension a tensor may have,
// and by the axis's dimension where Compile knows it.
func checkTopK(n *Node) error {
	ks := constInts(n, 1)
	if n.Has("k") { // opset 1: k is an attribute
		ks = []int64{n.Int("k", 0)}
	}
	if len(ks) != 1 {
		return nil // not constant, or a shape the kernel reports
	}
	k := ks[0]
	if k < 0 || k > tensor.MaxDim {
		return fmt.Errorf("k: %d must be between 0 and %d", k, int64(tensor.MaxDim))
	}
	if x := n.InShape(0); x != nil {
		if ax, err := normAxis(n.Int("axis", -1), len(x), false); err == nil && k > int64(x[ax]) {
			return fmt.Errorf("k: %d is more than the %d elements of axis %d of shape %s", k, x[ax], ax, tensor.ShapeString(x))
		}
	}
	return nil
}

// checkReshape requires a constant target shape to be one Reshape can
// produce: at most one -1, no value below it, no dimension past
// tensor.MaxDim, at most tensor.MaxRank dimensions.
func checkReshape(n *Node) error {
	dims := constInts(n, 1)
	if len(dims) > tensor.MaxRank {
		return fmt.Errorf("input shape: %d dimensions, more than %d", len(dims), tensor.MaxRank)
	}
	inferred := -1
	for i, d := range dims {
		switch {
		case d == -1 && inferred >= 0:
			return fmt.Errorf("input shape %v: dimensions %d and %d are both -1; at most one may be inferred", dims, inferred, i)
		case d == -1:
			inferred = i
		case d < -1:
			return fmt.Errorf("input shape %v: dimension %d is %d, must be >= -1", dims, i, d)
		case d > tensor.MaxDim:
			return fmt.Errorf("input shape %v: dimension %d is %d, more than %d", dims, i, d, int64(tensor.MaxDim))
		}
	}
	return nil
}

// checkRange refuses a constant step of 0: the sequence would never end.
func checkRange(n *Node) error {
	if n.Const == nil {
		return nil
	}
	d := n.Const(2)
	if d == nil || d.Len() != 1 {
		return nil
	}
	var zero bool
	switch d.DType {
	case tensor.Float32:
		zero = d.F32[0] == 0
	case tensor.Float64:
		zero = d.F64[0] == 0
	case tensor.Int64:
		zero = d.I64[0] == 0
	case tensor.Int32:
		zero = d.I32[0] == 0
	}
	if zero {
		return fmt.Errorf("input delta: must not be 0")
	}
	return nil
}

// dimsInput requires constant input i, a list of dimensions or repeats, to
// hold no negative value and none past tensor.MaxDim.
func dimsInput(i int, name string) nodeCheck {
	return func(n *Node) error {
		dims := constInts(n, i)
		if len(dims) > tensor.MaxRank {
			return fmt.Errorf("input %s: %d dimensions, more than %d", name, len(dims), tensor.MaxRank)
		}
		for j, d := range dims {
			if d < 0 || d > tensor.MaxDim {
				return fmt.Errorf("input %s %v: value %d is %d, must be between 0 and %d", name, dims, j, d, int64(tensor.MaxDim))
			}
		}
		return nil
	}
}
