package engine

// gemmF32 computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, where
// op(X) is X or its transpose, op(A) is m×k, op(B) is k×n and C is m×n. lda, ldb
// and ldc are the row strides of A, B and C as stored. When beta is 0, C is
// overwritten without being read, so it may hold garbage (BLAS sgemm semantics).
//
// Every matrix multiply in the engine (Gemm, MatMul, Conv through im2col) goes
// through this one function, so a faster kernel can replace the body without
// touching the ops. The reference loop is:
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
	checkGemmBuf("a", a, transA, m, k, lda)
	checkGemmBuf("b", b, transB, k, n, ldb)
	checkGemmBuf("c", c, false, m, n, ldc)
	// Scale C by beta first, then accumulate alpha*A*B row by row. The i-p-j
	// order streams rows of B and C, which vectorises reasonably in plain Go.
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
	if k == 0 || alpha == 0 {
		return
	}
	if transB {
		// Dot products of rows of op(A) with rows of B.
		tmp := make([]float32, k)
		for i := 0; i < m; i++ {
			ai := rowOf(a, transA, i, k, lda, tmp)
			crow := c[i*ldc : i*ldc+n]
			for j := 0; j < n; j++ {
				brow := b[j*ldb : j*ldb+k]
				var s float32
				for p, av := range ai {
					s += av * brow[p]
				}
				crow[j] += alpha * s
			}
		}
		return
	}
	tmp := make([]float32, k)
	for i := 0; i < m; i++ {
		ai := rowOf(a, transA, i, k, lda, tmp)
		crow := c[i*ldc : i*ldc+n]
		for p, av := range ai {
			s := alpha * av
			brow := b[p*ldb : p*ldb+n]
			for j, bv := range brow {
				crow[j] += s * bv
			}
		}
	}
}

// rowOf returns row i (length k) of op(A): a slice of a when A is not
// transposed, else the strided column gathered into tmp.
func rowOf(a []float32, trans bool, i, k, lda int, tmp []float32) []float32 {
	if !trans {
		return a[i*lda : i*lda+k]
	}
	for p := 0; p < k; p++ {
		tmp[p] = a[p*lda+i]
	}
	return tmp
}

// checkGemmBuf panics unless x holds an op(X) of rows×cols with row stride ld.
func checkGemmBuf(name string, x []float32, trans bool, rows, cols, ld int) {
	r, cl := rows, cols
	if trans {
		r, cl = cols, rows
	}
	if r == 0 || cl == 0 {
		return
	}
	if ld < cl || len(x) < (r-1)*ld+cl {
		panic("engine: gemmF32: buffer " + name + " too short for its shape")
	}
}
