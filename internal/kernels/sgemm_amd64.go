//go:build !noasm

package kernels

import "golang.org/x/sys/cpu"

//go:generate go run gen_sgemm.go

// The assembly kernels (sgemm_amd64.s, generated with the stubs in
// sgemm_kernels_amd64.go) compute exactly the microKernel reference loop.

// avx512Backend keeps a 14×32 tile in 28 zmm registers. Two B vectors and
// one broadcast of A feed two FMAs, so 14 rows make 28 FMAs per 16 loads, and
// 28 independent accumulators cover the FMA latency of two pipes.
var avx512Backend = &backend{
	name:        "avx512",
	mr:          14,
	mc:          168,
	kc:          256,
	directRows:  16,
	directAlign: 1024,
	widths:      []int{32, 16},
	kernels:     avx512Kernels,
	indirect:    avx512Indirect,
}

// avx2Backend is the classic 6×16 tile in 12 ymm registers (BLIS haswell).
var avx2Backend = &backend{
	name:        "avx2",
	mr:          6,
	mc:          144,
	kc:          256,
	directRows:  0,
	directAlign: 512,
	widths:      []int{16, 8},
	kernels:     avx2Kernels,
	indirect:    avx2Indirect,
}

func availableBackends() []*backend {
	var bs []*backend
	if cpu.X86.HasAVX512F {
		bs = append(bs, avx512Backend)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		bs = append(bs, avx2Backend)
	}
	return append(bs, goBackend)
}
