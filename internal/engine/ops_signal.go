package engine

import (
	"fmt"
	"math"
	"math/bits"
	"math/cmplx"
	"slices"

	"github.com/spindleml/spindle/internal/tensor"
)

// Signal processing (issue 13, item 5): DFT, STFT and MelWeightMatrix, the
// front end of audio models exported with their feature extraction. The
// transforms run in complex128: radix-2 FFT for power-of-two lengths,
// Bluestein's chirp-z through a power-of-two FFT for the others.

func init() {
	register("DFT", newDFT)
	register("STFT", newSTFT)
	register("MelWeightMatrix", newMelWeightMatrix)
}

// fft transforms x in place (inverse: the conjugate transform, unscaled).
func fft(x []complex128, inverse bool) {
	n := len(x)
	if n <= 1 {
		return
	}
	if n&(n-1) != 0 {
		bluestein(x, inverse)
		return
	}
	shift := 64 - bits.TrailingZeros(uint(n))
	for i := range n {
		if j := int(bits.Reverse64(uint64(i)) >> shift); j > i {
			x[i], x[j] = x[j], x[i]
		}
	}
	sign := -1.0
	if inverse {
		sign = 1
	}
	for size := 2; size <= n; size <<= 1 {
		w := cmplx.Rect(1, sign*2*math.Pi/float64(size))
		for start := 0; start < n; start += size {
			wk := complex(1, 0)
			for k := range size / 2 {
				a, b := x[start+k], x[start+k+size/2]*wk
				x[start+k], x[start+k+size/2] = a+b, a-b
				wk *= w
			}
		}
	}
}

// bluestein is fft for any length: the transform as a convolution with a
// chirp, computed by power-of-two FFTs.
func bluestein(x []complex128, inverse bool) {
	n := len(x)
	m := 1 << bits.Len(uint(2*n-1))
	sign := -1.0
	if inverse {
		sign = 1
	}
	chirp := make([]complex128, n)
	for k := range n {
		// k² mod 2n keeps the angle exact for large k.
		kk := (k * k) % (2 * n)
		chirp[k] = cmplx.Rect(1, sign*math.Pi*float64(kk)/float64(n))
	}
	a, b := make([]complex128, m), make([]complex128, m)
	for k := range n {
		a[k] = x[k] * chirp[k]
		b[k] = cmplx.Conj(chirp[k])
		if k > 0 {
			b[m-k] = cmplx.Conj(chirp[k])
		}
	}
	fft(a, false)
	fft(b, false)
	for i := range a {
		a[i] *= b[i]
	}
	fft(a, true)
	for k := range n {
		x[k] = a[k] / complex(float64(m), 0) * chirp[k]
	}
}

// transform is one DFT along a signal of length n into length L (zero
// padded or cut), keeping the first keep bins.
func transform(sig []complex128, L, keep int, inverse bool) []complex128 {
	buf := make([]complex128, L)
	copy(buf, sig)
	fft(buf, inverse)
	if inverse {
		for i := range buf {
			buf[i] /= complex(float64(L), 0)
		}
	}
	return buf[:keep]
}

func newDFT(n *Node) (Kernel, error) {
	inverse := n.Int("inverse", 0) != 0
	onesided := n.Int("onesided", 0) != 0
	axisAttr := n.Int("axis", 1)
	if inverse && onesided {
		return nil, fmt.Errorf("attributes inverse and onesided: both set, which ONNX does not define")
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 3); err != nil {
			return nil, err
		}
		x := in[0]
		r := len(x.Shape)
		if x.DType != tensor.Float32 && x.DType != tensor.Float64 || r < 2 || x.Shape[r-1] != 1 && x.Shape[r-1] != 2 {
			return nil, fmt.Errorf("input input: %s, must be float [... signal 1 or 2]", x)
		}
		axis := axisAttr
		if n.Opset >= 20 {
			axis = -2
			if len(in) > 2 && in[2] != nil {
				v, err := castTensor(in[2], tensor.Int64)
				if err != nil || v.Len() != 1 {
					return nil, fmt.Errorf("input axis: %s, must be one integer", in[2])
				}
				axis = v.I64[0]
			}
		}
		if axis < 0 {
			axis += int64(r)
		}
		if axis < 0 || axis >= int64(r-1) {
			return nil, fmt.Errorf("axis %d: out of range for a signal of rank %d (its last axis holds the complex parts)", axis, r)
		}
		a := int(axis)
		nsig := x.Shape[a]
		L := nsig
		if len(in) > 1 && in[1] != nil {
			v, err := castTensor(in[1], tensor.Int64)
			if err != nil || v.Len() != 1 || v.I64[0] < 1 || v.I64[0] > maxElements {
				return nil, fmt.Errorf("input dft_length: %s, must be one positive integer", in[1])
			}
			L = int(v.I64[0])
		}
		complexIn := x.Shape[r-1] == 2
		if onesided && complexIn {
			return nil, fmt.Errorf("attribute onesided: the input is complex; a one-sided transform needs a real signal")
		}
		keep := L
		if onesided {
			keep = L/2 + 1
		}
		outShape := slices.Clone(x.Shape)
		outShape[a], outShape[r-1] = keep, 2
		if c, err := tensor.Count(outShape); err != nil || c > maxElements {
			return nil, fmt.Errorf("output shape %s: too large", tensor.ShapeString(outShape))
		}
		w, _ := castTensor(x, tensor.Float64)
		out := make([]float64, tensor.NumElements(outShape))
		outer := tensor.NumElements(x.Shape[:a])
		inner := tensor.NumElements(x.Shape[a+1 : r-1])
		comps := x.Shape[r-1]
		sig := make([]complex128, nsig)
		for o := range outer {
			for i := range inner {
				for t := range nsig {
					at := ((o*nsig+t)*inner + i) * comps
					sig[t] = complex(w.F64[at], 0)
					if complexIn {
						sig[t] = complex(w.F64[at], w.F64[at+1])
					}
				}
				res := transform(sig, L, keep, inverse)
				for k, v := range res {
					at := ((o*keep+k)*inner + i) * 2
					out[at], out[at+1] = real(v), imag(v)
				}
			}
		}
		res, err := castTensor(&tensor.Tensor{DType: tensor.Float64, Shape: outShape, F64: out}, x.DType)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{res}, nil
	}, nil
}

// newSTFT transforms frames of signal [batch length 1|2], frame_step
// apart, each multiplied by the window: output [batch frames bins 2].
func newSTFT(n *Node) (Kernel, error) {
	onesided := n.Int("onesided", 1) != 0
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 4); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 && x.DType != tensor.Float64 || len(x.Shape) != 3 || x.Shape[2] != 1 && x.Shape[2] != 2 {
			return nil, fmt.Errorf("input signal: %s, must be float [batch length 1 or 2]", x)
		}
		B, length, comps := x.Shape[0], x.Shape[1], x.Shape[2]
		one := func(i int, name string) (int, bool, error) {
			if i >= len(in) || in[i] == nil {
				return 0, false, nil
			}
			v, err := castTensor(in[i], tensor.Int64)
			if err != nil || v.Len() != 1 || v.I64[0] < 1 || v.I64[0] > maxElements {
				return 0, false, fmt.Errorf("input %s: %s, must be one positive integer", name, in[i])
			}
			return int(v.I64[0]), true, nil
		}
		step, _, err := one(1, "frame_step")
		if err != nil {
			return nil, err
		}
		if step == 0 {
			return nil, fmt.Errorf("input frame_step: required")
		}
		var window []float64
		if len(in) > 2 && in[2] != nil {
			wt, err := castTensor(in[2], tensor.Float64)
			if err != nil || len(wt.Shape) != 1 {
				return nil, fmt.Errorf("input window: %s, must be 1-D", in[2])
			}
			window = wt.F64
		}
		frameLen, has, err := one(3, "frame_length")
		if err != nil {
			return nil, err
		}
		switch {
		case !has && window == nil:
			return nil, fmt.Errorf("inputs window and frame_length: one of them must be given")
		case !has:
			frameLen = len(window)
		case window != nil && len(window) != frameLen:
			return nil, fmt.Errorf("input window: %d long, frame_length is %d", len(window), frameLen)
		}
		if frameLen > length {
			return nil, fmt.Errorf("frame_length %d: longer than the signal's %d", frameLen, length)
		}
		if onesided && comps == 2 {
			return nil, fmt.Errorf("attribute onesided: the signal is complex; a one-sided transform needs a real signal")
		}
		frames := 1 + (length-frameLen)/step
		bins := frameLen
		if onesided {
			bins = frameLen/2 + 1
		}
		w, _ := castTensor(x, tensor.Float64)
		out := make([]float64, B*frames*bins*2)
		sig := make([]complex128, frameLen)
		for b := range B {
			for f := range frames {
				for t := range frameLen {
					at := (b*length + f*step + t) * comps
					v := complex(w.F64[at], 0)
					if comps == 2 {
						v = complex(w.F64[at], w.F64[at+1])
					}
					if window != nil {
						v *= complex(window[t], 0)
					}
					sig[t] = v
				}
				res := transform(sig, frameLen, bins, false)
				for k, v := range res {
					at := ((b*frames+f)*bins + k) * 2
					out[at], out[at+1] = real(v), imag(v)
				}
			}
		}
		res, err := castTensor(&tensor.Tensor{DType: tensor.Float64, Shape: []int{B, frames, bins, 2}, F64: out}, x.DType)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{res}, nil
	}, nil
}

// newMelWeightMatrix returns the [dft_length/2+1, num_mel_bins] matrix of
// triangular mel filters, as ONNX's reference defines it (bin edges spaced
// evenly on the mel scale 2595·log10(1 + f/700), rounded down to DFT bins).
func newMelWeightMatrix(n *Node) (Kernel, error) {
	dt := tensor.DType(n.Int("output_datatype", int64(tensor.Float32)))
	if !castTypes[dt] || dt == tensor.Bool {
		return nil, fmt.Errorf("attribute output_datatype: %s: %w", dt, ErrUnsupported)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 5, 5); err != nil {
			return nil, err
		}
		num := func(i int, name string) (float64, error) {
			v, err := castTensor(in[i], tensor.Float64)
			if err != nil || v.Len() != 1 {
				return 0, fmt.Errorf("input %s: %s, must be one number", name, in[i])
			}
			return v.F64[0], nil
		}
		var vals [5]float64
		for i, name := range []string{"num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz"} {
			v, err := num(i, name)
			if err != nil {
				return nil, err
			}
			vals[i] = v
		}
		mels, dftLen, rate, lo, hi := int(vals[0]), int(vals[1]), vals[2], vals[3], vals[4]
		if mels < 1 || mels > 1<<16 || dftLen < 1 || dftLen > 1<<24 || !(rate > 0) || lo < 0 || !(hi > lo) {
			return nil, fmt.Errorf("inputs: num_mel_bins %d, dft_length %d, sample_rate %v, edges %v-%v: need positive counts and rate, 0 <= lower < upper", mels, dftLen, rate, lo, hi)
		}
		specBins := dftLen/2 + 1
		toMel := func(f float64) float64 { return 2595 * math.Log10(1+f/700) }
		loMel, hiMel := toMel(lo), toMel(hi)
		step := (hiMel - loMel) / float64(mels+2)
		edges := make([]int, mels+2)
		for i := range edges {
			hz := 700 * (math.Pow(10, (float64(i)*step+loMel)/2595) - 1)
			edges[i] = int(math.Floor(float64(dftLen+1) * hz / rate))
		}
		out := make([]float64, specBins*mels)
		set := func(j, i int, v float64) error {
			if j < 0 || j >= specBins {
				return fmt.Errorf("upper_edge_hertz %v: past the Nyquist frequency of sample_rate %v", hi, rate)
			}
			out[j*mels+i] = v
			return nil
		}
		for i := range mels {
			l, c, h := edges[i], edges[i+1], edges[i+2]
			if c == l {
				if err := set(c, i, 1); err != nil {
					return nil, err
				}
			} else {
				for j := l; j <= c; j++ {
					if err := set(j, i, float64(j-l)/float64(c-l)); err != nil {
						return nil, err
					}
				}
			}
			for j := c; j < h; j++ {
				if err := set(j, i, float64(h-j)/float64(h-c)); err != nil {
					return nil, err
				}
			}
		}
		res, err := castTensor(&tensor.Tensor{DType: tensor.Float64, Shape: []int{specBins, mels}, F64: out}, dt)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{res}, nil
	}, nil
}
