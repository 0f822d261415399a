package engine

import "github.com/spindleml/spindle/internal/kernels"

// gemmF32 computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, where
// op(X) is X or its transpose, op(A) is m×k, op(B) is k×n and C is m×n. lda, ldb
// and ldc are the row strides of A, B and C as stored. When beta is 0, C is
// overwritten without being read, so it may hold garbage (BLAS sgemm semantics).
//
// Every matrix multiply in the engine (Gemm, MatMul, Conv and ConvTranspose)
// goes through this function or gemmPackedF32, the engine's only doors to
// internal/kernels, whose blocked Sgemm picks AVX-512, AVX2+FMA or portable Go
// microkernels at start-up. It runs on the calling goroutine; gemmF32Par and
// gemmPackedF32Par split one multiply over the thread budget a request was
// given (RunOptions.Threads). The result is that of this loop, up to float32
// rounding in a different order:
//
//	for i := 0; i < m; i++ {
//		for j := 0; j < n; j++ {
//			var s float32
//			for p := 0; p < k; p++ {
//				s += opA(i, p) * opB(p, j)
//			}
//			c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
//		}
//	}
//
// A, B and C must not overlap; A and B are only read (they may be read-only
// mapped weights). gemmF32 panics on buffers too short for the given sizes,
// which is a programmer error in the calling op.
func gemmF32(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	kernels.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// packB copies op(B), k×n, into the layout the microkernels read, once, so that
// a constant B (a MatMul or Gemm weight) is not repacked on every request.
// B is n×k in memory when transB is set. It returns nil when there is nothing to
// pack (k or n is 0); gemmPackedF32 then needs no B.
func packB(transB bool, k, n int, b []float32, ldb int) *kernels.PackedB {
	if k == 0 || n == 0 {
		return nil
	}
	return kernels.PackB(transB, k, n, b, ldb)
}

// gemmPackedF32 is gemmF32 with op(B) taken from pb, a k×n matrix from packB.
func gemmPackedF32(transA bool, m, n, k int, alpha float32, a []float32, lda int, pb *kernels.PackedB, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	kernels.SgemmPacked(transA, m, n, k, alpha, a, lda, pb, beta, c, ldc)
}

// gemmF32Par is gemmF32 split over up to threads goroutines (see
// kernels.SgemmParallel); threads below 2 run on the calling goroutine.
func gemmF32Par(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if threads < 2 || m == 0 || n == 0 || k == 0 {
		gemmF32(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	kernels.SgemmParallel(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmPackedF32Par is gemmPackedF32 split over up to threads goroutines.
func gemmPackedF32Par(threads int, transA bool, m, n, k int, alpha float32, a []float32, lda int, pb *kernels.PackedB, beta float32, c []float32, ldc int) {
	if threads < 2 || m == 0 || n == 0 || k == 0 {
		gemmPackedF32(transA, m, n, k, alpha, a, lda, pb, beta, c, ldc)
		return
	}
	kernels.SgemmPackedParallel(threads, transA, m, n, k, alpha, a, lda, pb, beta, c, ldc)
}

// scaleRows sets C = beta*C, writing zeros without reading C when beta is 0.
func scaleRows(m, n int, beta float32, c []float32, ldc int) {
	if len(c) < (m-1)*ldc+n {
		panic("engine: gemmF32: buffer c too short for its shape")
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}
