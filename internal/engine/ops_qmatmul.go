package engine

import (
	"fmt"
	"math"
	"sync"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// qmm is one integer matrix product Σp (a[i][p]-za[i])·(b[p][j]-zb[j]) of an
// m×k A and a packed k×n B, with the zero points shifted as the kernels store
// the operands (A as unsigned, B as signed bytes).
type qmm struct {
	m, n, k int
	a       *kernels.QGemmA
	b       *kernels.PackedQB
	za      []int32 // len 1 (per tensor) or m (per row), shifted
	zb      []int32 // len n, shifted; nil when all zero
	// cs[j] = colsum[j] - k*zb[j]: the corrected product is
	// acc - za[i]*cs[j] - zb[j]*rs[i].
	cs  []int32
	rs  []int32 // A's row sums, when zb is set
	buf *[]byte // A's prepared copy, from bytePool
}

// bytePool holds the buffers of prepared A operands: one per concurrent
// multiply, reused (a transformer prepares hundreds of kilobytes per
// multiply, which fresh would cost clearing and page faults).
var bytePool sync.Pool

// getBytes returns a buffer of n bytes (contents undefined).
func getBytes(n int) *[]byte {
	if b, ok := bytePool.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n)
	return &b
}

// release gives A's prepared copy back; q must not run afterwards.
func (q *qmm) release() {
	if q.buf != nil {
		bytePool.Put(q.buf)
		q.buf, q.a = nil, nil
	}
}

// newQmm prepares A (m rows of k bytes, lda apart) for B. za has 1 or m raw
// zero points, zb 1 or n; signedA and unsignedB say how the operands'
// bytes are to be read, and how the zero points shift with them.
//
// The caller gives A's prepared copy back with q.release when done.
func newQmm(m, n, k int, a []byte, lda int, signedA bool, za []int32, b *kernels.PackedQB, unsignedB bool, zb []int32) *qmm {
	q := &qmm{m: m, n: n, k: k, b: b}
	q.buf = getBytes(kernels.QGemmASize(m, k))
	q.a = kernels.PrepareQA(*q.buf, m, k, a, lda, signedA)
	q.za = make([]int32, len(za))
	for i, v := range za {
		if signedA {
			v += 128
		}
		q.za[i] = v
	}
	nonzero := false
	zbs := make([]int32, n)
	for j := range zbs {
		v := zb[0]
		if len(zb) > 1 {
			v = zb[j]
		}
		if unsignedB {
			v -= 128
		}
		zbs[j] = v
		nonzero = nonzero || v != 0
	}
	q.cs = make([]int32, n)
	copy(q.cs, b.ColSums())
	if nonzero {
		q.zb = zbs
		for j := range q.cs {
			q.cs[j] -= int32(k) * zbs[j]
		}
		q.rs = make([]int32, m)
		if k > 0 {
			kernels.RowSumsU8(q.rs, k, q.a.Rows(), q.a.Stride())
		}
	}
	return q
}

// zaOf returns row i's shifted zero point.
func (q *qmm) zaOf(i int) int32 {
	if len(q.za) == 1 {
		return q.za[0]
	}
	return q.za[i]
}

// run computes the product over threads and hands each block to sink with
// the values corrected for the zero points (acc is overwritten in place).
func (q *qmm) run(threads int, sink kernels.QSink) {
	panels := q.b.Panels()
	parallelFor(threads, panels, 1, func(lo, hi int) {
		kernels.QGemm(q.a, q.b, lo, hi, func(i0, rows, j0, cols int, acc []int32) {
			for r := 0; r < rows; r++ {
				za := q.zaOf(i0 + r)
				row := acc[r*kernels.QPanel : r*kernels.QPanel+cols]
				cs := q.cs[j0 : j0+cols]
				if q.zb == nil {
					for c := range row {
						row[c] -= za * cs[c]
					}
					continue
				}
				rs, zb := q.rs[i0+r], q.zb[j0:j0+cols]
				for c := range row {
					row[c] -= za*cs[c] + zb[c]*rs
				}
			}
			sink(i0, rows, j0, cols, acc)
		})
	})
}

// zpInput reads optional zero point input i (an 8-bit tensor of the
// operand's dtype, or int32 where allowed) as 1 or want int32 values.
func zpInput(in []*tensor.Tensor, i int, name string, dt tensor.DType, want int) ([]int32, error) {
	if i >= len(in) || in[i] == nil {
		return []int32{0}, nil
	}
	z := in[i]
	if z.DType != dt {
		return nil, fmt.Errorf("input %s: dtype %s, the operand is %s", name, z.DType, dt)
	}
	v, err := intValues(z)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	if len(v) != 1 && len(v) != want {
		return nil, fmt.Errorf("input %s: %d elements, must be 1 or %d", name, len(v), want)
	}
	return v, nil
}

// packQWeight packs a constant 2-D 8-bit B (input i) once at compile time,
// or views its prepacked companion in a compiled artifact. The int8 kernels
// have no path that reads B in place, so even an artifact without the
// companion gets a private packed copy (a quarter of a float32 one).
func (n *Node) packQWeight(i int) *kernels.PackedQB {
	b := n.Const(i)
	if b == nil || len(b.Shape) != 2 || b.DType != tensor.Uint8 && b.DType != tensor.Int8 {
		return nil
	}
	k, cols := b.Shape[0], b.Shape[1]
	if k == 0 || cols == 0 {
		return nil
	}
	if i < len(n.Inputs) && n.weights != nil {
		// A compiled artifact's companion, mapped and shared.
		if t, ok := n.weights[n.Inputs[i]+PackedQSuffix]; ok && t.DType == tensor.Uint8 {
			if pb, err := kernels.PackedQBFromBytes(k, cols, t.U8); err == nil {
				return pb
			}
		}
	}
	pb := kernels.PackQB(k, cols, byteData(b), cols, b.DType == tensor.Uint8)
	n.packedBytes += int64(kernels.PackedQBSize(k, cols))
	return pb
}

// newMatMulInteger implements MatMulInteger (int32 output) and, with
// requant set, QLinearMatMul (output requantised to the dtype of y's zero
// point): numpy.matmul of 8-bit operands with batch axes broadcast.
func newMatMulInteger(n *Node, requant bool) (Kernel, error) {
	ia, ib, iza, izb := 0, 1, 2, 3
	if requant {
		ia, ib, iza, izb = 0, 3, 2, 5
	}
	pb := n.packQWeight(ib)
	constB := n.Const(ib)
	n.qpacked = pb
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if requant {
			if err := checkInputs(in, 8, 8); err != nil {
				return nil, err
			}
		} else if err := checkInputs(in, 2, 4); err != nil {
			return nil, err
		}
		A, B := in[ia], in[ib]
		for _, t := range []*tensor.Tensor{A, B} {
			if t.DType != tensor.Uint8 && t.DType != tensor.Int8 {
				return nil, fmt.Errorf("inputs A %s and B %s: %s takes uint8 or int8 operands", A, B, n.OpType)
			}
		}
		mg, err := matMulGeometry(A.Shape, B.Shape)
		if err != nil {
			return nil, err
		}
		M, K, N, ba, bb, batch, shape := mg.M, mg.K, mg.N, mg.batchA, mg.batchB, mg.batch, mg.out
		za, err := zpInput(in, iza, "a_zero_point", A.DType, M)
		if err != nil {
			return nil, err
		}
		zb, err := zpInput(in, izb, "b_zero_point", B.DType, N)
		if err != nil {
			return nil, err
		}
		var (
			y        *tensor.Tensor
			mult     []float32
			zy, ylo  int32
			yhi      int32
			yBytes   []byte
			requantF func(dst []byte, acc []int32, mult []float32)
		)
		if requant {
			sa, sb, sy := in[1], in[4], in[6]
			if sa.DType != tensor.Float32 || len(sa.F32) != 1 {
				return nil, fmt.Errorf("input a_scale: %s, must be one float32", sa)
			}
			if sy.DType != tensor.Float32 || len(sy.F32) != 1 {
				return nil, fmt.Errorf("input y_scale: %s, must be one float32", sy)
			}
			if sb.DType != tensor.Float32 || len(sb.F32) != 1 && len(sb.F32) != N {
				return nil, fmt.Errorf("input b_scale: %s, must be one float32 or %d", sb, N)
			}
			zyT := in[7]
			if ylo, yhi, err = quantRange(zyT.DType); err != nil {
				return nil, fmt.Errorf("input y_zero_point: %w", err)
			}
			zyv, err := intValues(zyT)
			if err != nil || len(zyv) != 1 {
				return nil, fmt.Errorf("input y_zero_point: %s, must be one 8-bit value", zyT)
			}
			zy = zyv[0]
			mult = make([]float32, N)
			for j := range mult {
				s := sb.F32[0]
				if len(sb.F32) > 1 {
					s = sb.F32[j]
				}
				mult[j] = sa.F32[0] * s / sy.F32[0]
			}
			y = tensor.New(zyT.DType, shape...)
			yBytes = byteData(y)
			lo, hi := float32(ylo-zy), float32(yhi-zy)
			requantF = func(dst []byte, acc []int32, mult []float32) {
				for c, v := range acc {
					f := float32(v) * mult[c]
					if !(f > lo) {
						f = lo
					}
					if f > hi {
						f = hi
					}
					dst[c] = byte(int32(math.RoundToEven(float64(f))) + zy)
				}
			}
		} else {
			y = tensor.New(tensor.Int32, shape...)
		}
		if y.Len() == 0 {
			return []*tensor.Tensor{y}, nil
		}
		sa, sb := broadcastStrides(ba, batch), broadcastStrides(bb, batch)
		nb := tensor.NumElements(batch)
		aData, bData := byteData(A), byteData(B)
		for bi := 0; bi < nb; bi++ {
			offA, offB, rem := 0, 0, bi
			for d := len(batch) - 1; d >= 0; d-- {
				v := rem % batch[d]
				rem /= batch[d]
				offA += v * sa[d]
				offB += v * sb[d]
			}
			p := pb
			if p == nil || B != constB {
				p = kernels.PackQB(K, N, bData[offB*K*N:(offB+1)*K*N], N, B.DType == tensor.Uint8)
			}
			q := newQmm(M, N, K, aData[offA*M*K:(offA+1)*M*K], K, A.DType == tensor.Int8, za, p, B.DType == tensor.Uint8, zb)
			base := bi * M * N
			q.run(threads, func(i0, rows, j0, cols int, acc []int32) {
				for r := 0; r < rows; r++ {
					row := acc[r*kernels.QPanel : r*kernels.QPanel+cols]
					at := base + (i0+r)*N + j0
					if requant {
						requantF(yBytes[at:at+cols], row, mult[j0:j0+cols])
					} else {
						copy(y.I32[at:at+cols], row)
					}
				}
			})
			q.release()
		}
		return []*tensor.Tensor{y}, nil
	}
	n.fresh = true
	return withThreads(n.threaded, 1), nil
}
