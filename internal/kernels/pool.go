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
	Deinterleave2Rows(even, odd, 0, src, 0, 1, len(src))
}

// Deinterleave2Rows is Deinterleave2 on rows rows of cols floats of src,
// whose rows start srcStride floats apart, into even and odd, whose rows
// start dstStride floats apart: a plane's phases in one call.
func Deinterleave2Rows(even, odd []float32, dstStride int, src []float32, srcStride, rows, cols int) {
	if rows <= 0 || cols <= 0 {
		return
	}
	ne, no := (cols+1)/2, cols/2
	_ = even[(rows-1)*dstStride+ne-1]
	_ = src[(rows-1)*srcStride+cols-1]
	if no > 0 {
		_ = odd[(rows-1)*dstStride+no-1]
	}
	if vmathAVX512 {
		o := &even[0] // stored to under an empty mask only, when no odd floats
		if no > 0 {
			o = &odd[0]
		}
		deinterleave2RowsAVX512(&even[0], o, dstStride, &src[0], srcStride, rows, cols)
		return
	}
	for r := range rows {
		e, s := even[r*dstStride:r*dstStride+ne], src[r*srcStride:r*srcStride+cols]
		for j := range no {
			e[j], odd[r*dstStride+j] = s[2*j], s[2*j+1]
		}
		if ne > no {
			e[ne-1] = s[cols-1]
		}
	}
}

// MaxTaps sets dst[j] to Go's max over t of base[offs[t]+j] (NaN wins, +0
// beats -0), for every j < len(dst): a max pool's plane read through its
// phase planes, as DepthwiseRow reads a depthwise convolution's. Every
// base[offs[t]:] must hold len(dst) floats; offs must not be empty.
func MaxTaps(dst, base []float32, offs []int) {
	if len(dst) == 0 {
		return
	}
	if len(offs) == 0 {
		panic("kernels: MaxTaps without taps")
	}
	for _, o := range offs {
		_ = base[o+len(dst)-1] // the assembly reads len(dst) floats from each
	}
	if vmathAVX512 {
		maxTapsAVX512(&dst[0], len(dst), &base[0], &offs[0], len(offs))
		return
	}
	copy(dst, base[offs[0]:offs[0]+len(dst)])
	for _, o := range offs[1:] {
		for j, v := range base[o : o+len(dst)] {
			dst[j] = max(dst[j], v)
		}
	}
}

// Interleave2 sets dst[2j] = even[j] and dst[2j+1] = odd[j] for 2j, 2j+1 <
// len(dst): Deinterleave2 undone (a stride-2 ConvTranspose writes the
// outputs of its two column taps so). even must hold (len(dst)+1)/2 floats
// and odd len(dst)/2.
func Interleave2(dst, even, odd []float32) {
	ne, no := (len(dst)+1)/2, len(dst)/2
	even, odd = even[:ne], odd[:no]
	done := 0
	if vmathAVX512 && no >= 16 {
		blocks := no / 16
		interleave2AVX512(&dst[0], &even[0], &odd[0], blocks)
		done = blocks * 16
	}
	for j := done; j < no; j++ {
		dst[2*j], dst[2*j+1] = even[j], odd[j]
	}
	if ne > no {
		dst[len(dst)-1] = even[ne-1]
	}
}
