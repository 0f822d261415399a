package bench

import (
	"math/rand/v2"
	"time"

	"github.com/spindleml/spindle/internal/kernels"
)

// GemmShape is one C[m×n] = A[m×k]·B[k×n] multiply.
type GemmShape struct{ M, K, N int }

// BERTGemmShapes are issue 4's SGEMM shapes: M in {16, 128} (tokens), K and
// N in {384, 768, 1536, 3072} (BERT-small and BERT-base widths).
func BERTGemmShapes() []GemmShape {
	var out []GemmShape
	for _, m := range []int{16, 128} {
		for _, k := range []int{384, 768, 1536, 3072} {
			for _, n := range []int{384, 768, 1536, 3072} {
				out = append(out, GemmShape{m, k, n})
			}
		}
	}
	return out
}

// GemmResult is the speed of one shape in GFLOPS (2mnk per multiply),
// with B as a plain row-major matrix and prepacked (kernels.PackB, as the
// engine holds weights).
type GemmResult struct {
	GemmShape
	Plain  float64 `json:"gflops"`
	Packed float64 `json:"gflops_packed"`
}

// Sgemm times kernels.Sgemm on one shape for about budget per variant, on
// the calling goroutine, and returns the best of five rounds of each.
func Sgemm(s GemmShape, budget time.Duration) GemmResult {
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = rng.Float32()
		}
		return v
	}
	a, b, c := fill(s.M*s.K), fill(s.K*s.N), make([]float32, s.M*s.N)
	pb := kernels.PackB(false, s.K, s.N, b, s.N)
	flops := 2 * float64(s.M) * float64(s.N) * float64(s.K)
	best := func(f func()) float64 {
		f() // warm caches and pools
		top := 0.0
		for range 5 {
			n := 0
			t0 := time.Now()
			for time.Since(t0) < budget/5 || n == 0 {
				f()
				n++
			}
			top = max(top, flops*float64(n)/time.Since(t0).Seconds()/1e9)
		}
		return top
	}
	return GemmResult{
		GemmShape: s,
		Plain:     best(func() { kernels.Sgemm(false, false, s.M, s.N, s.K, 1, a, s.K, b, s.N, 0, c, s.N) }),
		Packed:    best(func() { kernels.SgemmPacked(false, s.M, s.N, s.K, 1, a, s.K, pb, 0, c, s.N) }),
	}
}
