//go:build !noasm

package kernels

// AVX-512 loops of the elementwise primitives (ewise_amd64.s), on blocks*16
// floats each; the primitives in ewise.go call them when vmathAVX512 is set
// and finish the tail in Go.

//go:noescape
func addVVAVX512(dst, a, b *float32, blocks int)

//go:noescape
func subVVAVX512(dst, a, b *float32, blocks int)

//go:noescape
func mulVVAVX512(dst, a, b *float32, blocks int)

//go:noescape
func divVVAVX512(dst, a, b *float32, blocks int)

//go:noescape
func addVSAVX512(dst, a *float32, blocks int, s float32)

//go:noescape
func mulVSAVX512(dst, a *float32, blocks int, s float32)

//go:noescape
func divVSAVX512(dst, a *float32, blocks int, s float32)

//go:noescape
func clipAVX512(dst, a *float32, blocks int, lo, hi float32)

//go:noescape
func hardSigmoidAVX512(dst, a *float32, blocks int, alpha, beta float64)

//go:noescape
func hardSwishAVX512(dst, a *float32, blocks int)

//go:noescape
func axpyAVX512(dst, src *float32, n int, a float32)

//go:noescape
func dwRowAVX512(dst *float32, n int, base *float32, offs *int, w *float32, taps int, bias float32)

//go:noescape
func expAVX512(dst, a *float32, blocks int)

//go:noescape
func copyRowsAVX512(dst *float32, dstStride int, src *float32, srcStride int, rows, cols int)
