package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Integer matrix multiply for quantized models (issue 14): A holds unsigned
// bytes (quantized activations), B signed bytes (quantized weights), and C
// their exact int32 products, C[i][j] = Σp A[i][p]·B[p][j], wrapping on
// overflow as the hardware does (ONNX Runtime's MatMulInteger too). Zero
// points are the caller's: Σ(a-za)(b-zb) = Σab - za·Σb - zb·Σa + k·za·zb, with
// B's column sums kept beside its packed copy (PackedQB.ColSums) and A's row
// sums from RowSumsU8.
//
// B is packed once per weight into panels of QPanel columns, four rows of
// it interleaved per column (k-quads), the operand layout of AVX-512 VNNI's
// VPDPBUSD: one instruction multiplies 4 unsigned bytes of A, broadcast, by
// 4 signed bytes of 16 columns and adds the sums to 16 int32 accumulators.
// The layout does not depend on the backend, so it can be stored in a file
// and mapped back (PackedQBFromBytes). The Go kernel computes the same
// products in the same layout and is the reference the tests hold the
// assembly to.

// QPanel is the column width of a packed B panel and of the blocks of C that
// QGemm hands to its sink; qRows is the row count of one microkernel call.
const (
	QPanel = 64
	qRows  = 4
	// qBlockRows is the most rows of one block handed to a sink.
	qBlockRows = 64
)

// PackedQB is a k×n int8 B in VNNI panels (see above).
type PackedQB struct {
	k, n, kq int
	data     []byte
	colSums  []int32
}

// PackedQBSize returns the bytes of a packed k×n B: whole panels of QPanel
// columns, each ceil(k/4) quads of 4·QPanel bytes, then n int32 column sums.
func PackedQBSize(k, n int) int {
	return qPanels(n)*((k+3)/4)*4*QPanel + 4*n
}

func qPanels(n int) int { return (n + QPanel - 1) / QPanel }

// PackQB packs B, k rows of n bytes ldb apart. With unsigned set B's bytes
// are uint8 and are stored as b-128 (the caller then subtracts 128 from its
// zero points); otherwise they are int8.
func PackQB(k, n int, b []byte, ldb int, unsigned bool) *PackedQB {
	buf := make([]byte, PackedQBSize(k, n)) // every byte is written
	PackQBInto(buf, k, n, b, ldb, unsigned)
	pb, err := PackedQBFromBytes(k, n, buf)
	if err != nil {
		panic(err)
	}
	return pb
}

// PackQBInto writes PackQB's layout into dst, PackedQBSize(k, n) bytes.
func PackQBInto(dst []byte, k, n int, b []byte, ldb int, unsigned bool) {
	PackQBPanels(dst, k, n, b, ldb, unsigned, 0, qPanels(n))
}

// PackQBPanels writes panels [p0, p1) of PackQB's layout into dst
// (PackedQBSize(k, n) bytes) and the column sums of their columns: callers
// pack disjoint panel ranges at once, each then multiplying with its own.
func PackQBPanels(dst []byte, k, n int, b []byte, ldb int, unsigned bool, p0, p1 int) {
	if len(dst) != PackedQBSize(k, n) {
		panic(fmt.Sprintf("kernels: PackQBPanels: dst has %d bytes, want %d", len(dst), PackedQBSize(k, n)))
	}
	if p0 < 0 || p1 > qPanels(n) || p0 > p1 {
		panic("kernels: PackQBPanels: panel range out of bounds")
	}
	if k > 0 && n > 0 && len(b) < matrixLen(k, n, ldb) {
		panic("kernels: PackQBPanels: b too short")
	}
	var flip byte
	if unsigned {
		flip = 0x80
	}
	kq := (k + 3) / 4
	tail := dst[qPanels(n)*kq*4*QPanel:]
	var sums [QPanel]int32
	for panel := p0; panel < p1; panel++ {
		j0 := panel * QPanel
		cols := min(QPanel, n-j0)
		out := dst[panel*kq*4*QPanel : (panel+1)*kq*4*QPanel]
		q0 := 0
		clear(sums[:])
		if qPackAVX512 && cols == QPanel && k >= 4 {
			// Whole quads of a whole panel: four rows interleaved at once.
			q0 = k / 4
			qPackPanelAVX512(&out[0], &b[j0], ldb, q0, uint64(flip), &sums[0])
		}
		// Go: the rest (a ragged panel, the last rows short of a quad).
		for q := q0; q < kq; q++ {
			quad := out[q*4*QPanel : (q+1)*4*QPanel]
			for r := 0; r < 4; r++ {
				p := 4*q + r
				if p >= k {
					for c := 0; c < QPanel; c++ {
						quad[4*c+r] = 0
					}
					continue
				}
				row := b[p*ldb+j0 : p*ldb+j0+cols]
				for c, v := range row {
					v ^= flip
					quad[4*c+r] = v
					sums[c] += int32(int8(v))
				}
				for c := cols; c < QPanel; c++ {
					quad[4*c+r] = 0
				}
			}
		}
		for c := 0; c < cols; c++ {
			binary.LittleEndian.PutUint32(tail[4*(j0+c):], uint32(sums[c]))
		}
	}
}

// PackedQBFromBytes views buf, written by PackQBInto for a k×n B, as a
// PackedQB without copying (buf may be a read-only mapping; its column sums
// are read in place when they are 4-aligned, as a page-aligned buffer's
// are, and copied otherwise).
func PackedQBFromBytes(k, n int, buf []byte) (*PackedQB, error) {
	if k < 0 || n < 0 || len(buf) != PackedQBSize(k, n) {
		return nil, fmt.Errorf("packed int8 B of %dx%d needs %d bytes, have %d", k, n, PackedQBSize(k, n), len(buf))
	}
	kq := (k + 3) / 4
	body := qPanels(n) * kq * 4 * QPanel
	return &PackedQB{k: k, n: n, kq: kq, data: buf[:body], colSums: int32sOf(buf[body:], n)}, nil
}

// int32sOf returns n little-endian int32s at b: a view on this
// (little-endian) machine when b is 4-aligned, else a copy.
func int32sOf(b []byte, n int) []int32 {
	if n == 0 {
		return nil
	}
	if uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), n)
	}
	out := make([]int32, n)
	for j := range out {
		out[j] = int32(binary.LittleEndian.Uint32(b[4*j:]))
	}
	return out
}

// K and N return B's dimensions.
func (p *PackedQB) K() int { return p.k }
func (p *PackedQB) N() int { return p.n }

// ColSums returns Σp B[p][j] of the stored (signed) values, one per column.
func (p *PackedQB) ColSums() []int32 { return p.colSums }

// Panels returns the number of QPanel-column panels.
func (p *PackedQB) Panels() int { return qPanels(p.n) }

// QSink receives one finished block of C: rows × cols int32 products for
// rows i0.. and columns j0.., row r at acc[r*QPanel:]. acc is reused after
// the call returns.
type QSink func(i0, rows, j0, cols int, acc []int32)

// QGemmA is an A operand prepared for QGemm: m rows of k unsigned bytes,
// rows padded to a multiple of 4 bytes (zeros) and to a multiple of qRows
// rows, as the microkernels read them.
type QGemmA struct {
	m, k, ld int
	data     []byte
}

// QGemmASize returns the bytes PrepareQA needs for an m×k A.
func QGemmASize(m, k int) int {
	return ((m + qRows - 1) / qRows) * qRows * ((k + 3) / 4 * 4)
}

// PrepareQA copies A, m rows of k bytes lda apart, into buf (QGemmASize
// bytes, or more) in the layout QGemm reads. With signed set A's bytes are
// int8 and are stored as a+128 (the caller adds 128 to its zero point).
func PrepareQA(buf []byte, m, k int, a []byte, lda int, signed bool) *QGemmA {
	ld := (k + 3) / 4 * 4
	size := QGemmASize(m, k)
	if len(buf) < size {
		panic("kernels: PrepareQA: buffer too short")
	}
	if m > 0 && k > 0 && len(a) < matrixLen(m, k, lda) {
		panic("kernels: PrepareQA: a too short")
	}
	buf = buf[:size]
	for i := 0; i < m; i++ {
		row := buf[i*ld : (i+1)*ld]
		copy(row, a[i*lda:i*lda+k])
		clear(row[k:])
		if signed {
			flipBytes(row[:k])
		}
	}
	clear(buf[m*ld:])
	return &QGemmA{m: m, k: k, ld: ld, data: buf}
}

// flipBytes xors every byte of b with 0x80 (int8 <-> uint8 offset by 128),
// eight at a time.
func flipBytes(b []byte) {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		binary.LittleEndian.PutUint64(b[i:], w^0x8080808080808080)
	}
	for ; i < len(b); i++ {
		b[i] ^= 0x80
	}
}

// RowSumsU8 sets sums[i] = Σp a[i*lda+p] over k unsigned bytes, for each of
// len(sums) rows.
func RowSumsU8(sums []int32, k int, a []byte, lda int) {
	for i := range sums {
		row := a[i*lda : i*lda+k]
		var s uint64
		p := 0
		// Eight bytes at a time, in four 16-bit lanes, each adding two
		// bytes a step: 128 steps (at most 65280) fit before one overflows.
		for p+8 <= len(row) {
			var lanes uint64
			for n := 0; n < 128 && p+8 <= len(row); n++ {
				w := binary.LittleEndian.Uint64(row[p:])
				lanes += w&0x00ff00ff00ff00ff + (w>>8)&0x00ff00ff00ff00ff
				p += 8
			}
			s += lanes&0xffff + (lanes>>16)&0xffff + (lanes>>32)&0xffff + lanes>>48
		}
		for ; p < len(row); p++ {
			s += uint64(row[p])
		}
		sums[i] = int32(s)
	}
}

// QGemm computes C = A·B for the column panels [p0, p1) of B (all rows of
// A) and hands C to sink in blocks of at most 64 rows and QPanel columns.
// It runs on the calling goroutine; callers split the panels over threads.
func QGemm(a *QGemmA, b *PackedQB, p0, p1 int, sink QSink) {
	QGemmRows(a, b, 0, a.m, p0, p1, sink)
}

// QGemmRowBlock is the row granularity of QGemmRows' ranges.
const QGemmRowBlock = qBlockRows

// QGemmRows is QGemm for the rows [i0, i1) of A, i0 a multiple of
// QGemmRowBlock and i1 one too or A's row count: callers with fewer panels
// than threads split the rows.
func QGemmRows(a *QGemmA, b *PackedQB, i0, i1, p0, p1 int, sink QSink) {
	if i0 < 0 || i1 > a.m || i0 > i1 || i0%qBlockRows != 0 || i1 != a.m && i1%qBlockRows != 0 {
		panic("kernels: QGemmRows: row range out of bounds")
	}
	if a.k != b.k {
		panic(fmt.Sprintf("kernels: QGemm: A has %d columns, B %d rows", a.k, b.k))
	}
	if p0 < 0 || p1 > b.Panels() || p0 > p1 {
		panic("kernels: QGemm: panel range out of bounds")
	}
	if i0 == i1 || b.n == 0 {
		return
	}
	// The block buffer comes from a pool: a fresh one would be cleared on
	// every call, which costs as much as a small multiply.
	accp := accPool.Get().(*[qBlockRows * QPanel]int32)
	defer accPool.Put(accp)
	acc := accp
	kq := b.kq
	r0 := i0
	for p := p0; p < p1; p++ {
		j0 := p * QPanel
		cols := min(QPanel, b.n-j0)
		panel := b.data[p*kq*4*QPanel : (p+1)*kq*4*QPanel]
		for i0 := r0; i0 < i1; i0 += qBlockRows {
			rows := min(qBlockRows, i1-i0)
			for r := 0; r < rows; r += qRows {
				if kq == 0 {
					clear(acc[r*QPanel : (r+qRows)*QPanel])
					continue
				}
				qKernel(a.data[(i0+r)*a.ld:], a.ld, panel, kq, acc[r*QPanel:])
			}
			sink(i0, rows, j0, cols, acc[:])
		}
	}
}

// accPool holds QGemmRows' block buffers.
var accPool = sync.Pool{New: func() any { return new([qBlockRows * QPanel]int32) }}

// qKernelGo is the reference microkernel: for r < qRows and c < QPanel,
// acc[r*QPanel+c] = Σq Σt a[r*lda+4q+t] · int8(b[q*4*QPanel+4c+t]). Each
// quad of B's bytes is read once for the four rows.
func qKernelGo(a []byte, lda int, b []byte, kq int, acc []int32) {
	var sums [qRows][QPanel]int32
	r0, r1, r2, r3 := a[:4*kq], a[lda:lda+4*kq], a[2*lda:2*lda+4*kq], a[3*lda:3*lda+4*kq]
	for q := 0; q < kq; q++ {
		bq := b[q*4*QPanel : (q+1)*4*QPanel]
		a00, a01, a02, a03 := int32(r0[4*q]), int32(r0[4*q+1]), int32(r0[4*q+2]), int32(r0[4*q+3])
		a10, a11, a12, a13 := int32(r1[4*q]), int32(r1[4*q+1]), int32(r1[4*q+2]), int32(r1[4*q+3])
		a20, a21, a22, a23 := int32(r2[4*q]), int32(r2[4*q+1]), int32(r2[4*q+2]), int32(r2[4*q+3])
		a30, a31, a32, a33 := int32(r3[4*q]), int32(r3[4*q+1]), int32(r3[4*q+2]), int32(r3[4*q+3])
		for c := 0; c < QPanel; c++ {
			bc := bq[4*c : 4*c+4 : 4*c+4]
			b0, b1, b2, b3 := int32(int8(bc[0])), int32(int8(bc[1])), int32(int8(bc[2])), int32(int8(bc[3]))
			sums[0][c] += a00*b0 + a01*b1 + a02*b2 + a03*b3
			sums[1][c] += a10*b0 + a11*b1 + a12*b2 + a13*b3
			sums[2][c] += a20*b0 + a21*b1 + a22*b2 + a23*b3
			sums[3][c] += a30*b0 + a31*b1 + a32*b2 + a33*b3
		}
	}
	for r := range sums {
		copy(acc[r*QPanel:(r+1)*QPanel], sums[r][:])
	}
}

// QDequantBlock is QDequantRow without zero points of B for rows rows of
// cols values: row r of dst at dst[r*ldd:], of acc at acc[r*QPanel:].
func QDequantBlock(dst []float32, ldd int, acc []int32, rows, cols int, colTerm []int32, scale, bias []float32) {
	if rows == 0 || cols == 0 {
		return
	}
	_ = dst[(rows-1)*ldd+cols-1]
	_ = acc[(rows-1)*QPanel+cols-1]
	_, _ = colTerm[:cols], scale[:cols]
	if bias != nil {
		_ = bias[:cols]
	}
	if qDequantAVX512 && cols%16 == 0 {
		var bp *float32
		if bias != nil {
			bp = &bias[0]
		}
		qDequantBlockAVX512(&dst[0], ldd, &acc[0], rows, &colTerm[0], &scale[0], bp, cols/16)
		return
	}
	for r := 0; r < rows; r++ {
		QDequantRow(dst[r*ldd:r*ldd+cols], acc[r*QPanel:], colTerm, nil, 0, scale, bias)
	}
}

// QDequantRows converts a block whose rows are output channels (a
// convolution's, rows = filters, columns = positions): for r < rows and
// j < cols,
//
//	dst[r*ldd+j] = float32(acc[r*QPanel+j] + colTerm[j] + rowTerm[r]) * scale[r] + bias[r]
//
// in float32 with one rounding per operation; bias nil means none.
func QDequantRows(dst []float32, ldd int, acc []int32, rows, cols int, colTerm, rowTerm []int32, scale, bias []float32) {
	if rows == 0 || cols == 0 {
		return
	}
	_ = dst[(rows-1)*ldd+cols-1]
	_ = acc[(rows-1)*QPanel+cols-1]
	_, _, _ = colTerm[:cols], rowTerm[:rows], scale[:rows]
	if bias != nil {
		_ = bias[:rows]
	}
	j0 := 0
	if qDequantAVX512 && cols >= 16 {
		j0 = cols &^ 15
		var bp *float32
		if bias != nil {
			bp = &bias[0]
		}
		qDequantRowsAVX512(&dst[0], ldd, &acc[0], rows, &colTerm[0], &rowTerm[0], &scale[0], bp, j0/16)
	}
	for r := 0; r < rows; r++ {
		for j := j0; j < cols; j++ {
			y := float32(float32(acc[r*QPanel+j]+colTerm[j]+rowTerm[r]) * scale[r])
			if bias != nil {
				y += bias[r]
			}
			dst[r*ldd+j] = y
		}
	}
}

// QRequantRows requantises a block whose rows are output channels to 8
// bits (QLinearConv's output): for r < rows and j < cols,
//
//	f = float32(acc[r*QPanel+j] + colTerm[j] + rowTerm[r]) * mult[r]
//	dst[r*ldd+j] = byte(roundEven(clamp(f, lo-zp, hi-zp)) + zp)
//
// the clamp taking lo-zp for NaN, as Quantize.
func QRequantRows(dst []byte, ldd int, acc []int32, rows, cols int, colTerm, rowTerm []int32, mult []float32, zp, lo, hi int32) {
	if rows == 0 || cols == 0 {
		return
	}
	_ = dst[(rows-1)*ldd+cols-1]
	_ = acc[(rows-1)*QPanel+cols-1]
	_, _, _ = colTerm[:cols], rowTerm[:rows], mult[:rows]
	flo, fhi := float32(lo-zp), float32(hi-zp)
	j0 := 0
	if quantizeAVX512 && cols >= 16 {
		j0 = cols &^ 15
		qRequantRowsAVX512(&dst[0], ldd, &acc[0], rows, &colTerm[0], &rowTerm[0], &mult[0], j0/16, flo, fhi, zp)
	}
	for r := 0; r < rows; r++ {
		for j := j0; j < cols; j++ {
			f := float32(acc[r*QPanel+j]+colTerm[j]+rowTerm[r]) * mult[r]
			if !(f > flo) {
				f = flo
			}
			if f > fhi {
				f = fhi
			}
			dst[r*ldd+j] = byte(int32(math.RoundToEven(float64(f))) + zp)
		}
	}
}

// QRequantCols is QRequantRows for a block whose columns are the output
// channels (QLinearMatMul's): for r < rows and j < cols,
//
//	f = float32(acc[r*QPanel+j] + colTerm[j]) * mult[j]
//	dst[r*ldd+j] = byte(roundEven(clamp(f, lo-zp, hi-zp)) + zp)
func QRequantCols(dst []byte, ldd int, acc []int32, rows, cols int, colTerm []int32, mult []float32, zp, lo, hi int32) {
	if rows == 0 || cols == 0 {
		return
	}
	_ = dst[(rows-1)*ldd+cols-1]
	_ = acc[(rows-1)*QPanel+cols-1]
	_, _ = colTerm[:cols], mult[:cols]
	flo, fhi := float32(lo-zp), float32(hi-zp)
	j0 := 0
	if quantizeAVX512 && cols >= 16 {
		j0 = cols &^ 15
		qRequantColsAVX512(&dst[0], ldd, &acc[0], rows, &colTerm[0], &mult[0], j0/16, flo, fhi, zp)
	}
	for r := 0; r < rows; r++ {
		for j := j0; j < cols; j++ {
			f := float32(acc[r*QPanel+j]+colTerm[j]) * mult[j]
			if !(f > flo) {
				f = flo
			}
			if f > fhi {
				f = fhi
			}
			dst[r*ldd+j] = byte(int32(math.RoundToEven(float64(f))) + zp)
		}
	}
}

// QDequantRow sets, for j < len(dst),
//
//	dst[j] = float32(acc[j] + colTerm[j] - zb[j]*rowTerm) * scale[j] + bias[j]
//
// in float32 with one rounding per operation (the int32 sum wraps); zb nil
// means all zero, bias nil means no bias. It is the epilogue of a quantized
// MatMul whose output is float: the products corrected for the zero points,
// converted, scaled and biased (ONNX Runtime's MatMulIntegerToFloat).
func QDequantRow(dst []float32, acc, colTerm, zb []int32, rowTerm int32, scale, bias []float32) {
	n := len(dst)
	_, _, _ = acc[:n], colTerm[:n], scale[:n]
	if zb != nil {
		_ = zb[:n]
	}
	if bias != nil {
		_ = bias[:n]
	}
	j := 0
	if qDequantAVX512 && zb == nil && n >= 16 {
		j = n &^ 15
		var bp *float32
		if bias != nil {
			bp = &bias[0]
		}
		qDequantBlockAVX512(&dst[0], 0, &acc[0], 1, &colTerm[0], &scale[0], bp, j/16)
	}
	for ; j < n; j++ {
		v := acc[j] + colTerm[j]
		if zb != nil {
			v -= zb[j] * rowTerm
		}
		y := float32(float32(v) * scale[j]) // rounded, never fused with the add
		if bias != nil {
			y += bias[j]
		}
		dst[j] = y
	}
}

// Rows returns the prepared rows (Stride bytes apart, at least m of them).
func (a *QGemmA) Rows() []byte { return a.data }

// Stride returns the distance in bytes between prepared rows.
func (a *QGemmA) Stride() int { return a.ld }
