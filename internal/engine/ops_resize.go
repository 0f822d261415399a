package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// Resize (opsets 10 to 19) and its predecessor Upsample (opsets 7 to 9) for
// float32 tensors of any rank. Every mode the ONNX reference implements is
// separable, so the kernel resamples one axis at a time: for each output index
// of an axis it computes the input indices and weights it reads (1 tap for
// nearest, 2 for linear, 4 for cubic), then applies them along that axis.

func init() {
	register("Resize", newResize)
	register("Upsample", newUpsample)
	shapeFns["Resize"] = inferResize
	shapeFns["Upsample"] = inferResize
}

// resizeAttrs are Resize's attributes, checked at compile time.
type resizeAttrs struct {
	mode           string // nearest, linear or cubic
	coord          string // coordinate_transformation_mode
	nearest        string // nearest_mode, or "simple" for opset 10 and Upsample
	cubicA         float64
	excludeOutside bool
	extrapolation  float32
	keepAspect     string    // keep_aspect_ratio_policy (opset 18)
	axes           []int64   // axes (opset 18); nil means all
	scalesAt       int       // input index of scales: 2 (Resize-11+), 1 (Resize-10, Upsample-9) or 0 (attribute)
	scalesAttr     []float32 // Upsample-7's scales attribute
}

func readResizeAttrs(n *Node) (*resizeAttrs, error) {
	r := &resizeAttrs{
		mode:           n.String("mode", "nearest"),
		coord:          n.String("coordinate_transformation_mode", "half_pixel"),
		nearest:        n.String("nearest_mode", "round_prefer_floor"),
		cubicA:         float64(n.Float("cubic_coeff_a", -0.75)),
		excludeOutside: n.Int("exclude_outside", 0) != 0,
		extrapolation:  n.Float("extrapolation_value", 0),
		keepAspect:     n.String("keep_aspect_ratio_policy", "stretch"),
		axes:           n.Ints("axes", nil),
		scalesAt:       2,
	}
	if n.OpType == "Upsample" || n.Opset < 11 {
		// Resize-10 and Upsample predate these attributes: they map output
		// to input coordinates by x/scale and round nearest as onnxruntime's
		// "simple" mode does (floor when enlarging, ceil when shrinking).
		r.coord, r.nearest, r.scalesAt = "asymmetric", "simple", 1
		if n.OpType == "Upsample" && n.Opset < 9 {
			r.scalesAt = 0
			r.scalesAttr = n.Floats("scales", nil)
			if len(r.scalesAttr) == 0 {
				return nil, fmt.Errorf("attribute scales: required before opset 9")
			}
		}
	}
	if r.mode == "bilinear" && n.OpType == "Upsample" {
		r.mode = "linear" // Upsample-7 spelling
	}
	switch r.mode {
	case "nearest", "linear", "cubic":
	default:
		return nil, fmt.Errorf("attribute mode: %q, must be nearest, linear or cubic", r.mode)
	}
	switch r.coord {
	case "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize":
	default:
		return nil, fmt.Errorf("attribute coordinate_transformation_mode: %q: %w", r.coord, ErrUnsupported)
	}
	switch r.nearest {
	case "round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple":
	default:
		return nil, fmt.Errorf("attribute nearest_mode: %q, must be round_prefer_floor, round_prefer_ceil, floor or ceil", r.nearest)
	}
	switch r.keepAspect {
	case "stretch", "not_larger", "not_smaller":
	default:
		return nil, fmt.Errorf("attribute keep_aspect_ratio_policy: %q, must be stretch, not_larger or not_smaller", r.keepAspect)
	}
	if n.Int("antialias", 0) != 0 {
		return nil, fmt.Errorf("attribute antialias: 1: %w", ErrUnsupported)
	}
	return r, nil
}

// resizeParams are the per-call inputs that decide the output: scales, sizes
// and roi, each nil when not given.
type resizeParams struct {
	roi    []float64
	scales []float64
	sizes  []int64
}

// params reads roi, scales and sizes from a Resize or Upsample node's inputs
// (get returns input i or nil); an empty tensor counts as not given (opsets 11
// and 12 pass an empty scales when sizes is used).
func (r *resizeAttrs) params(get func(i int) *tensor.Tensor) (resizeParams, error) {
	var p resizeParams
	floats := func(name string, t *tensor.Tensor) ([]float64, error) {
		if t == nil || t.Len() == 0 {
			return nil, nil
		}
		switch t.DType {
		case tensor.Float32:
			v := make([]float64, len(t.F32))
			for i, x := range t.F32 {
				v[i] = float64(x)
			}
			return v, nil
		case tensor.Float64:
			return append([]float64(nil), t.F64...), nil
		}
		return nil, fmt.Errorf("input %s: dtype %s, must be float32", name, t.DType)
	}
	var err error
	switch r.scalesAt {
	case 0:
		for _, s := range r.scalesAttr {
			p.scales = append(p.scales, float64(s))
		}
	case 1:
		if p.scales, err = floats("scales", get(1)); err != nil {
			return p, err
		}
	default: // X, roi, scales, sizes
		if p.roi, err = floats("roi", get(1)); err != nil {
			return p, err
		}
		if p.scales, err = floats("scales", get(2)); err != nil {
			return p, err
		}
		if t := get(3); t != nil && t.Len() > 0 {
			if t.DType != tensor.Int64 {
				return p, fmt.Errorf("input sizes: dtype %s, must be int64", t.DType)
			}
			p.sizes = t.I64
		}
	}
	if (p.scales == nil) == (p.sizes == nil) {
		return p, fmt.Errorf("inputs scales and sizes: exactly one must be given")
	}
	return p, nil
}

// plan returns the output shape and, for each axis, the scale used to map
// coordinates and the roi start and end (0 and 1 unless tf_crop_and_resize).
func (r *resizeAttrs) plan(x []int, p resizeParams) (out []int, scale, roiLo, roiHi []float64, err error) {
	rank := len(x)
	axes := make([]int, 0, rank)
	if len(r.axes) == 0 {
		for i := 0; i < rank; i++ {
			axes = append(axes, i)
		}
	} else {
		seen := make([]bool, rank)
		for _, a := range r.axes {
			ax, err := normAxis(a, rank, false)
			if err != nil {
				return nil, nil, nil, nil, fmt.Errorf("attribute axes: %w", err)
			}
			if seen[ax] {
				return nil, nil, nil, nil, fmt.Errorf("attribute axes: axis %d repeats", a)
			}
			seen[ax] = true
			axes = append(axes, ax)
		}
	}
	k := len(axes)
	out = append([]int{}, x...)
	scale = make([]float64, rank)
	roiLo, roiHi = make([]float64, rank), make([]float64, rank)
	for i := range scale {
		scale[i], roiHi[i] = 1, 1
	}
	if p.roi != nil && r.coord == "tf_crop_and_resize" {
		if len(p.roi) != 2*k {
			return nil, nil, nil, nil, fmt.Errorf("input roi: %d values, want %d (starts then ends of %d axes)", len(p.roi), 2*k, k)
		}
		for i, ax := range axes {
			roiLo[ax], roiHi[ax] = p.roi[i], p.roi[k+i]
		}
	}
	if p.scales != nil {
		if len(p.scales) != k {
			return nil, nil, nil, nil, fmt.Errorf("input scales: %d values, want %d (one per axis)", len(p.scales), k)
		}
		for i, ax := range axes {
			s := p.scales[i]
			if !(s > 0) {
				return nil, nil, nil, nil, fmt.Errorf("input scales: entry %d is %v, must be > 0", i, s)
			}
			scale[ax] = s
			d := math.Floor(float64(x[ax]) * (roiHi[ax] - roiLo[ax]) * s)
			if !(d >= 0 && d <= maxElements) {
				return nil, nil, nil, nil, fmt.Errorf("%w: input scales: entry %d (%v) makes axis %d %v long, more than %d", ErrBadInput, i, s, ax, d, maxElements)
			}
			out[ax] = int(d)
		}
		if err := checkSize(out, "output"); err != nil {
			return nil, nil, nil, nil, err
		}
		return out, scale, roiLo, roiHi, nil
	}
	if len(p.sizes) != k {
		return nil, nil, nil, nil, fmt.Errorf("input sizes: %d values, want %d (one per axis)", len(p.sizes), k)
	}
	for i, ax := range axes {
		if p.sizes[i] < 0 || p.sizes[i] > maxElements {
			return nil, nil, nil, nil, fmt.Errorf("%w: input sizes: entry %d is %d, must be in [0, %d]", ErrBadInput, i, p.sizes[i], maxElements)
		}
		if x[ax] == 0 {
			return nil, nil, nil, nil, fmt.Errorf("input X: axis %d is empty and cannot be resized", ax)
		}
		scale[ax] = float64(p.sizes[i]) / float64(x[ax])
		out[ax] = int(p.sizes[i])
	}
	if r.keepAspect != "stretch" {
		s := scale[axes[0]]
		for _, ax := range axes[1:] {
			if r.keepAspect == "not_larger" {
				s = min(s, scale[ax])
			} else {
				s = max(s, scale[ax])
			}
		}
		for _, ax := range axes {
			scale[ax] = s
			out[ax] = int(math.RoundToEven(s * float64(x[ax]))) // at most max(sizes)
		}
	}
	if err := checkSize(out, "output"); err != nil {
		return nil, nil, nil, nil, err
	}
	return out, scale, roiLo, roiHi, nil
}

// original maps output coordinate o of an axis to an input coordinate (ONNX
// Resize, coordinate_transformation_mode). As in the ONNX reference, the output
// length in the formulas is the unrounded s*in; out is the rounded one.
func (r *resizeAttrs) original(o, in, out int, s, lo, hi float64) float64 {
	x := float64(o)
	length := s * float64(in)
	switch r.coord {
	case "half_pixel":
		return (x+0.5)/s - 0.5
	case "half_pixel_symmetric":
		center := float64(in) / 2
		return center*(1-float64(out)/length) + (x+0.5)/s - 0.5
	case "pytorch_half_pixel":
		if length == 1 {
			return -0.5
		}
		return (x+0.5)/s - 0.5
	case "align_corners":
		if length == 1 {
			return 0
		}
		return x * float64(in-1) / (length - 1)
	case "tf_half_pixel_for_nn":
		return (x + 0.5) / s
	case "tf_crop_and_resize":
		if length == 1 {
			return 0.5*(hi-lo)*float64(in-1) + lo*float64(in-1)
		}
		return x*(hi-lo)*float64(in-1)/(length-1) + lo*float64(in-1)
	}
	return x / s // asymmetric
}

// nearestIndex rounds an input coordinate per nearest_mode.
func (r *resizeAttrs) nearestIndex(x float64, shrinking bool) int {
	switch r.nearest {
	case "round_prefer_ceil":
		if x == math.Floor(x)+0.5 {
			return int(math.Ceil(x))
		}
		return int(math.Round(x))
	case "floor":
		return int(math.Floor(x))
	case "ceil":
		return int(math.Ceil(x))
	case "simple":
		if shrinking {
			return int(math.Ceil(x))
		}
		return int(math.Floor(x))
	}
	if x == math.Floor(x)+0.5 { // round_prefer_floor
		return int(math.Floor(x))
	}
	return int(math.Round(x))
}

// axisTaps returns, for each output index of an axis, ntap input indices and
// weights; an index of -1 marks an output that takes extrapolation_value
// (tf_crop_and_resize outside the input). identity reports that the axis maps
// each index to itself, so it can be skipped.
func (r *resizeAttrs) axisTaps(in, out int, s, lo, hi float64) (idx []int, w []float32, ntap int, identity bool) {
	switch r.mode {
	case "nearest":
		ntap = 1
	case "linear":
		ntap = 2
	default:
		ntap = 4
	}
	idx, w = make([]int, out*ntap), make([]float32, out*ntap)
	clamp := func(i int) int { return min(max(i, 0), in-1) }
	identity = in == out
	for o := 0; o < out; o++ {
		x := r.original(o, in, out, s, lo, hi)
		ti, tw := idx[o*ntap:(o+1)*ntap], w[o*ntap:(o+1)*ntap]
		if r.coord == "tf_crop_and_resize" && (x < 0 || x > float64(in-1)) {
			for t := range ti {
				ti[t] = -1
			}
			identity = false
			continue
		}
		switch r.mode {
		case "nearest":
			ti[0], tw[0] = clamp(r.nearestIndex(x, s < 1)), 1
		case "linear":
			f := math.Floor(x)
			ti[0], ti[1] = clamp(int(f)), clamp(int(f)+1)
			tw[0], tw[1] = float32(1-(x-f)), float32(x-f)
		default:
			f := math.Floor(x)
			c := cubicCoeffs(x-f, r.cubicA)
			var sum float64
			for t := 0; t < 4; t++ {
				j := int(f) - 1 + t
				if r.excludeOutside && (j < 0 || j >= in) {
					c[t] = 0
				}
				sum += c[t]
				ti[t] = clamp(j)
			}
			for t := 0; t < 4; t++ {
				if r.excludeOutside && sum != 0 {
					c[t] /= sum
				}
				tw[t] = float32(c[t])
			}
		}
		for t := range ti {
			if tw[t] != 0 && (ti[t] != o || tw[t] != 1) {
				identity = false
			}
		}
	}
	return idx, w, ntap, identity
}

// cubicCoeffs returns the weights of the taps at floor(x)-1 .. floor(x)+2 for a
// fractional offset t (Keys' cubic convolution with parameter a, as in the ONNX
// reference and onnxruntime).
func cubicCoeffs(t, a float64) [4]float64 {
	u := 1 - t
	return [4]float64{
		((a*(t+1)-5*a)*(t+1)+8*a)*(t+1) - 4*a,
		((a+2)*t-(a+3))*t*t + 1,
		((a+2)*u-(a+3))*u*u + 1,
		((a*(u+1)-5*a)*(u+1)+8*a)*(u+1) - 4*a,
	}
}

// resizeAxis resamples x along axis ax to out entries with the given taps.
func resizeAxis(x *tensor.Tensor, ax, out int, idx []int, w []float32, ntap int, extrap float32) *tensor.Tensor {
	shape := append([]int{}, x.Shape...)
	in := shape[ax]
	shape[ax] = out
	y := tensor.New(tensor.Float32, shape...)
	outer := tensor.NumElements(shape[:ax])
	inner := tensor.NumElements(shape[ax+1:])
	for o := 0; o < outer; o++ {
		src := x.F32[o*in*inner : (o+1)*in*inner]
		dst := y.F32[o*out*inner : (o+1)*out*inner]
		for j := 0; j < out; j++ {
			row := dst[j*inner : (j+1)*inner]
			ti, tw := idx[j*ntap:(j+1)*ntap], w[j*ntap:(j+1)*ntap]
			if ti[0] < 0 {
				for i := range row {
					row[i] = extrap
				}
				continue
			}
			for t, k := range ti {
				if tw[t] == 0 {
					continue
				}
				wt := tw[t]
				s := src[k*inner : (k+1)*inner]
				for i := range row {
					row[i] += wt * s[i]
				}
			}
		}
	}
	return y
}

func newResize(n *Node) (Kernel, error) {
	r, err := readResizeAttrs(n)
	if err != nil {
		return nil, err
	}
	return r.kernel(n)
}

func newUpsample(n *Node) (Kernel, error) {
	r, err := readResizeAttrs(n)
	if err != nil {
		return nil, err
	}
	return r.kernel(n)
}

func (r *resizeAttrs) kernel(n *Node) (Kernel, error) {
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		return r.run(n, threads, in)
	}
	return withThreads(n.threaded, 1), nil
}

// run resizes in[0] with up to threads goroutines.
func (r *resizeAttrs) run(n *Node, threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := checkInputs(in, 1, 4); err != nil {
		return nil, err
	}
	x := in[0]
	if x.DType != tensor.Float32 {
		return nil, fmt.Errorf("input X: dtype %s, %s supports float32 only", x.DType, n.OpType)
	}
	p, err := r.params(func(i int) *tensor.Tensor {
		if i < len(in) {
			return in[i]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out, scale, lo, hi, err := r.plan(x.Shape, p)
	if err != nil {
		return nil, err
	}
	if r.mode == "nearest" && len(out) > 0 && tensor.NumElements(out) > 0 && tensor.NumElements(x.Shape) > 0 {
		idx := make([][]int, len(out))
		gather := true
		for ax := range out {
			taps, _, _, _ := r.axisTaps(x.Shape[ax], out[ax], scale[ax], lo[ax], hi[ax])
			idx[ax] = taps
			gather = gather && !slices.Contains(taps, -1)
		}
		if gather {
			return []*tensor.Tensor{resizeNearest(x, out, idx, threads)}, nil
		}
	}
	y := x
	for ax := range out {
		if y.Shape[ax] == 0 || out[ax] == 0 {
			y = reshaped(y, y.Shape)
			y.Shape[ax] = out[ax]
			y.F32 = make([]float32, tensor.NumElements(y.Shape))
			continue
		}
		idx, w, ntap, identity := r.axisTaps(x.Shape[ax], out[ax], scale[ax], lo[ax], hi[ax])
		if identity {
			continue
		}
		y = resizeAxis(y, ax, out[ax], idx, w, ntap, r.extrapolation)
	}
	if y == x {
		y = reshaped(x, x.Shape)
	}
	return []*tensor.Tensor{y}, nil
}

// resizeNearest builds y of shape out from x in one pass, output element at
// (o_0, ..., o_r-1) taking x's at (idx[0][o_0], ..., idx[r-1][o_r-1]): each
// output row along the last axis is a gather from one input row, or a copy
// of the row before it when both come from the same input row (upsampling
// by an integer factor repeats every row).
func resizeNearest(x *tensor.Tensor, out []int, idx [][]int, threads int) *tensor.Tensor {
	r := len(out)
	y := newF32Dirty(out...) // every element is written
	last, inLast := out[r-1], x.Shape[r-1]
	rows := tensor.NumElements(out[:r-1])
	stride := make([]int, r) // x's strides
	stride[r-1] = 1
	for a := r - 2; a >= 0; a-- {
		stride[a] = stride[a+1] * x.Shape[a+1]
	}
	parts := min(threads, max(1, len(y.F32)/(64<<10)), rows)
	kernels.Parallel(parts, func(part int) {
		lo, hi := part*rows/parts, (part+1)*rows/parts
		coord := make([]int, r-1) // the output coordinates of row lo
		for a, rem := r-2, lo; a >= 0; a-- {
			coord[a] = rem % out[a]
			rem /= out[a]
		}
		cols := idx[r-1]
		rep := repeatFactor(cols, inLast)
		prev := -1
		for row := lo; row < hi; row++ {
			src := 0
			for a, c := range coord {
				src += idx[a][c] * stride[a]
			}
			dst := y.F32[row*last : (row+1)*last]
			if src == prev {
				copy(dst, y.F32[(row-1)*last:row*last])
			} else {
				s := x.F32[src : src+inLast]
				switch rep {
				case 1:
					copy(dst, s)
				case 2:
					kernels.Interleave2(dst, s, s)
				default:
					for j, k := range cols {
						dst[j] = s[k]
					}
				}
			}
			prev = src
			for a := r - 2; a >= 0; a-- {
				if coord[a]++; coord[a] < out[a] {
					break
				}
				coord[a] = 0
			}
		}
	})
	return y
}

// repeatFactor returns f when cols picks each of n input columns f times in
// order (cols[j] = j/f: upsampling a row by an integer factor), else 0.
func repeatFactor(cols []int, n int) int {
	if n == 0 || len(cols)%n != 0 {
		return 0
	}
	f := len(cols) / n
	for j, k := range cols {
		if k != j/f {
			return 0
		}
	}
	return f
}

// inferResize computes Resize's and Upsample's output shape when X's shape and
// the scales or sizes are known at compile time.
func inferResize(n *Node, in [][]int) ([][]int, error) {
	if in[0] == nil {
		return nil, nil
	}
	r, err := readResizeAttrs(n)
	if err != nil {
		return nil, err
	}
	known := true
	p, err := r.params(func(i int) *tensor.Tensor {
		if i >= len(n.Inputs) || n.Inputs[i] == "" {
			return nil
		}
		t := n.Const(i)
		if t == nil {
			known = false
		}
		return t
	})
	if !known || err != nil {
		return nil, nil
	}
	out, _, _, _, err := r.plan(in[0], p)
	if err != nil {
		return nil, err
	}
	return [][]int{out}, nil
}
