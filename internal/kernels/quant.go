package kernels

import "math"

// Quantization primitives of the int8 ops: the range of a float tensor
// (DynamicQuantizeLinear's scale) and the rounding of floats to bytes. They
// compute what ONNX Runtime's CPU provider computes (MLAS): the division by
// the scale in float32, clamped to the integer range less the zero point,
// rounded half to even, then the zero point added.

// MinMax returns the smallest and largest of x, ignoring NaNs; (0, 0) for an
// empty x or one of NaNs only.
func MinMax(x []float32) (lo, hi float32) {
	lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
	i := 0
	if minMaxAVX512 && len(x) >= 16 {
		i = len(x) &^ 15
		lo, hi = minMaxF32AVX512(&x[0], i/16)
	}
	for _, v := range x[i:] {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	if lo > hi {
		return 0, 0
	}
	return lo, hi
}

// Quantize sets dst[i] to the byte of clamp(roundEven(x[i]/scale) + zp, qmin,
// qmax): the low byte of that int32, so qmin, qmax of 0, 255 write uint8 and
// -128, 127 write int8. The quotient is clamped to [qmin-zp, qmax-zp] before
// it is rounded (NaN becomes qmin-zp).
func Quantize(dst []byte, x []float32, scale float32, zp, qmin, qmax int32) {
	n := len(dst)
	_ = x[:n]
	lo, hi := float32(qmin-zp), float32(qmax-zp)
	i := 0
	if quantizeAVX512 && n >= 16 {
		i = n &^ 15
		quantizeAVX512F32(&dst[0], &x[0], i/16, scale, lo, hi, zp)
	}
	for ; i < n; i++ {
		v := x[i] / scale
		// MLAS's order: max then min, NaN taking the bound.
		if !(v > lo) {
			v = lo
		}
		if v > hi {
			v = hi
		}
		dst[i] = byte(int32(math.RoundToEven(float64(v))) + zp)
	}
}
