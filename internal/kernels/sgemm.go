package kernels

import (
	"fmt"
	"sync"
)

// PanelWidth is the number of columns in one panel of a packed B.
const PanelWidth = 16

// ncBlock is how many columns of an unpacked B Sgemm packs at once; kc×ncBlock
// floats should sit in L3.
const ncBlock = 4096

// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, where
// op(X) is X, or its transpose when transX is set. op(A) is m×k, op(B) is k×n
// and C is m×n; lda, ldb and ldc are the row strides of A, B and C as stored
// (A is k×m in memory when transA is set, B is n×k when transB is set).
//
// The result is that of this loop, up to float32 rounding in a different order:
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
// except that, as in BLAS, C is not read when beta is 0 (so NaNs there vanish)
// and A and B are not read when alpha or k is 0. Only the m×n elements of C are
// written. A and B are never written and must not overlap C.
//
// Sgemm is safe for concurrent use; its packing buffers come from a pool.
//
// Sgemm panics, with a message starting "kernels:", on negative sizes, a leading
// dimension smaller than its row, or a slice too short for its matrix: these are
// programmer errors of the calling op.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, m, n, k, a, lda, c, ldc)
	checkB(transB, k, n, b, ldb)
	active.gemm(transA, m, n, k, alpha, a, lda, bSource{trans: transB, b: b, ldb: ldb}, beta, c, ldc)
}

// SgemmPacked is Sgemm with op(B) taken from pb, a k×n matrix packed by PackB,
// PackBInto or PackedBFromSlice. It panics when pb is nil or not k×n.
func SgemmPacked(transA bool, m, n, k int, alpha float32, a []float32, lda int, pb *PackedB, beta float32, c []float32, ldc int) {
	checkGemm(transA, m, n, k, a, lda, c, ldc)
	checkPacked(pb, k, n)
	active.gemm(transA, m, n, k, alpha, a, lda, bSource{packed: pb}, beta, c, ldc)
}

// SgemmParallel is Sgemm with C split into column blocks (or, when C is too
// narrow, row blocks) that up to threads goroutines compute at once. It returns
// when all of C is done. threads below 2, or too little work to share, run
// Sgemm on the calling goroutine.
func SgemmParallel(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, m, n, k, a, lda, c, ldc)
	checkB(transB, k, n, b, ldb)
	active.gemmParallel(threads, minParallelFlops, transA, m, n, k, alpha, a, lda, bSource{trans: transB, b: b, ldb: ldb}, beta, c, ldc)
}

// SgemmPackedParallel is SgemmPacked split over up to threads goroutines, as
// SgemmParallel splits Sgemm.
func SgemmPackedParallel(threads int, transA bool, m, n, k int, alpha float32, a []float32, lda int, pb *PackedB, beta float32, c []float32, ldc int) {
	checkGemm(transA, m, n, k, a, lda, c, ldc)
	checkPacked(pb, k, n)
	active.gemmParallel(threads, minParallelFlops, transA, m, n, k, alpha, a, lda, bSource{packed: pb}, beta, c, ldc)
}

// SgemmHalfBParallel is SgemmParallel with B held as IEEE binary16 values
// (a float16 model's weight, in its mapped file): each block of op(B) is
// widened to float32 as it is packed, so B is never widened whole.
func SgemmHalfBParallel(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []uint16, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, m, n, k, a, lda, c, ldc)
	if transB {
		checkHalfMatrix(b, n, k, ldb)
	} else {
		checkHalfMatrix(b, k, n, ldb)
	}
	active.gemmParallel(threads, minParallelFlops, transA, m, n, k, alpha, a, lda, bSource{trans: transB, h: b, ldb: ldb}, beta, c, ldc)
}

func checkHalfMatrix(s []uint16, rows, cols, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("kernels: ldb=%d is less than max(1, %d)", ld, cols))
	}
	if rows > 0 && cols > 0 && len(s) < matrixLen(rows, cols, ld) {
		panic(fmt.Sprintf("kernels: b has %d halves, a %d×%d matrix with stride %d needs %d", len(s), rows, cols, ld, matrixLen(rows, cols, ld)))
	}
}

// SgemmIndirect is Sgemm, with op(A) = A, for a k×n B whose row p is
// b[offs[p] : offs[p]+n]: rows anywhere in b, each contiguous. An im2col
// matrix of a stride-1 convolution over zero-padded planes is such a B
// (row (c, kh, kw) is plane c shifted by the tap), so a convolution can
// multiply its input in place instead of copying every tap into packed
// panels first. Rows may overlap. It panics as Sgemm does, and when offs has
// fewer than k entries or a row lies outside b.
func SgemmIndirect(m, n, k int, alpha float32, a []float32, lda int, b []float32, offs []int, beta float32, c []float32, ldc int) {
	checkGemm(false, m, n, k, a, lda, c, ldc)
	checkIndirect(k, n, b, offs)
	active.gemm(false, m, n, k, alpha, a, lda, bSource{b: b, offs: offs[:k]}, beta, c, ldc)
}

func checkIndirect(k, n int, b []float32, offs []int) {
	if k < 0 || n < 0 {
		panic(fmt.Sprintf("kernels: negative size k=%d n=%d", k, n))
	}
	if len(offs) < k {
		panic(fmt.Sprintf("kernels: %d row offsets for %d rows", len(offs), k))
	}
	if n == 0 {
		return
	}
	for p, o := range offs[:k] {
		if o < 0 || o > len(b)-n {
			panic(fmt.Sprintf("kernels: row %d at offset %d: %d columns do not fit in b of %d floats", p, o, n, len(b)))
		}
	}
}

// PackedA is an m×k op(A) packed once, in the blocks a multiply would pack
// on every call (a convolution's weights, the left operand of every call):
// for each depth block of the backend's kc and each of its row blocks of at
// most mc rows, the row panels the microkernels read. The layout depends on
// the backend that packed it, so it lives in memory only. It keeps its
// source for calls that split A's rows (parallel row blocks), which pack
// their rows from it as usual. Safe for concurrent use; never written
// after packing.
type PackedA struct {
	be     *backend
	trans  bool
	m, k   int
	a      []float32 // the source, lda apart
	lda    int
	blocks int // row blocks per depth block
	offs   []int
	data   []float32
}

// PackA packs op(A), m×k (A is k×m in memory when transA is set, rows lda
// apart), for the active backend. It panics as Sgemm does on a bad A.
func PackA(transA bool, m, k int, a []float32, lda int) *PackedA {
	return active.packAll(transA, m, k, a, lda)
}

func (be *backend) packAll(transA bool, m, k int, a []float32, lda int) *PackedA {
	checkGemm(transA, m, 0, k, a, lda, nil, 1)
	pa := &PackedA{be: be, trans: transA, m: m, k: k, a: a, lda: lda, blocks: max(1, (m+be.mc-1)/be.mc)}
	pa.data = make([]float32, m*k)
	at := 0
	for p0 := 0; p0 < k; p0 += be.kc {
		kb := min(be.kc, k-p0)
		for blk := 0; blk < pa.blocks; blk++ {
			i0, i1 := m*blk/pa.blocks, m*(blk+1)/pa.blocks
			mb := i1 - i0
			panels := (mb + be.mr - 1) / be.mr
			packA(transA, a, lda, i0, mb, p0, kb, panels, pa.data[at:at+mb*kb])
			pa.offs = append(pa.offs, at)
			at += mb * kb
		}
	}
	return pa
}

// block returns the packed row block blk of the depth block starting at p0.
func (pa *PackedA) block(p0, blk int) []float32 {
	i := p0/pa.be.kc*pa.blocks + blk
	end := len(pa.data)
	if i+1 < len(pa.offs) {
		end = pa.offs[i+1]
	}
	return pa.data[pa.offs[i]:end]
}

// Bytes is the memory the packed copy takes.
func (pa *PackedA) Bytes() int64 { return int64(len(pa.data)) * 4 }

// usable reports whether the active backend multiplies with pa's blocks
// (a test may switch backends after packing).
func (pa *PackedA) usable() bool { return pa.be == active }

// SgemmPackedAParallel is SgemmParallel with op(A) from pa (m×k) and a
// plain B, k×n with rows ldb apart.
func SgemmPackedAParallel(threads int, pa *PackedA, n int, alpha float32, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(pa.trans, pa.m, n, pa.k, pa.a, pa.lda, c, ldc)
	checkB(false, pa.k, n, b, ldb)
	q := pa
	if !pa.usable() {
		q = nil
	}
	active.gemmParallelA(threads, minParallelFlops, q, pa.trans, pa.m, n, pa.k, alpha, pa.a, pa.lda, bSource{b: b, ldb: ldb}, beta, c, ldc)
}

// SgemmPackedABParallel is SgemmPackedParallel with op(A) from pa too.
func SgemmPackedABParallel(threads int, pa *PackedA, pb *PackedB, alpha float32, beta float32, c []float32, ldc int) {
	n := pb.N()
	checkGemm(pa.trans, pa.m, n, pa.k, pa.a, pa.lda, c, ldc)
	checkPacked(pb, pa.k, n)
	q := pa
	if !pa.usable() {
		q = nil
	}
	active.gemmParallelA(threads, minParallelFlops, q, pa.trans, pa.m, n, pa.k, alpha, pa.a, pa.lda, bSource{packed: pb}, beta, c, ldc)
}

// SgemmIndirectPackedA is SgemmIndirect with op(A) from pa, which must not
// be transposed.
func SgemmIndirectPackedA(pa *PackedA, n int, alpha float32, b []float32, offs []int, beta float32, c []float32, ldc int) {
	if pa.trans {
		panic("kernels: SgemmIndirectPackedA of a transposed A")
	}
	checkGemm(false, pa.m, n, pa.k, pa.a, pa.lda, c, ldc)
	checkIndirect(pa.k, n, b, offs)
	q := pa
	if !pa.usable() {
		q = nil
	}
	active.gemmA(q, false, pa.m, n, pa.k, alpha, pa.a, pa.lda, bSource{b: b, offs: offs[:pa.k]}, beta, c, ldc)
}

// PackedB is a k×n op(B) copied into the layout the microkernels read:
// ceil(n/PanelWidth) panels one after another, panel q being k rows of
// PanelWidth floats, row p holding op(B)[p][q*PanelWidth+j] for j < PanelWidth,
// and zero for columns at or past n. So element (p, j) is at
//
//	(j/PanelWidth)*k*PanelWidth + p*PanelWidth + j%PanelWidth
//
// and the whole takes PackedBSize(k, n) floats. The layout is the same for
// every backend, so it may be written to a file and mapped back.
//
// A PackedB is never written after packing, so one value may serve any number
// of goroutines. The zero value is a packed 0×0 matrix.
type PackedB struct {
	k, n int
	data []float32
}

// K returns the number of rows of the packed op(B).
func (pb *PackedB) K() int { return pb.k }

// N returns the number of columns of the packed op(B).
func (pb *PackedB) N() int { return pb.n }

// Data returns the packed floats, PackedBSize(K(), N()) of them, in the layout
// documented on PackedB. The caller must not modify them.
func (pb *PackedB) Data() []float32 { return pb.data }

// PackedBSize returns how many floats a packed k×n op(B) takes.
func PackedBSize(k, n int) int {
	if k < 0 || n < 0 {
		panic(fmt.Sprintf("kernels: packed size of %d×%d matrix", k, n))
	}
	return (n + PanelWidth - 1) / PanelWidth * PanelWidth * k
}

// PackB packs op(B), k×n, into a new PackedB. B is n×k in memory when transB is
// set, k×n otherwise, with row stride ldb. It panics as Sgemm does on bad sizes.
func PackB(transB bool, k, n int, b []float32, ldb int) *PackedB {
	return PackBInto(make([]float32, PackedBSize(k, n)), transB, k, n, b, ldb)
}

// PackBInto is PackB writing into dst, which must hold at least
// PackedBSize(k, n) floats; the PackedB returned views dst[:PackedBSize(k, n)].
func PackBInto(dst []float32, transB bool, k, n int, b []float32, ldb int) *PackedB {
	checkB(transB, k, n, b, ldb)
	size := PackedBSize(k, n)
	if len(dst) < size {
		panic(fmt.Sprintf("kernels: pack %d×%d: dst has %d floats, need %d", k, n, len(dst), size))
	}
	dst = dst[:size]
	packB(transB, b, ldb, 0, k, 0, n, dst, k*PanelWidth)
	return &PackedB{k: k, n: n, data: dst}
}

// PackedBFromSlice wraps floats already in the PackedB layout (for example a
// mapped file section written from Data) without copying them. data must hold
// exactly PackedBSize(k, n) floats; it panics otherwise, so callers loading
// untrusted files check the length first. data must not change afterwards.
func PackedBFromSlice(k, n int, data []float32) *PackedB {
	if size := PackedBSize(k, n); len(data) != size {
		panic(fmt.Sprintf("kernels: packed %d×%d matrix: have %d floats, need %d", k, n, len(data), size))
	}
	return &PackedB{k: k, n: n, data: data}
}

// checkGemm panics on sizes, strides or lengths that do not describe op(A)
// (m×k) and C (m×n).
func checkGemm(transA bool, m, n, k int, a []float32, lda int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels: negative size m=%d n=%d k=%d", m, n, k))
	}
	if transA {
		checkMatrix("a", a, k, m, lda)
	} else {
		checkMatrix("a", a, m, k, lda)
	}
	checkMatrix("c", c, m, n, ldc)
}

func checkB(transB bool, k, n int, b []float32, ldb int) {
	if k < 0 || n < 0 {
		panic(fmt.Sprintf("kernels: negative size k=%d n=%d", k, n))
	}
	if transB {
		checkMatrix("b", b, n, k, ldb)
	} else {
		checkMatrix("b", b, k, n, ldb)
	}
}

func checkPacked(pb *PackedB, k, n int) {
	if pb == nil {
		panic("kernels: nil PackedB")
	}
	if pb.k != k || pb.n != n {
		panic(fmt.Sprintf("kernels: PackedB is %d×%d, want %d×%d", pb.k, pb.n, k, n))
	}
}

// checkMatrix panics unless s holds a rows×cols matrix with row stride ld.
// As in BLAS, ld must be at least max(1, cols) even for an empty matrix.
func checkMatrix(name string, s []float32, rows, cols, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("kernels: ld%s=%d is less than max(1, %d)", name, ld, cols))
	}
	if rows > 0 && cols > 0 && len(s) < matrixLen(rows, cols, ld) {
		panic(fmt.Sprintf("kernels: %s has %d floats, a %d×%d matrix with stride %d needs %d",
			name, len(s), rows, cols, ld, matrixLen(rows, cols, ld)))
	}
}

// bSource is op(B) as the caller holds it: packed, or a plain matrix.
type bSource struct {
	packed *PackedB // when set, the other fields are unused
	trans  bool
	b      []float32
	ldb    int
	offs   []int // when set, row p is b[offs[p]:] (SgemmIndirect); trans and ldb are unused
	// h, when set, holds B as binary16 values (in b's layout: trans and
	// ldb apply); it is widened block by block as it is packed.
	h []uint16
}

// cols returns op(B) restricted to columns [j0, n). For a packed B, j0 must
// be a multiple of PanelWidth.
func (bs bSource) cols(j0, k int) bSource {
	switch {
	case bs.packed != nil:
		pb := bs.packed
		return bSource{packed: &PackedB{k: pb.k, n: pb.n - j0, data: pb.data[j0/PanelWidth*k*PanelWidth:]}}
	case bs.h != nil && bs.trans:
		bs.h = bs.h[j0*bs.ldb:]
	case bs.h != nil:
		bs.h = bs.h[j0:]
	case bs.offs != nil:
		bs.b = bs.b[j0:]
	case bs.trans:
		bs.b = bs.b[j0*bs.ldb:]
	default:
		bs.b = bs.b[j0:]
	}
	return bs
}

// workspace holds the packing buffers of one gemm call; wide holds a
// binary16 B block widened before it is packed.
type workspace struct {
	a, b, tile, wide []float32
}

var workspaces = sync.Pool{New: func() any { return new(workspace) }}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// bBlock is a kb-deep slab of op(B) in a form the kernels read: columns
// [j0, j0+n) of the current C block, in panels of PanelWidth columns that
// start stride floats apart, each made of rows that start row floats apart.
// data starts at the slab's first row of its first panel.
type bBlock struct {
	j0, n       int
	data        []float32
	stride, row int
	// offs, when set, are the slab's row offsets into data for the
	// indirect kernels (stride and row are unused).
	offs []int
}

// gemm is Sgemm on checked arguments with backend be.
func (be *backend) gemm(transA bool, m, n, k int, alpha float32, a []float32, lda int, bs bSource, beta float32, c []float32, ldc int) {
	be.gemmA(nil, transA, m, n, k, alpha, a, lda, bs, beta, c, ldc)
}

// gemmA is gemm with op(A) taken from pa, packed by be for this m and k,
// when pa is not nil (transA, a and lda are then pa's).
func (be *backend) gemmA(pa *PackedA, transA bool, m, n, k int, alpha float32, a []float32, lda int, bs bSource, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	ws := workspaces.Get().(*workspace)
	defer workspaces.Put(ws)
	ws.tile = grow(ws.tile, be.mr*2*PanelWidth)
	if pa == nil {
		ws.a = grow(ws.a, min(m, be.mc)*min(k, be.kc))
	}
	// Depth blocks after the first accumulate onto what the first wrote.
	betaAt := func(p0 int) float32 {
		if p0 > 0 {
			return 1
		}
		return beta
	}

	switch {
	case bs.packed != nil:
		for p0 := 0; p0 < k; p0 += be.kc {
			kb := min(be.kc, k-p0)
			seg := [1]bBlock{{n: n, data: bs.packed.data[p0*PanelWidth:], stride: k * PanelWidth, row: PanelWidth}}
			be.rowBlocks(ws, pa, transA, m, kb, alpha, a, lda, p0, seg[:], betaAt(p0), c, ldc)
		}

	case bs.offs != nil && be.indirect != nil,
		!bs.trans && bs.offs == nil && bs.h == nil && (m <= be.directRows || strideAlign(bs.ldb) <= be.directAlign):
		// Whole panels are read in place (through the row offsets, or rows
		// ldb apart); only the ragged last panel, which a kernel would read
		// past a row's end, is packed.
		n16 := n &^ (PanelWidth - 1)
		ws.b = grow(ws.b, PackedBSize(min(k, be.kc), n-n16))
		for p0 := 0; p0 < k; p0 += be.kc {
			kb := min(be.kc, k-p0)
			var segs [2]bBlock
			ns := 0
			if n16 > 0 {
				segs[ns] = bs.inPlace(p0, kb, n16)
				ns++
			}
			if n16 < n {
				tail := ws.b[:PackedBSize(kb, n-n16)]
				bs.pack(p0, kb, n16, n-n16, tail, kb*PanelWidth)
				segs[ns] = bBlock{j0: n16, n: n - n16, data: tail, stride: kb * PanelWidth, row: PanelWidth}
				ns++
			}
			be.rowBlocks(ws, pa, transA, m, kb, alpha, a, lda, p0, segs[:ns], betaAt(p0), c, ldc)
		}

	default:
		ws.b = grow(ws.b, PackedBSize(min(k, be.kc), min(n, ncBlock)))
		for j0 := 0; j0 < n; j0 += ncBlock {
			nb := min(ncBlock, n-j0)
			for p0 := 0; p0 < k; p0 += be.kc {
				kb := min(be.kc, k-p0)
				bp := ws.b[:PackedBSize(kb, nb)]
				if bs.h != nil {
					ws.wide = bs.widen(ws.wide, p0, kb, j0, nb)
					packB(bs.trans, ws.wide, bs.wideLd(kb, nb), 0, kb, 0, nb, bp, kb*PanelWidth)
				} else {
					bs.pack(p0, kb, j0, nb, bp, kb*PanelWidth)
				}
				seg := [1]bBlock{{j0: j0, n: nb, data: bp, stride: kb * PanelWidth, row: PanelWidth}}
				be.rowBlocks(ws, pa, transA, m, kb, alpha, a, lda, p0, seg[:], betaAt(p0), c, ldc)
			}
		}
	}
}

// rowBlocks multiplies rows of op(A), depth [p0, p0+kb), by the B slabs segs
// into C, packing A in blocks of at most be.mc rows split as evenly as the
// block count allows, or taking those blocks from pa.
func (be *backend) rowBlocks(ws *workspace, pa *PackedA, transA bool, m, kb int, alpha float32, a []float32, lda, p0 int, segs []bBlock, beta float32, c []float32, ldc int) {
	blocks := (m + be.mc - 1) / be.mc
	for blk := 0; blk < blocks; blk++ {
		i0, i1 := m*blk/blocks, m*(blk+1)/blocks
		mb := i1 - i0
		// Split the block into panels of at most mr rows whose sizes differ by
		// at most one, so that no panel is a sliver with too few accumulators
		// to hide FMA latency (m=16 with mr=14 runs as 8+8, not 14+2).
		panels := (mb + be.mr - 1) / be.mr
		var ap []float32
		if pa != nil {
			ap = pa.block(p0, blk)
		} else {
			ap = ws.a[:mb*kb]
			packA(transA, a, lda, i0, mb, p0, kb, panels, ap)
		}
		for _, seg := range segs {
			be.macro(panels, mb, kb, alpha, ap, seg, beta, c[i0*ldc+seg.j0:], ldc, ws.tile)
		}
	}
}

// packA copies rows [i0, i0+mb) and depth [p0, p0+kb) of op(A) into panels
// row panels: panel t covers block rows [r0, r1) = [mb*t/panels,
// mb*(t+1)/panels) and sits at ap[r0*kb:], kb rows of r1-r0 values.
func packA(transA bool, a []float32, lda, i0, mb, p0, kb, panels int, ap []float32) {
	for t := 0; t < panels; t++ {
		r0, r1 := mb*t/panels, mb*(t+1)/panels
		rows := r1 - r0
		d := ap[r0*kb : r1*kb]
		if transA {
			for p := 0; p < kb; p++ {
				off := (p0+p)*lda + i0 + r0
				copy(d[p*rows:(p+1)*rows], a[off:off+rows])
			}
			continue
		}
		packARows(a[(i0+r0)*lda+p0:], lda, rows, kb, d)
	}
}

// packARows copies rows×kb values of a (rows lda apart) into d as kb rows of
// rows values, d[p*rows+r] = a[r*lda+p]: whole blocks of 16 columns with
// packAAVX512 where the CPU has it, the rest with a loop that reads eight
// columns of every row at a time and writes the output in order.
func packARows(a []float32, lda, rows, kb int, d []float32) {
	if rows == 0 || kb == 0 {
		return
	}
	d = d[:rows*kb]
	_ = a[(rows-1)*lda+kb-1]
	p := 0
	if vmathAVX512 && rows <= 16 && kb >= 16 {
		blocks := kb / 16
		packAAVX512(&a[0], lda, rows, blocks, &d[0])
		p = blocks * 16
	}
	for ; p+8 <= kb; p += 8 {
		out := d[p*rows : (p+8)*rows]
		for r := 0; r < rows; r++ {
			src := (*[8]float32)(a[r*lda+p:])
			out[r] = src[0]
			out[rows+r] = src[1]
			out[2*rows+r] = src[2]
			out[3*rows+r] = src[3]
			out[4*rows+r] = src[4]
			out[5*rows+r] = src[5]
			out[6*rows+r] = src[6]
			out[7*rows+r] = src[7]
		}
	}
	for ; p < kb; p++ {
		out := d[p*rows : (p+1)*rows]
		for r := range out {
			out[r] = a[r*lda+p]
		}
	}
}

// inPlace is the slab of a plain or indirect op(B) at depth [p0, p0+kb)
// over its first n columns (whole panels), as the kernels read it where it
// lies.
func (bs bSource) inPlace(p0, kb, n int) bBlock {
	if bs.offs != nil {
		return bBlock{n: n, data: bs.b, offs: bs.offs[p0 : p0+kb]}
	}
	return bBlock{n: n, data: bs.b[p0*bs.ldb:], stride: PanelWidth, row: bs.ldb}
}

// widen converts columns [j0, j0+nb) and depth [p0, p0+kb) of a binary16
// op(B) to float32 in buf (grown as needed), in B's own layout with the
// leading dimension wideLd gives, for packB.
func (bs bSource) widen(buf []float32, p0, kb, j0, nb int) []float32 {
	buf = grow(buf, kb*nb)
	if bs.trans {
		for x := range nb {
			HalfToFloat32(buf[x*kb:(x+1)*kb], bs.h[(j0+x)*bs.ldb+p0:])
		}
		return buf
	}
	for p := range kb {
		HalfToFloat32(buf[p*nb:(p+1)*nb], bs.h[(p0+p)*bs.ldb+j0:])
	}
	return buf
}

// wideLd is the leading dimension of a block widen made.
func (bs bSource) wideLd(kb, nb int) int {
	if bs.trans {
		return kb
	}
	return nb
}

// pack copies columns [j0, j0+nb) and depth [p0, p0+kb) of op(B), a plain
// B as packB does, into the PackedB layout with panels stride floats apart.
func (bs bSource) pack(p0, kb, j0, nb int, bp []float32, stride int) {
	if bs.offs == nil {
		packB(bs.trans, bs.b, bs.ldb, p0, kb, j0, nb, bp, stride)
		return
	}
	full := nb / PanelWidth
	rem := nb - full*PanelWidth
	for p := 0; p < kb; p++ {
		src := bs.b[bs.offs[p0+p]+j0:][:nb]
		for q := 0; q < full; q++ {
			*(*[PanelWidth]float32)(bp[q*stride+p*PanelWidth:]) = *(*[PanelWidth]float32)(src[q*PanelWidth:])
		}
		if rem > 0 {
			row := bp[full*stride+p*PanelWidth:][:PanelWidth]
			copy(row, src[full*PanelWidth:])
			clear(row[rem:])
		}
	}
}

// packB copies columns [j0, j0+nb) and depth [p0, p0+kb) of op(B) into the
// PackedB layout with panels stride floats apart.
func packB(transB bool, b []float32, ldb, p0, kb, j0, nb int, bp []float32, stride int) {
	if kb == 0 || nb == 0 {
		return // an empty B may be an empty slice; there is nothing to pack
	}
	full := nb / PanelWidth // panels without padding
	rem := nb - full*PanelWidth
	if !transB {
		// Row by row: reading B in order is twice as fast as walking down
		// one panel's columns, whose rows may be pages apart.
		for p := 0; p < kb; p++ {
			src := b[(p0+p)*ldb+j0:][:nb]
			for q := 0; q < full; q++ {
				*(*[PanelWidth]float32)(bp[q*stride+p*PanelWidth:]) = *(*[PanelWidth]float32)(src[q*PanelWidth:])
			}
			if rem > 0 {
				row := bp[full*stride+p*PanelWidth:][:PanelWidth]
				copy(row, src[full*PanelWidth:])
				clear(row[rem:])
			}
		}
		return
	}
	for q := 0; q*PanelWidth < nb; q++ {
		c0 := j0 + q*PanelWidth
		cols := min(PanelWidth, nb-q*PanelWidth)
		d := bp[q*stride : q*stride+kb*PanelWidth]
		if cols == PanelWidth {
			// A whole panel of a transposed B is 16 rows of B laid out as
			// packA lays out 16 rows of A.
			packARows(b[c0*ldb+p0:], ldb, PanelWidth, kb, d)
			continue
		}
		clear(d)
		for x := 0; x < cols; x++ {
			off := (c0+x)*ldb + p0
			for p, v := range b[off : off+kb] {
				d[p*PanelWidth+x] = v
			}
		}
	}
}

// macro runs the microkernels over an mb×seg.n block of C from A packed in
// panels (as packA leaves it) and the B slab seg. Full tiles are written in
// place; the ragged right edge goes through tile so kernels never touch C
// outside the m×n region.
func (be *backend) macro(panels, mb, kb int, alpha float32, ap []float32, seg bBlock, beta float32, c []float32, ldc int, tile []float32) {
	for j := 0; j < seg.n; {
		rem := seg.n - j
		// The widest kernel that fits, or else the narrowest, run into tile.
		wi := len(be.widths) - 1
		for i, w := range be.widths {
			if w <= rem {
				wi = i
				break
			}
		}
		w := be.widths[wi]
		if seg.offs != nil {
			// seg.n is whole panels, so w fits: no ragged tile.
			b := &seg.data[j]
			for t := 0; t < panels; t++ {
				r0, r1 := mb*t/panels, mb*(t+1)/panels
				be.indirect[wi][r1-r0-1](kb, &ap[r0*kb], b, &seg.offs[0], &c[r0*ldc+j], ldc, alpha, beta)
			}
			j += w
			continue
		}
		// Widths only shrink along a row, so a kernel never straddles more
		// panels than it reads: j%PanelWidth is 0 unless w is 8.
		b := &seg.data[j/PanelWidth*seg.stride+j%PanelWidth]
		for t := 0; t < panels; t++ {
			r0, r1 := mb*t/panels, mb*(t+1)/panels
			rows := r1 - r0
			kern := be.kernels[wi][rows-1]
			if w <= rem {
				kern(kb, &ap[r0*kb], b, seg.stride, seg.row, &c[r0*ldc+j], ldc, alpha, beta)
				continue
			}
			kern(kb, &ap[r0*kb], b, seg.stride, seg.row, &tile[0], w, 1, 0)
			for r := 0; r < rows; r++ {
				crow := c[(r0+r)*ldc+j:][:rem]
				trow := tile[r*w:][:rem]
				if beta == 0 {
					for x, v := range trow {
						crow[x] = alpha * v
					}
				} else {
					for x, v := range trow {
						crow[x] = alpha*v + beta*crow[x]
					}
				}
			}
		}
		j += min(w, rem)
	}
}

// strideAlign returns the largest power of two that divides a row stride of
// ld floats in bytes.
func strideAlign(ld int) int {
	bytes := 4 * ld
	return bytes & -bytes
}

// scale sets C = beta*C, writing zeros without reading C when beta is 0.
func scale(m, n int, beta float32, c []float32, ldc int) {
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

// minParallelFlops is the least work worth a goroutine: about 20µs of kernel.
const minParallelFlops = 2 << 20

// gemmParallel splits C into blocks of at least minFlops work for up to
// threads goroutines. Column blocks are multiples of 32 columns so every block
// starts on a packed panel and keeps the widest kernels; row blocks are used
// when C is too narrow.
func (be *backend) gemmParallel(threads, minFlops int, transA bool, m, n, k int, alpha float32, a []float32, lda int, bs bSource, beta float32, c []float32, ldc int) {
	be.gemmParallelA(threads, minFlops, nil, transA, m, n, k, alpha, a, lda, bs, beta, c, ldc)
}

// gemmParallelA is gemmParallel with op(A) packed in pa when it is not nil:
// column blocks take their A blocks from pa; row blocks, which pa's blocks
// do not match, pack their rows from pa's source.
func (be *backend) gemmParallelA(threads, minFlops int, pa *PackedA, transA bool, m, n, k int, alpha float32, a []float32, lda int, bs bSource, beta float32, c []float32, ldc int) {
	parts := min(threads, 2*m*n*k/max(1, minFlops))
	colBlocks, rowBlocks := n/32, m/8
	if colBlocks < parts && rowBlocks < parts {
		parts = max(colBlocks, rowBlocks)
	}
	if parts < 2 {
		be.gemmA(pa, transA, m, n, k, alpha, a, lda, bs, beta, c, ldc)
		return
	}
	// Column blocks share A's packing and read disjoint B; but few of them
	// split unevenly (7 over 2 threads is 4:3), where row blocks, 8 rows
	// apart, split evenly enough.
	byCols := colBlocks >= parts
	if byCols && colBlocks%parts != 0 && colBlocks < 4*parts && rowBlocks >= 4*parts {
		byCols = false
	}
	if byCols {
		Parallel(parts, func(i int) {
			j0, j1 := colBlocks*i/parts*32, colBlocks*(i+1)/parts*32
			if i == parts-1 {
				j1 = n
			}
			be.gemmA(pa, transA, m, j1-j0, k, alpha, a, lda, bs.cols(j0, k), beta, c[j0:], ldc)
		})
		return
	}
	Parallel(parts, func(i int) {
		i0, i1 := m*i/parts, m*(i+1)/parts
		off := i0 * lda
		if transA {
			off = i0
		}
		ai := a[off:]
		be.gemm(transA, i1-i0, n, k, alpha, ai, lda, bs, beta, c[i0*ldc:], ldc)
	})
}
