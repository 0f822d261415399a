//go:build !noasm

package kernels

// sumF64AVX512 leaves in acc the per-lane float64 sums of blocks*16 floats
// from x (lane j sums elements 8i+j).
//
//go:noescape
func sumF64AVX512(x *float32, blocks int, acc *[8]float64)

// sqDevF64AVX512 leaves in acc the per-lane sums of (float64(x[i]) - mean)²
// over blocks*16 floats.
//
//go:noescape
func sqDevF64AVX512(x *float32, blocks int, mean float64, acc *[8]float64)

// normalizeAVX512 is Normalize's loop on blocks*16 floats; bias may be nil.
//
//go:noescape
func normalizeAVX512(dst, src, scale, bias *float32, blocks int, mean, invStd float64)
