package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/spindleml/spindle/internal/tensor"
)

// Smaller ops of the default domain (issue 13, item 5): Compress,
// ReverseSequence, Det, the window functions and MaxUnpool.

func init() {
	register("Compress", newCompress)
	register("ReverseSequence", newReverseSequence)
	register("Det", newDet)
	register("HannWindow", func(n *Node) (Kernel, error) {
		return newWindow(n, func(x float64) float64 { return 0.5 - 0.5*math.Cos(x) })
	})
	register("HammingWindow", func(n *Node) (Kernel, error) {
		return newWindow(n, func(x float64) float64 { return 25.0/46 - 21.0/46*math.Cos(x) })
	})
	register("BlackmanWindow", func(n *Node) (Kernel, error) {
		return newWindow(n, func(x float64) float64 { return 0.42 - 0.5*math.Cos(x) + 0.08*math.Cos(2*x) })
	})
	register("MaxUnpool", newMaxUnpool)
}

// axisOrFlat returns the shape an op with an optional axis attribute works
// on, and the axis: x's shape and the axis, or x flattened and axis 0 when
// the attribute is absent (Compress, Unique).
func axisOrFlat(x *tensor.Tensor, axis int64, hasAxis bool) ([]int, int, error) {
	if !hasAxis {
		return []int{x.Len()}, 0, nil
	}
	a, err := normAxis(axis, len(x.Shape), false)
	if err != nil {
		return nil, 0, fmt.Errorf("attribute axis: %w", err)
	}
	return x.Shape, a, nil
}

// newCompress keeps the slices along axis (of the flattened input without
// one) whose condition is true; a condition shorter than the axis leaves
// the rest out.
func newCompress(n *Node) (Kernel, error) {
	axis, hasAxis := n.Int("axis", 0), n.Has("axis")
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x, cond := in[0], in[1]
		if cond.DType != tensor.Bool || len(cond.Shape) != 1 {
			return nil, fmt.Errorf("input condition: %s, must be 1-D bool", cond)
		}
		shape, a, err := axisOrFlat(x, axis, hasAxis)
		if err != nil {
			return nil, err
		}
		if len(cond.B) > shape[a] {
			return nil, fmt.Errorf("input condition: %d entries, axis %d has %d", len(cond.B), a, shape[a])
		}
		var keep []int
		for i, c := range cond.B {
			if c {
				keep = append(keep, i)
			}
		}
		outer, inner := tensor.NumElements(shape[:a]), tensor.NumElements(shape[a+1:])
		outShape := slices.Clone(shape)
		outShape[a] = len(keep)
		out := newTyped(x.DType, outShape...)
		sz := x.DType.Size()
		if sz == 0 {
			return nil, fmt.Errorf("input input: dtype %s is not supported", x.DType)
		}
		src, dst := x.Bytes(), out.Bytes()
		run := inner * sz
		for o := range outer {
			for j, k := range keep {
				copy(dst[(o*len(keep)+j)*run:][:run], src[(o*shape[a]+k)*run:][:run])
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newReverseSequence reverses, for each batch entry b, the first
// sequence_lens[b] elements along time_axis.
func newReverseSequence(n *Node) (Kernel, error) {
	batchAxis, timeAxis := n.Int("batch_axis", 1), n.Int("time_axis", 0)
	if !(batchAxis == 0 && timeAxis == 1 || batchAxis == 1 && timeAxis == 0) {
		return nil, fmt.Errorf("attributes batch_axis %d and time_axis %d: must be 0 and 1, either way round", batchAxis, timeAxis)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x := in[0]
		if len(x.Shape) < 2 || x.DType.Size() == 0 {
			return nil, fmt.Errorf("input input: %s, must have rank 2 or more", x)
		}
		B, T := x.Shape[batchAxis], x.Shape[timeAxis]
		lens, err := castTensor(in[1], tensor.Int64)
		if err != nil || len(lens.Shape) != 1 || lens.Shape[0] != B {
			return nil, fmt.Errorf("input sequence_lens: %s, must be [%d] integers", in[1], B)
		}
		for b, l := range lens.I64 {
			if l < 0 || l > int64(T) {
				return nil, fmt.Errorf("input sequence_lens: entry %d is %d, must be in [0, %d]", b, l, T)
			}
		}
		out := newTyped(x.DType, x.Shape...)
		sz := x.DType.Size()
		run := tensor.NumElements(x.Shape[2:]) * sz
		src, dst := x.Bytes(), out.Bytes()
		at := func(b, t int) int { // byte offset of (batch b, time t)
			if batchAxis == 0 {
				return (b*T + t) * run
			}
			return (t*B + b) * run
		}
		for b := range B {
			l := int(lens.I64[b])
			for t := range T {
				from := t
				if t < l {
					from = l - 1 - t
				}
				copy(dst[at(b, t):][:run], src[at(b, from):][:run])
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newDet computes the determinants of the square matrices in the last two
// axes, by LU decomposition with partial pivoting in float64.
func newDet(n *Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		r := len(x.Shape)
		if r < 2 || x.Shape[r-1] != x.Shape[r-2] || x.DType != tensor.Float32 && x.DType != tensor.Float64 {
			return nil, fmt.Errorf("input X: %s, must be float32 or float64 [... M M]", x)
		}
		m := x.Shape[r-1]
		w, _ := castTensor(x, tensor.Float64)
		count := tensor.NumElements(x.Shape[:r-2])
		dets := make([]float64, count)
		a := make([]float64, m*m)
		for i := range count {
			copy(a, w.F64[i*m*m:(i+1)*m*m])
			det := 1.0
			for c := range m {
				p := c
				for row := c + 1; row < m; row++ {
					if math.Abs(a[row*m+c]) > math.Abs(a[p*m+c]) {
						p = row
					}
				}
				if a[p*m+c] == 0 {
					det = 0
					break
				}
				if p != c {
					for k := range m {
						a[c*m+k], a[p*m+k] = a[p*m+k], a[c*m+k]
					}
					det = -det
				}
				det *= a[c*m+c]
				for row := c + 1; row < m; row++ {
					f := a[row*m+c] / a[c*m+c]
					for k := c; k < m; k++ {
						a[row*m+k] -= f * a[c*m+k]
					}
				}
			}
			dets[i] = det
		}
		out, err := castTensor(&tensor.Tensor{DType: tensor.Float64, Shape: slices.Clone(x.Shape[:r-2]), F64: dets}, x.DType)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newWindow returns a window of the size its scalar input gives, w(n) =
// f(2πn/D) with D the size when periodic (the default), else size-1.
func newWindow(n *Node, f func(float64) float64) (Kernel, error) {
	periodic := n.Int("periodic", 1) != 0
	dt := tensor.DType(n.Int("output_datatype", int64(tensor.Float32)))
	if !castTypes[dt] || dt == tensor.Bool {
		return nil, fmt.Errorf("attribute output_datatype: %s: %w", dt, ErrUnsupported)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		sz, err := castTensor(in[0], tensor.Int64)
		if err != nil || sz.Len() != 1 {
			return nil, fmt.Errorf("input size: %s, must be one integer", in[0])
		}
		size := sz.I64[0]
		if size < 0 || size > maxElements {
			return nil, fmt.Errorf("input size: %d, must be in [0, %d]", size, int64(maxElements))
		}
		d := float64(size)
		if !periodic {
			d--
		}
		w := make([]float64, size)
		for i := range w {
			if d > 0 {
				w[i] = f(2 * math.Pi * float64(i) / d)
			} else {
				w[i] = f(0)
			}
		}
		out, err := castTensor(&tensor.Tensor{DType: tensor.Float64, Shape: []int{int(size)}, F64: w}, dt)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newMaxUnpool scatters X into zeros at the flat indices I (as MaxPool
// returns them), the output shaped by output_shape or by inverting the
// pooling's geometry.
func newMaxUnpool(n *Node) (Kernel, error) {
	kernel := n.Ints("kernel_shape", nil)
	if len(kernel) == 0 {
		return nil, fmt.Errorf("attribute kernel_shape: required")
	}
	pads := n.Ints("pads", nil)
	strides := n.Ints("strides", nil)
	sp := len(kernel)
	if pads != nil && len(pads) != 2*sp || strides != nil && len(strides) != sp {
		return nil, fmt.Errorf("attributes pads %v and strides %v: must have %d and %d entries", pads, strides, 2*sp, sp)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 3); err != nil {
			return nil, err
		}
		x, idx := in[0], in[1]
		if len(x.Shape) != sp+2 || x.DType.Size() == 0 {
			return nil, fmt.Errorf("input X: %s, must have rank %d", x, sp+2)
		}
		ind, err := castTensor(idx, tensor.Int64)
		if err != nil || !slices.Equal(idx.Shape, x.Shape) {
			return nil, fmt.Errorf("input I: %s, must be integers shaped as X %s", idx, tensor.ShapeString(x.Shape))
		}
		// The indices count in the shape pooling inverted gives; an
		// output_shape may be larger (the pooling dropped a ragged edge),
		// and each index keeps its coordinates there.
		inferred := slices.Clone(x.Shape)
		for a := range sp {
			s, pb, pe := int64(1), int64(0), int64(0)
			if strides != nil {
				s = strides[a]
			}
			if pads != nil {
				pb, pe = pads[a], pads[sp+a]
			}
			d := (int64(x.Shape[2+a])-1)*s + kernel[a] - pb - pe
			if d < 0 || d > maxElements {
				return nil, fmt.Errorf("output axis %d: size %d out of range", 2+a, d)
			}
			inferred[2+a] = int(d)
		}
		shape := inferred
		if len(in) > 2 && in[2] != nil {
			os, err := intList(in[2], "output_shape")
			if err != nil {
				return nil, err
			}
			if len(os) != len(shape) {
				return nil, fmt.Errorf("input output_shape: %v, must have %d entries", os, len(shape))
			}
			shape = make([]int, len(os))
			for i, d := range os {
				if d < int64(inferred[i]) || d > maxElements {
					return nil, fmt.Errorf("input output_shape: %v: entry %d must be in [%d, %d]", os, i, inferred[i], int64(maxElements))
				}
				shape[i] = int(d)
			}
		}
		if c, err := tensor.Count(shape); err != nil || c > maxElements {
			return nil, fmt.Errorf("output shape %s: more than %d elements", tensor.ShapeString(shape), int64(maxElements))
		}
		out := newTyped(x.DType, shape...)
		clear(out.Bytes())
		sz := x.DType.Size()
		src, dst := x.Bytes(), out.Bytes()
		total := int64(tensor.NumElements(inferred))
		is, os := contiguousStrides(inferred), contiguousStrides(shape)
		for i, j := range ind.I64 {
			if j < 0 || j >= total {
				return nil, fmt.Errorf("input I: index %d is outside the %d elements of %s", j, total, tensor.ShapeString(inferred))
			}
			at, rem := 0, int(j)
			for a := range inferred {
				at += rem / is[a] * os[a]
				rem %= is[a]
			}
			copy(dst[at*sz:][:sz], src[i*sz:][:sz])
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}
