//go:build !noasm

package kernels

import "golang.org/x/sys/cpu"

// halfAVX512 and halfF16C select the conversion loops of half_amd64.s:
// AVX-512 converts 16 halves per instruction, F16C (AVX2-era CPUs) 8.
var (
	halfAVX512 = cpu.X86.HasAVX512F
	halfF16C   = cpu.X86.HasAVX && cpu.X86.HasF16C
)

// halfToFloatAVX512 is HalfToFloat32 on blocks*16 values.
//
//go:noescape
func halfToFloatAVX512(dst *float32, src *uint16, blocks int)

// halfToFloatF16C is HalfToFloat32 on blocks*8 values.
//
//go:noescape
func halfToFloatF16C(dst *float32, src *uint16, blocks int)
