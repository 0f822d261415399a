//go:build !noasm

package kernels

import "golang.org/x/sys/cpu"

// vmathAVX512 selects the AVX-512 loops of vmath_amd64.s.
var vmathAVX512 = cpu.X86.HasAVX512F

// expSubSumAVX512 is ExpSubSum on blocks*16 floats from x, leaving the
// per-lane sums in acc.
//
//go:noescape
func expSubSumAVX512(x *float32, blocks int, m float32, acc *[16]float32)

// sigmoidAVX512 is Sigmoid on blocks*16 floats.
//
//go:noescape
func sigmoidAVX512(dst, a *float32, blocks int)

// geluAVX512 is Gelu on blocks*16 floats: one row of geluRowsAVX512.
func geluAVX512(dst, src *float32, blocks int) { geluRowsAVX512(dst, src, 0, 1, blocks) }

// geluRowsAVX512 is Gelu on rows rows of blocks*16 floats, ld floats
// apart in src and dst (which may be the same).
//
//go:noescape
func geluRowsAVX512(dst, src *float32, ld, rows, blocks int)

// addToAVX512 is AddTo on blocks*16 floats.
//
//go:noescape
func addToAVX512(dst, src *float32, blocks int)

// scaleAVX512 is Scale on blocks*16 floats.
//
//go:noescape
func scaleAVX512(x *float32, blocks int, s float32)

// maxAVX512 leaves the per-lane maxima of blocks*16 floats in acc and
// reports whether any of them is NaN.
//
//go:noescape
func maxAVX512(x *float32, blocks int, acc *[16]float32) (nan bool)

// addConstReluAVX512 is AddConst, or AddConstRelu when relu is set, on
// blocks*16 floats.
//
//go:noescape
func addConstReluAVX512(x *float32, blocks int, b float32, relu bool)

// reluAVX512 is Relu on blocks*16 floats.
//
//go:noescape
func reluAVX512(x *float32, blocks int)

// maxZeroAVX512 is MaxZero on blocks*16 floats.
//
//go:noescape
func maxZeroAVX512(dst, src *float32, blocks int)
