package kernels

import (
	"math"
	"math/rand"
	"testing"
)

// qKernels lists the int8 microkernels this build and CPU run: every test
// holds each one to the naive sum.
func qKernels() map[string]func(a []byte, lda int, b []byte, kq int, acc []int32) {
	return qKernelsAvailable()
}

func TestQGemmMatchesNaiveSums(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	shapes := [][3]int{{1, 1, 1}, {1, 4, 64}, {3, 5, 7}, {4, 768, 64}, {5, 33, 65}, {17, 130, 200}, {70, 64, 128}, {128, 12, 3}, {2, 0, 5}}
	for name, kern := range qKernels() {
		saved := qKernel
		qKernel = kern
		for _, sh := range shapes {
			m, k, n := sh[0], sh[1], sh[2]
			for _, signedA := range []bool{false, true} {
				for _, unsignedB := range []bool{false, true} {
					lda, ldb := k+3, n+1
					a := make([]byte, m*lda)
					b := make([]byte, max(k*ldb, 1))
					rng.Read(a)
					rng.Read(b)
					// Extremes too: every value of both ranges occurs.
					if len(a) > 1 && len(b) > 1 {
						a[0], a[1], b[0], b[1] = 0, 255, 0x80, 0x7f
					}
					buf := make([]byte, QGemmASize(m, k))
					qa := PrepareQA(buf, m, k, a, lda, signedA)
					pb := PackQB(k, n, b, ldb, unsignedB)
					got := make([]int32, m*n)
					QGemm(qa, pb, 0, pb.Panels(), func(i0, rows, j0, cols int, acc []int32) {
						for r := 0; r < rows; r++ {
							copy(got[(i0+r)*n+j0:(i0+r)*n+j0+cols], acc[r*QPanel:r*QPanel+cols])
						}
					})
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							var want int32
							for p := 0; p < k; p++ {
								av := int32(a[i*lda+p])
								if signedA {
									av = int32(int8(a[i*lda+p])) + 128
								}
								bv := int32(int8(b[p*ldb+j]))
								if unsignedB {
									bv = int32(b[p*ldb+j]) - 128
								}
								want += av * bv
							}
							if got[i*n+j] != want {
								t.Fatalf("%s: m=%d k=%d n=%d signedA=%v unsignedB=%v: C[%d][%d] = %d, want %d", name, m, k, n, signedA, unsignedB, i, j, got[i*n+j], want)
							}
						}
					}
					for j, s := range pb.ColSums() {
						var want int32
						for p := 0; p < k; p++ {
							if unsignedB {
								want += int32(b[p*ldb+j]) - 128
							} else {
								want += int32(int8(b[p*ldb+j]))
							}
						}
						if s != want {
							t.Fatalf("column sum %d = %d, want %d", j, s, want)
						}
					}
				}
			}
		}
		qKernel = saved
	}
}

func TestPackedQBRoundTripsThroughBytes(t *testing.T) {
	b := make([]byte, 9*70)
	rand.New(rand.NewSource(2)).Read(b)
	pb := PackQB(9, 70, b, 70, false)
	buf := make([]byte, PackedQBSize(9, 70))
	PackQBInto(buf, 9, 70, b, 70, false)
	view, err := PackedQBFromBytes(9, 70, buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(view.data) != string(pb.data) || len(view.colSums) != 70 || view.colSums[69] != pb.colSums[69] {
		t.Fatal("a packed B viewed from its bytes differs from the packed original")
	}
	if _, err := PackedQBFromBytes(9, 70, buf[1:]); err == nil {
		t.Fatal("a short buffer was accepted")
	}
}

func TestRowSumsU8(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, k := range []int{0, 1, 7, 8, 9, 2040, 2041, 5000} {
		a := make([]byte, 3*(k+2))
		rng.Read(a)
		if k > 0 {
			for p := range a {
				if p%3 == 0 {
					a[p] = 255 // lanes near their limit
				}
			}
		}
		sums := make([]int32, 3)
		RowSumsU8(sums, k, a, k+2)
		for i := range sums {
			var want int32
			for _, v := range a[i*(k+2) : i*(k+2)+k] {
				want += int32(v)
			}
			if sums[i] != want {
				t.Fatalf("k=%d row %d: sum %d, want %d", k, i, sums[i], want)
			}
		}
	}
}

func TestQDequantRowMatchesFormula(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for _, n := range []int{1, 15, 16, 33, 64} {
		acc, ct, zb := make([]int32, n), make([]int32, n), make([]int32, n)
		scale, bias := make([]float32, n), make([]float32, n)
		for j := range acc {
			acc[j] = rng.Int31() - 1<<30
			ct[j] = rng.Int31n(1<<20) - 1<<19
			zb[j] = rng.Int31n(255) - 128
			scale[j] = rng.Float32() * 1e-3
			bias[j] = rng.Float32() - 0.5
		}
		for _, withZB := range []bool{false, true} {
			for _, withBias := range []bool{false, true} {
				z, bs := zb, bias
				if !withZB {
					z = nil
				}
				if !withBias {
					bs = nil
				}
				dst := make([]float32, n)
				QDequantRow(dst, acc, ct, z, 77, scale, bs)
				for j := range dst {
					v := acc[j] + ct[j]
					if z != nil {
						v -= z[j] * 77
					}
					want := float32(float32(v) * scale[j])
					if bs != nil {
						want += bs[j]
					}
					if dst[j] != want {
						t.Fatalf("n=%d zb=%v bias=%v: dst[%d] = %v, want %v", n, withZB, withBias, j, dst[j], want)
					}
				}
			}
		}
	}
}

func TestQDequantBlockMatchesRows(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	for _, cols := range []int{16, 64, 7, 33} {
		for _, withBias := range []bool{false, true} {
			rows, ldd := 5, 70
			acc := make([]int32, rows*QPanel)
			for i := range acc {
				acc[i] = rng.Int31() - 1<<30
			}
			ct, scale, bias := make([]int32, cols), make([]float32, cols), make([]float32, cols)
			for j := range ct {
				ct[j], scale[j], bias[j] = rng.Int31n(1<<20), rng.Float32()*1e-3, rng.Float32()
			}
			bs := bias
			if !withBias {
				bs = nil
			}
			got := make([]float32, rows*ldd)
			QDequantBlock(got, ldd, acc, rows, cols, ct, scale, bs)
			for r := 0; r < rows; r++ {
				want := make([]float32, cols)
				QDequantRow(want, acc[r*QPanel:], ct, nil, 0, scale, bs)
				for j := range want {
					if got[r*ldd+j] != want[j] {
						t.Fatalf("cols=%d bias=%v: [%d][%d] = %v, row form gives %v", cols, withBias, r, j, got[r*ldd+j], want[j])
					}
				}
				for j := cols; j < ldd && r < rows-1; j++ {
					if got[r*ldd+j] != 0 {
						t.Fatalf("wrote past the block at [%d][%d]", r, j)
					}
				}
			}
		}
	}
}

func TestQDequantRowsMatchesFormula(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	for _, cols := range []int{16, 64, 5, 49} {
		for _, withBias := range []bool{false, true} {
			rows, ldd := 6, 80
			acc := make([]int32, rows*QPanel)
			for i := range acc {
				acc[i] = rng.Int31() - 1<<30
			}
			ct, rt := make([]int32, cols), make([]int32, rows)
			scale, bias := make([]float32, rows), make([]float32, rows)
			for j := range ct {
				ct[j] = rng.Int31n(1<<20) - 1<<19
			}
			for r := range rt {
				rt[r], scale[r], bias[r] = rng.Int31n(1<<20), rng.Float32()*1e-3, rng.Float32()-0.5
			}
			bs := bias
			if !withBias {
				bs = nil
			}
			got := make([]float32, rows*ldd)
			QDequantRows(got, ldd, acc, rows, cols, ct, rt, scale, bs)
			for r := 0; r < rows; r++ {
				for j := 0; j < cols; j++ {
					want := float32(float32(acc[r*QPanel+j]+ct[j]+rt[r]) * scale[r])
					if bs != nil {
						want += bs[r]
					}
					if got[r*ldd+j] != want {
						t.Fatalf("cols=%d bias=%v: [%d][%d] = %v, want %v", cols, withBias, r, j, got[r*ldd+j], want)
					}
				}
			}
		}
	}
}

func TestQRequantRowsMatchesFormula(t *testing.T) {
	rng := rand.New(rand.NewSource(10))
	for _, cols := range []int{16, 64, 5, 49} {
		for _, q := range [][3]int32{{0, 255, 7}, {-128, 127, -3}} {
			rows, ldd := 6, 80
			acc := make([]int32, rows*QPanel)
			for i := range acc {
				acc[i] = rng.Int31n(1<<16) - 1<<15
			}
			ct, rt, mult := make([]int32, cols), make([]int32, rows), make([]float32, rows)
			for j := range ct {
				ct[j] = rng.Int31n(1<<12) - 1<<11
			}
			for r := range rt {
				rt[r], mult[r] = rng.Int31n(1<<12)-1<<11, rng.Float32()*0.01
			}
			got := make([]byte, rows*ldd)
			QRequantRows(got, ldd, acc, rows, cols, ct, rt, mult, q[2], q[0], q[1])
			for r := 0; r < rows; r++ {
				for j := 0; j < cols; j++ {
					f := float64(float32(acc[r*QPanel+j]+ct[j]+rt[r]) * mult[r])
					want := int32(math.RoundToEven(f)) + q[2]
					want = min(max(want, q[0]), q[1])
					if got[r*ldd+j] != byte(want) {
						t.Fatalf("cols=%d range %v: [%d][%d] = %d, want %d", cols, q, r, j, got[r*ldd+j], byte(want))
					}
				}
			}
		}
	}
}

func TestQRequantColsMatchesFormula(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	for _, cols := range []int{16, 64, 5, 49} {
		for _, q := range [][3]int32{{0, 255, 7}, {-128, 127, -3}} {
			rows, ldd := 6, 80
			acc := make([]int32, rows*QPanel)
			for i := range acc {
				acc[i] = rng.Int31n(1<<16) - 1<<15
			}
			ct, mult := make([]int32, cols), make([]float32, cols)
			for j := range ct {
				ct[j], mult[j] = rng.Int31n(1<<12)-1<<11, rng.Float32()*0.01
			}
			got := make([]byte, rows*ldd)
			QRequantCols(got, ldd, acc, rows, cols, ct, mult, q[2], q[0], q[1])
			for r := 0; r < rows; r++ {
				for j := 0; j < cols; j++ {
					f := float64(float32(acc[r*QPanel+j]+ct[j]) * mult[j])
					want := min(max(int32(math.RoundToEven(f))+q[2], q[0]), q[1])
					if got[r*ldd+j] != byte(want) {
						t.Fatalf("cols=%d range %v: [%d][%d] = %d, want %d", cols, q, r, j, got[r*ldd+j], byte(want))
					}
				}
			}
		}
	}
}

func TestMinMaxAndQuantize(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, n := range []int{0, 1, 16, 17, 100} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 3)
		}
		if n > 3 {
			x[1] = float32(math.NaN())
			x[2] = 2.5 // a half: rounds to even
		}
		lo, hi := MinMax(x)
		wlo, whi := float32(math.Inf(1)), float32(math.Inf(-1))
		for _, v := range x {
			if v == v {
				wlo, whi = min(wlo, v), max(whi, v)
			}
		}
		if n == 0 {
			wlo, whi = 0, 0
		}
		if lo != wlo || hi != whi {
			t.Fatalf("n=%d: MinMax = %v, %v, want %v, %v", n, lo, hi, wlo, whi)
		}
		for _, q := range [][3]int32{{0, 255, 0}, {0, 255, 130}, {-128, 127, 0}, {-128, 127, -5}} {
			dst := make([]byte, n)
			Quantize(dst, x, 0.02, q[2], q[0], q[1])
			for i, v := range x {
				f := v / 0.02
				var want int32
				switch {
				case f != f:
					want = q[0]
				default:
					want = int32(math.RoundToEven(float64(f))) + q[2]
					want = min(max(want, q[0]), q[1])
				}
				if dst[i] != byte(want) {
					t.Fatalf("n=%d range %v: x=%v -> %d, want %d", n, q, v, dst[i], byte(want))
				}
			}
		}
	}
}

// BenchmarkQGemm measures the int8 multiply on BERT-base's shapes beside
// Sgemm on the same shapes (go test -bench QGemm ./internal/kernels): the
// ratio of the two is what int8 buys.
func BenchmarkQGemm(b *testing.B) {
	for _, sh := range [][3]int{{128, 768, 768}, {128, 768, 3072}, {128, 3072, 768}, {16, 768, 768}} {
		m, k, n := sh[0], sh[1], sh[2]
		a := make([]byte, m*k)
		w := make([]byte, k*n)
		rand.New(rand.NewSource(6)).Read(a)
		rand.New(rand.NewSource(7)).Read(w)
		pb := PackQB(k, n, w, n, false)
		buf := make([]byte, QGemmASize(m, k))
		out := make([]float32, m*n)
		ct := make([]int32, n)
		sc := make([]float32, n)
		name := func(s string) string { return s + "/" + itoa(m) + "x" + itoa(k) + "x" + itoa(n) }
		b.Run(name("int8"), func(b *testing.B) {
			for range b.N {
				qa := PrepareQA(buf, m, k, a, k, false)
				QGemm(qa, pb, 0, pb.Panels(), func(i0, rows, j0, cols int, acc []int32) {
					for r := 0; r < rows; r++ {
						QDequantRow(out[(i0+r)*n+j0:(i0+r)*n+j0+cols], acc[r*QPanel:], ct[j0:], nil, 0, sc[j0:], nil)
					}
				})
			}
		})
		af := make([]float32, m*k)
		wf := make([]float32, k*n)
		pf := PackB(false, k, n, wf, n)
		b.Run(name("fp32"), func(b *testing.B) {
			for range b.N {
				SgemmPacked(false, m, n, k, 1, af, k, pf, 0, out, n)
			}
		})
	}
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	var s []byte
	for ; v > 0; v /= 10 {
		s = append([]byte{byte('0' + v%10)}, s...)
	}
	return string(s)
}
