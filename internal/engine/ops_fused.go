package engine

import (
	"math"
	"slices"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// Kernels of the fused steps fuse.go builds. Each returns ok=false when its
// inputs are outside what it handles, so the fused step runs the steps it
// replaced instead.

// elementGrain is the fewest elements worth handing to another goroutine.
const elementGrain = 1 << 14

// activation is the element-wise function an epilogue applies.
type activation int

const (
	actNone activation = iota
	actRelu
	actGelu
)

// epilogueSpec says what an epilogue does after the multiply, in this order:
// add a bias along the last axis, apply act, add a residual of the output's
// shape. bias and residual are input positions of the fused step, -1 when
// absent.
type epilogueSpec struct {
	bias, residual int
	act            activation
}

// epilogueFast runs the multiply step mm on args and applies spec to its
// output in one pass, on up to threads goroutines.
func epilogueFast(threads int, mm step, args []*tensor.Tensor, spec epilogueSpec, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
	var bias, res *tensor.Tensor
	if spec.bias >= 0 {
		bias = in[spec.bias]
	}
	if spec.residual >= 0 {
		res = in[spec.residual]
	}
	if bias != nil && (bias.DType != tensor.Float32 || len(bias.Shape) == 0) || res != nil && res.DType != tensor.Float32 {
		return nil, false, nil
	}
	outs, err := mm.node.threaded(threads, args)
	if err != nil || len(outs) == 0 {
		return nil, false, err
	}
	y := outs[0]
	if y.DType != tensor.Float32 || len(y.Shape) == 0 {
		return nil, false, nil
	}
	n := y.Shape[len(y.Shape)-1]
	if bias != nil {
		// The bias must broadcast along the last axis only: [..., 1, n].
		if len(bias.Shape) > len(y.Shape) || bias.Shape[len(bias.Shape)-1] != n || len(bias.F32) != n {
			return nil, false, nil
		}
	}
	if res != nil && !slices.Equal(res.Shape, y.Shape) {
		return nil, false, nil
	}
	if n == 0 || len(y.F32) == 0 {
		return outs[:1], true, nil
	}
	rows := len(y.F32) / n
	parallelFor(threads, rows, max(1, elementGrain/n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := y.F32[r*n : (r+1)*n]
			if bias != nil {
				kernels.AddTo(row, bias.F32)
			}
			switch spec.act {
			case actRelu:
				for j, v := range row {
					if v < 0 {
						row[j] = 0
					}
				}
			case actGelu:
				geluInto(row, row)
			}
			if res != nil {
				kernels.AddTo(row, res.F32[r*n:(r+1)*n])
			}
		}
	})
	return outs[:1], true, nil
}

// layerNormFast normalises x over its last axis: (x-mean)/sqrt(var+eps)*gain
// + offset, gain and offset holding one value per last-axis element.
func layerNormFast(threads int, x, gain, offset *tensor.Tensor, eps float32) ([]*tensor.Tensor, bool, error) {
	if x == nil || gain == nil || offset == nil || x.DType != tensor.Float32 || gain.DType != tensor.Float32 || offset.DType != tensor.Float32 || len(x.Shape) == 0 {
		return nil, false, nil
	}
	n := x.Shape[len(x.Shape)-1]
	for _, p := range []*tensor.Tensor{gain, offset} {
		if len(p.Shape) == 0 || len(p.Shape) > len(x.Shape) || p.Shape[len(p.Shape)-1] != n || len(p.F32) != n {
			return nil, false, nil
		}
	}
	y := newF32(x.Shape...)
	if n == 0 || len(x.F32) == 0 {
		return []*tensor.Tensor{y}, true, nil
	}
	rows := len(x.F32) / n
	g, b := gain.F32, offset.F32
	parallelFor(threads, rows, max(1, elementGrain/n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			layerNormRow(y.F32[r*n:(r+1)*n], x.F32[r*n:(r+1)*n], g, b, eps)
		}
	})
	return []*tensor.Tensor{y}, true, nil
}

// layerNormRow normalises one row; sums are taken in float64.
func layerNormRow(dst, src, g, b []float32, eps float32) {
	src = src[:len(dst)]
	g, b = g[:len(dst)], b[:len(dst)]
	var sum float64
	for _, v := range src {
		sum += float64(v)
	}
	mean := float32(sum / float64(len(src)))
	var sq float64
	for _, v := range src {
		d := float64(v - mean)
		sq += d * d
	}
	std := float32(math.Sqrt(float64(float32(sq/float64(len(src))) + eps)))
	for j, v := range src {
		dst[j] = (v-mean)/std*g[j] + b[j]
	}
}

// attnLayout says which of attention's tensors are in the layout before
// (or, for the output, after) the heads transpose: [B S H D] rather than
// [B H S D] for Q, V and the output, [B T H D] rather than Kt's [B H D T].
type attnLayout struct{ q, k, v, y bool }

// any reports whether some tensor is untransposed.
func (l attnLayout) any() bool { return l.q || l.k || l.v || l.y }

// attnShape is attention's logical shape: batch axes (B, H when a layout is
// untransposed), S queries, T keys, D and Dv head sizes.
type attnShape struct {
	batch       []int
	S, T, D, Dv int
}

// attnDims reads the logical shape of attention on q, k and v in layout lay,
// and reports whether they agree.
func attnDims(q, k, v *tensor.Tensor, lay attnLayout) (attnShape, bool) {
	var a attnShape
	for _, t := range []*tensor.Tensor{q, k, v} {
		if t == nil || t.DType != tensor.Float32 || len(t.Shape) < 2 || len(t.Shape) != len(q.Shape) || lay.any() && len(t.Shape) != 4 {
			return a, false
		}
	}
	r := len(q.Shape)
	// heads returns t's batch axes and its two matrix axes as the heads
	// transpose would have left them.
	heads := func(t *tensor.Tensor, seq, kt bool) ([]int, int, int) {
		sh := t.Shape
		switch {
		case seq && kt: // [B T H D] -> [B H D T]
			return []int{sh[0], sh[2]}, sh[3], sh[1]
		case seq: // [B S H D] -> [B H S D]
			return []int{sh[0], sh[2]}, sh[1], sh[3]
		}
		return sh[:r-2], sh[r-2], sh[r-1]
	}
	a.batch, a.S, a.D = heads(q, lay.q, false)
	kb, kd, T := heads(k, lay.k, true)
	vb, vt, Dv := heads(v, lay.v, false)
	a.T, a.Dv = T, Dv
	if !slices.Equal(a.batch, kb) || !slices.Equal(a.batch, vb) || kd != a.D || vt != a.T {
		return a, false
	}
	return a, true
}

// attentionFast computes softmax(Q·Kt*scale + mask)·V head by head: Q is
// [batch... S D], Kt [batch... D T], V [batch... T Dv] with equal batch axes
// (or, as lay says, rank-4 tensors before the heads transpose, read in place
// with row strides), and mask (optional) broadcasts to [batch... S T]. The
// output is [batch... S Dv], or [B S H Dv] when lay.y is set. Heads are
// shared among the threads; each goroutine keeps one head's packed Kᵀ and
// the scores of one block of query rows in scratch buffers.
func attentionFast(threads int, q, k, v, mask *tensor.Tensor, scale float32, lay attnLayout) ([]*tensor.Tensor, bool, error) {
	a, ok := attnDims(q, k, v, lay)
	if !ok {
		return nil, false, nil
	}
	batch, S, T, D, Dv := a.batch, a.S, a.T, a.D, a.Dv
	r := len(batch) + 2
	full := append(slices.Clone(batch), S, T)
	var mstr []int
	if mask != nil {
		if mask.DType != tensor.Float32 || len(mask.Shape) > r {
			return nil, false, nil
		}
		for i, d := range mask.Shape {
			if fd := full[i+r-len(mask.Shape)]; d != 1 && d != fd {
				return nil, false, nil
			}
		}
		mstr = broadcastStrides(mask.Shape, full)
	}
	yShape := append(slices.Clone(batch), S, Dv)
	H := 1
	if lay.any() {
		H = batch[1]
		if lay.y {
			yShape = []int{batch[0], S, H, Dv}
		}
	}
	y := newF32(yShape...)
	nb := tensor.NumElements(batch)
	if S == 0 || Dv == 0 || nb == 0 {
		return []*tensor.Tensor{y}, true, nil
	}
	// at returns where head h's matrix of rows×cols starts in a tensor in
	// the untransposed layout ([B rows H cols]) or not ([.. rows cols]),
	// and its row stride.
	at := func(h, rows, cols int, seq bool) (int, int) {
		if seq {
			return h/H*rows*H*cols + h%H*cols, H * cols
		}
		return h * rows * cols, cols
	}
	// Query rows go in blocks whose scores stay in L1 between the three
	// passes over them (multiply, softmax, multiply); Kᵀ is packed once per
	// head for all of them.
	blk := min(S, max(14, 4096/max(1, T)/14*14))
	parallelFor(threads, nb, 1, func(lo, hi int) {
		sc := newF32(blk * T).F32 // zeroed, like make; back to the pool below
		defer putF32(sc)
		pk := newF32(kernels.PackedBSize(D, T)).F32
		defer putF32(pk)
		for h := lo; h < hi; h++ {
			if T == 0 {
				continue
			}
			qo, ldq := at(h, S, D, lay.q)
			yo, ldy := at(h, S, Dv, lay.y)
			vo, ldv := at(h, T, Dv, lay.v)
			var kt *kernels.PackedB
			if lay.k { // K's head is T×D: pack its transpose
				ko, ldk := at(h, T, D, true)
				kt = kernels.PackBInto(pk, true, D, T, k.F32[ko:], max(1, ldk))
			} else {
				kt = kernels.PackBInto(pk, false, D, T, k.F32[h*D*T:], T)
			}
			moff := 0
			if mstr != nil {
				rem := h
				for d := len(batch) - 1; d >= 0; d-- {
					moff += rem % batch[d] * mstr[d]
					rem /= batch[d]
				}
			}
			for i0 := 0; i0 < S; i0 += blk {
				rows := min(blk, S-i0)
				gemmPackedF32(false, rows, T, D, scale, q.F32[qo+i0*ldq:], max(1, ldq), kt, 0, sc, T)
				for i := 0; i < rows; i++ {
					row := sc[i*T : (i+1)*T]
					if mstr != nil {
						addMaskRow(row, mask.F32, moff+(i0+i)*mstr[r-2], mstr[r-1])
					}
					softmaxRow(row)
				}
				gemmF32(false, false, rows, Dv, T, 1, sc, T, v.F32[vo:], ldv, 0, y.F32[yo+i0*ldy:], ldy)
			}
		}
	})
	return []*tensor.Tensor{y}, true, nil
}

// addMaskRow adds mask[off + j*stride] to row[j].
func addMaskRow(row, mask []float32, off, stride int) {
	switch stride {
	case 0:
		m := mask[off]
		for j := range row {
			row[j] += m
		}
	case 1:
		kernels.AddTo(row, mask[off:off+len(row)])
	default:
		for j := range row {
			row[j] += mask[off+j*stride]
		}
	}
}

// softmaxRow replaces row with its softmax.
func softmaxRow(row []float32) {
	if len(row) == 0 {
		return
	}
	mx, nan := kernels.Max(row)
	if nan || math.IsInf(float64(mx), 0) {
		// NaN, +Inf, or -Inf everywhere: leave it to the exact formula.
		var sum float64
		for j, v := range row {
			e := math.Exp(float64(v - mx))
			row[j] = float32(e)
			sum += e
		}
		for j := range row {
			row[j] = float32(float64(row[j]) / sum)
		}
		return
	}
	kernels.Scale(row, 1/kernels.ExpSubSum(row, mx))
}

// geluInto sets dst[i] = src[i]/2 * (1 + erf(src[i]/sqrt 2)); dst may be src.
func geluInto(dst, src []float32) { kernels.Gelu(dst, src) }
