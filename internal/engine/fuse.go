package engine

import (
	"math"
	"slices"
	"strings"

	"github.com/spindleml/spindle/internal/tensor"
)

// Graph fusion merges runs of steps that exporters spell out op by op into
// single steps with fused kernels (ops_fused.go), after constant folding so
// that constants computed at compile time count as constants:
//
//   - erf GELU, x*0.5*(1+erf(x/sqrt 2)) in either multiplication order;
//   - LayerNorm spelled out at opset 13: ReduceMean, Sub, Pow 2, ReduceMean,
//     Add epsilon, Sqrt, Div, Mul gain, Add offset;
//   - attention: MatMul(Q, K^T), scaled by Div or Mul, plus an optional mask,
//     Softmax over the last axis, MatMul with V, computed one head at a time so
//     the scores are never materialised for all heads;
//   - MatMul, Gemm or Conv followed by a constant bias Add (MatMul only), an
//     activation (Relu or a fused GELU) and a residual Add, as one multiply and
//     one pass over its output.
//
// A fused step keeps the steps it replaced: when a request's tensors are not
// what the fast kernel handles (another dtype, a broadcast it does not do), it
// runs them one by one instead, so fusion never changes what a model accepts.
// Intermediate values of a fused run must have no other readers and must not
// be graph outputs.

// fused op types; the "spindle." prefix keeps them apart from ONNX op names.
const (
	opGelu      = "spindle.Gelu"
	opLayerNorm = "spindle.LayerNorm"
	opAttention = "spindle.Attention"
	opEpilogue  = "spindle.MatMulEpilogue"
	opEwise     = "spindle.Elementwise"
)

// fastKernel is a fused kernel. ok=false (with a nil error) means the inputs
// are outside what it handles and the replaced steps must run instead.
type fastKernel func(threads int, in []*tensor.Tensor) (out []*tensor.Tensor, ok bool, err error)

// fusedRun is what a fused step is made of: its fast kernel and the steps it
// replaced, which run instead when the fast kernel declines. Run executes
// them itself (runState.exec) so that each replaced step is held to the
// request's memory budget.
type fusedRun struct {
	fast fastKernel
	run  []step
	ins  []int // the slots the fused step's inputs come from, in order
	out  int   // the slot of its output
	// need returns the bytes of fast's output on the fused step's inputs
	// and of the working memory it takes besides, for Run's memory budget
	// (the replaced steps, if they run, are held to it one by one).
	need func(threads int, in []*tensor.Tensor) (out, scratch int64)
	// ew is the program of an elementwise group (nil for other fused
	// steps), for the fuser to run after a convolution (convProgram).
	ew *ewProgram
}

// needOf is a fusedRun.need for a fast kernel whose output has the size of
// its input k.
func needOf(k int) func(int, []*tensor.Tensor) (int64, int64) {
	return func(_ int, in []*tensor.Tensor) (int64, int64) { return tensorBytes(in[k]), 0 }
}

// fuser holds the graph index fusion passes read.
type fuser struct {
	m      *Model
	consts []*tensor.Tensor
	shapes [][]int
	prod   []int   // slot -> index of the step producing it, or -1
	users  [][]int // slot -> indices of the steps reading it (once per read)
	isOut  []bool  // slot is a graph output
	dead   []bool  // step replaced by a later fused step
}

// fuse rewrites m.steps after constant folding, merging node patterns into
// single steps with fused kernels. consts holds each slot's compile-time
// value (nil when only known at run time) and shapes its inferred shape (nil
// when unknown), which a pass that reorders steps updates; fuse returns both,
// grown by the slots of the weights it makes (convAffine).
func (m *Model) fuse(consts []*tensor.Tensor, shapes [][]int) ([]*tensor.Tensor, [][]int) {
	f := &fuser{m: m, consts: consts, shapes: shapes}
	f.index()
	for i := range m.steps {
		if !f.dead[i] {
			f.convAffine(i)
		}
	}
	f.compact()
	for _, pass := range []func(i int){f.reluBeforePool, f.gelu, f.layerNorm, f.attention, f.qmatmul, f.qconv, f.qlinearConv, f.qlinearMatMul, f.epilogue} {
		f.index()
		for i := range m.steps {
			if !f.dead[i] {
				pass(i)
			}
		}
		f.compact()
	}
	f.elementwise()
	f.index()
	for i := range m.steps {
		f.convProgram(i)
	}
	f.compact()
	m.stats.Steps = len(m.steps)
	return f.consts, f.shapes
}

func (f *fuser) index() {
	n := f.m.nslots
	f.prod = slices.Repeat([]int{-1}, n)
	f.users = make([][]int, n)
	f.isOut = make([]bool, n)
	f.dead = make([]bool, len(f.m.steps))
	for i, st := range f.m.steps {
		for _, s := range st.in {
			if s >= 0 {
				f.users[s] = append(f.users[s], i)
			}
		}
		for _, s := range st.out {
			if s >= 0 {
				f.prod[s] = i
			}
		}
	}
	for _, s := range f.m.outSlot {
		f.isOut[s] = true
	}
}

// compact drops dead steps.
func (f *fuser) compact() {
	kept := f.m.steps[:0]
	for i, st := range f.m.steps {
		if f.dead[i] {
			f.m.stats.Fused++
			continue
		}
		kept = append(kept, st)
	}
	f.m.steps = kept
}

// op returns the op type of step i, or "" when i is not a live step.
func (f *fuser) op(i int) string {
	if i < 0 || i >= len(f.m.steps) || f.dead[i] {
		return ""
	}
	return f.m.steps[i].node.OpType
}

// out0 returns the first output slot of step i.
func (f *fuser) out0(i int) int {
	if len(f.m.steps[i].out) == 0 {
		return -1
	}
	return f.m.steps[i].out[0]
}

// in returns input slot j of step i, or -1.
func (f *fuser) in(i, j int) int {
	if j >= len(f.m.steps[i].in) {
		return -1
	}
	return f.m.steps[i].in[j]
}

// sole returns the step that is the only reader of slot s, reading it once,
// when s is not a graph output; otherwise -1.
func (f *fuser) sole(s int) int {
	if s < 0 || f.isOut[s] || len(f.users[s]) != 1 || f.dead[f.users[s][0]] {
		return -1
	}
	return f.users[s][0]
}

// producer returns the live step producing slot s as its only output, or -1.
func (f *fuser) producer(s int) int {
	if s < 0 {
		return -1
	}
	p := f.prod[s]
	if p < 0 || f.dead[p] {
		return -1
	}
	outs := 0
	for _, o := range f.m.steps[p].out {
		if o >= 0 {
			outs++
		}
	}
	if outs != 1 {
		return -1
	}
	return p
}

// other returns the input of the two-input step i that is not slot s, or -1
// when s is not one of its two inputs.
func (f *fuser) other(i, s int) int {
	in := f.m.steps[i].in
	if len(in) != 2 {
		return -1
	}
	switch s {
	case in[0]:
		return in[1]
	case in[1]:
		return in[0]
	}
	return -1
}

// scalar returns the value of a float32 constant with one element and rank
// 0 or 1. A one-element constant of a higher rank broadcasts a tensor of lower
// rank to its own ([3] / [1 1] is [1 3]), which the fused kernels, writing
// their input's shape, would not; a rank-1 constant does that only to a
// scalar, which the GELU kernel checks for (see vectorConst).
func (f *fuser) scalar(s int) (float32, bool) {
	if s < 0 || f.consts[s] == nil {
		return 0, false
	}
	t := f.consts[s]
	if t.DType != tensor.Float32 || len(t.F32) != 1 || len(t.Shape) > 1 {
		return 0, false
	}
	return t.F32[0], true
}

// vectorConst reports whether any of slots is a constant of rank 1 or more.
func (f *fuser) vectorConst(slots ...int) bool {
	for _, s := range slots {
		if f.isConst(s) && len(f.consts[s].Shape) > 0 {
			return true
		}
	}
	return false
}

// isConst reports whether slot s is a compile-time constant.
func (f *fuser) isConst(s int) bool { return s >= 0 && f.consts[s] != nil }

// near reports whether v is within a relative 1e-5 of want.
//
// A float16 graph's constant is want rounded to float16 (sqrt 2 becomes
// 1.4140625): that counts as want too. The fused kernel then computes with
// the exact constant, a difference (2^-11 relative at most) below the
// precision of the float16 weights around it.
func near(v float32, want float64) bool {
	return math.Abs(float64(v)-want) <= 1e-5*math.Abs(want) || v == tensor.RoundHalf(float32(want))
}

// replace turns the steps idxs (any order) into one fused step at the
// position of the last of them, producing slot out. The fused step reads
// every slot the run reads from outside it.
func (f *fuser) replace(idxs []int, out int, opType string, fast func(at func(slot int) int) fastKernel) *fusedRun {
	idxs = slices.Clone(idxs)
	slices.Sort(idxs)
	run := make([]step, len(idxs))
	produced := map[int]bool{}
	var ins []int
	seen := map[int]bool{}
	names := make([]string, len(idxs))
	for k, i := range idxs {
		st := f.m.steps[i]
		run[k] = st
		names[k] = st.node.Name
		for _, s := range st.in {
			if s >= 0 && !produced[s] && !seen[s] {
				seen[s] = true
				ins = append(ins, s)
			}
		}
		for _, s := range st.out {
			if s >= 0 {
				produced[s] = true
			}
		}
	}
	pos := make(map[int]int, len(ins))
	inNames := make([]string, len(ins))
	for k, s := range ins {
		pos[s] = k
	}
	for _, st := range run {
		for j, s := range st.in {
			if s >= 0 {
				if k, ok := pos[s]; ok {
					inNames[k] = st.node.Inputs[j]
				}
			}
		}
	}
	at := func(slot int) int {
		if k, ok := pos[slot]; ok {
			return k
		}
		return -1
	}
	fk := fast(at)
	last := run[len(run)-1]
	outName := ""
	for j, s := range last.out {
		if s == out {
			outName = last.node.Outputs[j]
		}
	}
	node := &Node{
		Name:    strings.Join(names, "+"),
		OpType:  opType,
		Opset:   last.node.Opset,
		Inputs:  inNames,
		Outputs: []string{outName},
		Const:   func(int) *tensor.Tensor { return nil },
	}
	node.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if outs, ok, err := fk(threads, in); ok || err != nil {
			return outs, err
		}
		return runReplaced(run, ins, out, threads, in)
	}
	for _, i := range idxs[:len(idxs)-1] {
		f.dead[i] = true
	}
	// The fast kernels allocate their output (Gelu, LayerNorm, Attention)
	// or return the multiply's (an epilogue), fresh when the multiply's is.
	node.fresh = opType != opEpilogue || run[0].fused == nil && run[0].node.fresh || run[0].node.OpType == opQMatMul
	fr := &fusedRun{fast: fk, run: run, ins: ins, out: out, need: func(int, []*tensor.Tensor) (int64, int64) { return 0, 0 }}
	f.m.steps[idxs[len(idxs)-1]] = step{node: node, kernel: withThreads(node.threaded, 1), in: ins, out: []int{out}, fused: fr}
	return fr
}

// runReplaced runs the steps a fused step replaced, in order, on the fused
// step's inputs (in, for slots ins) and returns the value of slot out.
func runReplaced(run []step, ins []int, out, threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	vals := make(map[int]*tensor.Tensor, len(ins)+len(run))
	for k, s := range ins {
		vals[s] = in[k]
	}
	for _, st := range run {
		args := make([]*tensor.Tensor, len(st.in))
		for j, s := range st.in {
			if s >= 0 {
				args[j] = vals[s]
			}
		}
		outs, err := runStep(st, args, threads)
		if err != nil {
			return nil, err
		}
		for j, s := range st.out {
			if s >= 0 && j < len(outs) {
				vals[s] = outs[j]
			}
		}
	}
	return []*tensor.Tensor{vals[out]}, nil
}

// gelu matches erf GELU around step i, an Erf:
//
//	d = Div(x, sqrt 2) (or Mul(x, 1/sqrt 2)); e = Erf(d); a = Add(e, 1)
//	y = Mul(Mul(x, a), 0.5)  or  y = Mul(Mul(x, 0.5), a)
func (f *fuser) gelu(i int) {
	if f.op(i) != "Erf" {
		return
	}
	dv := f.in(i, 0)
	di := f.producer(dv)
	if di < 0 || f.sole(dv) != i {
		return
	}
	x := f.in(di, 0)
	c, ok := f.scalar(f.in(di, 1))
	switch {
	case !ok:
		return
	case f.op(di) == "Div" && near(c, math.Sqrt2):
	case f.op(di) == "Mul" && near(c, 1/math.Sqrt2):
	default:
		return
	}
	e := f.out0(i)
	ai := f.sole(e)
	if f.op(ai) != "Add" {
		return
	}
	if one, ok := f.scalar(f.other(ai, e)); !ok || one != 1 {
		return
	}
	a := f.out0(ai)
	mi := f.sole(a)
	if f.op(mi) != "Mul" {
		return
	}
	var idxs []int
	var out, halfSlot int
	if h := f.other(mi, a); h == x {
		// Mul(x, a) then Mul(., 0.5).
		p := f.out0(mi)
		hi := f.sole(p)
		if f.op(hi) != "Mul" {
			return
		}
		halfSlot = f.other(hi, p)
		if half, ok := f.scalar(halfSlot); !ok || half != 0.5 {
			return
		}
		idxs, out = []int{di, i, ai, mi, hi}, f.out0(hi)
	} else {
		// Mul(x, 0.5) computed first, then Mul(., a).
		hi := f.producer(h)
		if f.op(hi) != "Mul" || f.sole(h) != mi || f.other(hi, x) < 0 {
			return
		}
		halfSlot = f.other(hi, x)
		if half, ok := f.scalar(halfSlot); !ok || half != 0.5 {
			return
		}
		idxs, out = []int{hi, di, i, ai, mi}, f.out0(mi)
	}
	// Constants of shape [1] make a scalar x's result [1].
	vec := f.vectorConst(f.in(di, 1), f.other(ai, e), halfSlot)
	var xi int
	fr := f.replace(idxs, out, opGelu, func(at func(int) int) fastKernel {
		xi = at(x)
		return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
			t := in[xi]
			if t == nil || t.DType != tensor.Float32 || vec && len(t.Shape) == 0 {
				return nil, false, nil
			}
			y := newF32(t.Shape...)
			parallelFor(threads, len(y.F32), elementGrain, func(lo, hi int) {
				geluInto(y.F32[lo:hi], t.F32[lo:hi])
			})
			return []*tensor.Tensor{y}, true, nil
		}
	})
	fr.need = needOf(xi)
}

// reducesLastAxis reports whether step i is a ReduceMean over the last axis
// only that keeps dimensions.
func (f *fuser) reducesLastAxis(i int) bool {
	if f.op(i) != "ReduceMean" {
		return false
	}
	n := f.m.steps[i].node
	if n.Int("keepdims", 1) != 1 {
		return false
	}
	axes := n.Ints("axes", nil)
	if len(axes) == 0 && len(f.m.steps[i].in) > 1 {
		c := f.consts[f.in(i, 1)]
		if c == nil || c.DType != tensor.Int64 {
			return false
		}
		axes = c.I64
	}
	return len(axes) == 1 && axes[0] == -1
}

// layerNorm matches a LayerNorm over the last axis spelled out from step i,
// the first ReduceMean:
//
//	mean = ReduceMean(x); d = Sub(x, mean); v = ReduceMean(Pow(d, 2))
//	y = Add(Mul(Div(d, Sqrt(Add(v, eps))), gain), offset)
func (f *fuser) layerNorm(i int) {
	if !f.reducesLastAxis(i) {
		return
	}
	x, mean := f.in(i, 0), f.out0(i)
	si := f.sole(mean)
	if f.op(si) != "Sub" || f.in(si, 0) != x || f.in(si, 1) != mean {
		return
	}
	d := f.out0(si)
	if f.isOut[d] || len(f.users[d]) != 2 {
		return
	}
	var pi, divi int = -1, -1
	for _, u := range f.users[d] {
		switch f.op(u) {
		case "Pow":
			if two, ok := f.scalar(f.in(u, 1)); ok && two == 2 && f.in(u, 0) == d {
				pi = u
			}
		case "Mul":
			if f.in(u, 0) == d && f.in(u, 1) == d {
				return // Mul(d, d) reads d twice: users would hold it three times
			}
		case "Div":
			if f.in(u, 0) == d {
				divi = u
			}
		}
	}
	if pi < 0 || divi < 0 {
		return
	}
	vi := f.sole(f.out0(pi))
	if !f.reducesLastAxis(vi) {
		return
	}
	v := f.out0(vi)
	ei := f.sole(v)
	if f.op(ei) != "Add" {
		return
	}
	eps, ok := f.scalar(f.other(ei, v))
	if !ok {
		return
	}
	qi := f.sole(f.out0(ei))
	if f.op(qi) != "Sqrt" || f.sole(f.out0(qi)) != divi || f.in(divi, 1) != f.out0(qi) {
		return
	}
	gi := f.sole(f.out0(divi))
	if f.op(gi) != "Mul" {
		return
	}
	gain := f.other(gi, f.out0(divi))
	bi := f.sole(f.out0(gi))
	if f.op(bi) != "Add" {
		return
	}
	offset := f.other(bi, f.out0(gi))
	if !f.isConst(gain) || !f.isConst(offset) {
		return
	}
	var xi int
	fr := f.replace([]int{i, si, pi, vi, ei, qi, divi, gi, bi}, f.out0(bi), opLayerNorm, func(at func(int) int) fastKernel {
		var gk, bk int
		xi, gk, bk = at(x), at(gain), at(offset)
		return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
			return layerNormFast(threads, in[xi], in[gk], in[bk], eps)
		}
	})
	fr.need = needOf(xi)
}

// attention matches scaled dot-product attention ending at step i, a
// Softmax over the last axis:
//
//	s = MatMul(Q, Kt); s = Div(s, c) or Mul(s, c); [s = Add(s, mask)]
//	p = Softmax(s); y = MatMul(p, V)
func (f *fuser) attention(i int) {
	if f.op(i) != "Softmax" || f.m.steps[i].node.Opset < 13 || f.m.steps[i].node.Int("axis", -1) != -1 {
		return
	}
	sv := f.in(i, 0)
	idxs := []int{i}
	mask := -1
	pre := f.producer(sv)
	if f.op(pre) == "Add" && f.sole(sv) == i {
		// One addend is the scaled scores, the other the mask.
		for _, cand := range f.m.steps[pre].in {
			if p := f.producer(cand); (f.op(p) == "Div" || f.op(p) == "Mul") && f.sole(cand) == pre {
				mask = f.other(pre, cand)
				idxs = append(idxs, pre)
				sv, pre = cand, p
				break
			}
		}
		if mask < 0 {
			return
		}
	}
	if (f.op(pre) != "Div" && f.op(pre) != "Mul") || f.sole(sv) != idxs[len(idxs)-1] {
		return
	}
	c, ok := f.scalar(f.in(pre, 1))
	if !ok || c == 0 {
		return
	}
	scale := c
	if f.op(pre) == "Div" {
		scale = 1 / c
	}
	idxs = append(idxs, pre)
	mv := f.in(pre, 0)
	mi := f.producer(mv)
	if f.op(mi) != "MatMul" || f.sole(mv) != pre {
		return
	}
	q, kt := f.in(mi, 0), f.in(mi, 1)
	if f.isConst(q) || f.isConst(kt) {
		return
	}
	idxs = append(idxs, mi)
	p := f.out0(i)
	oi := f.sole(p)
	if f.op(oi) != "MatMul" || f.in(oi, 0) != p {
		return
	}
	v := f.in(oi, 1)
	idxs = append(idxs, oi)
	// The heads transposes around attention (BERT's [B S H D] <-> [B H S D])
	// join the fused step, which reads and writes the untransposed layout
	// with row strides instead of copying each tensor twice.
	var lay attnLayout
	lay.q, q = f.headsTranspose(q, mi, &idxs, 0, 2, 1, 3)
	lay.k, kt = f.headsTranspose(kt, mi, &idxs, 0, 2, 3, 1)
	lay.v, v = f.headsTranspose(v, oi, &idxs, 0, 2, 1, 3)
	out := f.out0(oi)
	if ti := f.sole(out); f.op(ti) == "Transpose" && f.isPerm(ti, 0, 2, 1, 3) {
		lay.y, out = true, f.out0(ti)
		idxs = append(idxs, ti)
	}
	var qi, ki, vi int
	fr := f.replace(idxs, out, opAttention, func(at func(int) int) fastKernel {
		var mk int
		qi, ki, vi, mk = at(q), at(kt), at(v), at(mask)
		return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
			var m *tensor.Tensor
			if mk >= 0 {
				m = in[mk]
			}
			return attentionFast(threads, in[qi], in[ki], in[vi], m, scale, lay)
		}
	})
	fr.need = func(threads int, in []*tensor.Tensor) (int64, int64) {
		return attentionNeed(threads, in[qi], in[ki], in[vi], lay)
	}
}

// headsTranspose returns the input of the Transpose with the given perm that
// produces slot s, read only by step user, adding the Transpose to idxs; or
// s itself when s has no such producer.
func (f *fuser) headsTranspose(s, user int, idxs *[]int, perm ...int64) (bool, int) {
	t := f.producer(s)
	if f.op(t) != "Transpose" || f.sole(s) != user || !f.isPerm(t, perm...) {
		return false, s
	}
	*idxs = append(*idxs, t)
	return true, f.in(t, 0)
}

// isPerm reports whether step i's perm attribute is perm.
func (f *fuser) isPerm(i int, perm ...int64) bool {
	n := f.m.steps[i].node
	return n.Has("perm") && slices.Equal(n.Ints("perm", nil), perm)
}

// reluBeforePool swaps Conv -> MaxPool -> Relu into Conv -> Relu -> MaxPool
// (around step i, a MaxPool), so that the epilogue pass can fold Relu into
// the convolution, which applies it block by block while the output is in
// cache, instead of a pass of its own over the pooled tensor (MNIST's CNN
// pools before its Relus). Relu is monotonic, so the max of Relus is the
// Relu of the max; only a NaN in a window differs (a window of NaN and 5 gives
// 0 before the swap and 5 after, as Relu maps NaN to 0 here). The MaxPool must
// not return indices, and the tensors between the three steps must have no
// other reader.
func (f *fuser) reluBeforePool(i int) {
	if f.op(i) != "MaxPool" || f.producer(f.out0(i)) != i {
		return
	}
	x, p := f.in(i, 0), f.out0(i)
	j := f.sole(p)
	if f.op(j) != "Relu" || f.sole(x) != i || f.op(f.producer(x)) != "Conv" {
		return
	}
	pool, relu := f.m.steps[i], f.m.steps[j]
	y := relu.out[0]
	// The Relu moves to the MaxPool's place and writes slot p, now the
	// convolution's shape; the MaxPool moves to the Relu's and writes y. The
	// steps between read neither p (the Relu was its only reader) nor y
	// (not yet written).
	relu.in, relu.out = []int{x}, []int{p}
	pool.in, pool.out = []int{p}, []int{y}
	relu.node.Inputs, relu.node.Outputs, pool.node.Inputs, pool.node.Outputs =
		[]string{pool.node.Inputs[0]}, []string{pool.node.Outputs[0]}, []string{pool.node.Outputs[0]}, []string{relu.node.Outputs[0]}
	f.m.steps[i], f.m.steps[j] = relu, pool
	f.shapes[p] = f.shapes[x]
	f.users[x], f.users[p] = []int{i}, []int{j}
	f.prod[p], f.prod[y] = i, j
}

// epilogue matches a multiply (MatMul, Gemm or Conv) at step i followed by
// element-wise steps that fit in one pass over its output: for MatMul an Add
// of a constant bias, then Relu or a fused GELU, then an Add of a tensor of
// the output's shape (a residual).
func (f *fuser) epilogue(i int) {
	head := f.op(i)
	if head != "MatMul" && head != "Gemm" && head != "Conv" && head != opQMatMul {
		return
	}
	if f.m.steps[i].node.threaded == nil {
		return
	}
	idxs := []int{i}
	ep := epilogueSpec{bias: -1, residual: -1}
	cur := f.out0(i)
	next := f.sole(cur)
	if (head == "MatMul" || head == opQMatMul) && f.op(next) == "Add" {
		if b := f.other(next, cur); f.isConst(b) {
			ep.bias = b
			idxs = append(idxs, next)
			cur = f.out0(next)
			next = f.sole(cur)
		}
	}
	if head == "Conv" && f.op(next) == "Clip" && f.m.steps[i].node.clipThreaded != nil {
		if lo, hi, ok := f.clipBounds(next); ok {
			// Conv + Clip (ReLU6): the convolution clips its output block by
			// block, as it applies Relu.
			conv := f.m.steps[i]
			clipped := conv.node.clipThreaded(lo, hi)
			var headIn []int
			fr := f.replace([]int{i, next}, f.out0(next), opEpilogue, func(at func(int) int) fastKernel {
				headIn = slotsAt(at, conv.in)
				return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
					args := pick(in, headIn)
					outs, err := clipped(threads, args)
					return outs, err == nil, err
				}
			})
			fr.need = needOfHead(conv, headIn)
			return
		}
	}
	switch f.op(next) {
	case "Relu":
		ep.act = actRelu
	case opGelu:
		if f.in(next, 0) == cur {
			ep.act = actGelu
		}
	}
	if ep.act != actNone {
		idxs = append(idxs, next)
		cur = f.out0(next)
		next = f.sole(cur)
	}
	if head != "Conv" && f.op(next) == "Add" {
		if r := f.other(next, cur); r >= 0 && r != cur && !f.isConst(r) {
			ep.residual = r
			idxs = append(idxs, next)
			cur = f.out0(next)
		}
	}
	if len(idxs) == 1 {
		return
	}
	mm := f.m.steps[i]
	if relu := mm.node.reluThreaded; relu != nil && ep == (epilogueSpec{bias: -1, residual: -1, act: actRelu}) {
		// Conv + Relu: the convolution applies Relu itself, block by block;
		// a 2×2 stride-2 MaxPool after it joins when the convolution can
		// pool its own output (see convIndirect), and otherwise runs on it.
		var pool *step // a copy: replace overwrites the pool's slot in m.steps
		if pi := f.sole(cur); mm.node.reluPool != nil && f.op(pi) == "MaxPool" && f.producer(f.out0(pi)) == pi && pool2x2(f.m.steps[pi].node) {
			ps := f.m.steps[pi]
			pool = &ps
			idxs = append(idxs, pi)
			cur = f.out0(pi)
		}
		var headIn []int
		fr := f.replace(idxs, cur, opEpilogue, func(at func(int) int) fastKernel {
			headIn = slotsAt(at, mm.in)
			return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
				args := pick(in, headIn)
				if pool != nil {
					if outs, ok, err := mm.node.reluPool(threads, args); ok || err != nil {
						return outs, err == nil, err
					}
				}
				outs, err := relu(threads, args)
				if pool == nil || err != nil {
					return outs, err == nil, err
				}
				pooled, err := runStep(*pool, outs, threads)
				putF32(outs[0].F32) // nothing else holds the convolution's output
				return pooled, err == nil, err
			}
		})
		need := needOfHead(mm, headIn)
		fr.need = func(threads int, in []*tensor.Tensor) (int64, int64) {
			out, scratch := need(threads, in)
			if pool != nil {
				// The unpooled output may be made first, then pooled.
				return out/4 + 1, scratch + out
			}
			return out, scratch
		}
		return
	}
	var headIn []int
	fr := f.replace(idxs, cur, opEpilogue, func(at func(int) int) fastKernel {
		spec := ep
		spec.bias, spec.residual = at(ep.bias), at(ep.residual)
		headIn = slotsAt(at, mm.in)
		return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
			args := pick(in, headIn)
			return epilogueFast(threads, mm, args, spec, in)
		}
	})
	fr.need = needOfHead(mm, headIn)
}

// clipBounds returns the bounds of Clip step i when they are constants (the
// attributes before opset 11, scalar inputs since; an omitted one is
// unbounded).
func (f *fuser) clipBounds(i int) (lo, hi float32, ok bool) {
	st := f.m.steps[i]
	n := st.node
	lo, hi = float32(math.Inf(-1)), float32(math.Inf(1))
	if n.Opset < 11 {
		return n.Float("min", lo), n.Float("max", hi), true
	}
	for j, bound := range []*float32{&lo, &hi} {
		if j+1 >= len(st.in) || st.in[j+1] < 0 {
			continue
		}
		v, ok := f.scalar(st.in[j+1])
		if !ok {
			return 0, 0, false
		}
		*bound = v
	}
	return lo, hi, true
}

// pool2x2 reports whether n, a MaxPool, is a 2×2 window of stride 2 over
// 2-D planes with no padding, dilation, ceil mode or indices.
func pool2x2(n *Node) bool {
	pads := n.Ints("pads", nil)
	return slices.Equal(n.Ints("kernel_shape", nil), []int64{2, 2}) &&
		slices.Equal(n.Ints("strides", nil), []int64{2, 2}) &&
		(len(pads) == 0 || slices.Equal(pads, []int64{0, 0, 0, 0})) &&
		slices.Contains([]string{"NOTSET", "VALID"}, n.String("auto_pad", "NOTSET")) &&
		(!n.Has("dilations") || slices.Equal(n.Ints("dilations", nil), []int64{1, 1})) &&
		n.Int("ceil_mode", 0) == 0 &&
		(len(n.Outputs) < 2 || n.Outputs[1] == "")
}

// slotsAt maps slots to the fused step's input indices with at (-1 for
// none).
func slotsAt(at func(int) int, slots []int) []int {
	idx := make([]int, len(slots))
	for j, s := range slots {
		idx[j] = at(s)
	}
	return idx
}

// pick returns in[idx[j]] for each j, nil where idx[j] < 0: the arguments
// of one replaced step among the fused step's inputs.
func pick(in []*tensor.Tensor, idx []int) []*tensor.Tensor {
	args := make([]*tensor.Tensor, len(idx))
	for j, k := range idx {
		if k >= 0 {
			args[j] = in[k]
		}
	}
	return args
}

// needOfHead is a fusedRun.need for an epilogue, whose output is that of
// its head multiply mm, reading the fused step's inputs headIn.
func needOfHead(mm step, headIn []int) func(int, []*tensor.Tensor) (int64, int64) {
	mm.size = sizeClassOf(mm.node.OpType)
	return func(threads int, in []*tensor.Tensor) (int64, int64) {
		args := pick(in, headIn)
		need, _ := stepBytes(&mm, args, threads)
		return need, 0
	}
}
