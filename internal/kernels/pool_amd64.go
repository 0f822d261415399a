//go:build !noasm

package kernels

// maxPool2x2AVX512 is MaxPool2x2 on checked arguments: per output row, 16
// outputs at a time from 32 floats of each input row (masked at the row's
// end), the vertical maximum first, then even and odd lanes split with
// VPERMT2PS and their maximum.
//
//go:noescape
func maxPool2x2AVX512(src, dst *float32, oh, w, ow, rowStep int)

// deinterleave2RowsAVX512 is Deinterleave2Rows on checked arguments.
//
//go:noescape
func deinterleave2RowsAVX512(even, odd *float32, dstStride int, src *float32, srcStride, rows, cols int)

// maxTapsAVX512 is MaxTaps on checked arguments, taps >= 1.
//
//go:noescape
func maxTapsAVX512(dst *float32, n int, base *float32, offs *int, taps int)

// interleave2AVX512 is Interleave2 on blocks*16 floats of each source.
//
//go:noescape
func interleave2AVX512(dst, even, odd *float32, blocks int)
