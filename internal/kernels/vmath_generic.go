//go:build !amd64 || noasm

package kernels

// vmathAVX512 is false: this build has only the Go loops.
const vmathAVX512 = false

func expSubSumAVX512(x *float32, blocks int, m float32, acc *[16]float32) {
	panic("kernels: no AVX-512 in this build")
}

func geluAVX512(dst, src *float32, blocks int) { panic("kernels: no AVX-512 in this build") }

func geluRowsAVX512(dst, src *float32, ld, rows, blocks int) {
	panic("kernels: no AVX-512 in this build")
}

func addToAVX512(dst, src *float32, blocks int)     { panic("kernels: no AVX-512 in this build") }
func scaleAVX512(x *float32, blocks int, s float32) { panic("kernels: no AVX-512 in this build") }
func maxAVX512(x *float32, blocks int, acc *[16]float32) bool {
	panic("kernels: no AVX-512 in this build")
}

func addConstReluAVX512(x *float32, blocks int, b float32, relu bool) {
	panic("kernels: no AVX-512 in this build")
}
func reluAVX512(x *float32, blocks int) { panic("kernels: no AVX-512 in this build") }

func packAAVX512(a *float32, lda, rows, blocks int, d *float32) {
	panic("kernels: no AVX-512 in this build")
}

func im2colPanelAVX512(x *float32, ih, iw *[PanelWidth]int32, taps *int32, rows, h, w, valid int, dst *float32) {
	panic("kernels: no AVX-512 in this build")
}

func im2colSegsAVX512(x *float32, ih, iw *[PanelWidth]int32, segs *panelSegs, taps *int32, rows, h, w, valid int, dst *float32) {
	panic("kernels: no AVX-512 in this build")
}

func sumF64AVX512(x *float32, blocks int, acc *[8]float64) {
	panic("kernels: no AVX-512 in this build")
}
func sqDevF64AVX512(x *float32, blocks int, mean float64, acc *[8]float64) {
	panic("kernels: no AVX-512 in this build")
}
func normalizeAVX512(dst, src, scale, bias *float32, blocks int, mean, invStd float64) {
	panic("kernels: no AVX-512 in this build")
}

func maxZeroAVX512(dst, src *float32, blocks int) { panic("kernels: no AVX-512 in this build") }

func maxPool2x2AVX512(src, dst *float32, oh, w, ow, rowStep int) {
	panic("kernels: no AVX-512 in this build")
}

func deinterleave2RowsAVX512(even, odd *float32, dstStride int, src *float32, srcStride, rows, cols int) {
	panic("kernels: no AVX-512 in this build")
}

func sigmoidAVX512(dst, a *float32, blocks int) { panic("kernels: no AVX-512 in this build") }

func maxTapsAVX512(dst *float32, n int, base *float32, offs *int, taps int) {
	panic("kernels: no AVX-512 in this build")
}

func interleave2AVX512(dst, even, odd *float32, blocks int) {
	panic("kernels: no AVX-512 in this build")
}
