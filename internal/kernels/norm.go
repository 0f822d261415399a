package kernels

import "math"

// MeanInvStd returns the mean of x and 1/sqrt(variance + eps), both in
// float64: the sum of x, then the sum of squared deviations from the mean (a
// second pass, for accuracy), each accumulated in float64 in the order the
// backend likes (lanes of eight, then across lanes), so results may differ
// from a sequential loop in the last bits of the float64 values.
func MeanInvStd(x []float32, eps float64) (mean, invStd float64) {
	if len(x) == 0 {
		return 0, 1 / math.Sqrt(eps)
	}
	done := 0
	if vmathAVX512 {
		done = len(x) &^ 15
	}
	mean = SumF64(x) / float64(len(x))
	var ss float64
	if done > 0 {
		var acc [8]float64
		sqDevF64AVX512(&x[0], done/16, mean, &acc)
		ss = sum8(&acc)
	}
	for _, v := range x[done:] {
		d := float64(v) - mean
		ss += d * d
	}
	return mean, 1 / math.Sqrt(ss/float64(len(x))+eps)
}

// SumF64 returns the sum of x accumulated in float64: in lanes of eight,
// then across lanes, on AVX-512, so it may differ from a sequential loop in
// the last bits of the float64 value.
func SumF64(x []float32) float64 {
	done := 0
	var s float64
	if vmathAVX512 && len(x) >= 16 {
		var acc [8]float64
		done = len(x) &^ 15
		sumF64AVX512(&x[0], done/16, &acc)
		s = sum8(&acc)
	}
	for _, v := range x[done:] {
		s += float64(v)
	}
	return s
}

func sum8(acc *[8]float64) float64 {
	return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

// Normalize sets dst[i] = float32((float64(src[i])-mean)*invStd) * scale[i],
// plus bias[i] when bias is not nil: LayerNormalization's last step, the
// same operations in the same precisions on every backend, so results are
// bit for bit those of this loop. src, scale and bias must be at least as
// long as dst.
func Normalize(dst, src, scale, bias []float32, mean, invStd float64) {
	src, scale = src[:len(dst)], scale[:len(dst)]
	if bias != nil {
		bias = bias[:len(dst)]
	}
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		var b *float32
		if bias != nil {
			b = &bias[0]
		}
		normalizeAVX512(&dst[0], &src[0], &scale[0], b, done/16, mean, invStd)
	}
	for i := done; i < len(dst); i++ {
		r := float32((float64(src[i]) - mean) * invStd)
		r *= scale[i]
		if bias != nil {
			r += bias[i]
		}
		dst[i] = r
	}
}
