// Package kernels holds the numeric inner loops of the engine: a blocked
// single-precision matrix multiply (Sgemm) whose microkernels are picked at
// start-up from the CPU's features (AVX-512, AVX2+FMA, or portable Go).
//
// The multiply follows Goto and van de Geijn, "Anatomy of High-Performance Matrix
// Multiplication" (ACM TOMS 34(3), 2008), as refined by BLIS: op(A) is copied
// into row panels that stay in the L2 cache, op(B) into column panels of
// PanelWidth columns, and a microkernel keeps an mr×nr tile of C in vector
// registers while it walks the shared depth of one A panel and one B panel.
//
// Weights are constant, so a B operand can be packed once (PackB, PackBInto) and
// reused by every request through SgemmPacked. The packed layout does not
// depend on the backend, so it can be stored in a file and mapped back with
// PackedBFromSlice without a copy.
//
// The amd64 kernels are generated Go assembly: gen_sgemm.go writes
// sgemm_amd64.s and its stubs (go generate), one kernel per row count so
// that ragged row panels keep their sums in registers. Building with the
// noasm tag, or for another architecture, leaves only the Go kernels.
//
// Kernels never write to A or B: they may be read-only memory maps.
package kernels
