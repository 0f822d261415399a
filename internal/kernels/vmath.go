package kernels

import "math"

// Vector math for the engine's element-wise kernels: the exponential of a
// softmax row and the erf GELU. Each has a portable Go loop, the reference
// below, and an AVX-512 twin (vmath_amd64.s) that computes the same formulas
// sixteen lanes at a time; results agree to a few ulp, not bit for bit.

// ExpSubSum sets x[i] = e^(x[i]-m) and returns the float32 sum of the new
// values: the exponentials of a softmax row shifted by its maximum m. The
// exponential is accurate to about 2 ulp; arguments below expMin give 0, as
// Expf does (so a -Inf or -3e38 mask gives 0), and NaN is not handled:
// callers check for it first.
func ExpSubSum(x []float32, m float32) float32 {
	var sum float32
	done := 0
	if vmathAVX512 && len(x) >= 16 {
		var acc [16]float32
		done = len(x) &^ 15
		expSubSumAVX512(&x[0], done/16, m, &acc)
		for _, v := range acc {
			sum += v
		}
	}
	for i := done; i < len(x); i++ {
		e := Expf(x[i] - m)
		x[i] = e
		sum += e
	}
	return sum
}

// expMin is the least x whose e^x is a normal float32: ln of the smallest
// normal, rounded up.
const expMin = -87.33654

// Expf approximates e^x in float32 to about 1 ulp (Cephes expf: x = n ln2 +
// r with |r| <= ln2/2, e^r by a degree-7 polynomial, times 2^n). Arguments
// below expMin give 0 rather than a subnormal: subnormals cost the FPU a slow
// path (a softmax of widely spread scores, or of masked ones, ran 65% slower
// with them) and no softmax or GELU needs them. Arguments above 88 are taken
// as 88; NaN gives NaN.
func Expf(x float32) float32 {
	if x != x {
		return x
	}
	if x < expMin {
		return 0
	}
	x = min(x, 88)
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
		round = 12582912 // 1.5 * 2^23: adding it rounds to an integer
	)
	n := x*log2e + round
	n -= round
	r := x - n*ln2hi - n*ln2lo
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	// 2^n in two factors, so that n = -127 (x near -88) stays a normal
	// float in each.
	h := int32(n) / 2
	return p * math.Float32frombits(uint32(h+127)<<23) * math.Float32frombits(uint32(int32(n)-h+127)<<23)
}

// erfSmall returns erf(z) for |z| < 0.75 from its Maclaurin series
// (truncation error below 1e-9 there).
func erfSmall(z float32) float32 {
	z2 := z * z
	p := float32(-1.2290555301717928e-09)
	p = p*z2 + 1.4807192815879219e-08
	p = p*z2 + -1.6365844691234924e-07
	p = p*z2 + 1.6462114365889248e-06
	p = p*z2 + -1.4925650358406252e-05
	p = p*z2 + 0.00012055332981789665
	p = p*z2 + -0.00085483270234508533
	p = p*z2 + 0.0052239776254421879
	p = p*z2 + -0.026866170645131252
	p = p*z2 + 0.11283791670955128
	p = p*z2 + -0.37612638903183754
	p = p*z2 + 1.1283791670955126
	return p * z
}

// erfcPos approximates erfc(x) for x >= 0 with the Chebyshev fit of
// Numerical Recipes (erfcc, relative error below 1.2e-7 in exact arithmetic).
func erfcPos(x float32) float32 {
	t := 1 / (1 + 0.5*x)
	p := float32(0.17087277)
	p = p*t - 0.82215223
	p = p*t + 1.48851587
	p = p*t - 1.13520398
	p = p*t + 0.27886807
	p = p*t - 0.18628806
	p = p*t + 0.09678418
	p = p*t + 0.37409196
	p = p*t + 1.00002368
	p = p*t - 1.26551223
	return t * Expf(p-x*x)
}

// geluThreshold bounds |x/sqrt 2| where erf comes from its series.
const geluThreshold = 0.75

// Gelu sets dst[i] = src[i]/2 * (1 + erf(src[i]/sqrt 2)), the exact (erf)
// GELU; dst and src may be the same slice, and src must be at least as long
// as dst. Near zero erf comes from its series; further out from erfc, as
// x * erfc(|x|/sqrt 2)/2 for x < 0 and x * (1 - erfc(x/sqrt 2)/2) for x > 0,
// so that 1+erf loses nothing to cancellation for negative x. The result is
// within a few ulp of the float64 formula plus |x|*2^-24.
func Gelu(dst, src []float32) {
	src = src[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		geluAVX512(&dst[0], &src[0], done/16)
	}
	for i := done; i < len(dst); i++ {
		dst[i] = gelu1(src[i])
	}
}

// GeluRows is Gelu in place on rows rows of cols values, ld apart (a block
// of a matrix), in one call: Gelu on each row pays its set-up per row.
func GeluRows(x []float32, ld, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	_ = x[(rows-1)*ld+cols-1]
	done := 0
	if vmathAVX512 && cols >= 16 {
		done = cols &^ 15
		geluRowsAVX512(&x[0], &x[0], ld, rows, done/16)
	}
	if done < cols {
		for r := 0; r < rows; r++ {
			row := x[r*ld+done : r*ld+cols]
			for i, v := range row {
				row[i] = gelu1(v)
			}
		}
	}
}

// gelu1 is Gelu of one value.
func gelu1(x float32) float32 {
	z := x * (1 / math.Sqrt2)
	switch {
	case z > -geluThreshold && z < geluThreshold:
		return 0.5 * x * (1 + erfSmall(z))
	case x < 0:
		return x * (0.5 * erfcPos(-z))
	case x > 0:
		return x * (1 - 0.5*erfcPos(z))
	}
	return x // NaN
}

// AddTo sets dst[i] += src[i]; src must be at least as long as dst.
func AddTo(dst, src []float32) {
	src = src[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		addToAVX512(&dst[0], &src[0], done/16)
	}
	for i := done; i < len(dst); i++ {
		dst[i] += src[i]
	}
}

// Scale sets x[i] *= s.
func Scale(x []float32, s float32) {
	done := 0
	if vmathAVX512 && len(x) >= 16 {
		done = len(x) &^ 15
		scaleAVX512(&x[0], done/16, s)
	}
	for i := done; i < len(x); i++ {
		x[i] *= s
	}
}

// Max returns the largest element of x (-Inf for an empty x) and whether x
// holds a NaN, which the maximum then ignores.
func Max(x []float32) (m float32, nan bool) {
	m = float32(math.Inf(-1))
	done := 0
	if vmathAVX512 && len(x) >= 16 {
		var acc [16]float32
		done = len(x) &^ 15
		nan = maxAVX512(&x[0], done/16, &acc)
		for _, v := range acc {
			if v > m {
				m = v
			}
		}
	}
	for _, v := range x[done:] {
		if v > m {
			m = v
		}
		nan = nan || v != v
	}
	return m, nan
}

// AddConst sets x[i] += b.
func AddConst(x []float32, b float32) {
	done := 0
	if vmathAVX512 && len(x) >= 16 {
		done = len(x) &^ 15
		addConstReluAVX512(&x[0], done/16, b, false)
	}
	for i := done; i < len(x); i++ {
		x[i] += b
	}
}

// AddConstRelu sets x[i] = Relu(x[i] + b) (see Relu).
func AddConstRelu(x []float32, b float32) {
	done := 0
	if vmathAVX512 && len(x) >= 16 {
		done = len(x) &^ 15
		addConstReluAVX512(&x[0], done/16, b, true)
	}
	for i := done; i < len(x); i++ {
		x[i] = relu1(x[i] + b)
	}
}

// Relu sets x[i] to 0 where x[i] < 0. NaN and -0 are kept, as in
//
//	if v < 0 {
//		v = 0
//	}
func Relu(x []float32) {
	done := 0
	if vmathAVX512 && len(x) >= 16 {
		done = len(x) &^ 15
		reluAVX512(&x[0], done/16)
	}
	for i := done; i < len(x); i++ {
		x[i] = relu1(x[i])
	}
}

func relu1(v float32) float32 {
	if v < 0 {
		return 0
	}
	return v
}

// MaxZero sets dst[i] = src[i] where src[i] > 0 and 0 elsewhere, NaN and -0
// included: ONNX Relu as the engine's Relu op computes it (Relu, by
// contrast, keeps NaN and -0). src must be at least as long as dst.
func MaxZero(dst, src []float32) {
	src = src[:len(dst)]
	done := 0
	if vmathAVX512 && len(dst) >= 16 {
		done = len(dst) &^ 15
		maxZeroAVX512(&dst[0], &src[0], done/16)
	}
	for i := done; i < len(dst); i++ {
		if v := src[i]; v > 0 {
			dst[i] = v
		} else {
			dst[i] = 0
		}
	}
}

// roundMagic is 1.5*2^52: for |f| < 2^50, f + roundMagic rounds f to an
// integer n and holds 2^51 + n in the low 52 bits of the sum.
const roundMagic = 0x1.8p52

// expTable[j] = 2^(j/expN).
const expN = 32

var expTable [expN]float64

func init() {
	for j := range expTable {
		expTable[j] = math.Exp2(float64(j) / expN)
	}
}

// Exp64 approximates e^x in float64 to about 1e-14 relative for x in
// float32's range: x = (k*expN + j) ln2/expN + r with |r| <= ln2/(2 expN), so
// e^x = 2^k 2^(j/expN) e^r, e^r by its degree-5 Taylor polynomial. Results
// beyond float32's range saturate to 0 or +Inf after rounding. The AVX-512
// loops of Exp and Sigmoid compute exactly this, operation for operation.
func Exp64(x float64) float64 {
	switch {
	case x > 100:
		return math.Inf(1)
	case x < -110:
		return 0
	case x != x:
		return x
	}
	t := x*(expN/math.Ln2) + roundMagic
	m := t - roundMagic // round(x * expN/ln2), exact
	im := int64(math.Float64bits(t)&(1<<52-1)) - 1<<51
	r := x - m*(math.Ln2/expN)
	k, j := im>>5, im&(expN-1) // floor division: j in [0, expN)
	r2 := r * r
	e := r2*(r2*(r*(1.0/120)+1.0/24)+(r*(1.0/6)+0.5)) + r + 1
	return e * expTable[j] * math.Float64frombits(uint64(k+1023)<<52)
}
