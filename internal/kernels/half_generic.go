//go:build !amd64 || noasm

package kernels

// This build has only the Go conversion.
const (
	halfAVX512 = false
	halfF16C   = false
)

func halfToFloatAVX512(dst *float32, src *uint16, blocks int) {
	panic("kernels: no AVX-512 in this build")
}

func halfToFloatF16C(dst *float32, src *uint16, blocks int) {
	panic("kernels: no F16C in this build")
}
