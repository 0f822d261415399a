package kernels

import "math"

// Float16 weights (issue 13): a model converted to float16 keeps its
// weights as IEEE half-precision values in the mapped file, and the matrix
// kernels widen them where they pack B, so the weights take half the
// memory of float32 and every process maps the same pages.

// HalfToFloat32 sets dst[i] to the float32 value of the IEEE binary16 value
// src[i] (exact: every half is a float32) for i < len(dst).
func HalfToFloat32(dst []float32, src []uint16) {
	src = src[:len(dst)]
	done := 0
	if halfAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		halfToFloatAVX512(&dst[0], &src[0], done/16)
	} else if halfF16C && len(dst) >= 8 {
		done = len(dst) &^ 7
		halfToFloatF16C(&dst[0], &src[0], done/8)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = halfToFloat(src[i])
	}
}

// halfToFloat widens one binary16 value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
