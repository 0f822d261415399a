package kernels

import "fmt"

// Im2col is the tap table of a 2-D convolution window over channels planes
// of h×w floats, for filling packed-B panels of the im2col matrix (rows
// ordered channel, kernel row, kernel column, as Conv's weights are) with
// Panel. Build it with NewIm2col; it is read-only afterwards, so one value
// may serve many goroutines.
type Im2col struct {
	h, w int
	// taps holds three int32 per im2col row: the offset from a window's
	// origin to the tap in the input (channel plane included), and the
	// tap's row and column offsets within the window.
	taps []int32
	// need is the fewest floats an input must hold.
	need int
}

// NewIm2col returns the tap table of a kh×kw window with dilations dh, dw
// over channels planes of h×w floats. It panics on negative sizes or an
// input too large for 32-bit offsets: programmer errors of the calling op.
func NewIm2col(channels, h, w, kh, kw, dh, dw int) *Im2col {
	if channels < 0 || h < 0 || w < 0 || kh < 0 || kw < 0 || dh < 1 || dw < 1 {
		panic(fmt.Sprintf("kernels: im2col of %d planes %d×%d, window %d×%d, dilations %d×%d", channels, h, w, kh, kw, dh, dw))
	}
	need := channels * h * w
	if need >= 1<<30 || kh*dh >= 1<<20 || kw*dw >= 1<<20 || h >= 1<<20 || w >= 1<<20 {
		panic(fmt.Sprintf("kernels: im2col of %d planes %d×%d: too large for 32-bit offsets", channels, h, w))
	}
	ic := &Im2col{h: h, w: w, need: need, taps: make([]int32, 0, 3*channels*kh*kw)}
	for c := 0; c < channels; c++ {
		for i := 0; i < kh; i++ {
			for j := 0; j < kw; j++ {
				ic.taps = append(ic.taps, int32(c*h*w+i*dh*w+j*dw), int32(i*dh), int32(j*dw))
			}
		}
	}
	return ic
}

// Rows returns the number of im2col rows: channels × kh × kw.
func (ic *Im2col) Rows() int { return len(ic.taps) / 3 }

// Panel fills one packed-B panel of the im2col matrix of x: for each row p
// and each of PanelWidth output pixels t whose windows start at input row
// ih[t] and column iw[t] (which may lie in the padding, i.e. be negative or
// past the edge),
//
//	dst[p*PanelWidth+t] = x[c*h*w + (ih[t]+di)*w + iw[t]+dj]
//
// for row p's channel c and tap (di, dj), or 0 where that position is outside
// the h×w plane or t >= valid. dst must hold Rows()*PanelWidth floats and x
// the channels planes; window origins must lie within 2^20 of the plane. It
// panics otherwise.
func (ic *Im2col) Panel(dst, x []float32, ih, iw *[PanelWidth]int32, valid int) {
	rows := ic.Rows()
	if len(dst) < rows*PanelWidth || len(x) < ic.need || valid < 0 || valid > PanelWidth {
		panic(fmt.Sprintf("kernels: im2col panel: dst %d floats for %d rows, x %d floats of %d, %d valid", len(dst), rows, len(x), ic.need, valid))
	}
	for t := range valid {
		if ih[t] <= -1<<20 || ih[t] >= 1<<20 || iw[t] <= -1<<20 || iw[t] >= 1<<20 {
			panic(fmt.Sprintf("kernels: im2col panel: window origin (%d, %d) out of range", ih[t], iw[t]))
		}
	}
	if rows == 0 {
		return
	}
	if vmathAVX512 && ic.need > 0 {
		var segs panelSegs
		if segs.split(ih, iw, ic.w, valid) {
			im2colSegsAVX512(&x[0], ih, iw, &segs, &ic.taps[0], rows, ic.h, ic.w, valid, &dst[0])
			return
		}
		im2colPanelAVX512(&x[0], ih, iw, &ic.taps[0], rows, ic.h, ic.w, valid, &dst[0])
		return
	}
	im2colPanelGo(ic, dst, x, ih, iw, valid)
}

// panelSegs splits a panel's lanes into runs of consecutive input columns on
// one input row, at most four of them, for im2colSegsAVX512: run i covers
// the lanes in mask[i], and lane t of it reads x at off[i] + t + tap offset.
type panelSegs struct {
	off  [4]int32
	mask [4]uint32
	n    int
}

// split fills s from window origins and reports whether the valid lanes make
// at most four runs whose offsets fit in 32 bits.
func (s *panelSegs) split(ih, iw *[PanelWidth]int32, w, valid int) bool {
	s.n = 0
	for t := 0; t < valid; t++ {
		if t == 0 || ih[t] != ih[t-1] || iw[t] != iw[t-1]+1 {
			if s.n == len(s.off) {
				return false
			}
			off := int64(ih[t])*int64(w) + int64(iw[t]) - int64(t)
			if off != int64(int32(off)) {
				return false
			}
			s.off[s.n] = int32(off)
			s.n++
		}
		s.mask[s.n-1] |= 1 << t
	}
	return s.n > 0
}

func im2colPanelGo(ic *Im2col, dst, x []float32, ih, iw *[PanelWidth]int32, valid int) {
	for p := 0; p < ic.Rows(); p++ {
		off, di, dj := int(ic.taps[3*p]), int(ic.taps[3*p+1]), int(ic.taps[3*p+2])
		row := dst[p*PanelWidth : (p+1)*PanelWidth]
		for t := range row {
			r, c := int(ih[t])+di, int(iw[t])+dj
			if t < valid && r >= 0 && r < ic.h && c >= 0 && c < ic.w {
				row[t] = x[off-di*ic.w-dj+r*ic.w+c]
			} else {
				row[t] = 0
			}
		}
	}
}
