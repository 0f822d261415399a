package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// bertShapes are the dense layers of BERT-small (hidden 384, FFN 1536) and
// BERT-base (768, 3072) as k×n weights: QKV/output projections, FFN up, FFN down.
var bertShapes = [][2]int{
	{384, 384}, {384, 1536}, {1536, 384},
	{768, 768}, {768, 3072}, {3072, 768},
}

// naiveSgemm is the reference loop in its cache-friendlier i-p-j order, as a
// plain Go engine would write it, for scale in the benchmarks.
func naiveSgemm(m, n, k int, a, b, c []float32) {
	for i := 0; i < m; i++ {
		crow := c[i*n : i*n+n]
		clear(crow)
		for p := 0; p < k; p++ {
			av := a[i*k+p]
			brow := b[p*n : p*n+n]
			for j, bv := range brow {
				crow[j] += av * bv
			}
		}
	}
}

func reportGFLOPS(b *testing.B, m, n, k int) {
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

// BenchmarkSgemm runs each BERT shape, for 16 and 128 tokens, on every
// backend (with B packed per call and prepacked) and on naiveSgemm.
func BenchmarkSgemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, m := range []int{16, 128} {
		for _, s := range bertShapes {
			k, n := s[0], s[1]
			a, bm, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
			for i := range a {
				a[i] = rng.Float32()
			}
			for i := range bm {
				bm[i] = rng.Float32()
			}
			pb := PackB(false, k, n, bm, n)
			b.Run(fmt.Sprintf("m=%d,k=%d,n=%d", m, k, n), func(b *testing.B) {
				for _, be := range backends {
					b.Run(be.name, func(b *testing.B) {
						for b.Loop() {
							be.gemm(false, m, n, k, 1, a, k, bSource{b: bm, ldb: n}, 0, c, n)
						}
						reportGFLOPS(b, m, n, k)
					})
					b.Run(be.name+"-packed", func(b *testing.B) {
						for b.Loop() {
							be.gemm(false, m, n, k, 1, a, k, bSource{packed: pb}, 0, c, n)
						}
						reportGFLOPS(b, m, n, k)
					})
				}
				b.Run("naive", func(b *testing.B) {
					for b.Loop() {
						naiveSgemm(m, n, k, a, bm, c)
					}
					reportGFLOPS(b, m, n, k)
				})
			})
		}
	}
}

// BenchmarkSgemmParallel runs the prepacked BERT-base FFN shapes on the
// active backend with 1 and 2 goroutines.
func BenchmarkSgemmParallel(b *testing.B) {
	for _, s := range [][3]int{{128, 768, 3072}, {128, 3072, 768}, {16, 768, 3072}} {
		m, k, n := s[0], s[1], s[2]
		a, bm, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
		pb := PackB(false, k, n, bm, n)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("m=%d,k=%d,n=%d/threads=%d", m, k, n, threads), func(b *testing.B) {
				for b.Loop() {
					SgemmPackedParallel(threads, false, m, n, k, 1, a, k, pb, 0, c, n)
				}
				reportGFLOPS(b, m, n, k)
			})
		}
	}
}

// BenchmarkMicroKernel runs each backend's widest, tallest kernel on panels
// that stay in L1: the ceiling the blocked multiply can approach.
func BenchmarkMicroKernel(b *testing.B) {
	const k = 256
	for _, be := range backends {
		w := be.widths[0]
		a := make([]float32, k*be.mr)
		bp := make([]float32, k*w)
		c := make([]float32, be.mr*w)
		kern := be.kernels[0][be.mr-1]
		b.Run(fmt.Sprintf("%s/%dx%d", be.name, be.mr, w), func(b *testing.B) {
			for b.Loop() {
				kern(k, &a[0], &bp[0], k*PanelWidth, PanelWidth, &c[0], w, 1, 0)
			}
			reportGFLOPS(b, be.mr, w, k)
		})
	}
}
