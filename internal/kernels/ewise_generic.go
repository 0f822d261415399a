//go:build !amd64 || noasm

package kernels

func addVVAVX512(dst, a, b *float32, blocks int)         { panic("kernels: no AVX-512 in this build") }
func subVVAVX512(dst, a, b *float32, blocks int)         { panic("kernels: no AVX-512 in this build") }
func mulVVAVX512(dst, a, b *float32, blocks int)         { panic("kernels: no AVX-512 in this build") }
func divVVAVX512(dst, a, b *float32, blocks int)         { panic("kernels: no AVX-512 in this build") }
func addVSAVX512(dst, a *float32, blocks int, s float32) { panic("kernels: no AVX-512 in this build") }
func mulVSAVX512(dst, a *float32, blocks int, s float32) { panic("kernels: no AVX-512 in this build") }
func divVSAVX512(dst, a *float32, blocks int, s float32) { panic("kernels: no AVX-512 in this build") }
func clipAVX512(dst, a *float32, blocks int, lo, hi float32) {
	panic("kernels: no AVX-512 in this build")
}

func hardSigmoidAVX512(dst, a *float32, blocks int, alpha, beta float64) {
	panic("kernels: no AVX-512 in this build")
}
func hardSwishAVX512(dst, a *float32, blocks int) { panic("kernels: no AVX-512 in this build") }

func axpyAVX512(dst, src *float32, n int, a float32) { panic("kernels: no AVX-512 in this build") }

func dwRowAVX512(dst *float32, n int, base *float32, offs *int, w *float32, taps int, bias float32) {
	panic("kernels: no AVX-512 in this build")
}

func expAVX512(dst, a *float32, blocks int) { panic("kernels: no AVX-512 in this build") }

func copyRowsAVX512(dst *float32, dstStride int, src *float32, srcStride int, rows, cols int) {
	panic("kernels: no AVX-512 in this build")
}
