package engine

import (
	"math"
	"slices"
	"sync"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// Elementwise fusion (issue 12, item 1). A connected group of elementwise
// steps (activations spelled out op by op, HardSwish as x * Clip(x + 3, 0, 6)
// / 6, a BatchNormalization's per-channel scale and shift, bias and residual
// adds) becomes one step that reads each of its inputs once and writes its
// output once. The group is compiled into an ewProgram, a list of
// instructions over values, which runs block by block: every value of a
// block lives in a small buffer that stays in the L1 cache, so the group
// costs one pass over memory instead of one per op, and no intermediate
// tensor is allocated.
//
// Broadcasting commutes with elementwise ops, so the program computes every
// value over the group's output shape: an input of another shape is read
// through a pattern (a scalar, a per-channel vector, a row), and an
// intermediate of a smaller shape is computed once per output element. The
// fast kernel declines (and the replaced steps run one by one) when an input
// is not float32 or its broadcast is not a pattern it reads.

// ewOp is one operation of an ewProgram.
type ewOp uint8

const (
	ewAdd ewOp = iota
	ewSub
	ewMul
	ewDiv
	ewMin
	ewMax
	ewPow // b is the exponent
	ewRelu
	ewClip        // p, q: min, max
	ewLeakyRelu   // p: alpha
	ewHardSigmoid // p, q: alpha, beta
	ewHardSwish
	ewSigmoid
	ewTanh
	ewExp
	ewLog
	ewSqrt
	ewNeg
	ewAbs
	ewRecip
	ewErf
	ewSoftplus
)

// binaryEw maps ONNX binary ops to ewOps.
var binaryEw = map[string]ewOp{"Add": ewAdd, "Sub": ewSub, "Mul": ewMul, "Div": ewDiv, "Min": ewMin, "Max": ewMax, "Pow": ewPow}

// unaryEw maps ONNX unary ops without attributes to ewOps.
var unaryEw = map[string]ewOp{"Relu": ewRelu, "HardSwish": ewHardSwish, "Sigmoid": ewSigmoid, "Tanh": ewTanh,
	"Exp": ewExp, "Log": ewLog, "Sqrt": ewSqrt, "Neg": ewNeg, "Abs": ewAbs, "Reciprocal": ewRecip, "Erf": ewErf, "Softplus": ewSoftplus}

// ewArg is an instruction operand: value val (an input, a constant of the
// program or an earlier instruction's result), or the immediate imm when val
// is -1.
type ewArg struct {
	val int
	imm float32
}

func immArg(v float32) ewArg { return ewArg{val: -1, imm: v} }

// ewInstr computes value dst = op(a, b) (b unused for unary ops; p and q are
// the op's parameters).
type ewInstr struct {
	op   ewOp
	a, b ewArg
	p, q float32
	dst  int
}

// ewProgram is a compiled elementwise group. Values 0..nin-1 are the fused
// step's inputs, then come the program's own constants, then the
// instructions' results; the last instruction's is the output.
type ewProgram struct {
	nin    int
	used   []bool // which inputs the program reads (a scalar constant input is an immediate instead)
	consts []*tensor.Tensor
	code   []ewInstr
	nvals  int
}

// ewBlock is how many elements the program computes at a time: its values'
// buffers (a few KiB each) stay in the L1 cache between instructions.
const ewBlock = 1024

// ewPattern is how an operand of shape X, broadcast to the output shape S,
// maps output element i to an element of X: X's elements that vary span a
// run of S's axes, so i selects element (i / inner) % count. count equals
// the output's size for an operand of the output's shape, 1 for a scalar.
type ewPattern struct {
	count, inner int
}

// patternOf returns x's pattern against out, or false when x's varying axes
// are not one contiguous run equal to out's there (a broadcast the program
// does not read: the replaced steps run instead).
func patternOf(x, out []int) (ewPattern, bool) {
	if len(x) > len(out) {
		return ewPattern{}, false
	}
	off := len(out) - len(x)
	lo, hi := -1, -1
	for j, d := range x {
		if d != 1 {
			if lo < 0 {
				lo = j + off
			}
			hi = j + off + 1
		}
	}
	if lo < 0 {
		return ewPattern{count: 1, inner: max(1, tensor.NumElements(out))}, true
	}
	count, inner := 1, 1
	for a := lo; a < hi; a++ {
		if x[a-off] != out[a] {
			return ewPattern{}, false
		}
		count *= out[a]
	}
	for a := hi; a < len(out); a++ {
		inner *= out[a]
	}
	return ewPattern{count: count, inner: inner}, true
}

// load fills dst with src's elements for output elements [i0, i0+len(dst))
// through pattern p.
func (p ewPattern) load(dst, src []float32, i0 int) {
	n := len(dst)
	if p.inner == 1 {
		idx := i0 % p.count
		for done := 0; done < n; {
			c := copy(dst[done:], src[idx:p.count])
			done += c
			idx = 0
		}
		return
	}
	idx := (i0 / p.inner) % p.count
	left := p.inner - i0%p.inner // elements before idx moves on
	for done := 0; done < n; {
		run := min(left, n-done)
		v := src[idx]
		seg := dst[done : done+run]
		for i := range seg {
			seg[i] = v
		}
		done += run
		left = p.inner
		if idx++; idx == p.count {
			idx = 0
		}
	}
}

// ewScratch holds a goroutine's working state for ewRun.apply: the value
// buffers of a block and the slices indexing them.
var ewScratch = sync.Pool{New: func() any { return new(ewState) }}

type ewState struct {
	buf    []float32
	vals   [][]float32
	scal   []float32
	isScal []bool
}

// ewRun is a program bound to the tensors of one call: its sources (inputs
// and constants), how each is read, and the output's shape and size.
type ewRun struct {
	p     *ewProgram
	srcs  []*tensor.Tensor
	pats  []ewPattern
	shape []int
	n     int
}

// bind binds p to its inputs in; false when an input is not float32 or
// broadcasts in a way the program does not read.
func (p *ewProgram) bind(in []*tensor.Tensor) (*ewRun, bool) {
	srcs := make([]*tensor.Tensor, p.nin+len(p.consts))
	var shape []int
	first := true
	for k := range p.nin {
		if !p.used[k] {
			continue
		}
		if k >= len(in) || in[k] == nil || in[k].DType != tensor.Float32 {
			return nil, false
		}
		srcs[k] = in[k]
	}
	copy(srcs[p.nin:], p.consts)
	for _, t := range srcs {
		if t == nil {
			continue
		}
		if first {
			shape, first = t.Shape, false
			continue
		}
		var err error
		if shape, err = broadcastShapes(shape, t.Shape); err != nil {
			return nil, false // the replaced steps report it
		}
	}
	pats := make([]ewPattern, len(srcs))
	for k, t := range srcs {
		if t == nil {
			continue
		}
		pt, ok := patternOf(t.Shape, shape)
		if !ok {
			return nil, false
		}
		pats[k] = pt
	}
	return &ewRun{p: p, srcs: srcs, pats: pats, shape: shape, n: tensor.NumElements(shape)}, true
}

// run is the fused step's fast kernel: it declines (ok false) when an input
// is not float32 or broadcasts in a way the program does not read.
func (p *ewProgram) run(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
	r, ok := p.bind(in)
	if !ok {
		return nil, false, nil
	}
	out := newF32Dirty(r.shape...) // every element is written
	blocks := (r.n + ewBlock - 1) / ewBlock
	parts := min(threads, max(1, r.n/(16*ewBlock)), blocks)
	kernels.Parallel(parts, func(part int) {
		lo, hi := part*blocks/parts*ewBlock, min(r.n, (part+1)*blocks/parts*ewBlock)
		r.apply(out.F32[lo:hi], lo, false)
	})
	return []*tensor.Tensor{out}, true, nil
}

// postFunc returns the program as a convolution's epilogue on out, the
// convolution's output and one of its inputs: it computes the program's
// output over each row segment it gets, in place (see convAct.post).
func (r *ewRun) postFunc(out []float32) postFunc {
	base := cap(out) // a slice of out starts as much less room as it has
	return func(y []float32, ld, j0, n int) {
		st := ewScratch.Get().(*ewState)
		defer ewScratch.Put(st)
		for row := range len(y) / ld {
			seg := y[row*ld+j0 : row*ld+j0+n]
			r.applyWith(st, seg, base-cap(seg), true)
		}
	}
}

// apply computes the output elements [i0, i0+len(dst)) into dst, a block
// at a time (see applyWith).
func (r *ewRun) apply(dst []float32, i0 int, inPlace bool) {
	st := ewScratch.Get().(*ewState)
	defer ewScratch.Put(st)
	r.applyWith(st, dst, i0, inPlace)
}

// applyWith is apply with the goroutine's scratch st. inPlace says dst may
// be the memory of an input the program reads (a convolution's output,
// which its epilogue overwrites): then each block's result is made in
// scratch and copied over, so no instruction writes what a later one of the
// block still reads.
func (r *ewRun) applyWith(st *ewState, dst []float32, i0 int, inPlace bool) {
	p := r.p
	if need := (p.nvals + 1) * ewBlock; len(st.buf) < need {
		st.buf = make([]float32, need)
	}
	if len(st.vals) < p.nvals {
		st.vals, st.scal, st.isScal = make([][]float32, p.nvals), make([]float32, p.nvals), make([]bool, p.nvals)
	}
	buf, vals, scal, isScal := st.buf, st.vals[:p.nvals], st.scal[:p.nvals], st.isScal[:p.nvals]
	staging := buf[p.nvals*ewBlock : (p.nvals+1)*ewBlock]
	// A value that is one number over the whole block (a per-channel
	// constant inside one channel's run, and what is computed from such
	// values only) is kept as that number: the instructions reading it use
	// their immediate forms, and an op on numbers alone runs once per block,
	// not once per element.
	for off := 0; off < len(dst); off += ewBlock {
		b0 := i0 + off
		bn := min(ewBlock, len(dst)-off)
		for k, t := range r.srcs {
			isScal[k] = false
			pt := r.pats[k]
			switch {
			case t == nil:
			case pt.count == r.n:
				vals[k] = t.F32[b0 : b0+bn] // the output's shape: read in place
			case pt.inner > 1 && b0%pt.inner+bn <= pt.inner:
				isScal[k], scal[k] = true, t.F32[(b0/pt.inner)%pt.count]
			default:
				vals[k] = buf[k*ewBlock : k*ewBlock+bn]
				pt.load(vals[k], t.F32, b0)
			}
		}
		out := dst[off : off+bn]
		for j, ins := range p.code {
			last := j == len(p.code)-1
			d := buf[ins.dst*ewBlock : ins.dst*ewBlock+bn]
			if last {
				d = out
				if inPlace {
					d = staging[:bn]
				}
			}
			isScal[ins.dst] = false
			if v, ok := ins.scalar(vals, scal, isScal); ok {
				if !last {
					isScal[ins.dst], scal[ins.dst] = true, v
					continue
				}
				for i := range d {
					d[i] = v
				}
			} else {
				ins.exec(d, vals, scal, isScal)
			}
			vals[ins.dst] = d
		}
		if inPlace {
			copy(out, staging[:bn])
		}
	}
}

// operand returns a's value over the block: a vector, or a number when a
// is an immediate or a block scalar.
func operand(a ewArg, vals [][]float32, scal []float32, isScal []bool) ([]float32, float32, bool) {
	switch {
	case a.val < 0:
		return nil, a.imm, true
	case isScal[a.val]:
		return nil, scal[a.val], true
	}
	return vals[a.val], 0, false
}

// scalar computes the instruction once when every operand it reads is a
// number over the block, and reports whether it did.
func (ins *ewInstr) scalar(vals [][]float32, scal []float32, isScal []bool) (float32, bool) {
	_, x, ok := operand(ins.a, vals, scal, isScal)
	if !ok {
		return 0, false
	}
	var in, out [1]float32
	in[0] = x
	if ins.op <= ewPow {
		_, y, ok := operand(ins.b, vals, scal, isScal)
		if !ok {
			return 0, false
		}
		ewBinaryImm(ins.op, out[:], in[:], y)
		return out[0], true
	}
	ewUnary(ins.op, out[:], in[:], ins.p, ins.q)
	return out[0], true
}

// exec computes one instruction over a block into dst; at least one operand
// is a vector.
func (ins *ewInstr) exec(dst []float32, vals [][]float32, scal []float32, isScal []bool) {
	a, x, aNum := operand(ins.a, vals, scal, isScal)
	if ins.op > ewPow {
		ewUnary(ins.op, dst, a, ins.p, ins.q)
		return
	}
	b, y, bNum := operand(ins.b, vals, scal, isScal)
	switch {
	case bNum:
		ewBinaryImm(ins.op, dst, a, y)
	case !aNum:
		ewBinary(ins.op, dst, a, b)
	case ins.op == ewAdd || ins.op == ewMul:
		ewBinaryImm(ins.op, dst, b, x) // commutative, bit for bit (Min and Max are not, for signed zeros)
	case ins.op == ewSub:
		// x - b is x + (-b), exactly.
		kernels.MulVS(dst, b, -1)
		kernels.AddVS(dst, dst, x)
	default:
		for i := range dst {
			dst[i] = x
		}
		ewBinary(ins.op, dst, dst, b)
	}
}

// ewBinary computes dst = a op b elementwise, as the unfused kernels do
// (Min and Max propagate NaN, Pow is computed in float64 and rounded once).
func ewBinary(op ewOp, dst, a, b []float32) {
	switch op {
	case ewAdd:
		kernels.AddVV(dst, a, b)
	case ewSub:
		kernels.SubVV(dst, a, b)
	case ewMul:
		kernels.MulVV(dst, a, b)
	case ewDiv:
		kernels.DivVV(dst, a, b)
	case ewMin:
		for i := range dst {
			dst[i] = minOf(a[i], b[i])
		}
	case ewMax:
		for i := range dst {
			dst[i] = maxOf(a[i], b[i])
		}
	case ewPow:
		for i := range dst {
			dst[i] = powF32(a[i], b[i])
		}
	}
}

// ewBinaryImm computes dst = a op s.
func ewBinaryImm(op ewOp, dst, a []float32, s float32) {
	switch op {
	case ewAdd:
		kernels.AddVS(dst, a, s)
	case ewSub:
		kernels.AddVS(dst, a, -s)
	case ewMul:
		kernels.MulVS(dst, a, s)
	case ewDiv:
		kernels.DivVS(dst, a, s)
	case ewMin:
		for i := range dst {
			dst[i] = minOf(a[i], s)
		}
	case ewMax:
		for i := range dst {
			dst[i] = maxOf(a[i], s)
		}
	case ewPow:
		if s == 2 {
			kernels.MulVV(dst, a, a)
			return
		}
		for i := range dst {
			dst[i] = powF32(a[i], s)
		}
	}
}

// powF32 is Pow's float32 element function (float64, rounded once).
func powF32(x, y float32) float32 { return float32(math.Pow(float64(x), float64(y))) }

// ewUnary computes dst = op(a) with the unfused kernels' element functions.
func ewUnary(op ewOp, dst, a []float32, p, q float32) {
	switch op {
	case ewRelu:
		kernels.MaxZero(dst, a)
	case ewClip:
		kernels.Clip(dst, a, p, q)
	case ewHardSigmoid:
		kernels.HardSigmoid(dst, a, float64(p), float64(q))
	case ewHardSwish:
		kernels.HardSwish(dst, a)
	case ewLeakyRelu:
		alpha := float64(p)
		for i, v := range a {
			if v < 0 {
				dst[i] = float32(alpha * float64(v))
			} else {
				dst[i] = v
			}
		}
	case ewSigmoid:
		kernels.Sigmoid(dst, a)
	case ewTanh:
		for i, v := range a {
			dst[i] = float32(tanh64f(float64(v)))
		}
	case ewExp:
		kernels.Exp(dst, a)
	case ewErf:
		for i, v := range a {
			dst[i] = erf32(v)
		}
	case ewLog:
		for i, v := range a {
			dst[i] = float32(math.Log(float64(v)))
		}
	case ewSqrt:
		for i, v := range a {
			dst[i] = float32(math.Sqrt(float64(v)))
		}
	case ewSoftplus:
		for i, v := range a {
			dst[i] = float32(softplus(float64(v)))
		}
	case ewNeg:
		for i, v := range a {
			dst[i] = -v
		}
	case ewAbs:
		for i, v := range a {
			dst[i] = abs(v)
		}
	case ewRecip:
		for i, v := range a {
			dst[i] = 1 / v
		}
	}
}

// ewAlone lists the ops whose unfused kernels are plain Go loops over the
// tensor: a program of one of them alone runs the vector primitives instead.
var ewAlone = map[string]bool{"Add": true, "Sub": true, "Mul": true, "Div": true, "Clip": true, "BatchNormalization": true,
	"HardSigmoid": true, "HardSwish": true}

// ewBuilder turns a group's steps into an ewProgram.
type ewBuilder struct {
	f    *fuser
	at   func(slot int) int // the fused step's input index of a slot, -1 inside the group
	prog *ewProgram
	val  map[int]int // slot -> value, for slots computed inside the group
}

// arg returns the operand for slot s: an immediate for a scalar float32
// constant, else the value the group computed or the fused step's input.
func (b *ewBuilder) arg(s int) ewArg {
	if v, ok := b.val[s]; ok {
		return ewArg{val: v}
	}
	if c, ok := b.f.scalar(s); ok {
		return immArg(c)
	}
	k := b.at(s)
	b.prog.used[k] = true
	return ewArg{val: k}
}

// emit appends an instruction writing a new value and returns that value.
func (b *ewBuilder) emit(ins ewInstr) int {
	ins.dst = b.prog.nvals
	b.prog.nvals++
	b.prog.code = append(b.prog.code, ins)
	return ins.dst
}

// constant adds a program constant and returns its value.
func (b *ewBuilder) constant(t *tensor.Tensor) int {
	// Constants are numbered right after the inputs; instructions after them.
	b.prog.consts = append(b.prog.consts, t)
	return b.prog.nin + len(b.prog.consts) - 1
}

// ewSpec is what compiling one step needs to know, decided when the group
// is formed: for BatchNormalization its folded per-channel constants.
type ewSpec struct {
	mul, add *tensor.Tensor // BatchNormalization's y = x*mul + add, shaped [C 1 ...]
}

// fusable reports whether step i can join an elementwise group, and what
// compiling it needs.
func (f *fuser) ewFusable(i int) (ewSpec, bool) {
	st := f.m.steps[i]
	n := st.node
	if st.fused != nil || len(st.out) != 1 {
		return ewSpec{}, false
	}
	switch op := n.OpType; {
	case binaryEw[op] != 0 || op == "Add":
		if len(st.in) != 2 || st.in[0] < 0 || st.in[1] < 0 {
			return ewSpec{}, false
		}
		if op == "Pow" {
			_, ok := f.scalar(st.in[1])
			return ewSpec{}, ok
		}
		// A scalar constant on the left is fine for the commutative ops;
		// Sub and Div need their left operand as a value.
		if _, ok := f.scalar(st.in[0]); ok && (op == "Sub" || op == "Div") {
			return ewSpec{}, false
		}
		return ewSpec{}, !f.bothScalar(st.in[0], st.in[1])
	case unaryEw[op] != 0 || op == "Relu":
		return ewSpec{}, len(st.in) == 1 && st.in[0] >= 0
	case op == "LeakyRelu", op == "HardSigmoid":
		return ewSpec{}, len(st.in) == 1 && st.in[0] >= 0
	case op == "Clip":
		if n.Opset < 11 {
			return ewSpec{}, len(st.in) == 1
		}
		for j := 1; j < len(st.in); j++ {
			if _, ok := f.scalar(st.in[j]); st.in[j] >= 0 && !ok {
				return ewSpec{}, false
			}
		}
		return ewSpec{}, len(st.in) >= 1 && st.in[0] >= 0
	case op == "BatchNormalization":
		return f.bnSpec(i)
	}
	return ewSpec{}, false
}

// bothScalar reports whether both slots are scalar constants (left to
// constant folding).
func (f *fuser) bothScalar(a, b int) bool {
	_, ok1 := f.scalar(a)
	_, ok2 := f.scalar(b)
	return ok1 && ok2
}

// bnSpec folds a BatchNormalization with constant parameters, over an input
// of known rank, into per-channel constants of shape [C 1 ...].
func (f *fuser) bnSpec(i int) (ewSpec, bool) {
	st := f.m.steps[i]
	n := st.node
	if len(st.in) != 5 || n.Int("training_mode", 0) != 0 {
		return ewSpec{}, false
	}
	rank := n.InRank(0)
	if rank < 2 {
		return ewSpec{}, false
	}
	var p [4]*tensor.Tensor
	for j := range p {
		if p[j] = f.consts[st.in[j+1]]; p[j] == nil || p[j].DType != tensor.Float32 || len(p[j].F32) != len(f.consts[st.in[1]].F32) {
			return ewSpec{}, false
		}
	}
	c := len(p[0].F32)
	eps := float64(n.Float("epsilon", 1e-5))
	shape := make([]int, rank-1)
	for j := range shape {
		shape[j] = 1
	}
	shape[0] = c
	mul, add := tensor.New(tensor.Float32, shape...), tensor.New(tensor.Float32, shape...)
	for k := range c {
		m := float64(p[0].F32[k]) / math.Sqrt(float64(p[3].F32[k])+eps)
		mul.F32[k] = float32(m)
		add.F32[k] = float32(float64(p[1].F32[k]) - float64(p[2].F32[k])*m)
	}
	return ewSpec{mul: mul, add: add}, true
}

// compileStep appends step i's instructions.
func (b *ewBuilder) compileStep(i int, spec ewSpec) {
	st := b.f.m.steps[i]
	n := st.node
	var v int
	switch op := n.OpType; {
	case op == "BatchNormalization":
		x := b.arg(st.in[0])
		v = b.emit(ewInstr{op: ewMul, a: x, b: ewArg{val: b.constant(spec.mul)}})
		v = b.emit(ewInstr{op: ewAdd, a: ewArg{val: v}, b: ewArg{val: b.constant(spec.add)}})
	case op == "Clip":
		lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
		if n.Opset < 11 {
			lo, hi = n.Float("min", lo), n.Float("max", hi)
		} else {
			if len(st.in) > 1 && st.in[1] >= 0 {
				lo, _ = b.f.scalar(st.in[1])
			}
			if len(st.in) > 2 && st.in[2] >= 0 {
				hi, _ = b.f.scalar(st.in[2])
			}
		}
		v = b.emit(ewInstr{op: ewClip, a: b.arg(st.in[0]), p: lo, q: hi})
	case op == "LeakyRelu":
		v = b.emit(ewInstr{op: ewLeakyRelu, a: b.arg(st.in[0]), p: n.Float("alpha", 0.01)})
	case op == "HardSigmoid":
		v = b.emit(ewInstr{op: ewHardSigmoid, a: b.arg(st.in[0]), p: n.Float("alpha", 0.2), q: n.Float("beta", 0.5)})
	case len(st.in) == 2:
		a, c := b.arg(st.in[0]), b.arg(st.in[1])
		if a.val < 0 { // scalar on the left of a commutative op
			a, c = c, a
		}
		v = b.emit(ewInstr{op: binaryEw[op], a: a, b: c})
	default:
		v = b.emit(ewInstr{op: unaryEw[op], a: b.arg(st.in[0])})
	}
	b.val[st.out[0]] = v
}

// elementwise fuses groups of elementwise steps (see ewProgram). Steps join
// in order: a step joins the group of each input whose readers are all in
// the group it forms, merging groups where it joins two. Groups of two or
// more steps become one step, and so does one step alone when its op is in
// ewAlone.
func (f *fuser) elementwise() {
	f.index()
	n := len(f.m.steps)
	group := make([]int, n) // step -> representative step of its group, or -1
	specs := make([]ewSpec, n)
	var find func(i int) int
	find = func(i int) int {
		for group[i] != i {
			group[i] = group[group[i]]
			i = group[i]
		}
		return i
	}
	for i := range group {
		group[i] = -1
	}
	for i := range n {
		spec, ok := f.ewFusable(i)
		if !ok {
			continue
		}
		specs[i], group[i] = spec, i
		// First the inputs only step i reads, then those read only by
		// steps of the group that has formed (y read by both Sigmoid and
		// Mul in y * Sigmoid(y)).
		for _, s := range f.m.steps[i].in {
			if p := f.producer(s); p >= 0 && group[p] >= 0 && f.sole(s) == i {
				group[find(p)] = i
			}
		}
		for _, s := range f.m.steps[i].in {
			p := f.producer(s)
			if p < 0 || group[p] < 0 || find(p) == i || f.isOut[s] {
				continue
			}
			inside := true
			for _, u := range f.users[s] {
				inside = inside && group[u] >= 0 && find(u) == i
			}
			if inside {
				group[find(p)] = i
			}
		}
	}
	members := map[int][]int{}
	for i := range n {
		if group[i] >= 0 {
			r := find(i)
			members[r] = append(members[r], i)
		}
	}
	for r, idxs := range members {
		if idxs[len(idxs)-1] != r || len(idxs) < 2 && !ewAlone[f.op(r)] && !f.convEpilogue(r) {
			continue
		}
		out := f.out0(r)
		var prog *ewProgram
		// One step alone keeps its op's name, in errors and profiles.
		opType := opEwise
		if len(idxs) == 1 {
			opType = f.op(r)
		}
		fr := f.replace(idxs, out, opType, func(at func(int) int) fastKernel {
			nin := 0
			for _, i := range idxs {
				for _, s := range f.m.steps[i].in {
					if k := at(s); k >= nin {
						nin = k + 1
					}
				}
			}
			b := &ewBuilder{f: f, at: at, prog: &ewProgram{nin: nin, used: make([]bool, nin)}, val: map[int]int{}}
			// Program constants are numbered after the inputs: count them first.
			for _, i := range idxs {
				if specs[i].mul != nil {
					b.prog.nvals += 2
				}
			}
			b.prog.nvals += nin
			for _, i := range idxs {
				b.compileStep(i, specs[i])
			}
			prog = b.prog
			return b.prog.run
		})
		// The output has the inputs' broadcast shape; each thread keeps a
		// block buffer per value.
		fr.need = func(threads int, in []*tensor.Tensor) (int64, int64) {
			return satMul(broadcastCount(in), 4), prog.scratchBytes(threads)
		}
		fr.ew = prog
	}
	f.compact()
}

// noConvProgram leaves elementwise programs apart from the convolutions
// before them, for tests that compare the two.
var noConvProgram = false

// convEpilogue reports whether step i alone reads the output of a
// convolution that can run a program as its epilogue: then even one
// elementwise op (a Sigmoid, a Tanh) becomes a program, for convProgram to
// join to the convolution, which saves its pass over memory.
func (f *fuser) convEpilogue(i int) bool {
	st := f.m.steps[i]
	if noConvProgram || len(st.in) == 0 || st.in[0] < 0 {
		return false
	}
	s := st.in[0]
	c := f.producer(s)
	return c >= 0 && f.op(c) == "Conv" && f.m.steps[c].fused == nil && f.m.steps[c].node.epiThreaded != nil && f.sole(s) == i && !f.isOut[s]
}

// scratchBytes is the block buffers of threads goroutines running p.
func (p *ewProgram) scratchBytes(threads int) int64 {
	return int64(max(threads, 1) * (p.nvals + 1) * ewBlock * 4)
}

// convProgram joins elementwise group i to the convolution that makes one
// of its inputs, when the group alone reads it: the convolution runs the
// program as its epilogue, on each segment of output it finishes, while the
// segment is in cache (Node.epiThreaded), in place. A BatchNormalization
// folded into the convolution, then HardSwish or SiLU spelled out, a
// squeeze-excitation scale or a residual add thus cost no pass over memory
// of their own. When the program cannot run so (its output would be larger
// than the convolution's, or it declines the inputs), the convolution's
// output is left as it is and the program runs after it.
func (f *fuser) convProgram(i int) {
	st := f.m.steps[i]
	if st.fused == nil || st.fused.ew == nil || noConvProgram {
		return
	}
	prog := st.fused.ew
	for kx, s := range st.in {
		c := f.producer(s)
		if c < 0 || f.op(c) != "Conv" || f.m.steps[c].fused != nil || f.m.steps[c].node.epiThreaded == nil || f.sole(s) != i || f.isOut[s] {
			continue
		}
		conv := f.m.steps[c]
		var convIn, progIn []int
		fr := f.replace([]int{c, i}, f.out0(i), opEpilogue, func(at func(int) int) fastKernel {
			convIn, progIn = slotsAt(at, conv.in), slotsAt(at, st.in)
			return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
				args := pick(in, convIn)
				pin := pick(in, progIn)
				pin[kx] = nil  // the convolution's output, made below
				after := false // the program runs after the convolution instead
				outs, err := conv.node.epiThreaded(threads, args, func(y *tensor.Tensor) postFunc {
					pin[kx] = y
					r, ok := prog.bind(pin)
					if !ok || !slices.Equal(r.shape, y.Shape) {
						after = true
						return nil
					}
					return r.postFunc(y.F32)
				})
				if err != nil || !after {
					return outs, err == nil, err
				}
				pin[kx] = outs[0]
				res, ok, err := prog.run(threads, pin)
				putF32(outs[0].F32) // nothing else holds the convolution's output
				return res, ok, err
			}
		})
		need := needOfHead(conv, convIn)
		fr.need = func(threads int, in []*tensor.Tensor) (int64, int64) {
			out, scratch := need(threads, in)
			// Run after the convolution, the program makes an output of
			// its own, no larger than the convolution's.
			return out, scratch + out + prog.scratchBytes(threads)
		}
		return
	}
}
