package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// refGemm is the reference loop from gemmF32's doc comment, in float64.
func refGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, len(c))
	for i := range c {
		out[i] = float64(c[i])
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			prev := float64(c[i*ldc+j])
			if beta == 0 {
				prev = 0
			}
			out[i*ldc+j] = float64(alpha)*s + float64(beta)*prev
		}
	}
	return out
}

// TestGemmConformance compares gemmF32 with the reference loop over transposes,
// padded leading dimensions, alpha and beta, and checks that the padding of C
// (the guard band between rows and after the last row) is never written.
func TestGemmConformance(t *testing.T) {
	const guard = 1234.5
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.Float64()*2 - 1)
		}
		return s
	}
	sizes := [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {4, 1, 16}, {1, 20, 3}, {2, 3, 0}}
	for _, sz := range sizes {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
					m, n, k := sz[0], sz[1], sz[2]
					name := fmt.Sprintf("m%d_n%d_k%d_tA%v_tB%v_a%v_b%v", m, n, k, tA, tB, ab[0], ab[1])
					t.Run(name, func(t *testing.T) {
						ar, ac := m, k
						if tA {
							ar, ac = k, m
						}
						br, bc := k, n
						if tB {
							br, bc = n, k
						}
						lda, ldb, ldc := ac+2, bc+3, n+1
						a := fill(ar*lda + 1)
						b := fill(br*ldb + 1)
						c := fill(m*ldc + 4)
						for i := 0; i < m; i++ {
							c[i*ldc+n] = guard
						}
						for i := m * ldc; i < len(c); i++ {
							c[i] = guard
						}
						if ab[1] == 0 {
							for i := 0; i < m; i++ {
								for j := 0; j < n; j++ {
									c[i*ldc+j] = float32(math.NaN()) // beta 0 must not read C
								}
							}
						}
						want := refGemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
						// The packed path (a constant B packed at compile time)
						// must agree with the plain one on a copy of C.
						cp := append([]float32(nil), c...)
						gemmF32(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
						gemmPackedF32(tA, m, n, k, ab[0], a, lda, packB(tB, k, n, b, ldb), ab[1], cp, ldc)
						for i := range c {
							if c[i] != cp[i] && !(math.IsNaN(float64(c[i])) && math.IsNaN(float64(cp[i]))) {
								t.Fatalf("packed B: c[%d] = %v, unpacked %v", i, cp[i], c[i])
							}
						}
						for i := 0; i < m; i++ {
							for j := 0; j < n; j++ {
								if got := float64(c[i*ldc+j]); math.Abs(got-want[i*ldc+j]) > 1e-4 {
									t.Fatalf("c[%d,%d] = %v, want %v", i, j, got, want[i*ldc+j])
								}
							}
							if c[i*ldc+n] != guard {
								t.Fatalf("guard after row %d overwritten: %v", i, c[i*ldc+n])
							}
						}
						for i := m * ldc; i < len(c); i++ {
							if c[i] != guard {
								t.Fatalf("guard after C overwritten at %d: %v", i, c[i])
							}
						}
					})
				}
			}
		}
	}
}

// directConv2D is the reference 2-D convolution loop: y[n,m,oh,ow] = sum over
// c, kh, kw of x[n,c,ih,iw]*w[m,c,kh,kw] with ih = oh*s - p + kh*d, taps
// outside the image reading zero.
func directConv2D(x, w *tensor.Tensor, s, p, d int) *tensor.Tensor {
	N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	M, KH, KW := w.Shape[0], w.Shape[2], w.Shape[3]
	OH := (H+2*p-d*(KH-1)-1)/s + 1
	OW := (W+2*p-d*(KW-1)-1)/s + 1
	y := tensor.New(tensor.Float32, N, M, OH, OW)
	for n := 0; n < N; n++ {
		for m := 0; m < M; m++ {
			for oh := 0; oh < OH; oh++ {
				for ow := 0; ow < OW; ow++ {
					var sum float64
					for c := 0; c < C; c++ {
						for kh := 0; kh < KH; kh++ {
							for kw := 0; kw < KW; kw++ {
								ih, iw := oh*s-p+kh*d, ow*s-p+kw*d
								if ih >= 0 && ih < H && iw >= 0 && iw < W {
									sum += float64(x.F32[((n*C+c)*H+ih)*W+iw]) * float64(w.F32[((m*C+c)*KH+kh)*KW+kw])
								}
							}
						}
					}
					y.F32[((n*M+m)*OH+oh)*OW+ow] = float32(sum)
				}
			}
		}
	}
	return y
}

// TestConvIm2col checks Conv (im2col blocks packed for the gemm, by row
// copies and by kernels.Im2col, and the indirect multiply over padded
// planes, phase planes with strides) against the direct loop on geometries that
// exercise the copy path for unit strides,
// padding wider than the kernel's reach, rows that are all padding, and an
// image split into several blocks.
func TestConvIm2col(t *testing.T) {
	tests := []struct {
		name       string
		n, c, h, w int
		m, k       int
		s, p, d    int
	}{
		{"3x3 pad 1", 2, 3, 7, 9, 4, 3, 1, 1, 1},
		{"pad wider than kernel", 1, 2, 2, 3, 3, 2, 1, 3, 1},
		{"stride 2", 1, 2, 8, 8, 3, 3, 2, 1, 1},
		{"dilation 2", 1, 2, 9, 9, 2, 3, 1, 2, 2},
		{"1x1", 2, 5, 4, 6, 3, 1, 1, 0, 1},
		// K = 576 makes blocks of up to 1820 pixels: 47*47 = 2209 pixels
		// take two, 1120 and a ragged 1089, with panels that straddle rows.
		{"several blocks", 1, 64, 47, 47, 4, 3, 1, 1, 1},
		{"stride 2 several blocks", 1, 128, 71, 71, 3, 3, 2, 1, 1}, // 1296 outputs, K = 1152
		// 256 output channels make convIndirect's bands about 1024 columns:
		// 40 rows 42 wide take two bands of 20 rows.
		{"indirect several blocks", 1, 8, 40, 40, 256, 3, 1, 1, 1},
		// Strided convolutions read phase planes in convIndirect.
		{"stride 2 several bands", 1, 8, 81, 80, 256, 3, 2, 1, 1},
		{"stride 2 dilation 2", 1, 3, 19, 21, 4, 3, 2, 2, 2},
		{"stride 3 7x7", 2, 3, 30, 31, 5, 7, 3, 3, 1},
		{"stride 2 even kernel, no padding", 1, 4, 12, 14, 3, 4, 2, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := randTensor(1, tt.n, tt.c, tt.h, tt.w)
			w := randTensor(2, tt.m, tt.c, tt.k, tt.k)
			attrs := []modelgen.Attr{
				modelgen.AInts("strides", int64(tt.s), int64(tt.s)),
				modelgen.AInts("pads", int64(tt.p), int64(tt.p), int64(tt.p), int64(tt.p)),
				modelgen.AInts("dilations", int64(tt.d), int64(tt.d)),
			}
			want := directConv2D(x, w, tt.s, tt.p, tt.d)
			for _, path := range []struct {
				name string
				mode int
			}{{"auto", im2colAuto}, {"copies", im2colCopies}, {"panels", im2colPanels}, {"indirect", im2colIndirect}} {
				im2colPath = path.mode
				got, err := runOp(t, opCase{op: "Conv", attrs: attrs, inputs: []*tensor.Tensor{x, w}})
				im2colPath = im2colAuto
				if err != nil {
					t.Fatal(err)
				}
				if d := maxDiff(want, got[0]); d > 1e-4 {
					t.Errorf("%s: Conv differs from the direct loop by %g", path.name, d)
				}
			}
		})
	}
}
