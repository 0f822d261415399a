package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// Recurrent networks (issue 13, item 3): RNN, GRU and LSTM as ONNX defines
// them, every direction, layout, activation, sequence length, initial
// state, clip, peephole and linear_before_reset. For each direction the
// input projection of every time step is one multiply (X × Wᵀ, biases
// added), and each step multiplies the hidden state by Rᵀ for the whole
// batch, then computes the gates element by element.

func init() {
	register("RNN", func(n *Node) (Kernel, error) { return newRecurrent(n, rnnPlain) })
	register("GRU", func(n *Node) (Kernel, error) { return newRecurrent(n, rnnGRU) })
	register("LSTM", func(n *Node) (Kernel, error) { return newRecurrent(n, rnnLSTM) })
}

type rnnKind int

const (
	rnnPlain rnnKind = iota
	rnnGRU
	rnnLSTM
)

// rnnCell is what each kind needs: gates per hidden unit, activations per
// direction and their defaults.
var rnnCell = map[rnnKind]struct {
	op      string
	gates   int
	acts    []string
	maxIn   int
	outputs int
}{
	rnnPlain: {"RNN", 1, []string{"Tanh"}, 6, 2},
	rnnGRU:   {"GRU", 3, []string{"Sigmoid", "Tanh"}, 6, 2},
	rnnLSTM:  {"LSTM", 4, []string{"Sigmoid", "Tanh", "Tanh"}, 8, 3},
}

// rnnAct is an activation function of a recurrent cell, applied to a
// vector in place: Sigmoid and Tanh (the defaults) vectorised, the others
// element by element.
type rnnAct func(x []float32)

// scalarAct makes an rnnAct of an element function.
func scalarAct(f func(float32) float32) rnnAct {
	return func(x []float32) {
		for i, v := range x {
			x[i] = f(v)
		}
	}
}

// sigmoidAct and tanhAct are the vectorised defaults; tanh(x) is
// 2·sigmoid(2x) - 1 (within 2e-7 of it).
func sigmoidAct(x []float32) { kernels.Sigmoid(x, x) }

func tanhAct(x []float32) {
	kernels.MulVS(x, x, 2)
	kernels.Sigmoid(x, x)
	kernels.MulVS(x, x, 2)
	kernels.AddVS(x, x, -1)
}

// rnnActivation returns the named activation; alpha and beta are taken
// from the attribute lists when the function has them (next, a pointer
// into each list) and given there, else their ONNX Runtime defaults.
func rnnActivation(name string, alphas, betas []float32, na, nb *int) (rnnAct, error) {
	param := func(list []float32, next *int, def float32) float32 {
		if *next < len(list) {
			*next++
			return list[*next-1]
		}
		return def
	}
	switch strings.ToLower(name) {
	case "relu":
		return scalarAct(func(x float32) float32 { return max(x, 0) }), nil
	case "tanh":
		return tanhAct, nil
	case "sigmoid":
		return sigmoidAct, nil
	case "affine":
		a, b := param(alphas, na, 1), param(betas, nb, 0)
		return scalarAct(func(x float32) float32 { return a*x + b }), nil
	case "leakyrelu":
		a := param(alphas, na, 0.01)
		return scalarAct(func(x float32) float32 {
			if x >= 0 {
				return x
			}
			return a * x
		}), nil
	case "thresholdedrelu":
		a := param(alphas, na, 1)
		return scalarAct(func(x float32) float32 {
			if x > a {
				return x
			}
			return 0
		}), nil
	case "scaledtanh":
		a, b := param(alphas, na, 1), param(betas, nb, 1)
		return scalarAct(func(x float32) float32 { return a * float32(math.Tanh(float64(b*x))) }), nil
	case "hardsigmoid":
		a, b := param(alphas, na, 0.2), param(betas, nb, 0.5)
		return scalarAct(func(x float32) float32 { return min(max(a*x+b, 0), 1) }), nil
	case "elu":
		a := param(alphas, na, 1)
		return scalarAct(func(x float32) float32 {
			if x >= 0 {
				return x
			}
			return a * float32(math.Expm1(float64(x)))
		}), nil
	case "softsign":
		return scalarAct(func(x float32) float32 { return x / (1 + abs(x)) }), nil
	case "softplus":
		return scalarAct(func(x float32) float32 { return float32(softplus(float64(x))) }), nil
	}
	return nil, fmt.Errorf("attribute activations: %q is not an activation (Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus are)", name)
}

func newRecurrent(n *Node, kind rnnKind) (Kernel, error) {
	cell := rnnCell[kind]
	dir := n.String("direction", "forward")
	dirs := 1
	switch dir {
	case "forward", "reverse":
	case "bidirectional":
		dirs = 2
	default:
		return nil, fmt.Errorf("attribute direction: %q, must be forward, reverse or bidirectional", dir)
	}
	layout := n.Int("layout", 0)
	if layout != 0 && layout != 1 {
		return nil, fmt.Errorf("attribute layout: %d, must be 0 or 1", layout)
	}
	hidden := n.Int("hidden_size", 0)
	if n.Has("hidden_size") && hidden < 1 {
		return nil, fmt.Errorf("attribute hidden_size: %d, must be at least 1", hidden)
	}
	clip := n.Float("clip", 0)
	if n.Has("clip") && !(clip > 0) {
		return nil, fmt.Errorf("attribute clip: %v, must be positive", clip)
	}
	names := cell.acts
	if a, ok := n.attrs["activations"]; ok {
		names = nil
		for _, s := range a.GetStrings() {
			names = append(names, string(s))
		}
		if len(names) != len(cell.acts)*dirs {
			return nil, fmt.Errorf("attribute activations: %d names, %s takes %d per direction (%d directions)", len(names), cell.op, len(cell.acts), dirs)
		}
	} else if dirs == 2 {
		names = append(append([]string(nil), names...), names...)
	}
	alphas, betas := n.Floats("activation_alpha", nil), n.Floats("activation_beta", nil)
	var na, nb int
	acts := make([][]rnnAct, dirs)
	for d := range dirs {
		for _, name := range names[d*len(cell.acts) : (d+1)*len(cell.acts)] {
			f, err := rnnActivation(name, alphas, betas, &na, &nb)
			if err != nil {
				return nil, err
			}
			acts[d] = append(acts[d], f)
		}
	}
	lbr := n.Int("linear_before_reset", 0) != 0
	inputForget := n.Int("input_forget", 0) != 0
	r := &recurrent{kind: kind, gates: cell.gates, dirs: dirs, reverse: dir == "reverse", layout: layout == 1, hidden: int(hidden),
		clip: clip, acts: acts, lbr: lbr, inputForget: inputForget}
	if R := n.Const(2); R != nil && R.DType == tensor.Float32 && len(R.Shape) == 3 && R.Shape[0] == dirs && R.Shape[1] == cell.gates*R.Shape[2] {
		H := R.Shape[2]
		cols := cell.gates * H
		if kind == rnnGRU && !lbr {
			cols = 2 * H
		}
		for d := range dirs {
			r.constR = append(r.constR, kernels.PackB(true, H, cols, R.F32[d*cell.gates*H*H:], H))
		}
	}
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 3, cell.maxIn); err != nil {
			return nil, err
		}
		return r.run(threads, in, len(n.Outputs))
	}
	return withThreads(n.threaded, 1), nil
}

// recurrent is a compiled RNN, GRU or LSTM node.
type recurrent struct {
	kind        rnnKind
	gates, dirs int
	reverse     bool // direction reverse (one direction)
	layout      bool // layout 1: batch first
	hidden      int  // 0: from W
	clip        float32
	acts        [][]rnnAct // per direction: f (and g, h)
	lbr         bool       // GRU linear_before_reset
	inputForget bool       // LSTM: forget gate = 1 - input gate
	// constR holds each direction's Rᵀ packed at compile time, when R is
	// a constant of the shape the node needs.
	constR []*kernels.PackedB
}

// rnnInput checks that input i, when given, is float32 of shape want.
func rnnInput(in []*tensor.Tensor, i int, name string, want ...int) ([]float32, error) {
	if i >= len(in) || in[i] == nil {
		return nil, nil
	}
	t := in[i]
	if t.DType != tensor.Float32 || !slices.Equal(t.Shape, want) {
		return nil, fmt.Errorf("input %s: %s, must be float32%s", name, t, tensor.ShapeString(want))
	}
	return t.F32, nil
}

func (r *recurrent) run(threads int, in []*tensor.Tensor, nout int) ([]*tensor.Tensor, error) {
	X, W := in[0], in[1]
	if X.DType != tensor.Float32 || len(X.Shape) != 3 {
		return nil, fmt.Errorf("input X: %s, must be float32 of rank 3", X)
	}
	S, B, I := X.Shape[0], X.Shape[1], X.Shape[2]
	if r.layout {
		S, B = B, S
	}
	if len(W.Shape) != 3 || W.Shape[0] != r.dirs || W.Shape[1]%r.gates != 0 {
		return nil, fmt.Errorf("input W: %s, must be [%d %d×hidden_size %d]", tensor.ShapeString(W.Shape), r.dirs, r.gates, I)
	}
	H := W.Shape[1] / r.gates
	if r.hidden != 0 && H != r.hidden {
		return nil, fmt.Errorf("input W: %s, must be [%d %d %d] for hidden_size %d", tensor.ShapeString(W.Shape), r.dirs, r.gates*r.hidden, I, r.hidden)
	}
	G := r.gates * H
	w, err := rnnInput(in, 1, "W", r.dirs, G, I)
	if err != nil {
		return nil, err
	}
	rw, err := rnnInput(in, 2, "R", r.dirs, G, H)
	if err != nil {
		return nil, err
	}
	bias, err := rnnInput(in, 3, "B", r.dirs, 2*G)
	if err != nil {
		return nil, err
	}
	var lens []int
	if len(in) > 4 && in[4] != nil {
		sl := in[4]
		if len(sl.Shape) != 1 || sl.Shape[0] != B {
			return nil, fmt.Errorf("input sequence_lens: shape %s, must be [%d]", tensor.ShapeString(sl.Shape), B)
		}
		v, err := castTensor(sl, tensor.Int64)
		if err != nil {
			return nil, fmt.Errorf("input sequence_lens: %w", err)
		}
		for b, l := range v.I64 {
			if l < 0 || l > int64(S) {
				return nil, fmt.Errorf("input sequence_lens: entry %d is %d, must be in [0, %d]", b, l, S)
			}
			lens = append(lens, int(l))
		}
	}
	stateShape := []int{r.dirs, B, H}
	if r.layout {
		stateShape = []int{B, r.dirs, H}
	}
	h0, err := rnnInput(in, 5, "initial_h", stateShape...)
	if err != nil {
		return nil, err
	}
	var c0, peep []float32
	if r.kind == rnnLSTM {
		if c0, err = rnnInput(in, 6, "initial_c", stateShape...); err != nil {
			return nil, err
		}
		if peep, err = rnnInput(in, 7, "P", r.dirs, 3*H); err != nil {
			return nil, err
		}
	}
	// x is X as [S B I].
	x := X.F32
	if r.layout {
		x = make([]float32, S*B*I)
		for b := range B {
			for s := range S {
				copy(x[(s*B+b)*I:(s*B+b+1)*I], X.F32[(b*S+s)*I:(b*S+s+1)*I])
			}
		}
	}
	// Results in layout 0: y [S D B H], yh and yc [D B H].
	y := make([]float32, S*r.dirs*B*H)
	yh := make([]float32, r.dirs*B*H)
	yc := make([]float32, r.dirs*B*H)
	state := func(src []float32, d int, dst []float32) {
		if src == nil {
			clear(dst)
			return
		}
		for b := range B {
			off := (d*B + b) * H
			if r.layout {
				off = (b*r.dirs + d) * H
			}
			copy(dst[b*H:(b+1)*H], src[off:off+H])
		}
	}
	xw := make([]float32, S*B*G)
	hr := make([]float32, B*G)
	h, c := make([]float32, B*H), make([]float32, B*H)
	rh := make([]float32, B*H)  // GRU: r ⊙ H
	hh := make([]float32, B*H)  // GRU without linear_before_reset: (r ⊙ H) × Rhᵀ
	tmp := make([]float32, 2*H) // per row scratch
	for d := range r.dirs {
		rev := r.reverse || d == 1
		wd, rd := w[d*G*I:(d+1)*G*I], rw[d*G*H:(d+1)*G*H]
		// xw = x × Wᵀ + Wb + Rb (GRU: Rb of the h gate is added later).
		gemmF32Par(threads, false, true, S*B, G, I, 1, x, I, wd, I, 0, xw, G)
		if bias != nil {
			wb, rb := bias[d*2*G:d*2*G+G], bias[d*2*G+G:(d+1)*2*G]
			sum := slices.Clone(wb)
			n := G
			if r.kind == rnnGRU {
				n = 2 * H
			}
			kernels.AddVV(sum[:n], sum[:n], rb[:n])
			for row := range S * B {
				kernels.AddVV(xw[row*G:(row+1)*G], xw[row*G:(row+1)*G], sum)
			}
		}
		var rbh []float32
		if r.kind == rnnGRU && bias != nil {
			rbh = bias[d*2*G+G+2*H : (d+1)*2*G]
		}
		// The recurrent weights, packed once for the steps: H × Rᵀ, and
		// for GRU without linear_before_reset the h gate's part apart
		// (it multiplies r ⊙ H, known only after the r gate).
		cols := G
		if r.kind == rnnGRU && !r.lbr {
			cols = 2 * H
		}
		pr := r.packedR(d, rd, H, cols)
		var prh *kernels.PackedB
		if cols < G {
			prh = kernels.PackB(true, H, H, rd[2*H*H:], H)
		}
		state(h0, d, h)
		state(c0, d, c)
		var pi, po, pf []float32
		if peep != nil {
			pi, po, pf = peep[d*3*H:d*3*H+H], peep[d*3*H+H:d*3*H+2*H], peep[d*3*H+2*H:(d+1)*3*H]
		}
		f := r.acts[d][0]
		// active(b, step) is row b's time index at step, or -1 past its
		// length.
		active := func(b, step int) int {
			n := S
			if lens != nil {
				n = lens[b]
			}
			if step >= n {
				return -1
			}
			if rev {
				return n - 1 - step
			}
			return step
		}
		for step := range S {
			kernels.SgemmPacked(false, B, cols, H, 1, h, H, pr, 0, hr, G)
			if r.kind == rnnGRU && !r.lbr {
				// z and r gates first; then (r ⊙ H) × Rhᵀ for the batch.
				for b := range B {
					t := active(b, step)
					if t < 0 {
						continue
					}
					xg, hg := xw[(t*B+b)*G:(t*B+b+1)*G], hr[b*G:(b+1)*G]
					zr := hg[:2*H]
					kernels.AddVV(zr, zr, xg[:2*H])
					r.clipVec(zr)
					f(zr)
					kernels.MulVV(rh[b*H:(b+1)*H], zr[H:], h[b*H:(b+1)*H])
				}
				kernels.SgemmPacked(false, B, H, H, 1, rh, H, prh, 0, hh, H)
			}
			for b := range B {
				t := active(b, step)
				if t < 0 {
					continue
				}
				xg, hg := xw[(t*B+b)*G:(t*B+b+1)*G], hr[b*G:(b+1)*G]
				hb, cb := h[b*H:(b+1)*H], c[b*H:(b+1)*H]
				switch r.kind {
				case rnnPlain:
					kernels.AddVV(hb, xg, hg)
					r.clipVec(hb)
					f(hb)
				case rnnGRU:
					g := r.acts[d][1]
					z, rr := hg[:H], hg[H:2*H]
					if r.lbr {
						kernels.AddVV(hg[:2*H], hg[:2*H], xg[:2*H])
						r.clipVec(hg[:2*H])
						f(hg[:2*H])
					}
					cand := tmp[:H]
					if r.lbr {
						// r ⊙ (H × Rhᵀ + Rbh)
						copy(cand, hg[2*H:3*H])
						if rbh != nil {
							kernels.AddVV(cand, cand, rbh)
						}
						kernels.MulVV(cand, cand, rr)
					} else {
						copy(cand, hh[b*H:(b+1)*H])
						if rbh != nil {
							kernels.AddVV(cand, cand, rbh)
						}
					}
					kernels.AddVV(cand, cand, xg[2*H:3*H])
					r.clipVec(cand)
					g(cand)
					// H = (1 - z) ⊙ cand + z ⊙ H = cand + z ⊙ (H - cand)
					diff := tmp[H : 2*H]
					kernels.SubVV(diff, hb, cand)
					kernels.MulVV(diff, diff, z)
					kernels.AddVV(hb, cand, diff)
				case rnnLSTM:
					g, hf := r.acts[d][1], r.acts[d][2]
					kernels.AddVV(hg, hg, xg)
					ig, og, fg, cg := hg[:H], hg[H:2*H], hg[2*H:3*H], hg[3*H:4*H]
					if pi != nil {
						prod := tmp[:H]
						kernels.MulVV(prod, pi, cb)
						kernels.AddVV(ig, ig, prod)
						kernels.MulVV(prod, pf, cb)
						kernels.AddVV(fg, fg, prod)
					}
					r.clipVec(ig)
					f(ig)
					if r.inputForget {
						kernels.MulVS(fg, ig, -1)
						kernels.AddVS(fg, fg, 1)
					} else {
						r.clipVec(fg)
						f(fg)
					}
					r.clipVec(cg)
					g(cg)
					// C = f ⊙ C + i ⊙ c
					kernels.MulVV(cb, cb, fg)
					kernels.MulVV(cg, cg, ig)
					kernels.AddVV(cb, cb, cg)
					if po != nil {
						prod := tmp[:H]
						kernels.MulVV(prod, po, cb)
						kernels.AddVV(og, og, prod)
					}
					r.clipVec(og)
					f(og)
					copy(hb, cb)
					hf(hb)
					kernels.MulVV(hb, hb, og)
				}
				copy(y[((t*r.dirs+d)*B+b)*H:((t*r.dirs+d)*B+b+1)*H], hb)
			}
		}
		copy(yh[d*B*H:(d+1)*B*H], h)
		copy(yc[d*B*H:(d+1)*B*H], c)
	}
	outs := []*tensor.Tensor{tensor.FromF32(y, S, r.dirs, B, H), tensor.FromF32(yh, r.dirs, B, H), tensor.FromF32(yc, r.dirs, B, H)}
	if r.layout {
		outs[0] = tensor.FromF32(batchFirst(y, S, r.dirs*B, B, H), B, S, r.dirs, H)
		outs[1] = tensor.FromF32(batchFirst(yh, r.dirs, B, B, H), B, r.dirs, H)
		outs[2] = tensor.FromF32(batchFirst(yc, r.dirs, B, B, H), B, r.dirs, H)
	}
	return outs[:min(nout, len(outs))], nil
}

// packedR returns Rᵀ of direction d (its first cols rows of R) packed for
// the step multiplies: from the node's constant R, packed once, or packed
// now.
func (r *recurrent) packedR(d int, rd []float32, H, cols int) *kernels.PackedB {
	if r.constR != nil {
		return r.constR[d]
	}
	return kernels.PackB(true, H, cols, rd, H)
}

// clip applies the cell clip, when set, to gates' inputs.
func (r *recurrent) clipVec(x []float32) {
	if r.clip > 0 {
		kernels.Clip(x, x, -r.clip, r.clip)
	}
}

// batchFirst reorders v, [outer inner] rows of H floats where inner is
// (directions, batch) with batch last, to batch-first order: [B outer
// inner/B H].
func batchFirst(v []float32, outer, inner, B, H int) []float32 {
	dirs := inner / B
	out := make([]float32, len(v))
	for o := range outer {
		for d := range dirs {
			for b := range B {
				src := ((o*dirs+d)*B + b) * H
				dst := ((b*outer+o)*dirs + d) * H
				copy(out[dst:dst+H], v[src:src+H])
			}
		}
	}
	return out
}
