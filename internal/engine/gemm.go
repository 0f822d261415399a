package engine

import (
	"sync"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// gemmF32 computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, where
// op(X) is X or its transpose, op(A) is m×k, op(B) is k×n and C is m×n. lda, ldb
// and ldc are the row strides of A, B and C as stored. When beta is 0, C is
// overwritten without being read, so it may hold garbage (BLAS sgemm semantics).
//
// Every matrix multiply in the engine (Gemm, MatMul, Conv and ConvTranspose)
// goes through this function or gemmPackedF32, the engine's only doors to
// internal/kernels, whose blocked Sgemm picks AVX-512, AVX2+FMA or portable Go
// microkernels at start-up. It runs on the calling goroutine; gemmF32Par and
// gemmPackedF32Par split one multiply over the thread budget a request was
// given (RunOptions.Threads). The result is that of this loop, up to float32
// rounding in a different order:
//
//	for i := 0; i < m; i++ {
//		for j := 0; j < n; j++ {
//			var s float32
//			for p := 0; p < k; p++ {
//				s += opA(i, p) * opB(p, j)
//			}
//			c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
//		}
//	}
//
// A, B and C must not overlap; A and B are only read (they may be read-only
// mapped weights). gemmF32 panics on buffers too short for the given sizes,
// which is a programmer error in the calling op.
func gemmF32(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	kernels.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// packLimit is the size in bytes above which a plain (untransposed) constant
// B is left where it is rather than packed at compile time.
//
// A packed copy is private memory of every process that compiles the model,
// while the weight itself may be a read-only mapping all of them share
// (issue 4: weights stay zero-copy and shared). The kernels read a plain B in
// place for short inputs and pack slabs of it per call for long ones, so
// leaving it costs little (BERT-base on one core: 32 ms at 16 tokens either
// way, 166 instead of 156 ms at 128) and saves the copy (676 -> 349 MiB RSS),
// most of the load time (packing took ~150 ms), and the sharing. Small
// weights are packed anyway: the copy is cheap and their multiplies short. A
// transposed B cannot be read in place, so it is always packed.
const packLimit = 1 << 20

// packB copies op(B), k×n, into the layout the microkernels read, once, so that
// a constant B (a MatMul or Gemm weight) is not repacked on every request.
// B is n×k in memory when transB is set. It returns nil, and the caller
// multiplies with B as it is, when there is nothing to pack (k or n is 0) or
// when B is plain and larger than packLimit.
func packB(transB bool, k, n int, b []float32, ldb int) *kernels.PackedB {
	if k == 0 || n == 0 || !transB && 4*k*n > packLimit {
		return nil
	}
	return kernels.PackB(transB, k, n, b, ldb)
}

// PackedSuffix ends the name of an initializer holding another one's matrix
// already in the kernels' packed layout: W+PackedSuffix is op(B) = W and
// W+PackedTransSuffix is op(B) = Wᵀ, for a 2-D float32 W, as 1-D float32
// tensors of kernels.PackedBSize(k, n) floats. `spindle model compile`
// writes them (internal/artifact) page-aligned in external data, so that a
// memory-mapped model needs no packing and no private copy: every process
// maps the same pages.
const (
	PackedSuffix      = "::spindle.packedB"
	PackedTransSuffix = "::spindle.packedBT"
	// PackedQSuffix names an 8-bit 2-D W's copy in the int8 kernels'
	// layout (kernels.PackQBInto, column sums included), a 1-D uint8
	// tensor of kernels.PackedQBSize(k, n) bytes: MatMulInteger's B.
	PackedQSuffix = "::spindle.packedQB"
)

// packWeight returns constant input i of n, a k×n op(B) (B is n×k when
// transB is set), in the kernels' packed layout: the model's prepacked
// companion viewed in place when it has one of the right size, otherwise a
// packed copy (counted in n.packedBytes) unless the model was compiled with
// KeepWeightsUnpacked or packB declines; nil means multiply with B as it is.
func (n *Node) packWeight(i int, transB bool, k, cols int, b []float32, ldb int) *kernels.PackedB {
	if k == 0 || cols == 0 {
		return nil
	}
	if i < len(n.Inputs) && n.weights != nil {
		suffix := PackedSuffix
		if transB {
			suffix = PackedTransSuffix
		}
		if t, ok := n.weights[n.Inputs[i]+suffix]; ok && t.DType == tensor.Float32 && len(t.F32) == kernels.PackedBSize(k, cols) {
			return kernels.PackedBFromSlice(k, cols, t.F32)
		}
	}
	if !n.pack {
		return nil
	}
	pb := packB(transB, k, cols, b, ldb)
	if pb != nil {
		n.packedBytes += int64(len(pb.Data())) * 4
	}
	return pb
}

// convWeight is a convolution's constant weight packed as the left operand
// of its multiplies (kernels.PackA), once at compile time instead of on
// every call; nil when the weight is not constant or not packed.
type convWeight struct {
	src *tensor.Tensor
	pa  *kernels.PackedA
}

// packConvWeight packs a constant float32 weight of a convolution with one
// group, its M filters as the rows of an M×(C·k…) matrix, when the node may
// pack and the packed copy takes at most packLimit (a larger one is packed
// per call, as a MatMul's large B is read in place: the private copy would
// cost more memory than the packing costs time). A compiled artifact (its
// weights have packed companions) gets no private copies: its weights are
// shared between processes, and the packed layout of A depends on the CPU.
func (n *Node) packConvWeight(group int) *convWeight {
	if !n.pack || group != 1 || n.Const == nil || n.fromArtifact {
		return nil
	}
	w := n.Const(1)
	if w == nil || w.DType != tensor.Float32 || len(w.Shape) < 3 || len(w.F32) == 0 || 4*len(w.F32) > convPackLimit {
		return nil
	}
	m := w.Shape[0]
	pa := kernels.PackA(false, m, len(w.F32)/m, w.F32, len(w.F32)/m)
	n.packedBytes += pa.Bytes()
	return &convWeight{src: w, pa: pa}
}

// convPackLimit bounds the size of a convolution weight packed at compile
// time (see packConvWeight).
var convPackLimit = packLimit

// of returns the packed weight when w is the constant it was packed from,
// as an m×k matrix; nil otherwise (the multiply packs w itself).
func (cw *convWeight) of(w *tensor.Tensor, m, k int) *kernels.PackedA {
	if cw == nil || w != cw.src && (len(w.F32) == 0 || len(cw.src.F32) == 0 || &w.F32[0] != &cw.src.F32[0]) || len(w.F32) != m*k {
		return nil
	}
	return cw.pa
}

// gemmPackedF32 is gemmF32 with op(B) taken from pb, a k×n matrix from packB.
func gemmPackedF32(transA bool, m, n, k int, alpha float32, a []float32, lda int, pb *kernels.PackedB, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	kernels.SgemmPacked(transA, m, n, k, alpha, a, lda, pb, beta, c, ldc)
}

// gemmF32Par is gemmF32 split over up to threads goroutines (see
// kernels.SgemmParallel); threads below 2 run on the calling goroutine.
func gemmF32Par(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if threads < 2 || m == 0 || n == 0 || k == 0 {
		gemmF32(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	kernels.SgemmParallel(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmHalfBPar is gemmF32Par with B a float16 weight's binary16 values,
// widened block by block as the kernels pack it.
func gemmHalfBPar(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []uint16, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	kernels.SgemmHalfBParallel(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmPackedF32Par is gemmPackedF32 split over up to threads goroutines.
func gemmPackedF32Par(threads int, transA bool, m, n, k int, alpha float32, a []float32, lda int, pb *kernels.PackedB, beta float32, c []float32, ldc int) {
	if threads < 2 || m == 0 || n == 0 || k == 0 {
		gemmPackedF32(transA, m, n, k, alpha, a, lda, pb, beta, c, ldc)
		return
	}
	kernels.SgemmPackedParallel(threads, transA, m, n, k, alpha, a, lda, pb, beta, c, ldc)
}

// scaleRows sets C = beta*C, writing zeros without reading C when beta is 0.
func scaleRows(m, n int, beta float32, c []float32, ldc int) {
	if len(c) < (m-1)*ldc+n {
		panic("engine: gemmF32: buffer c too short for its shape")
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// convBlockFloats is the size aimed at for one packed im2col block: big
// enough to amortise the multiply's per-call work, small enough to stay in L3
// while every row block of the weights passes over it.
const convBlockFloats = 1 << 20

// convMinBlock is the fewest output pixels a block aims at however deep the
// im2col matrix is: each block packs all of W again (kernels pack A per
// call), which costs as much as ~1/convMinBlock of the block's multiply.
const convMinBlock = 1024

// convGemm computes one image and group of a convolution, Y[m×P] = W[m×K] ·
// col[K×P], where col is the im2col matrix of x (channels planes, geometry g)
// that is never materialised whole: it is built block by block of output
// pixels, straight into the kernels' packed-B layout (so no second packing
// pass reads it again), and each block is multiplied while it is in cache.
// Blocks are shared among up to threads goroutines; a lone block splits its
// multiply instead. Each block then gets bias (one value per row of y, nil
// for none) and, act (see biasRelu). Panels are filled by
// ic when it is not nil (see usePanels), by row copies otherwise.
func convGemm(threads int, g *geom3, ic *kernels.Im2col, x []float32, channels int, w []float32, pa *kernels.PackedA, m int, y, bias []float32, act convAct) {
	P, K := g.outSize(), channels*g.kSize()
	if m == 0 || P == 0 {
		return
	}
	if K == 0 {
		scaleRows(m, P, 0, y, P)
		biasRelu(y, P, 0, P, bias, act)
		return
	}
	const pw = kernels.PanelWidth
	target := max(convMinBlock, convBlockFloats/K)
	blocks := (P + target - 1) / target
	nb := min(P, ((P+blocks-1)/blocks+pw-1)/pw*pw)
	blocks = (P + nb - 1) / nb
	inner := 1
	if blocks < threads {
		inner = threads
	}
	parallelFor(threads, blocks, 1, func(lo, hi int) {
		bp := convBuf(kernels.PackedBSize(K, nb))
		defer convBufs.Put(bp)
		buf := *bp
		for b := lo; b < hi; b++ {
			j0 := b * nb
			n := min(nb, P-j0)
			packed := buf[:kernels.PackedBSize(K, n)]
			if ic != nil {
				fillPanels(g, ic, x, j0, n, packed)
			} else {
				im2colPacked(g, x, channels, j0, n, packed, K)
			}
			pb := kernels.PackedBFromSlice(K, n, packed)
			if pa != nil {
				kernels.SgemmPackedABParallel(inner, pa, pb, 1, 0, y[j0:], P)
			} else {
				gemmPackedF32Par(inner, false, m, n, K, 1, w, K, pb, 0, y[j0:], P)
			}
			biasRelu(y, P, j0, n, bias, act)
		}
	})
}

// convBufs holds im2col block buffers (*[]float32) between Conv calls, so a
// batch of small images does not allocate a block per image and call.
var convBufs sync.Pool

// convBuf returns a buffer of at least n floats from convBufs.
func convBuf(n int) *[]float32 {
	if bp, ok := convBufs.Get().(*[]float32); ok && cap(*bp) >= n {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]float32, n)
	return &b
}

// im2colPacked writes columns [j0, j0+n) of the im2col matrix of x (K rows)
// into dst in the kernels.PackedB layout: row p of panel q holds columns
// j0+16q .. j0+16q+15, zero past n. Each run of output pixels along an output
// row is written straight into the panels it spans, 16 floats at a time where
// a run covers a whole panel row, with no intermediate row buffer.
func im2colPacked(g *geom3, x []float32, channels, j0, n int, dst []float32, K int) {
	const pw = kernels.PanelWidth
	ow0 := g.out[2]
	ohw := g.out[1] * ow0
	stride := K * pw
	p := 0
	for c := 0; c < channels; c++ {
		plane := x[c*g.inSize() : (c+1)*g.inSize()]
		for kd := 0; kd < g.k[0]; kd++ {
			for kh := 0; kh < g.k[1]; kh++ {
				for kw := 0; kw < g.k[2]; kw++ {
					row := dst[p*pw:]
					// (od, oh, ow) is the output pixel of block column i.
					od, oh, ow := j0/ohw, j0%ohw/ow0, j0%ow0
					for i := 0; i < n; {
						run := min(ow0-ow, n-i)
						id := od*g.s[0] - g.p[0] + kd*g.d[0]
						ih := oh*g.s[1] - g.p[1] + kh*g.d[1]
						iw := ow*g.s[2] - g.p[2] + kw*g.d[2]
						if id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1] {
							zeroCols(row, stride, i, i+run)
						} else {
							src := plane[(id*g.in[1]+ih)*g.in[2] : (id*g.in[1]+ih+1)*g.in[2]]
							if g.s[2] == 1 {
								lo := min(max(0, -iw), run)
								hi := max(lo, min(run, g.in[2]-iw))
								zeroCols(row, stride, i, i+lo)
								if hi > lo {
									copyCols(row, stride, i+lo, src[iw+lo:iw+hi])
								}
								zeroCols(row, stride, i+hi, i+run)
							} else {
								for t := i; t < i+run; t++ {
									v := float32(0)
									if iw >= 0 && iw < g.in[2] {
										v = src[iw]
									}
									row[t/pw*stride+t%pw] = v
									iw += g.s[2]
								}
							}
						}
						i += run
						ow = 0
						if oh++; oh == g.out[1] {
							oh = 0
							od++
						}
					}
					zeroCols(row, stride, n, (n+pw-1)/pw*pw)
					p++
				}
			}
		}
	}
}

// im2colPath picks how Conv builds its im2col matrix: im2colAuto as
// useIndirect and usePanels say; tests force the row copies, kernels.Im2col
// or the indirect multiply to check each on every geometry it takes.
var im2colPath = im2colAuto

const (
	im2colAuto = iota
	im2colCopies
	im2colPanels
	im2colIndirect
)

// useIndirect reports whether a convolution of geometry g runs as
// convIndirect: 2-D windows, where each im2col row is an input plane (a
// phase plane, with a stride) shifted by its tap. convIndirect computes
// ((KW-1)*DW)/SW wasted columns per output row, so it is chosen only where
// they are at most a sixth of the work: VGG16's rows of 14 and more under
// 3-wide windows and MNIST's first layer (24 under 5) gain 10-25%, MNIST's
// second (8 under 5, a third wasted) would lose 50%.
func useIndirect(g *geom3) bool {
	if g.k[0] != 1 || g.in[0] != 1 || g.out[0] != 1 {
		return false
	}
	switch im2colPath {
	case im2colIndirect:
		return true
	case im2colAuto:
		pw := g.out[2] + ((g.k[2]-1)*g.d[2])/g.s[2]
		if g.s[1] > 1 || g.s[2] > 1 {
			// Strided, the phase planes pay off on wide maps (3x3 stride 2,
			// one thread: 224 -> 112 1.9x faster than im2col panels, 56 ->
			// 28 1.45x, 40 -> 20 1.1x) and lose on narrow ones (28 -> 14
			// 0.75x, 14 -> 7 0.94x).
			return g.out[2] >= 16 && 6*g.out[2] >= 5*pw
		}
		return 6*g.out[2] >= 5*pw
	}
	return false
}

// convIndirect computes one image and group of a 2-D convolution, Y[m×P] =
// W[m×K] · col[K×P], without building the im2col matrix. The output is made
// in bands of whole output rows. For each band the input rows it reads are
// copied into zero-padded planes of Pw columns (Pw being an output row plus
// the window's reach), small enough to stay in cache; with a stride, into
// phase planes (see phasePlanes), plane (r, p) holding the padded rows r,
// r+SH, ... and columns p, p+SW, .... Then im2col row (c, kh, kw) is band
// plane c's phase ((kh*DH)%SH, (kw*DW)%SW) from offset (kh*DH)/SH*Pw +
// (kw*DW)/SW on, for every output pixel of the band at once when the output
// is taken Pw wide (the last columns of each row are garbage and dropped),
// so kernels.SgemmIndirect reads the rows in place. Each band is multiplied
// into a scratch block whose valid columns are copied to y, then given bias
// (one value per row, nil for none) and, act (see biasRelu).
// With pool set (even output height and width), y gets the 2×2 stride-2 max
// pool of that instead, taken from the scratch block: Relu of the max plus
// bias is the max of Relus, bit for bit, bias being one value per channel.
// Bands, or else ranges of output channels, are shared among up to threads
// goroutines.
func convIndirect(threads int, g *geom3, x []float32, channels int, w []float32, pa *kernels.PackedA, m int, y, bias []float32, act convAct, pool bool) {
	H, W, OH, OW := g.in[1], g.in[2], g.out[1], g.out[2]
	KH, KW, DH, DW, SH, SW := g.k[1], g.k[2], g.d[1], g.d[2], g.s[1], g.s[2]
	Pw, reach := OW+((KW-1)*DW)/SW, ((KH-1)*DH)/SH // a phase plane's columns; its rows past the band's
	K, P := channels*KH*KW, OH*OW
	if m == 0 || P == 0 {
		return
	}
	target := max(1024, (1<<18)/m)
	bands, rowParts := (OH*Pw+target-1)/target, 1
	switch {
	case bands >= threads:
		bands = (bands + threads - 1) / threads * threads
	case m/16 < threads && OH >= threads && OH*Pw >= threads*1024:
		// Too few output channels to share (the first layers of a CNN:
		// 16 of them), but rows enough: a band of rows each.
		bands = threads
	default:
		bands, rowParts = 1, min(threads, max(1, m/16))
	}
	R := (OH + bands - 1) / bands // output rows per band
	if pool {
		R += R % 2 // pooled rows pair up within a band
	}
	bands = (OH + R - 1) / R
	phase := (R + reach) * Pw // a band's padded phase plane
	plane := SH * SW * phase  // a channel's phase planes
	offs := make([]int, 0, K)
	for c := 0; c < channels; c++ {
		for kh := 0; kh < KH; kh++ {
			for kw := 0; kw < KW; kw++ {
				ph := (kh*DH)%SH*SW + (kw*DW)%SW
				offs = append(offs, c*plane+ph*phase+(kh*DH)/SH*Pw+(kw*DW)/SW)
			}
		}
	}
	pad := func(xb []float32, b int) {
		rows := min(R, OH-b*R) + reach
		for c := 0; c < channels; c++ {
			src := x[c*H*W : (c+1)*H*W]
			if SH == 1 && SW == 1 {
				padPlane(xb[c*plane:c*plane+rows*Pw], src, H, W, rows, Pw, g.p[1]-b*R, g.p[2])
				continue
			}
			padPhases(xb[c*plane:(c+1)*plane], src, H, W, rows, Pw, g.p[1]-b*R*SH, g.p[2], SH, SW, phase)
		}
		clear(xb[channels*plane:])
	}
	xbSize := channels*plane + ((KW-1)*DW)/SW
	var shared []float32
	if rowParts > 1 {
		sb := convBuf(xbSize)
		defer convBufs.Put(sb)
		shared = *sb
		pad(shared, 0)
	}
	parallelFor(threads, bands*rowParts, 1, func(lo, hi int) {
		tp := convBuf(m * R * Pw)
		defer convBufs.Put(tp)
		tmp := *tp
		xb := shared
		if xb == nil {
			xbp := convBuf(xbSize)
			defer convBufs.Put(xbp)
			xb = *xbp
		}
		for item := lo; item < hi; item++ {
			b, part := item/rowParts, item%rowParts
			if shared == nil {
				pad(xb, b)
			}
			r0, r1 := m*part/rowParts, m*(part+1)/rowParts
			oh0, rows := b*R, min(R, OH-b*R)
			n := rows * Pw
			if pa != nil && rowParts == 1 {
				kernels.SgemmIndirectPackedA(pa, n, 1, xb, offs, 0, tmp, n)
			} else {
				kernels.SgemmIndirect(r1-r0, n, K, 1, w[r0*K:r1*K], K, xb, offs, 0, tmp, n)
			}
			var bs []float32
			if bias != nil {
				bs = bias[r0:r1]
			}
			if pool {
				PP, PW := P/4, OW/2
				for r := r0; r < r1; r++ {
					kernels.MaxPool2x2(y[r*PP+oh0/2*PW:], tmp[(r-r0)*n:], rows/2, PW, Pw, 2*Pw)
				}
				biasRelu(y[r0*PP:r1*PP], PP, oh0/2*PW, rows/2*PW, bs, act)
				continue
			}
			for r := r0; r < r1; r++ {
				kernels.CopyRows(y[r*P+oh0*OW:], OW, tmp[(r-r0)*n:], Pw, rows, OW)
			}
			biasRelu(y[r0*P:r1*P], P, oh0*OW, rows*OW, bs, act)
		}
	})
}

// padPhases is padPlane into the sh×sw phase planes of the padded plane,
// each rows×pw and phase floats apart in dst: phase plane (rp, cp) row j
// column q is padded row j*sh+rp, column q*sw+cp, which holds src's row
// j*sh+rp-top, column q*sw+cp-left, or zero where that is outside src.
func padPhases(dst, src []float32, h, w, rows, pw, top, left, sh, sw, phase int) {
	for rp := range sh {
		for j := range rows {
			ir := j*sh + rp - top
			var srow []float32
			if ir >= 0 && ir < h {
				// Input column iw is padded column left+iw: phase
				// (left+iw)%sw, column (left+iw)/sw, which must be < pw.
				srow = src[ir*w : ir*w+max(0, min(w, pw*sw-left))]
			}
			for cp := range sw {
				clear(dst[(rp*sw+cp)*phase+j*pw:][:pw])
			}
			if len(srow) == 0 {
				continue
			}
			at := rp*sw*phase + j*pw // phase (rp, 0), row j
			switch sw {
			case 1:
				copy(dst[at+left:], srow)
			case 2:
				even := dst[at+(left%2)*phase+left/2:]
				odd := dst[at+((left+1)%2)*phase+(left+1)/2:]
				kernels.Deinterleave2(even, odd, srow)
			default:
				for iw, v := range srow {
					pc := left + iw
					dst[at+(pc%sw)*phase+pc/sw] = v
				}
			}
		}
	}
}

// padPlane copies an h×w plane src into dst, hp×wp, at row top and column
// left, with zeros around it; whatever falls outside dst is left out (a
// negative top starts dst at src's row -top: a band below the first).
func padPlane(dst, src []float32, h, w, hp, wp, top, left int) {
	c0, c1 := min(left, wp), min(left+w, wp)
	for r := 0; r < hp; r++ {
		row := dst[r*wp : (r+1)*wp]
		ir := r - top
		if ir < 0 || ir >= h || c0 >= c1 {
			clear(row)
			continue
		}
		clear(row[:c0])
		copy(row[c0:c1], src[ir*w:ir*w+c1-c0])
		clear(row[c1:])
	}
}

// usePanels reports whether convGemm fills panels with kernels.Im2col (one
// masked AVX-512 load per run of columns and kernel tap, a gather where a
// panel's pixels are scattered) rather than im2colPacked's row copies: on
// the AVX-512 backend, for 2-D windows over inputs small enough for 32-bit
// offsets. On VGG16's layers it beats the copies at every width (224: 148
// vs 141 GFLOP/s, 56: 203 vs 163, 14: 201 vs 128), most where short output
// rows break panel rows into pieces (MNIST's 24 and 8).
func usePanels(g *geom3) bool {
	if im2colPath == im2colCopies || g.k[0] != 1 || g.in[0] != 1 || g.out[0] != 1 ||
		g.in[1] >= 1<<16 || g.in[2] >= 1<<16 || g.k[1]*g.d[1] >= 1<<16 || g.k[2]*g.d[2] >= 1<<16 {
		return false
	}
	return im2colPath == im2colPanels || kernels.Backend() == "avx512"
}

// fillPanels is im2colPacked for 2-D windows, one panel at a time with
// ic: each panel's 16 output pixels give the window origins.
func fillPanels(g *geom3, ic *kernels.Im2col, x []float32, j0, n int, dst []float32) {
	const pw = kernels.PanelWidth
	K := ic.Rows()
	ow0 := g.out[2]
	oh, ow := j0/ow0, j0%ow0
	var ih, iw [pw]int32
	for q := 0; q*pw < n; q++ {
		valid := min(pw, n-q*pw)
		for t := range valid {
			ih[t] = int32(oh*g.s[1] - g.p[1])
			iw[t] = int32(ow*g.s[2] - g.p[2])
			if ow++; ow == ow0 {
				ow = 0
				oh++
			}
		}
		ic.Panel(dst[q*K*pw:(q+1)*K*pw], x, &ih, &iw, valid)
	}
}

// copyCols writes src into one row of packed panels (row, panels stride
// floats apart) at columns [i, i+len(src)).
func copyCols(row []float32, stride, i int, src []float32) {
	const pw = kernels.PanelWidth
	for len(src) > 0 {
		q, r := i/pw, i%pw
		if r == 0 && len(src) >= pw {
			*(*[pw]float32)(row[q*stride:]) = *(*[pw]float32)(src)
			src = src[pw:]
			i += pw
			continue
		}
		m := copy(row[q*stride+r:q*stride+pw], src)
		src = src[m:]
		i += m
	}
}

// zeroCols zeroes columns [i, j) of one row of packed panels.
func zeroCols(row []float32, stride, i, j int) {
	const pw = kernels.PanelWidth
	for i < j {
		q, r := i/pw, i%pw
		m := min(pw-r, j-i)
		clear(row[q*stride+r : q*stride+r+m])
		i += m
	}
}
