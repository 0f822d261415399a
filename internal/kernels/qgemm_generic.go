//go:build !amd64 || noasm

package kernels

const (
	qDequantAVX512 = false
	minMaxAVX512   = false
	quantizeAVX512 = false
	qPackAVX512    = false
)

func qPackPanelAVX512(dst, src *byte, ldb, kq int, flip uint64, sums *int32) { panic("unreachable") }

var qKernel = qKernelGo

// QBackend names the int8 microkernel in use: "go" in this build.
func QBackend() string { return "go" }

func qKernelsAvailable() map[string]func(a []byte, lda int, b []byte, kq int, acc []int32) {
	return map[string]func(a []byte, lda int, b []byte, kq int, acc []int32){"go": qKernelGo}
}

func qDequantBlockAVX512(dst *float32, ldd int, acc *int32, rows int, colTerm *int32, scale, bias *float32, blocks int) {
	panic("unreachable")
}

func qDequantRowsAVX512(dst *float32, ldd int, acc *int32, rows int, colTerm, rowTerm *int32, scale, bias *float32, blocks int) {
	panic("unreachable")
}

func qRequantRowsAVX512(dst *byte, ldd int, acc *int32, rows int, colTerm, rowTerm *int32, mult *float32, blocks int, lo, hi float32, zp int32) {
	panic("unreachable")
}

func qRequantColsAVX512(dst *byte, ldd int, acc *int32, rows int, colTerm *int32, mult *float32, blocks int, lo, hi float32, zp int32) {
	panic("unreachable")
}

func minMaxF32AVX512(x *float32, blocks int) (lo, hi float32) { panic("unreachable") }

func quantizeAVX512F32(dst *byte, x *float32, blocks int, scale, lo, hi float32, zp int32) {
	panic("unreachable")
}
