package engine

import (
	"math"
	"slices"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// opQMatMul is a dynamically quantized MatMul with its float epilogue:
//
//	y = float32(MatMulInteger(A, B, a_zp, b_zp)) * S [+ bias]
//
// as ONNX Runtime's quantize_dynamic writes it (MatMulInteger, Cast to
// float, Mul by a_scale·b_scale, then the model's bias Add) and as the
// contrib ops DynamicQuantizeMatMul and MatMulIntegerToFloat expand: one
// int8 multiply whose blocks are converted, scaled and biased while in
// cache (kernels.QDequantBlock), the arithmetic of the steps it replaces,
// then passed through the activation (Relu, GELU) and residual Add that
// follow, if any.
const opQMatMul = "spindle.QMatMul"

// qmatmul fuses step i, a MatMulInteger with a constant 2-D B, with the
// Cast, Mul and optional bias Add after it.
func (f *fuser) qmatmul(i int) {
	if f.op(i) != "MatMulInteger" {
		return
	}
	mm := f.m.steps[i]
	pb := mm.node.qpacked
	if pb == nil || len(mm.in) < 2 || f.isConst(mm.in[0]) || mm.in[1] < 0 || !f.isConst(mm.in[1]) {
		return
	}
	B := f.consts[mm.in[1]]
	zaSlot, zbSlot := -1, -1
	if len(mm.in) > 2 {
		zaSlot = mm.in[2]
	}
	if len(mm.in) > 3 {
		zbSlot = mm.in[3]
	}
	K, N := pb.K(), pb.N()
	zbRaw := []int32{0}
	if zbSlot >= 0 {
		if !f.isConst(zbSlot) || f.consts[zbSlot].DType != B.DType {
			return
		}
		v, err := intValues(f.consts[zbSlot])
		if err != nil || len(v) != 1 && len(v) != N {
			return
		}
		zbRaw = v
	}
	cast := f.sole(f.out0(i))
	if f.op(cast) != "Cast" || f.m.steps[cast].node.Int("to", 0) != int64(tensor.Float32) {
		return
	}
	mul := f.sole(f.out0(cast))
	if f.op(mul) != "Mul" {
		return
	}
	sSlot := f.other(mul, f.out0(cast))
	if sSlot < 0 || sSlot == f.out0(cast) {
		return
	}
	idxs := []int{i, cast, mul}
	cur := f.out0(mul)
	var bias []float32
	if add := f.sole(cur); f.op(add) == "Add" {
		if b := f.other(add, cur); f.isConst(b) && b != cur {
			t := f.consts[b]
			if t.DType == tensor.Float32 && len(t.Shape) == 1 && t.Shape[0] == N {
				bias = t.F32
				idxs = append(idxs, add)
				cur = f.out0(add)
			}
		}
	}
	// B's zero points shifted as the kernels store B (signed), nil when
	// all zero, and cs[j] = colsum[j] - K*zb[j]: the corrected product
	// of row i is acc - za*cs[j] - zb[j]*rowsum[i].
	cs := slices.Clone(pb.ColSums())
	zbs := make([]int32, N)
	nonzero := false
	for j := range cs {
		z := zbRaw[0]
		if len(zbRaw) > 1 {
			z = zbRaw[j]
		}
		if B.DType == tensor.Uint8 {
			z -= 128
		}
		zbs[j] = z
		nonzero = nonzero || z != 0
		cs[j] -= int32(K) * z
	}
	var zbShift []int32
	if nonzero {
		zbShift = zbs
	}
	// An activation and a residual Add after it are applied block by
	// block while the block is in cache, as the epilogue pass does after a
	// float MatMul in a pass of its own.
	act, resSlot := actNone, -1
	if next := f.sole(cur); f.op(next) == "Relu" || f.op(next) == opGelu && f.in(next, 0) == cur {
		act = actRelu
		if f.op(next) == opGelu {
			act = actGelu
		}
		idxs = append(idxs, next)
		cur = f.out0(next)
	}
	if next := f.sole(cur); f.op(next) == "Add" {
		if r := f.other(next, cur); r >= 0 && r != cur && !f.isConst(r) {
			resSlot = r
			idxs = append(idxs, next)
			cur = f.out0(next)
		}
	}
	var headIn []int
	fr := f.replace(idxs, cur, opQMatMul, func(at func(int) int) fastKernel {
		aAt, zaAt, sAt, resAt := at(mm.in[0]), at(zaSlot), at(sSlot), at(resSlot)
		headIn = slotsAt(at, mm.in)
		return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
			A, S := in[aAt], in[sAt]
			if A.DType != tensor.Uint8 && A.DType != tensor.Int8 || len(A.Shape) < 2 || A.Shape[len(A.Shape)-1] != K {
				return nil, false, nil
			}
			if S.DType != tensor.Float32 || !(len(S.F32) == 1 && len(S.Shape) <= 1 || len(S.Shape) == 1 && S.Shape[0] == N) {
				return nil, false, nil
			}
			za := []int32{0}
			if zaAt >= 0 {
				z := in[zaAt]
				if z.DType != A.DType || z.Len() != 1 {
					return nil, false, nil
				}
				za, _ = intValues(z)
			}
			shape := append(append([]int(nil), A.Shape[:len(A.Shape)-1]...), N)
			var res []float32
			if resAt >= 0 {
				r := in[resAt]
				if r.DType != tensor.Float32 || !slices.Equal(r.Shape, shape) {
					return nil, false, nil // broadcasting: the steps run one by one
				}
				res = r.F32
			}
			y := newF32Dirty(shape...)
			rows := A.Len() / K
			if rows == 0 || N == 0 {
				return []*tensor.Tensor{y}, true, nil
			}
			signed := A.DType == tensor.Int8
			zaS := za[0]
			if signed {
				zaS += 128
			}
			buf := getBytes(kernels.QGemmASize(rows, K))
			defer bytePool.Put(buf)
			qa := kernels.PrepareQA(*buf, rows, K, byteData(A), K, signed)
			var rs []int32
			if zbShift != nil {
				rs = make([]int32, rows)
				kernels.RowSumsU8(rs, K, qa.Rows(), qa.Stride())
			}
			colTerm := make([]int32, N)
			for j, c := range cs {
				colTerm[j] = -zaS * c
			}
			mult := S.F32
			if len(mult) == 1 && N > 1 {
				mult = make([]float32, N)
				for j := range mult {
					mult[j] = S.F32[0]
				}
			}
			parallelFor(threads, pb.Panels(), 1, func(lo, hi int) {
				kernels.QGemm(qa, pb, lo, hi, func(i0, nr, j0, cols int, acc []int32) {
					var bs []float32
					if bias != nil {
						bs = bias[j0 : j0+cols]
					}
					if zbShift == nil {
						kernels.QDequantBlock(y.F32[i0*N+j0:], N, acc, nr, cols, colTerm[j0:j0+cols], mult[j0:j0+cols], bs)
					} else {
						for r := 0; r < nr; r++ {
							kernels.QDequantRow(y.F32[(i0+r)*N+j0:(i0+r)*N+j0+cols], acc[r*kernels.QPanel:], colTerm[j0:j0+cols], zbShift[j0:j0+cols], rs[i0+r], mult[j0:j0+cols], bs)
						}
					}
					if act == actNone && res == nil {
						return
					}
					if act == actGelu {
						kernels.GeluRows(y.F32[i0*N+j0:], N, nr, cols)
					}
					for r := i0; r < i0+nr; r++ {
						seg := y.F32[r*N+j0 : r*N+j0+cols]
						if act == actRelu {
							for j, v := range seg {
								if v < 0 {
									seg[j] = 0
								}
							}
						}
						if res != nil {
							kernels.AddTo(seg, res[r*N+j0:r*N+j0+cols])
						}
					}
				})
			})
			return []*tensor.Tensor{y}, true, nil
		}
	})
	need := needOfHead(mm, headIn)
	fr.need = func(threads int, in []*tensor.Tensor) (int64, int64) {
		out, scratch := need(threads, in)
		// float32 output instead of int32: the same bytes; plus A's copy.
		if a := in[headIn[0]]; a != nil {
			scratch += int64(a.Len())
		}
		return out, scratch
	}
}

// opQConv is an int8 convolution with its float epilogue, the integer form
// of a Conv in QDQ form (rewriteQDQ):
//
//	y = [QuantizeLinear](act(float32(ConvInteger(x, W, x_zp, w_zp)) * S [+ bias] [+ residual]))
//
// with S and bias constants per output channel (or one for all), act a
// Relu or a Clip, and the QuantizeLinear (per tensor) of the next layer's
// input when nothing else reads the float result. The weight is the left operand of the int8 kernels (rows
// = filters), the input's patches the right one, packed per image, so the
// product comes out in the input's NCHW layout.
const opQConv = "spindle.QConv"

// qconv fuses step i, a ConvInteger with a prepared constant weight (group
// 1), with the Cast, Mul, bias Add, residual Add and activation after it.
func (f *fuser) qconv(i int) {
	if f.op(i) != "ConvInteger" {
		return
	}
	st := f.m.steps[i]
	if len(st.node.qconv) != 1 || len(st.in) < 2 || st.in[0] < 0 || f.isConst(st.in[0]) || !f.isConst(st.in[1]) {
		return
	}
	w := st.node.qconv[0]
	wt := f.consts[st.in[1]]
	attrs, err := readWindowAttrs(st.node)
	if err != nil {
		return
	}
	zxSlot := -1
	if len(st.in) > 2 {
		zxSlot = st.in[2]
	}
	M := w.m
	// perChannel returns the M values of a constant that broadcasts along
	// the channel axis of an [N, M, spatial...] output, or nil.
	perChannel := func(s int) []float32 {
		if !f.isConst(s) {
			return nil
		}
		t := f.consts[s]
		if t.DType != tensor.Float32 {
			return nil
		}
		out := make([]float32, M)
		switch {
		case t.Len() == 1 && len(t.Shape) <= len(wt.Shape)-1:
			for j := range out {
				out[j] = t.F32[0]
			}
		case len(t.Shape) == len(wt.Shape)-1 && t.Shape[0] == M && t.Len() == M:
			copy(out, t.F32)
		default:
			return nil
		}
		return out
	}
	cast := f.sole(f.out0(i))
	if f.op(cast) != "Cast" || f.m.steps[cast].node.Int("to", 0) != int64(tensor.Float32) {
		return
	}
	mul := f.sole(f.out0(cast))
	if f.op(mul) != "Mul" {
		return
	}
	mult := perChannel(f.other(mul, f.out0(cast)))
	if mult == nil {
		return
	}
	idxs := []int{i, cast, mul}
	cur := f.out0(mul)
	var bias []float32
	if add := f.sole(cur); f.op(add) == "Add" {
		if b := perChannel(f.other(add, cur)); b != nil {
			bias = b
			idxs = append(idxs, add)
			cur = f.out0(add)
		}
	}
	resSlot := -1
	if add := f.sole(cur); f.op(add) == "Add" {
		if r := f.other(add, cur); r >= 0 && r != cur && !f.isConst(r) {
			resSlot = r
			idxs = append(idxs, add)
			cur = f.out0(add)
		}
	}
	lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
	act := false
	switch next := f.sole(cur); f.op(next) {
	case "Relu":
		lo, act = 0, true
	case "Clip":
		if l, h, ok := f.clipBounds(next); ok {
			lo, hi, act = l, h, true
		}
	}
	if act {
		next := f.sole(cur)
		idxs = append(idxs, next)
		cur = f.out0(next)
	}
	// A QuantizeLinear (per tensor) that alone reads the result: the
	// convolution writes the next layer's 8-bit input directly, and the
	// float result is never stored.
	var qScale float32
	qType, qZero, qLo, qHi := tensor.Invalid, int32(0), int32(0), int32(0)
	if next := f.sole(cur); f.op(next) == "QuantizeLinear" && f.in(next, 0) == cur && len(f.m.steps[next].in) == 3 {
		qst := f.m.steps[next]
		s, z := qst.in[1], qst.in[2]
		if v, ok := f.scalar(s); ok && f.isConst(z) && f.consts[z].Len() == 1 && len(f.consts[z].Shape) <= 1 && v > 0 {
			if lo, hi, err := quantRange(f.consts[z].DType); err == nil && !qst.node.Has("output_dtype") {
				zv, _ := intValues(f.consts[z])
				qScale, qType, qZero, qLo, qHi = v, f.consts[z].DType, zv[0], lo, hi
				idxs = append(idxs, next)
				cur = f.out0(next)
			}
		}
	}
	k := make([]int64, len(wt.Shape)-2)
	for j := range k {
		k[j] = int64(wt.Shape[2+j])
	}
	var headIn []int
	fr := f.replace(idxs, cur, opQConv, func(at func(int) int) fastKernel {
		xAt, zxAt, resAt := at(st.in[0]), at(zxSlot), at(resSlot)
		headIn = slotsAt(at, st.in)
		return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
			x := in[xAt]
			if x.DType != tensor.Uint8 && x.DType != tensor.Int8 || len(x.Shape) != len(wt.Shape) || x.Shape[1] != wt.Shape[1] {
				return nil, false, nil
			}
			zx := int32(0)
			if zxAt >= 0 {
				z := in[zxAt]
				if z.DType != x.DType || z.Len() != 1 {
					return nil, false, nil
				}
				v, _ := intValues(z)
				zx = v[0]
			}
			outSp, padBegin, _, err := attrs.geometry(x.Shape[2:], k)
			if err != nil {
				return nil, false, nil // the replaced steps report it
			}
			g := newGeom3(&attrs, x.Shape[2:], k, outSp, padBegin)
			N, C := x.Shape[0], x.Shape[1]
			P := g.outSize()
			yShape := append([]int{N, M}, outSp...)
			var y *tensor.Tensor
			var yq []byte
			if qType != tensor.Invalid {
				y = tensor.New(qType, yShape...)
				yq = byteData(y)
			} else {
				y = newF32Dirty(yShape...)
			}
			var res []float32
			if resAt >= 0 {
				r := in[resAt]
				if r.DType != tensor.Float32 || !slices.Equal(r.Shape, yShape) {
					return nil, false, nil
				}
				res = r.F32
			}
			if P == 0 || N == 0 {
				return []*tensor.Tensor{y}, true, nil
			}
			qconvProduct(threads, w, &g, byteData(x), N, C, 0, x.DType == tensor.Uint8, zx, nil, func(img, i0, nr, j0, cols int, acc, colTerm, rowTerm []int32, block []float32) {
				var bs []float32
				if bias != nil {
					bs = bias[i0 : i0+nr]
				}
				dst, ldd := block, kernels.QPanel
				if yq == nil {
					dst, ldd = y.F32[img*M*P+i0*P+j0:], P
				}
				kernels.QDequantRows(dst, ldd, acc, nr, cols, colTerm, rowTerm, mult[i0:i0+nr], bs)
				for r := 0; r < nr; r++ {
					seg := dst[r*ldd : r*ldd+cols]
					at := img*M*P + (i0+r)*P + j0
					if res != nil {
						kernels.AddTo(seg, res[at:at+cols])
					}
					if act {
						kernels.Clip(seg, seg, lo, hi)
					}
					if yq != nil {
						kernels.Quantize(yq[at:at+cols], seg, qScale, qZero, qLo, qHi)
					}
				}
			})
			return []*tensor.Tensor{y}, true, nil
		}
	})
	need := needOfHead(st, headIn)
	fr.need = func(threads int, in []*tensor.Tensor) (int64, int64) {
		out, scratch := need(threads, in)
		// The float output has the int32 output's bytes; the patches and
		// their packed copy are at most twice the input's bytes times the
		// kernel size.
		if x := in[headIn[0]]; x != nil && len(x.Shape) >= 3 {
			scratch = satAdd(scratch, satMul(2*int64(w.k/max(1, x.Shape[1])), int64(x.Len())))
		}
		return out, scratch
	}
}

// qconvProduct runs the integer convolution of xb (N images of C planes in
// g's geometry, 8-bit, zero point zx; the group's planes from c0) with the
// prepared weight w (the group's filters), packing
// each image's patches and splitting the work over threads, and hands each
// block of products to block: filters i0.. (nr rows, acc rows QPanel
// apart) by positions j0.. (cols) of image img, with the columns' and rows'
// zero-point corrections (plus extraRow per filter when given) that make
// acc + colTerm[j] + rowTerm[r] the exact sum Σ(w - zw)(x - zx). block is
// a scratch buffer of QGemmRowBlock·QPanel floats of the calling goroutine.
func qconvProduct(threads int, w *qconvWeight, g *geom3, xb []byte, N, C, c0 int, unsigned bool, zx int32, extraRow []int32,
	block func(img, i0, nr, j0, cols int, acc, colTerm, rowTerm []int32, scratch []float32)) {
	M, P, K := w.m, g.outSize(), w.k
	Cg := K / g.kSize() // the group's input channels, from c0
	zb := zx
	if unsigned {
		zb -= 128
	}
	rowTerm := make([]int32, M)
	for m := range rowTerm {
		rowTerm[m] = -zb*w.rs[m] + int32(K)*w.za[m]*zb
		if extraRow != nil {
			rowTerm[m] += extraRow[m]
		}
	}
	var colBuf *[]byte
	if !g.pointwise() {
		colBuf = getBytes(K * P)
		defer bytePool.Put(colBuf)
	}
	packBuf := getBytes(kernels.PackedQBSize(K, P))
	defer bytePool.Put(packBuf)
	pb, err := kernels.PackedQBFromBytes(K, P, *packBuf)
	if err != nil {
		panic(err) // the size is PackedQBSize's own
	}
	cs := pb.ColSums() // a view: each chunk below writes its columns'
	colTerm := make([]int32, P)
	for img := 0; img < N; img++ {
		col := xb[(img*C+c0)*g.inSize() : (img*C+c0+Cg)*g.inSize()]
		if colBuf != nil {
			src := col
			parallelFor(threads, Cg, max(1, 1<<16/max(1, g.kSize()*P)), func(ca, cb int) {
				bytePatchesT(g, src, ca, cb, byte(zx), *colBuf)
			})
			col = *colBuf
		}
		sink := func(scratch []float32) kernels.QSink {
			return func(i0, nr, j0, cols int, acc []int32) {
				if !w.zaSame {
					// Filters with zero points of their own: the columns'
					// correction differs per row.
					for r := 0; r < nr; r++ {
						for j := 0; j < cols; j++ {
							acc[r*kernels.QPanel+j] += (w.za[0] - w.za[i0+r]) * cs[j0+j]
						}
					}
				}
				block(img, i0, nr, j0, cols, acc, colTerm[j0:j0+cols], rowTerm[i0:i0+nr], scratch)
			}
		}
		newScratch := func() []float32 { return make([]float32, kernels.QGemmRowBlock*kernels.QPanel) }
		panels, rowBlocks := pb.Panels(), (M+kernels.QGemmRowBlock-1)/kernels.QGemmRowBlock
		if threads > 1 && panels < threads && rowBlocks > 1 {
			// Few positions (a late, small feature map), many filters:
			// pack once, split the filters.
			kernels.PackQBPanels(*packBuf, K, P, col, P, unsigned, 0, panels)
			for p := range colTerm {
				colTerm[p] = -w.za[0] * cs[p]
			}
			parallelFor(threads, rowBlocks, 1, func(b0, b1 int) {
				kernels.QGemmRows(w.a, pb, b0*kernels.QGemmRowBlock, min(M, b1*kernels.QGemmRowBlock), 0, panels, sink(newScratch()))
			})
			continue
		}
		// Each chunk of panels packs its own panels (cache-hot for the
		// multiply that follows), then multiplies them.
		parallelFor(threads, panels, 1, func(p0, p1 int) {
			kernels.PackQBPanels(*packBuf, K, P, col, P, unsigned, p0, p1)
			for p := p0 * kernels.QPanel; p < min(P, p1*kernels.QPanel); p++ {
				colTerm[p] = -w.za[0] * cs[p]
			}
			kernels.QGemm(w.a, pb, p0, p1, sink(newScratch()))
		})
	}
}

// opQLinearConv is QLinearConv (the QOperator form of a quantized
// convolution: ONNX Runtime's quantize_static with QuantFormat.QOperator,
// the ONNX model zoo's int8 models) on the int8 convolution, requantised
// to 8 bits block by block exactly as the op defines it: round(float32(sum
// + bias) · x_scale·w_scale/y_scale) + y_zero_point, saturated.
const opQLinearConv = "spindle.QLinearConv"

// qlinearConv gives step i, a QLinearConv with constant weight, scales and
// output zero point, the int8 convolution's fast kernel, group by group
// (a depthwise one multiplies one filter per group, padded to four rows).
func (f *fuser) qlinearConv(i int) {
	if f.op(i) != "QLinearConv" {
		return
	}
	st := f.m.steps[i]
	ws := st.node.qconv
	if len(ws) == 0 || len(st.in) < 8 || st.in[0] < 0 || f.isConst(st.in[0]) {
		return
	}
	groups, Mg := len(ws), ws[0].m
	for _, j := range []int{1, 3, 4, 6, 7} {
		if !f.isConst(st.in[j]) {
			return
		}
	}
	wt := f.consts[st.in[3]]
	sx, okx := f.scalar(st.in[1])
	sy, oky := f.scalar(st.in[6])
	sw, zy := f.consts[st.in[4]], f.consts[st.in[7]]
	if !okx || !oky || sw.DType != tensor.Float32 || sw.Len() != 1 && sw.Len() != groups*Mg || zy.Len() != 1 {
		return
	}
	qlo, qhi, err := quantRange(zy.DType)
	if err != nil {
		return
	}
	zyv, _ := intValues(zy)
	M := groups * Mg
	mult := make([]float32, M)
	for m := range mult {
		s := sw.F32[0]
		if sw.Len() > 1 {
			s = sw.F32[m]
		}
		mult[m] = sx * s / sy // the generic kernel's expression, bit for bit
	}
	var bias []int32
	if len(st.in) > 8 && st.in[8] >= 0 {
		b := f.consts[st.in[8]]
		if b == nil || b.DType != tensor.Int32 || b.Len() != M {
			return
		}
		bias = b.I32
	}
	attrs, err := readWindowAttrs(st.node)
	if err != nil {
		return
	}
	k := make([]int64, len(wt.Shape)-2)
	for j := range k {
		k[j] = int64(wt.Shape[2+j])
	}
	var headIn []int
	fr := f.replace([]int{i}, f.out0(i), opQLinearConv, func(at func(int) int) fastKernel {
		xAt, zxAt := at(st.in[0]), at(st.in[2])
		headIn = slotsAt(at, st.in)
		return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
			x := in[xAt]
			if x.DType != tensor.Uint8 && x.DType != tensor.Int8 || len(x.Shape) != len(wt.Shape) || x.Shape[1] != wt.Shape[1]*groups {
				return nil, false, nil
			}
			z := in[zxAt]
			if z.DType != x.DType || z.Len() != 1 {
				return nil, false, nil
			}
			zxv, _ := intValues(z)
			outSp, padBegin, _, err := attrs.geometry(x.Shape[2:], k)
			if err != nil {
				return nil, false, nil // the replaced step reports it
			}
			g := newGeom3(&attrs, x.Shape[2:], k, outSp, padBegin)
			N, C, P := x.Shape[0], x.Shape[1], g.outSize()
			y := tensor.New(zy.DType, append([]int{N, M}, outSp...)...)
			if P == 0 || N == 0 {
				return []*tensor.Tensor{y}, true, nil
			}
			yb := byteData(y)
			for gi, w := range ws {
				m0 := gi * Mg
				var extra []int32
				if bias != nil {
					extra = bias[m0 : m0+Mg]
				}
				qconvProduct(threads, w, &g, byteData(x), N, C, gi*wt.Shape[1], x.DType == tensor.Uint8, zxv[0], extra, func(img, i0, nr, j0, cols int, acc, colTerm, rowTerm []int32, _ []float32) {
					kernels.QRequantRows(yb[img*M*P+(m0+i0)*P+j0:], P, acc, nr, cols, colTerm, rowTerm, mult[m0+i0:m0+i0+nr], zyv[0], qlo, qhi)
				})
			}
			return []*tensor.Tensor{y}, true, nil
		}
	})
	need := needOfHead(st, headIn)
	fr.need = func(threads int, in []*tensor.Tensor) (int64, int64) {
		out, scratch := need(threads, in)
		if x := in[headIn[0]]; x != nil && len(x.Shape) >= 3 {
			scratch = satAdd(scratch, satMul(2*int64(ws[0].k/max(1, x.Shape[1])), int64(x.Len())))
		}
		return out, scratch
	}
}

// opQLinearMatMul is QLinearMatMul with a constant 2-D B (the QOperator
// form of a quantized transformer's projections) on the int8 multiply,
// requantised block by block exactly as the op defines it.
const opQLinearMatMul = "spindle.QLinearMatMul"

// qlinearMatMul gives step i, a QLinearMatMul whose B, scales and B's and
// the output's zero points are constants (B's zero points 0: symmetric
// weights), the int8 multiply's fast kernel.
func (f *fuser) qlinearMatMul(i int) {
	if f.op(i) != "QLinearMatMul" {
		return
	}
	st := f.m.steps[i]
	pb := st.node.qpacked
	if pb == nil || len(st.in) != 8 || st.in[0] < 0 || f.isConst(st.in[0]) {
		return
	}
	for _, j := range []int{1, 3, 4, 5, 6, 7} {
		if !f.isConst(st.in[j]) {
			return
		}
	}
	B := f.consts[st.in[3]]
	K, N := pb.K(), pb.N()
	sa, oka := f.scalar(st.in[1])
	sy, oky := f.scalar(st.in[6])
	sb, zb, zy := f.consts[st.in[4]], f.consts[st.in[5]], f.consts[st.in[7]]
	if !oka || !oky || sb.DType != tensor.Float32 || sb.Len() != 1 && sb.Len() != N || zy.Len() != 1 || zb.DType != B.DType {
		return
	}
	zbv, err := intValues(zb)
	if err != nil {
		return
	}
	shift := int32(0)
	if B.DType == tensor.Uint8 {
		shift = 128
	}
	for _, z := range zbv {
		if z != shift { // a zero point that is not 0 once B is signed
			return
		}
	}
	qlo, qhi, err := quantRange(zy.DType)
	if err != nil {
		return
	}
	zyv, _ := intValues(zy)
	mult := make([]float32, N)
	for j := range mult {
		s := sb.F32[0]
		if sb.Len() > 1 {
			s = sb.F32[j]
		}
		mult[j] = sa * s / sy // the generic kernel's expression, bit for bit
	}
	cs := pb.ColSums()
	var headIn []int
	fr := f.replace([]int{i}, f.out0(i), opQLinearMatMul, func(at func(int) int) fastKernel {
		aAt, zaAt := at(st.in[0]), at(st.in[2])
		headIn = slotsAt(at, st.in)
		return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
			A, z := in[aAt], in[zaAt]
			if A.DType != tensor.Uint8 && A.DType != tensor.Int8 || len(A.Shape) < 2 || A.Shape[len(A.Shape)-1] != K || z.DType != A.DType || z.Len() != 1 {
				return nil, false, nil
			}
			za, _ := intValues(z)
			zaS := za[0]
			if A.DType == tensor.Int8 {
				zaS += 128
			}
			y := tensor.New(zy.DType, append(append([]int(nil), A.Shape[:len(A.Shape)-1]...), N)...)
			rows := A.Len() / K
			if rows == 0 || N == 0 {
				return []*tensor.Tensor{y}, true, nil
			}
			buf := getBytes(kernels.QGemmASize(rows, K))
			defer bytePool.Put(buf)
			qa := kernels.PrepareQA(*buf, rows, K, byteData(A), K, A.DType == tensor.Int8)
			colTerm := make([]int32, N)
			for j, c := range cs {
				colTerm[j] = -zaS * c
			}
			yb := byteData(y)
			parallelFor(threads, pb.Panels(), 1, func(p0, p1 int) {
				kernels.QGemm(qa, pb, p0, p1, func(i0, nr, j0, cols int, acc []int32) {
					kernels.QRequantCols(yb[i0*N+j0:], N, acc, nr, cols, colTerm[j0:j0+cols], mult[j0:j0+cols], zyv[0], qlo, qhi)
				})
			})
			return []*tensor.Tensor{y}, true, nil
		}
	})
	need := needOfHead(st, headIn)
	fr.need = func(threads int, in []*tensor.Tensor) (int64, int64) {
		out, scratch := need(threads, in)
		if a := in[headIn[0]]; a != nil {
			scratch = satAdd(scratch, int64(a.Len()))
		}
		return out, scratch
	}
}
