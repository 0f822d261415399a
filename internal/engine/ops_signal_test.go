package engine

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"
)

// TestFFT checks fft (radix 2 and Bluestein) against the defining sum, for
// every length up to 70 and powers of two to 1024, both directions.
func TestFFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := []int{128, 256, 400, 512, 1000, 1024}
	for n := 1; n <= 70; n++ {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		for _, inverse := range []bool{false, true} {
			x := make([]complex128, n)
			for i := range x {
				x[i] = complex(rng.Float64()*2-1, rng.Float64()*2-1)
			}
			want := make([]complex128, n)
			sign := -1.0
			if inverse {
				sign = 1
			}
			for k := range n {
				for j := range n {
					want[k] += x[j] * cmplx.Rect(1, sign*2*math.Pi*float64((j*k)%n)/float64(n))
				}
			}
			got := append([]complex128(nil), x...)
			fft(got, inverse)
			for k := range n {
				if d := cmplx.Abs(got[k] - want[k]); d > 1e-9*float64(n) {
					t.Fatalf("n %d inverse %v: bin %d is %v, want %v", n, inverse, k, got[k], want[k])
				}
			}
		}
	}
}
