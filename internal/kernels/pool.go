package kernels

import "fmt"

// MaxPool2x2 computes a 2×2 max pool with column stride 2 over one plane:
// for r < oh and c < ow,
//
//	dst[r*ow+c] = max(src[r*rowStep+2c], src[r*rowStep+2c+1],
//	                  src[r*rowStep+w+2c], src[r*rowStep+w+2c+1])
//
// with Go's max: NaN wins, +0 beats -0. Input rows are w floats apart and
// output row r reads input rows starting at r*rowStep (2w for a row stride
// of 2). It panics when src or dst is too short or 2*ow > w.
func MaxPool2x2(dst, src []float32, oh, ow, w, rowStep int) {
	if oh < 0 || ow < 0 || 2*ow > w || rowStep < 0 || len(dst) < oh*ow ||
		oh > 0 && ow > 0 && len(src) < (oh-1)*rowStep+w+2*ow {
		panic(fmt.Sprintf("kernels: 2x2 max pool of %d×%d outputs, rows %d apart, step %d: src %d, dst %d floats", oh, ow, w, rowStep, len(src), len(dst)))
	}
	if oh == 0 || ow == 0 {
		return
	}
	if vmathAVX512 {
		maxPool2x2AVX512(&src[0], &dst[0], oh, w, ow, rowStep)
		return
	}
	for r := 0; r < oh; r++ {
		r0 := src[r*rowStep : r*rowStep+2*ow]
		r1 := src[r*rowStep+w : r*rowStep+w+2*ow]
		drow := dst[r*ow : (r+1)*ow]
		for c := range drow {
			drow[c] = max(r0[2*c], r0[2*c+1], r1[2*c], r1[2*c+1])
		}
	}
}

// Deinterleave2 splits src into its even-indexed floats, written to
// even[:(len(src)+1)/2], and its odd-indexed ones, written to
// odd[:len(src)/2]: the column phases a stride-2 convolution reads.
func Deinterleave2(even, odd, src []float32) {
	ne, no := (len(src)+1)/2, len(src)/2
	even, odd = even[:ne], odd[:no]
	done := 0
	if vmathAVX512 && len(src) >= 32 {
		blocks := len(src) / 32
		deinterleave2AVX512(&even[0], &odd[0], &src[0], blocks)
		done = blocks * 16
	}
	for j := done; j < no; j++ {
		even[j], odd[j] = src[2*j], src[2*j+1]
	}
	if ne > no {
		even[ne-1] = src[len(src)-1]
	}
}
