package engine

import (
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
					for r := i0; r < i0+nr; r++ {
						seg := y.F32[r*N+j0 : r*N+j0+cols]
						switch act {
						case actRelu:
							for j, v := range seg {
								if v < 0 {
									seg[j] = 0
								}
							}
						case actGelu:
							geluInto(seg, seg)
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
