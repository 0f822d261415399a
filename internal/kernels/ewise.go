package kernels

import "math"

// Elementwise float32 primitives the engine's fused elementwise programs run
// over blocks of a few thousand elements. Each computes exactly what the
// reference loop in its comment does (IEEE float32 arithmetic, one rounding
// per operation), so a fused program gives the bits the ops it replaced
// gave. dst may alias an operand. Every slice must be at least len(dst) long.

// AddVV sets dst[i] = a[i] + b[i].
func AddVV(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		addVVAVX512(&dst[0], &a[0], &b[0], done/16)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = a[i] + b[i]
	}
}

// SubVV sets dst[i] = a[i] - b[i].
func SubVV(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		subVVAVX512(&dst[0], &a[0], &b[0], done/16)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = a[i] - b[i]
	}
}

// MulVV sets dst[i] = a[i] * b[i].
func MulVV(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		mulVVAVX512(&dst[0], &a[0], &b[0], done/16)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = a[i] * b[i]
	}
}

// DivVV sets dst[i] = a[i] / b[i].
func DivVV(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		divVVAVX512(&dst[0], &a[0], &b[0], done/16)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = a[i] / b[i]
	}
}

// AddVS sets dst[i] = a[i] + s.
func AddVS(dst, a []float32, s float32) {
	a = a[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		addVSAVX512(&dst[0], &a[0], done/16, s)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = a[i] + s
	}
}

// MulVS sets dst[i] = a[i] * s.
func MulVS(dst, a []float32, s float32) {
	a = a[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		mulVSAVX512(&dst[0], &a[0], done/16, s)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = a[i] * s
	}
}

// DivVS sets dst[i] = a[i] / s (a division, not a multiplication by 1/s,
// which rounds differently).
func DivVS(dst, a []float32, s float32) {
	a = a[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		divVSAVX512(&dst[0], &a[0], done/16, s)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = a[i] / s
	}
}

// Clip sets dst[i] to a[i] limited to [lo, hi]: lo when below, hi when above
// (so hi when lo > hi), NaN staying NaN, as ONNX's Clip.
func Clip(dst, a []float32, lo, hi float32) {
	a = a[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		clipAVX512(&dst[0], &a[0], done/16, lo, hi)
	}
	for i := done; i < len(dst); i++ {
		v := a[i]
		if v < lo {
			v = lo
		}
		if v > hi {
			v = hi
		}
		dst[i] = v
	}
}

// HardSigmoid sets dst[i] = float32(max(0, min(1, alpha*x + beta))) for
// x = float64(a[i]): computed in float64 and rounded once, NaN staying NaN.
func HardSigmoid(dst, a []float32, alpha, beta float64) {
	a = a[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		hardSigmoidAVX512(&dst[0], &a[0], done/16, alpha, beta)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = float32(max(0, min(1, alpha*float64(a[i])+beta)))
	}
}

// HardSwish sets dst[i] = float32(x * max(0, min(1, x/6 + 0.5))) for
// x = float64(a[i]): computed in float64 and rounded once.
func HardSwish(dst, a []float32) {
	a = a[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		hardSwishAVX512(&dst[0], &a[0], done/16)
	}
	for i := done; i < len(dst); i++ {
		x := float64(a[i])
		dst[i] = float32(x * max(0, min(1, x/6+0.5)))
	}
}

// Axpy sets dst[i] += a*src[i] as a fused multiply-add, the accumulation of
// direct convolutions. The AVX-512 loop rounds once, in float32; the Go
// loop rounds a float64 fused multiply-add to float32, which can differ from
// it by one ulp when the float64 result lies exactly between two float32s.
func Axpy(dst, src []float32, a float32) {
	src = src[:len(dst)]
	if vmathAVX512 {
		if len(dst) > 0 {
			axpyAVX512(&dst[0], &src[0], len(dst), a)
		}
		return
	}
	for i := range dst {
		dst[i] = float32(math.FMA(float64(a), float64(src[i]), float64(dst[i])))
	}
}

// DepthwiseRow sets dst[j] = bias + sum over t of w[t]*base[offs[t]+j], for
// every j < len(dst): one output row of a depthwise convolution, each tap a
// weight and where in base the input it multiplies starts. Every
// base[offs[t]:] must hold len(dst) floats, and w len(offs). The AVX-512
// loop keeps the sums of 64 outputs in registers over all taps (fused
// multiply-adds, in tap order); the Go loop sums the same products in the
// same order, rounding each multiply-add in float64 then to float32.
func DepthwiseRow(dst, base []float32, offs []int, w []float32, bias float32) {
	if len(dst) == 0 {
		return
	}
	w = w[:len(offs)]
	for _, o := range offs {
		_ = base[o+len(dst)-1] // the assembly reads len(dst) floats from each
	}
	if vmathAVX512 && len(offs) > 0 {
		dwRowAVX512(&dst[0], len(dst), &base[0], &offs[0], &w[0], len(offs), bias)
		return
	}
	for j := range dst {
		acc := bias
		for t, o := range offs {
			acc = float32(math.FMA(float64(w[t]), float64(base[o+j]), float64(acc)))
		}
		dst[j] = acc
	}
}

// CopyRows copies rows rows of cols floats from src, whose rows start
// srcStride floats apart, to dst, whose rows start dstStride floats apart:
// one call for a plane's worth of short rows (a depthwise convolution's
// padding and unpadding of a 7x7 map), where copy would be called per row.
// dst and src must not overlap.
func CopyRows(dst []float32, dstStride int, src []float32, srcStride int, rows, cols int) {
	if rows <= 0 || cols <= 0 {
		return
	}
	_ = dst[(rows-1)*dstStride+cols-1]
	_ = src[(rows-1)*srcStride+cols-1]
	if vmathAVX512 {
		copyRowsAVX512(&dst[0], dstStride, &src[0], srcStride, rows, cols)
		return
	}
	for r := range rows {
		copy(dst[r*dstStride:r*dstStride+cols], src[r*srcStride:r*srcStride+cols])
	}
}

// Exp sets dst[i] = float32(Exp64(float64(a[i]))).
func Exp(dst, a []float32) {
	a = a[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		expAVX512(&dst[0], &a[0], done/16)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = float32(Exp64(float64(a[i])))
	}
}

// Sigmoid sets dst[i] = 1/(1+e^-a[i]) in float32, to about 3 ulp: with e =
// Expf(-|a[i]|), 1/(1+e) for a[i] >= 0 and e/(1+e) below, so neither side
// overflows. Results below the smallest normal float32 (a[i] < -87.3) are 0,
// as Expf's are; NaN stays NaN. The AVX-512 loop computes the same formula
// with fused multiply-adds in the exponential: the two agree to an ulp or
// two, not bit for bit, so where it runs it computes every element, the
// last len%16 through a 16-float buffer: an element's result does not depend
// on where in a slice it lies (a fused elementwise program computes a block
// of a channel's constants as one number, the unfused op as a vector).
func Sigmoid(dst, a []float32) {
	a = a[:len(dst)]
	if !vmathAVX512 {
		for i, v := range a {
			dst[i] = Sigmoidf(v)
		}
		return
	}
	done := len(dst) &^ 15
	if done > 0 {
		sigmoidAVX512(&dst[0], &a[0], done/16)
	}
	if done < len(dst) {
		var buf [16]float32
		copy(buf[:], a[done:])
		sigmoidAVX512(&buf[0], &buf[0], 1)
		copy(dst[done:], buf[:])
	}
}

// Sigmoidf is Sigmoid of one float.
func Sigmoidf(x float32) float32 {
	if x != x {
		return x
	}
	e := Expf(-float32(math.Abs(float64(x))))
	if x < 0 {
		return e / (1 + e)
	}
	return 1 / (1 + e)
}
