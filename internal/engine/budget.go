package engine

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"strconv"
	"time"
	"unsafe"

	"github.com/spindleml/spindle/internal/tensor"
)

// The memory budget of a Run. A request's shapes decide the size of every
// intermediate tensor, and a Go allocation the machine cannot satisfy is a
// fatal error, not a panic a recover could catch: one request ([1073741824 0]
// into a sum over the empty axis, a Resize to 2^20 x 2^20, [N 1] + [1 M])
// would end the instance and every request in it. So before each step Run
// works out what the step will allocate, from the shapes (and, for ops whose
// output shape depends on them, the values) of the step's actual inputs, with
// the same shape rules Compile uses (shape.go) plus a few only the budget
// needs (sizeFns), and refuses the request with an error wrapping
// ErrBadInput when that would take the tensors the Run holds past its limit.
// Every kernel is covered by construction, without a check of its own, as
// long as its op has a rule; the rule-less ones (NonZero) produce no more
// than a small multiple of their input.

// DefaultMaxBytes is the memory a Run may hold in intermediate tensors when
// RunOptions.MaxBytes is 0: 4 GiB, above what the models Spindle serves need
// for any batch an OIP body can carry, and below what one instance should
// ever take for one request.
const DefaultMaxBytes int64 = 4 << 30

// runState is one Run's thread budget and memory account.
type runState struct {
	ctx     context.Context
	threads int
	onStep  func(StepTiming)
	// limit is the most bytes of intermediate tensors the Run may hold;
	// live is what it holds now. limit < 0 means no limit.
	limit, live int64
	// replaced says the last exec of a fused step ran the steps it
	// replaced, not its fast kernel.
	replaced bool
}

// admit returns an error wrapping ErrBadInput when running st on args would
// take the tensors the Run holds past its limit.
func (rs *runState) admit(st *step, args []*tensor.Tensor) error {
	if rs.limit < 0 {
		return nil
	}
	need, biggest := stepBytes(st, args, rs.threads)
	if need <= rs.limit-rs.live {
		return nil
	}
	if biggest > rs.limit {
		return fmt.Errorf("%w: request needs an intermediate tensor of %s at node %q (%s), more than the limit of %s",
			ErrBadInput, formatBytes(biggest), st.node.Name, st.node.OpType, formatBytes(rs.limit))
	}
	return fmt.Errorf("%w: request needs %s of intermediate tensors at node %q (%s) with %s held already, more than the limit of %s",
		ErrBadInput, formatBytes(need), st.node.Name, st.node.OpType, formatBytes(rs.live), formatBytes(rs.limit))
}

// sizeClass says how the budget works out a step's output size.
type sizeClass uint8

const (
	// sizeRule applies the op's shape rule (the general case).
	sizeRule sizeClass = iota
	// sizeSame: one output with as many elements as the first input (the
	// element-wise unary ops, Reshape, Transpose, ...); no rule needed.
	sizeSame
	// sizeBroadcast: one output of the inputs' broadcast shape.
	sizeBroadcast
	// sizeConcat: one output with as many elements as the inputs together.
	sizeConcat
	// sizeShape: one int64 per dimension of the first input, at most.
	sizeShape
	// sizeGather: Gather's data with the axis dimension replaced by the
	// indices' shape.
	sizeGather
	// sizeMatMul: MatMul's broadcast batch dimensions, then M×N.
	sizeMatMul
)

// sizeClasses holds ops whose outputs' sizes are cheaper to work out than
// by their shape rule, which allocates: they are most steps of a
// transformer, and the check runs before each of them on every request.
// Compile looks them up with sizeClassOf.
var sizeClasses = map[string]sizeClass{
	"Reshape": sizeSame, "Transpose": sizeSame, "Squeeze": sizeSame, "Unsqueeze": sizeSame,
	"Flatten": sizeSame, "DepthToSpace": sizeSame, "SpaceToDepth": sizeSame,
	"LayerNormalization": sizeSame, "Concat": sizeConcat, "Shape": sizeShape, "Size": sizeShape,
	"Gather": sizeGather, "MatMul": sizeMatMul,
}

// sizeClassOf returns op's size class: its entry in sizeClasses, else
// sizeSame or sizeBroadcast for the ops whose shape rule is sameAsFirst or
// broadcastAll, else sizeRule.
func sizeClassOf(op string) sizeClass {
	if c, ok := sizeClasses[op]; ok {
		return c
	}
	if f := shapeFns[op]; f != nil {
		switch reflect.ValueOf(f).Pointer() {
		case reflect.ValueOf(sameAsFirst).Pointer():
			return sizeSame
		case reflect.ValueOf(broadcastAll).Pointer():
			return sizeBroadcast
		}
	}
	return sizeRule
}

// setSizeClasses sets the size class of st and of the steps a fused st
// replaced, which run when its fast kernel declines.
func setSizeClasses(st *step) {
	st.size = sizeClassOf(st.node.OpType)
	if st.fused != nil {
		for i := range st.fused.run {
			setSizeClasses(&st.fused.run[i])
		}
	}
}

// stepBytes estimates what running st on args allocates: its outputs and the
// scratch memory its kernel takes, in bytes, and the largest single tensor
// among them. What no rule knows counts as 0.
func stepBytes(st *step, args []*tensor.Tensor, threads int) (need, biggest int64) {
	if st.fused != nil && st.static == nil {
		out, scratch := st.fused.need(threads, args)
		return satAdd(out, scratch), max(out, scratch)
	}
	shapes := st.static
	if shapes == nil && len(args) > 0 && args[0] != nil {
		switch st.size {
		case sizeSame:
			need = int64(args[0].Len()) * int64(outElemSize(st.node, 0, args))
			return need, need
		case sizeBroadcast:
			need = satMul(broadcastCount(args), int64(outElemSize(st.node, 0, args)))
			return need, need
		case sizeConcat:
			for _, a := range args {
				if a != nil {
					need += int64(a.Len())
				}
			}
			need = satMul(need, int64(outElemSize(st.node, 0, args)))
			return need, need
		case sizeShape:
			return int64(8 * len(args[0].Shape)), int64(8 * len(args[0].Shape))
		case sizeGather:
			if len(args) == 2 && args[1] != nil {
				size := int64(args[0].DType.Size())
				if args[0].DType == tensor.Float16 {
					size = 2 + 4 // the gathered halves, then their float32 widening
				}
				need = satMul(gatherCount(args[0].Shape, args[1], st.node.Int("axis", 0)), size)
				return need, need
			}
		case sizeMatMul:
			if len(args) == 2 && args[1] != nil {
				need = satMul(matMulCount(args[0].Shape, args[1].Shape), int64(outElemSize(st.node, 0, args)))
				return need, need
			}
		}
	}
	if shapes == nil {
		shapes = stepShapes(st, args)
	}
	for j, s := range shapes {
		if s == nil {
			continue
		}
		b := shapeBytes(s, outElemSize(st.node, j, args))
		need = satAdd(need, b)
		biggest = max(biggest, b)
	}
	if st.fused != nil {
		_, scratch := st.fused.need(threads, args)
		need = satAdd(need, scratch)
		biggest = max(biggest, scratch)
	} else if f := scratchFns[st.node.OpType]; f != nil {
		b := f(st, shapes, args, threads)
		need = satAdd(need, b)
		biggest = max(biggest, b)
	}
	return need, biggest
}

// broadcastCount returns the element count of the broadcast of args' shapes
// (the largest dimension at each position from the right), saturating at
// math.MaxInt64; nil args are skipped.
func broadcastCount(args []*tensor.Tensor) int64 {
	rank := 0
	for _, a := range args {
		if a != nil {
			rank = max(rank, len(a.Shape))
		}
	}
	n := int64(1)
	for i := 1; i <= rank; i++ {
		d := 1
		for _, a := range args {
			if a != nil && len(a.Shape) >= i {
				ad := a.Shape[len(a.Shape)-i]
				if ad == 0 {
					return 0 // empty (or a mismatch the kernel reports)
				}
				d = max(d, ad)
			}
		}
		n = satMul(n, int64(d))
	}
	return n
}

// gatherCount returns the element count of Gather's output for data of
// shape x, indices ind and axis (negative counts from the end; one out of
// range counts as 0, for the kernel to report).
func gatherCount(x []int, ind *tensor.Tensor, axis int64) int64 {
	if axis < 0 {
		axis += int64(len(x))
	}
	if axis < 0 || axis >= int64(len(x)) {
		return 0
	}
	n := int64(ind.Len())
	for i, d := range x {
		if i != int(axis) {
			n = satMul(n, int64(d))
		}
	}
	return n
}

// matMulCount returns the element count of MatMul's output for operands of
// shapes a and b (numpy.matmul: a 1-D operand gains, then loses, a unit
// dimension; the batch dimensions broadcast).
func matMulCount(a, b []int) int64 {
	if len(a) == 0 || len(b) == 0 {
		return 0 // invalid; the kernel reports it
	}
	n := int64(1)
	if len(a) >= 2 {
		n = int64(a[len(a)-2])
	}
	if len(b) >= 2 {
		n = satMul(n, int64(b[len(b)-1]))
	}
	ba, bb := a[:max(0, len(a)-2)], b[:max(0, len(b)-2)]
	for i := 1; i <= max(len(ba), len(bb)); i++ {
		d := 1
		for _, s := range [][]int{ba, bb} {
			if len(s) >= i {
				if sd := s[len(s)-i]; sd == 0 {
					return 0
				} else {
					d = max(d, sd)
				}
			}
		}
		n = satMul(n, int64(d))
	}
	return n
}

// satMul returns a*b for non-negative a and b, saturating at math.MaxInt64.
func satMul(a, b int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo)
}

// stepShapes returns the shapes st's outputs will have on args: nil entries
// are unknown.
func stepShapes(st *step, args []*tensor.Tensor) [][]int {
	in := make([][]int, len(args))
	for i, a := range args {
		if a != nil {
			in[i] = shapeOf(a)
		}
	}
	return ruleShapes(st.node, len(st.out), in, args)
}

// ruleShapes applies n's shape rule to input shapes in, first as Compile
// would (constant inputs only) and then, when that leaves an output unknown
// and args are given, with args as the values of every input: a Reshape's
// target, a Resize's sizes or an Expand's shape may be computed at run time.
func ruleShapes(n *Node, nout int, in [][]int, args []*tensor.Tensor) [][]int {
	f := shapeFns[n.OpType]
	if f == nil {
		if f = sizeFns[n.OpType]; f == nil {
			return nil
		}
	}
	out := applyRule(f, n, in)
	if complete(out, nout) || args == nil {
		return out
	}
	rn := *n
	rn.Const = func(i int) *tensor.Tensor {
		if i < len(args) {
			return args[i]
		}
		return nil
	}
	return applyRule(f, &rn, in)
}

// complete reports whether out gives a shape for each of nout outputs.
func complete(out [][]int, nout int) bool {
	if len(out) < nout {
		return false
	}
	for _, s := range out[:nout] {
		if s == nil {
			return false
		}
	}
	return true
}

// outElemSize returns the bytes per element of output j of n on args: the
// first input's element size for most ops, whose output has the dtype of
// their data; the values' for Where and OneHot; 8 for ops whose outputs may
// be wider than their inputs (Cast, indices, a dtype from an attribute).
func outElemSize(n *Node, j int, args []*tensor.Tensor) int {
	size := func(i int) int {
		if i < len(args) && args[i] != nil {
			return max(1, args[i].DType.Size())
		}
		return 8
	}
	switch n.OpType {
	case "Where":
		return max(size(1), size(2))
	case "OneHot":
		return size(2)
	case "ConstantOfShape":
		if a, ok := n.attrs["value"]; ok {
			if sz := tensor.DType(a.GetT().GetDataType()).Size(); sz > 0 {
				return sz
			}
		}
		return 4 // float32 zeros
	case "DequantizeLinear", "MatMulInteger", "ConvInteger", opDequantizeNBits:
		return 4 // float32 or int32 from bytes
	case "Cast", "CastLike", "Shape", "Size", "ArgMax", "ArgMin", "NonZero", "TopK",
		"EyeLike", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial":
		return 8
	}
	return size(0)
}

// shapeBytes returns the bytes of a tensor of shape with elements of size
// sz, saturating at math.MaxInt64.
func shapeBytes(shape []int, sz int) int64 {
	n, err := tensor.Count(shape)
	if err != nil {
		return math.MaxInt64
	}
	return satMul(int64(n), int64(sz))
}

// satAdd returns a+b for non-negative a and b, saturating at math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// tensorBytes returns the bytes t's data takes.
func tensorBytes(t *tensor.Tensor) int64 {
	if t == nil {
		return 0
	}
	return int64(t.Len()) * int64(t.DType.Size())
}

// sameData reports whether a and b start at the same memory: a view (Reshape,
// Squeeze, Identity) holds no memory of its own.
func sameData(a, b *tensor.Tensor) bool {
	if a == nil || b == nil {
		return false
	}
	x, y := a.Bytes(), b.Bytes()
	return len(x) > 0 && len(y) > 0 && unsafe.SliceData(x) == unsafe.SliceData(y)
}

// formatBytes formats n bytes in binary units: "512 B", "1.5 MiB", "4 TiB".
func formatBytes(n int64) string {
	if n == math.MaxInt64 {
		return "more than 8 EiB"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) + " " + units[u]
}

// exec runs st on args within the Run's budget: it admits the step, then
// runs its kernel or, for a fused step, the fast kernel or else the steps it
// replaced, each admitted in turn.
func (rs *runState) exec(st *step, args []*tensor.Tensor) (outs []*tensor.Tensor, err error) {
	if err := rs.admit(st, args); err != nil {
		return nil, err
	}
	if rs.onStep != nil {
		onStep := rs.onStep
		t0 := time.Now()
		defer func() {
			took := time.Since(t0)
			flops, bytes := stepWork(st, args, outs)
			onStep(StepTiming{Name: st.node.Name, OpType: st.node.OpType, Took: took, FLOPs: flops, Bytes: bytes})
		}()
	}
	rs.replaced = false
	if st.fused == nil && st.node.control != nil {
		return runControl(st, rs, args)
	}
	if st.fused == nil {
		return runStep(*st, args, rs.threads)
	}
	outs, ok, err := runFast(st, args, rs.threads)
	if ok || err != nil {
		return outs, err
	}
	outs, err = rs.runReplaced(st.fused, args)
	rs.replaced = true
	return outs, err
}

// runFast calls a fused step's fast kernel, turning a panic into an error
// as runStep does.
func runFast(st *step, args []*tensor.Tensor, threads int) (outs []*tensor.Tensor, ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			outs, ok, err = nil, false, st.node.Errorf("internal error: %v", r)
		}
	}()
	outs, ok, err = st.fused.fast(threads, args)
	if err != nil {
		return nil, false, fmt.Errorf("node %q (%s): %w", st.node.Name, st.node.OpType, err)
	}
	return outs, ok, nil
}

// runReplaced runs the steps a fused step replaced on its inputs in and
// returns the value of its output slot. Their intermediate values count
// against the budget until it returns.
func (rs *runState) runReplaced(f *fusedRun, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	// The fused step reports its time, these steps' included, once.
	onStep := rs.onStep
	rs.onStep = nil
	defer func() { rs.onStep = onStep }()
	vals := make(map[int]*tensor.Tensor, len(f.ins)+len(f.run))
	for k, s := range f.ins {
		vals[s] = in[k]
	}
	var held int64
	defer func() { rs.live -= held }()
	for i := range f.run {
		st := &f.run[i]
		args := make([]*tensor.Tensor, len(st.in))
		for j, s := range st.in {
			if s >= 0 {
				args[j] = vals[s]
			}
		}
		outs, err := rs.exec(st, args)
		if err != nil {
			return nil, err
		}
		for j, s := range st.out {
			if s >= 0 && j < len(outs) {
				vals[s] = outs[j]
				b := tensorBytes(outs[j])
				rs.live += b
				held += b
			}
		}
	}
	return []*tensor.Tensor{vals[f.out]}, nil
}

// hold adds output t of a step, whose input slots and values are ins and
// args, to the account and returns what its slot counts for. A view of an
// input's memory takes over what that input counted for, so the memory is
// released only when the last of them is dropped.
func (rs *runState) hold(t *tensor.Tensor, ins []int, args []*tensor.Tensor, held []int64) int64 {
	for k, a := range args {
		if a == t || sameData(a, t) {
			if s := ins[k]; s >= 0 {
				b := held[s]
				held[s] = 0
				return b
			}
			return 0
		}
	}
	b := tensorBytes(t)
	rs.live += b
	return b
}
