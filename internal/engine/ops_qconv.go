package engine

import (
	"fmt"
	"math"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// newConvInteger implements ConvInteger (int32 output) and, with requant
// set, QLinearConv (output requantised to y's zero point's dtype, with an
// optional int32 bias added to the sums first). Each image and group is one
// integer product of the patches, one output position per row of A (the
// activations, unsigned), with the filters as the columns of B (the
// weights, signed): Yᵀ = patchesᵀ·Wᵀ. Padding reads as x's zero point, so
// it adds nothing to the corrected sums (ONNX Runtime does the same).
func newConvInteger(n *Node, requant bool) (Kernel, error) {
	a, err := readWindowAttrs(n)
	if err != nil {
		return nil, err
	}
	group := int(n.Int("group", 1))
	if group < 1 {
		return nil, fmt.Errorf("attribute group: %d, must be >= 1", group)
	}
	ix, iw, izx, izw := 0, 1, 2, 3
	if requant {
		ix, iw, izx, izw = 0, 3, 2, 5
	}
	n.qconv = prepareQConvWeight(n, iw, izw, group)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if requant {
			if err := checkInputs(in, 8, 9); err != nil {
				return nil, err
			}
		} else if err := checkInputs(in, 2, 4); err != nil {
			return nil, err
		}
		x, w := in[ix], in[iw]
		for _, t := range []*tensor.Tensor{x, w} {
			if t.DType != tensor.Uint8 && t.DType != tensor.Int8 {
				return nil, fmt.Errorf("inputs x %s and w %s: %s takes uint8 or int8 operands", x, w, n.OpType)
			}
		}
		r := len(x.Shape)
		if r < 3 || r > 5 || len(w.Shape) != r {
			return nil, fmt.Errorf("inputs x %s and w %s: must be [N C ...] and [M C/group ...] with 1 to 3 spatial axes", tensor.ShapeString(x.Shape), tensor.ShapeString(w.Shape))
		}
		N, C, M := x.Shape[0], x.Shape[1], w.Shape[0]
		if C%group != 0 || w.Shape[1]*group != C || M%group != 0 {
			return nil, fmt.Errorf("input w: shape %s does not fit x's %d channels in %d groups", tensor.ShapeString(w.Shape), C, group)
		}
		k := make([]int64, r-2)
		for i := range k {
			k[i] = int64(w.Shape[2+i])
		}
		if len(a.kernel) > 0 && fmt.Sprint(a.kernel) != fmt.Sprint(k) {
			return nil, fmt.Errorf("attribute kernel_shape %v does not match w's shape %s", a.kernel, tensor.ShapeString(w.Shape))
		}
		outSp, padBegin, _, err := a.geometry(x.Shape[2:], k)
		if err != nil {
			return nil, err
		}
		g := newGeom3(&a, x.Shape[2:], k, outSp, padBegin)
		Cg, Mg := C/group, M/group
		P, K := g.outSize(), Cg*g.kSize()
		zx, err := zpInput(in, izx, "x_zero_point", x.DType, 1)
		if err != nil {
			return nil, err
		}
		if len(zx) != 1 {
			return nil, fmt.Errorf("input x_zero_point: must be one value")
		}
		zw, err := zpInput(in, izw, "w_zero_point", w.DType, M)
		if err != nil {
			return nil, err
		}
		yShape := append([]int{N, M}, outSp...)
		var (
			y          *tensor.Tensor
			yBytes     []byte
			mult       []float32
			bias       []int32
			zy, lo, hi int32
		)
		if requant {
			sx, sw, sy := in[1], in[4], in[6]
			if sx.DType != tensor.Float32 || len(sx.F32) != 1 || sy.DType != tensor.Float32 || len(sy.F32) != 1 {
				return nil, fmt.Errorf("inputs x_scale %s and y_scale %s: must be one float32 each", sx, sy)
			}
			if sw.DType != tensor.Float32 || len(sw.F32) != 1 && len(sw.F32) != M {
				return nil, fmt.Errorf("input w_scale: %s, must be one float32 or %d", sw, M)
			}
			if lo, hi, err = quantRange(in[7].DType); err != nil {
				return nil, fmt.Errorf("input y_zero_point: %w", err)
			}
			zyv, err := intValues(in[7])
			if err != nil || len(zyv) != 1 {
				return nil, fmt.Errorf("input y_zero_point: %s, must be one 8-bit value", in[7])
			}
			zy = zyv[0]
			mult = make([]float32, M)
			for m := range mult {
				s := sw.F32[0]
				if len(sw.F32) > 1 {
					s = sw.F32[m]
				}
				mult[m] = sx.F32[0] * s / sy.F32[0]
			}
			if len(in) > 8 && in[8] != nil {
				b := in[8]
				if b.DType != tensor.Int32 || len(b.Shape) != 1 || b.Shape[0] != M {
					return nil, fmt.Errorf("input B: %s, must be int32[%d]", b, M)
				}
				bias = b.I32
			}
			y = tensor.New(in[7].DType, yShape...)
			yBytes = byteData(y)
		} else {
			y = tensor.New(tensor.Int32, yShape...)
		}
		if y.Len() == 0 || K == 0 {
			return []*tensor.Tensor{y}, nil
		}
		xb, wb := byteData(x), byteData(w)
		patches := make([]byte, P*K)
		wt := make([]byte, K*Mg)
		pad := byte(zx[0])
		for gi := 0; gi < group; gi++ {
			for j := 0; j < Mg; j++ {
				src := wb[(gi*Mg+j)*K : (gi*Mg+j+1)*K]
				for p, v := range src {
					wt[p*Mg+j] = v
				}
			}
			zwg := zw
			if len(zw) > 1 {
				zwg = zw[gi*Mg : (gi+1)*Mg]
			}
			pb := kernels.PackQB(K, Mg, wt, Mg, w.DType == tensor.Uint8)
			for img := 0; img < N; img++ {
				bytePatches(&g, xb[(img*C+gi*Cg)*g.inSize():(img*C+(gi+1)*Cg)*g.inSize()], Cg, pad, patches)
				q := newQmm(P, Mg, K, patches, K, x.DType == tensor.Int8, zx, pb, w.DType == tensor.Uint8, zwg)
				q.run(1, func(i0, rows, j0, cols int, acc []int32) {
					for r := 0; r < rows; r++ {
						for c := 0; c < cols; c++ {
							m := gi*Mg + j0 + c
							at := (img*M+m)*P + i0 + r
							v := acc[r*kernels.QPanel+c]
							if !requant {
								y.I32[at] = v
								continue
							}
							if bias != nil {
								v += bias[m]
							}
							f := float32(v) * mult[m]
							if !(f > float32(lo-zy)) {
								f = float32(lo - zy)
							}
							if f > float32(hi-zy) {
								f = float32(hi - zy)
							}
							yBytes[at] = byte(int32(math.RoundToEven(float64(f))) + zy)
						}
					}
				})
				q.release()
			}
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// bytePatches writes the patches of C planes x (each g.inSize() bytes) as
// rows: row o (an output position) holds the C·kSize inputs its window
// reads, channel-major, pad where the window leaves the input.
func bytePatches(g *geom3, x []byte, C int, pad byte, dst []byte) {
	K := C * g.kSize()
	o := 0
	for od := 0; od < g.out[0]; od++ {
		for oh := 0; oh < g.out[1]; oh++ {
			for ow := 0; ow < g.out[2]; ow++ {
				row := dst[o*K : (o+1)*K]
				t := 0
				for c := 0; c < C; c++ {
					plane := x[c*g.inSize() : (c+1)*g.inSize()]
					for kd := 0; kd < g.k[0]; kd++ {
						id := od*g.s[0] - g.p[0] + kd*g.d[0]
						for kh := 0; kh < g.k[1]; kh++ {
							ih := oh*g.s[1] - g.p[1] + kh*g.d[1]
							for kw := 0; kw < g.k[2]; kw++ {
								iw := ow*g.s[2] - g.p[2] + kw*g.d[2]
								v := pad
								if id >= 0 && id < g.in[0] && ih >= 0 && ih < g.in[1] && iw >= 0 && iw < g.in[2] {
									v = plane[(id*g.in[1]+ih)*g.in[2]+iw]
								}
								row[t] = v
								t++
							}
						}
					}
				}
				o++
			}
		}
	}
}

// qconvWeight is a convolution's constant 8-bit weight [M, C, k...] as the
// left operand of the int8 kernels: M rows of K = C·k… bytes, read as
// unsigned (an int8 weight plus 128), with each row's zero point shifted
// the same way and each row's sum.
type qconvWeight struct {
	m, k int
	a    *kernels.QGemmA
	za   []int32 // per row, shifted
	rs   []int32 // row sums of the stored bytes
	// zaSame says every row has the same zero point (symmetric weights),
	// so the columns' correction is one vector for all rows.
	zaSame bool
}

// prepareQConvWeight prepares a convolution's weight (input iw) with its
// zero point (input izw), one qconvWeight per group, when both are
// constants; nil otherwise.
func prepareQConvWeight(n *Node, iw, izw, group int) []*qconvWeight {
	w := n.Const(iw)
	if w == nil || w.DType != tensor.Int8 && w.DType != tensor.Uint8 || len(w.Shape) < 3 || w.Len() == 0 || group < 1 || w.Shape[0]%group != 0 {
		return nil
	}
	zw := []int32{0}
	if len(n.Inputs) > izw && n.Inputs[izw] != "" {
		z := n.Const(izw)
		if z == nil || z.DType != w.DType {
			return nil
		}
		zw, _ = intValues(z)
	}
	M := w.Shape[0]
	K := w.Len() / M
	if len(zw) != 1 && len(zw) != M {
		return nil
	}
	signed := w.DType == tensor.Int8
	Mg := M / group
	data := byteData(w)
	out := make([]*qconvWeight, group)
	for gi := range out {
		q := &qconvWeight{m: Mg, k: K, za: make([]int32, Mg), rs: make([]int32, Mg), zaSame: true}
		q.a = kernels.PrepareQA(make([]byte, kernels.QGemmASize(Mg, K)), Mg, K, data[gi*Mg*K:(gi+1)*Mg*K], K, signed)
		for i := range q.za {
			z := zw[0]
			if len(zw) > 1 {
				z = zw[gi*Mg+i]
			}
			if signed {
				z += 128
			}
			q.za[i] = z
			q.zaSame = q.zaSame && z == q.za[0]
		}
		kernels.RowSumsU8(q.rs, K, q.a.Rows(), q.a.Stride())
		n.packedBytes += int64(kernels.QGemmASize(Mg, K))
		out[gi] = q
	}
	return out
}

// bytePatchesT writes the patches of planes x (each g.inSize() bytes) as
// the rows of a K×P matrix (K = C·kSize inputs of a window, P output
// positions), the rows of channels [c0, c1): row (c, kd, kh, kw) holds, for
// every output position, the input its window reads there, pad where it
// leaves the input. A row of a stride-1 window is a copy of input rows.
func bytePatchesT(g *geom3, x []byte, c0, c1 int, pad byte, dst []byte) {
	P := g.outSize()
	ow, inW, st := g.out[2], g.in[2], g.s[2]
	row := c0 * g.kSize()
	for c := c0; c < c1; c++ {
		plane := x[c*g.inSize() : (c+1)*g.inSize()]
		for kd := 0; kd < g.k[0]; kd++ {
			for kh := 0; kh < g.k[1]; kh++ {
				for kw := 0; kw < g.k[2]; kw++ {
					out := dst[row*P : (row+1)*P]
					row++
					// The output columns whose input lies inside a row,
					// [lo, hi), are the same for every row of this tap.
					iw0 := -g.p[2] + kw*g.d[2]
					lo := 0
					if iw0 < 0 {
						lo = (-iw0 + st - 1) / st
					}
					hi := 0
					if last := inW - 1 - iw0; last >= 0 {
						hi = min(ow, last/st+1)
					}
					lo = min(lo, hi)
					o := 0
					for od := 0; od < g.out[0]; od++ {
						id := od*g.s[0] - g.p[0] + kd*g.d[0]
						for oh := 0; oh < g.out[1]; oh++ {
							ih := oh*g.s[1] - g.p[1] + kh*g.d[1]
							seg := out[o : o+ow]
							o += ow
							if id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1] {
								for i := range seg {
									seg[i] = pad
								}
								continue
							}
							src := plane[(id*g.in[1]+ih)*inW : (id*g.in[1]+ih+1)*inW]
							for i := range seg[:lo] {
								seg[i] = pad
							}
							if st == 1 {
								copy(seg[lo:hi], src[lo+iw0:hi+iw0])
							} else {
								for j, iw := lo, lo*st+iw0; j < hi; j, iw = j+1, iw+st {
									seg[j] = src[iw]
								}
							}
							for i := hi; i < ow; i++ {
								seg[i] = pad
							}
						}
					}
				}
			}
		}
	}
}
