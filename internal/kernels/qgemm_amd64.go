//go:build !noasm

package kernels

import "golang.org/x/sys/cpu"

// The AVX-512 VNNI microkernel (qgemm_amd64.s) computes exactly qKernelGo;
// the tests run both on the same operands.
var qVNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI

var (
	qDequantAVX512 = cpu.X86.HasAVX512F
	minMaxAVX512   = cpu.X86.HasAVX512F
	quantizeAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW
	qPackAVX512    = qVNNI
)

// qAVX2 says the CPU runs the AVX2 kernel (exact, no VNNI needed).
var qAVX2 = cpu.X86.HasAVX2

// qKernel is the microkernel QGemm calls, the fastest this CPU runs.
var qKernel = func() func(a []byte, lda int, b []byte, kq int, acc []int32) {
	switch {
	case qVNNI:
		return qKernelVNNIGo
	case qAVX2:
		return qKernelAVX2Go
	}
	return qKernelGo
}()

// QBackend names the int8 microkernel in use: "avx512vnni", "avx2" or "go".
func QBackend() string {
	switch {
	case qVNNI:
		return "avx512vnni"
	case qAVX2:
		return "avx2"
	}
	return "go"
}

// qKernels lists every int8 microkernel this CPU runs, by name, for the
// tests.
func qKernelsAvailable() map[string]func(a []byte, lda int, b []byte, kq int, acc []int32) {
	ks := map[string]func(a []byte, lda int, b []byte, kq int, acc []int32){"go": qKernelGo}
	if qVNNI {
		ks["avx512vnni"] = qKernelVNNIGo
	}
	if qAVX2 {
		ks["avx2"] = qKernelAVX2Go
	}
	return ks
}

func qKernelAVX2Go(a []byte, lda int, b []byte, kq int, acc []int32) {
	_ = a[(qRows-1)*lda+4*kq-1]
	_ = b[kq*4*QPanel-1]
	_ = acc[qRows*QPanel-1]
	qKernelAVX2(&a[0], lda, &b[0], kq, &acc[0])
}

//go:noescape
func qKernelAVX2(a *byte, lda int, b *byte, kq int, acc *int32)

func qKernelVNNIGo(a []byte, lda int, b []byte, kq int, acc []int32) {
	_ = a[(qRows-1)*lda+4*kq-1]
	_ = b[kq*4*QPanel-1]
	_ = acc[qRows*QPanel-1]
	qKernelVNNI(&a[0], lda, &b[0], kq, &acc[0])
}

//go:noescape
func qKernelVNNI(a *byte, lda int, b *byte, kq int, acc *int32)

//go:noescape
func qDequantBlockAVX512(dst *float32, ldd int, acc *int32, rows int, colTerm *int32, scale, bias *float32, blocks int)

//go:noescape
func qDequantRowsAVX512(dst *float32, ldd int, acc *int32, rows int, colTerm, rowTerm *int32, scale, bias *float32, blocks int)

// qPackPanelAVX512 packs kq whole quads of a 64-column panel: rows 4q..4q+3
// of src (ldb apart) interleaved into dst, 256 bytes a quad, each byte
// xored with flip, and adds each column's sum of the stored (signed)
// bytes to sums.
//
//go:noescape
func qPackPanelAVX512(dst, src *byte, ldb, kq int, flip uint64, sums *int32)

//go:noescape
func qRequantRowsAVX512(dst *byte, ldd int, acc *int32, rows int, colTerm, rowTerm *int32, mult *float32, blocks int, lo, hi float32, zp int32)

//go:noescape
func qRequantColsAVX512(dst *byte, ldd int, acc *int32, rows int, colTerm *int32, mult *float32, blocks int, lo, hi float32, zp int32)

//go:noescape
func minMaxF32AVX512(x *float32, blocks int) (lo, hi float32)

//go:noescape
func quantizeAVX512F32(dst *byte, x *float32, blocks int, scale, lo, hi float32, zp int32)
