package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMeanInvStd checks MeanInvStd against sequential float64 loops (to a
// float64 rounding error) at lengths around the 16-float blocks, on rows
// with a large common offset where a one-pass variance would lose digits.
func TestMeanInvStd(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{0, 1, 15, 16, 17, 384, 771} {
		for _, offset := range []float64{0, 1e4} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(offset + rng.NormFloat64())
			}
			var s float64
			for _, v := range x {
				s += float64(v)
			}
			wantMean := 0.0
			if n > 0 {
				wantMean = s / float64(n)
			}
			var ss float64
			for _, v := range x {
				d := float64(v) - wantMean
				ss += d * d
			}
			wantInv := 1 / math.Sqrt(1e-5)
			if n > 0 {
				wantInv = 1 / math.Sqrt(ss/float64(n)+1e-5)
			}
			mean, inv := MeanInvStd(x, 1e-5)
			if math.Abs(mean-wantMean) > 1e-12*(1+math.Abs(wantMean)) || math.Abs(inv-wantInv) > 1e-12*wantInv {
				t.Errorf("n=%d offset=%g: MeanInvStd = %v, %v; want %v, %v", n, offset, mean, inv, wantMean, wantInv)
			}
		}
	}
}

// TestNormalize checks Normalize bit for bit against its reference loop, with
// and without bias, at lengths around the 16-float blocks, with a guard band
// after dst.
func TestNormalize(t *testing.T) {
	const guard = -777
	rng := rand.New(rand.NewPCG(15, 16))
	for _, n := range []int{0, 1, 15, 16, 17, 40, 384} {
		src, scale, bias := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range src {
			src[i] = float32(rng.NormFloat64() * 3)
			scale[i] = float32(rng.NormFloat64())
			bias[i] = float32(rng.NormFloat64())
		}
		mean, inv := 0.3125, 1.7
		for _, b := range [][]float32{nil, bias} {
			buf := make([]float32, n+3)
			for i := range buf {
				buf[i] = guard
			}
			dst := buf[:n]
			Normalize(dst, src, scale, b, mean, inv)
			for i := range dst {
				want := float32((float64(src[i])-mean)*inv) * scale[i]
				if b != nil {
					want += b[i]
				}
				if math.Float32bits(dst[i]) != math.Float32bits(want) {
					t.Fatalf("n=%d bias=%t: dst[%d] = %v, want %v", n, b != nil, i, dst[i], want)
				}
			}
			for i := n; i < len(buf); i++ {
				if buf[i] != guard {
					t.Fatalf("n=%d bias=%t: guard element %d overwritten", n, b != nil, i)
				}
			}
		}
	}
}
