package engine

import (
	"fmt"
	"math"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// Normalization ops. Statistics are accumulated in float64 so that long rows
// (a transformer's hidden size, a large feature map) lose no precision; the
// results are float32.

func init() {
	register("LayerNormalization", newLayerNorm)
	register("BatchNormalization", newBatchNorm)
	register("InstanceNormalization", newInstanceNorm)
	register("LRN", newLRN)
	register("MeanVarianceNormalization", newMVN)
	register("GroupNormalization", newGroupNorm)
	register("LpNormalization", newLpNorm)
}

// newGroupNorm implements GroupNormalization: the C channels of X [N C ...]
// in num_groups groups, each group of each image normalised over its
// channels and positions, then scaled and shifted per channel (opset 21:
// scale and bias [C]) or per group (opset 18: [num_groups], which ONNX
// deprecated for the per-channel form; both are read by their size).
func newGroupNorm(n *Node) (Kernel, error) {
	groups := int(n.Int("num_groups", 0))
	if groups < 1 {
		return nil, fmt.Errorf("attribute num_groups: %d, must be at least 1 (it is required)", groups)
	}
	eps := float64(n.Float("epsilon", 1e-5))
	n.fresh = true
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 3, 3); err != nil {
			return nil, err
		}
		x, scale, b := in[0], in[1], in[2]
		if x.DType != tensor.Float32 || scale.DType != tensor.Float32 || b.DType != tensor.Float32 {
			return nil, fmt.Errorf("inputs %s, %s, %s: GroupNormalization supports float32 only", x, scale, b)
		}
		if len(x.Shape) < 2 {
			return nil, fmt.Errorf("input X: shape %s, must be [N C ...]", tensor.ShapeString(x.Shape))
		}
		C := x.Shape[1]
		if C%groups != 0 {
			return nil, fmt.Errorf("input X: %d channels do not split into %d groups", C, groups)
		}
		perGroup := len(scale.F32) == groups && len(b.F32) == groups && groups != C
		if !perGroup && (len(scale.F32) != C || len(b.F32) != C) {
			return nil, fmt.Errorf("inputs scale %s and bias %s: must have %d elements (one per channel) or %d (one per group)", scale, b, C, groups)
		}
		size := tensor.NumElements(x.Shape[2:])
		cg := C / groups
		y := newF32Dirty(x.Shape...)
		for img := range x.Shape[0] {
			for g := range groups {
				off := (img*C + g*cg) * size
				m, is := meanInvStd(x.F32[off:off+cg*size], eps)
				for c := g * cg; c < (g+1)*cg; c++ {
					sc, sh := float64(scale.F32[c]), float64(b.F32[c%len(b.F32)])
					if perGroup {
						sc, sh = float64(scale.F32[g]), float64(b.F32[g])
					}
					k := sc * is
					row := x.F32[(img*C+c)*size : (img*C+c+1)*size]
					dst := y.F32[(img*C+c)*size : (img*C+c+1)*size]
					for i, v := range row {
						dst[i] = float32((float64(v)-m)*k + sh)
					}
				}
			}
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// newLpNorm implements LpNormalization: X divided by its L1 or L2 norm
// (attribute p, default 2) along axis (default -1); a zero vector stays
// zero.
func newLpNorm(n *Node) (Kernel, error) {
	axis, p := n.Int("axis", -1), n.Int("p", 2)
	if p != 1 && p != 2 {
		return nil, fmt.Errorf("attribute p: %d, must be 1 or 2", p)
	}
	n.fresh = true
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input input: dtype %s, LpNormalization supports float32 only", x.DType)
		}
		ax, err := normAxis(axis, len(x.Shape), false)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		outer, dim, inner := tensor.NumElements(x.Shape[:ax]), x.Shape[ax], tensor.NumElements(x.Shape[ax+1:])
		y := newF32Dirty(x.Shape...)
		for o := range outer {
			for i := range inner {
				base := o*dim*inner + i
				var norm float64
				for d := range dim {
					v := float64(x.F32[base+d*inner])
					if p == 1 {
						norm += math.Abs(v)
					} else {
						norm += v * v
					}
				}
				if p == 2 {
					norm = math.Sqrt(norm)
				}
				for d := range dim {
					v := x.F32[base+d*inner]
					if norm != 0 {
						v = float32(float64(v) / norm)
					}
					y.F32[base+d*inner] = v
				}
			}
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// newLayerNorm implements LayerNormalization (opset 17): X is normalised over
// its axes from axis on, Y = (X - mean) / sqrt(var + epsilon) * Scale + B, with
// Scale and the optional B broadcast unidirectionally to X.shape[axis:]. The
// optional outputs Mean and InvStdDev have X's shape with the normalised axes
// set to 1.
func newLayerNorm(n *Node) (Kernel, error) {
	axis := n.Int("axis", -1)
	eps := float64(n.Float("epsilon", 1e-5))
	if st := n.Int("stash_type", 1); st != 1 {
		return nil, fmt.Errorf("attribute stash_type: %d: %w (only 1, float32 statistics, is)", st, ErrUnsupported)
	}
	wantMean := len(n.Outputs) > 1 && n.Outputs[1] != ""
	wantInv := len(n.Outputs) > 2 && n.Outputs[2] != ""
	n.fresh = true
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 3); err != nil {
			return nil, err
		}
		x, scale := in[0], in[1]
		var bias *tensor.Tensor
		if len(in) > 2 {
			bias = in[2]
		}
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input X: dtype %s, LayerNormalization supports float32 only", x.DType)
		}
		a, err := normAxis(axis, len(x.Shape), false)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		norm := x.Shape[a:]
		sc, err := broadcastParam("Scale", scale, norm)
		if err != nil {
			return nil, err
		}
		var bi []float32
		if bias != nil {
			if bi, err = broadcastParam("B", bias, norm); err != nil {
				return nil, err
			}
		}
		outer, size := tensor.NumElements(x.Shape[:a]), tensor.NumElements(norm)
		y := newF32(x.Shape...)
		statShape := append([]int{}, x.Shape...)
		for i := a; i < len(statShape); i++ {
			statShape[i] = 1
		}
		mean := tensor.New(tensor.Float32, statShape...)
		inv := tensor.New(tensor.Float32, statShape...)
		parallelFor(threads, outer, max(1, elementGrain/max(1, size)), func(lo, hi int) {
			for o := lo; o < hi; o++ {
				row := x.F32[o*size : (o+1)*size]
				dst := y.F32[o*size : (o+1)*size]
				m, is := meanInvStd(row, eps)
				mean.F32[o], inv.F32[o] = float32(m), float32(is)
				kernels.Normalize(dst, row, sc, bi, m, is)
			}
		})
		outs := []*tensor.Tensor{y}
		if wantMean || wantInv {
			outs = append(outs, mean, inv)
		}
		return outs, nil
	}
	return withThreads(n.threaded, 1), nil
}

// meanInvStd returns the mean of row and 1/sqrt(variance + eps), the variance
// taken about the mean in a second pass for accuracy, both summed in float64
// (kernels.MeanInvStd).
func meanInvStd(row []float32, eps float64) (mean, invStd float64) {
	return kernels.MeanInvStd(row, eps)
}

// broadcastParam returns a float32 parameter (LayerNormalization's Scale or B)
// expanded to shape, which it must broadcast to unidirectionally. A parameter
// that already has shape's element count and trailing dimensions is returned as is.
func broadcastParam(name string, p *tensor.Tensor, shape []int) ([]float32, error) {
	if p.DType != tensor.Float32 {
		return nil, fmt.Errorf("input %s: dtype %s, must be float32", name, p.DType)
	}
	if err := unidirectional(p.Shape, shape); err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	n := tensor.NumElements(shape)
	if len(p.F32) == n {
		return p.F32, nil
	}
	out := make([]float32, n)
	broadcastApply(out, shape, out, shape, p.F32, p.Shape, func(_, v float32) float32 { return v })
	return out, nil
}

// newBatchNorm implements BatchNormalization in inference mode: Y = (X - mean) /
// sqrt(var + epsilon) * scale + B per channel (axis 1), or per element of a
// channel block with spatial=0 (opsets before 9). Training mode (training_mode=1
// from opset 14, is_test=0 before opset 7) and its extra outputs are
// ErrUnsupported. When all four parameters are constants the per-channel
// multiplier and offset are computed once here.
func newBatchNorm(n *Node) (Kernel, error) {
	eps := float64(n.Float("epsilon", 1e-5))
	if n.Int("training_mode", 0) != 0 {
		return nil, fmt.Errorf("attribute training_mode: 1: %w (inference only)", ErrUnsupported)
	}
	if n.Opset < 7 && n.Has("is_test") && n.Int("is_test", 0) == 0 {
		return nil, fmt.Errorf("attribute is_test: 0 asks for training: %w (inference only)", ErrUnsupported)
	}
	for i := 1; i < len(n.Outputs); i++ {
		if n.Outputs[i] != "" {
			return nil, fmt.Errorf("output %d (%q): the running and saved statistics are training outputs: %w", i, n.Outputs[i], ErrUnsupported)
		}
	}
	// coeffs folds the four parameters into y = x*mul + add.
	coeffs := func(in []*tensor.Tensor) (mul, add []float32, err error) {
		names := []string{"scale", "B", "input_mean", "input_var"}
		size := -1
		for i, name := range names {
			p := in[i+1]
			if p.DType != tensor.Float32 {
				return nil, nil, fmt.Errorf("input %s: dtype %s, must be float32", name, p.DType)
			}
			if size >= 0 && len(p.F32) != size {
				return nil, nil, fmt.Errorf("input %s: %s, must have %d elements like scale", name, p, size)
			}
			size = len(p.F32)
		}
		mul, add = make([]float32, size), make([]float32, size)
		for c := range mul {
			m := float64(in[1].F32[c]) / math.Sqrt(float64(in[4].F32[c])+eps)
			mul[c] = float32(m)
			add[c] = float32(float64(in[2].F32[c]) - float64(in[3].F32[c])*m)
		}
		return mul, add, nil
	}
	var cMul, cAdd []float32
	if c := []*tensor.Tensor{nil, n.Const(1), n.Const(2), n.Const(3), n.Const(4)}; c[1] != nil && c[2] != nil && c[3] != nil && c[4] != nil {
		var err error
		if cMul, cAdd, err = coeffs(c); err != nil {
			return nil, err
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 5, 5); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input X: dtype %s, BatchNormalization supports float32 only", x.DType)
		}
		if len(x.Shape) < 2 {
			return nil, fmt.Errorf("input X: shape %s, must be [N C ...]", tensor.ShapeString(x.Shape))
		}
		mul, add := cMul, cAdd
		if mul == nil {
			var err error
			if mul, add, err = coeffs(in); err != nil {
				return nil, err
			}
		}
		N, C := x.Shape[0], x.Shape[1]
		inner := tensor.NumElements(x.Shape[2:])
		// per is how many consecutive elements share one coefficient.
		per := inner
		switch len(mul) {
		case C:
		case C * inner: // spatial=0: one coefficient per element of a channel block
			per = 1
		default:
			return nil, fmt.Errorf("input scale: %d elements, must be %d (one per channel of X %s)", len(mul), C, tensor.ShapeString(x.Shape))
		}
		y := tensor.New(tensor.Float32, x.Shape...)
		block := C * inner
		for img := 0; img < N; img++ {
			src := x.F32[img*block : (img+1)*block]
			dst := y.F32[img*block : (img+1)*block]
			for i := 0; i < block; i += per {
				m, a := mul[i/per], add[i/per]
				for j := i; j < i+per; j++ {
					dst[j] = src[j]*m + a
				}
			}
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// newInstanceNorm implements InstanceNormalization: each (image, channel) plane
// of X [N C ...] is normalised over its spatial positions, then scaled and
// shifted by the channel's scale and B.
func newInstanceNorm(n *Node) (Kernel, error) {
	eps := float64(n.Float("epsilon", 1e-5))
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 3, 3); err != nil {
			return nil, err
		}
		x, scale, b := in[0], in[1], in[2]
		if x.DType != tensor.Float32 || scale.DType != tensor.Float32 || b.DType != tensor.Float32 {
			return nil, fmt.Errorf("inputs %s, %s, %s: InstanceNormalization supports float32 only", x, scale, b)
		}
		if len(x.Shape) < 3 {
			return nil, fmt.Errorf("input X: shape %s, must be [N C D1 ...]", tensor.ShapeString(x.Shape))
		}
		C := x.Shape[1]
		if len(scale.F32) != C || len(b.F32) != C {
			return nil, fmt.Errorf("inputs scale %s and B %s: must have %d elements, one per channel", scale, b, C)
		}
		size := tensor.NumElements(x.Shape[2:])
		y := tensor.New(tensor.Float32, x.Shape...)
		for pl := 0; pl < x.Shape[0]*C; pl++ {
			row := x.F32[pl*size : (pl+1)*size]
			dst := y.F32[pl*size : (pl+1)*size]
			m, is := meanInvStd(row, eps)
			k, off := float64(scale.F32[pl%C])*is, float64(b.F32[pl%C])
			for i, v := range row {
				dst[i] = float32((float64(v)-m)*k + off)
			}
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// newLRN implements local response normalisation across channels (AlexNet):
// y = x / (bias + alpha/size * sum of x² over the size channels around c)^beta,
// the window running from c-floor((size-1)/2) to c+ceil((size-1)/2).
func newLRN(n *Node) (Kernel, error) {
	size := int(n.Int("size", 0))
	if size < 1 {
		return nil, fmt.Errorf("attribute size: %d, must be >= 1 (it is required)", size)
	}
	alpha := float64(n.Float("alpha", 1e-4))
	beta := float64(n.Float("beta", 0.75))
	bias := float64(n.Float("bias", 1))
	lo, hi := (size-1)/2, (size-1)-(size-1)/2
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input X: dtype %s, LRN supports float32 only", x.DType)
		}
		if len(x.Shape) < 3 {
			return nil, fmt.Errorf("input X: shape %s, must be [N C D1 ...]", tensor.ShapeString(x.Shape))
		}
		N, C := x.Shape[0], x.Shape[1]
		inner := tensor.NumElements(x.Shape[2:])
		y := tensor.New(tensor.Float32, x.Shape...)
		for img := 0; img < N; img++ {
			base := img * C * inner
			for c := 0; c < C; c++ {
				c0, c1 := max(0, c-lo), min(C-1, c+hi)
				for i := 0; i < inner; i++ {
					var s float64
					for cc := c0; cc <= c1; cc++ {
						v := float64(x.F32[base+cc*inner+i])
						s += v * v
					}
					j := base + c*inner + i
					y.F32[j] = float32(float64(x.F32[j]) / math.Pow(bias+alpha/float64(size)*s, beta))
				}
			}
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// newMVN implements MeanVarianceNormalization: Y = (X - mean) / (sqrt(var) +
// 1e-9) with the statistics taken over axes (default [0 2 3]), as the op's
// ONNX function body defines it.
func newMVN(n *Node) (Kernel, error) {
	axes := n.Ints("axes", []int64{0, 2, 3})
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input X: dtype %s, MeanVarianceNormalization supports float32 only", x.DType)
		}
		r := len(x.Shape)
		reduced := make([]bool, r)
		for _, a := range axes {
			ax, err := normAxis(a, r, false)
			if err != nil {
				return nil, fmt.Errorf("attribute axes: %w", err)
			}
			reduced[ax] = true
		}
		// group[i] numbers the kept-axes position of flat element i.
		groups := 1
		gstride := make([]int, r)
		for d := r - 1; d >= 0; d-- {
			if !reduced[d] {
				gstride[d] = groups
				groups *= x.Shape[d]
			}
		}
		group := make([]int, len(x.F32))
		idx := make([]int, r)
		for i := range group {
			g := 0
			for d, v := range idx {
				g += v * gstride[d]
			}
			group[i] = g
			for d := r - 1; d >= 0; d-- {
				idx[d]++
				if idx[d] < x.Shape[d] {
					break
				}
				idx[d] = 0
			}
		}
		sum, sq := make([]float64, groups), make([]float64, groups)
		count := float64(len(x.F32)) / float64(max(groups, 1))
		for i, v := range x.F32 {
			sum[group[i]] += float64(v)
		}
		for g := range sum {
			sum[g] /= count
		}
		for i, v := range x.F32 {
			d := float64(v) - sum[group[i]]
			sq[group[i]] += d * d
		}
		y := tensor.New(tensor.Float32, x.Shape...)
		for i, v := range x.F32 {
			g := group[i]
			y.F32[i] = float32((float64(v) - sum[g]) / (math.Sqrt(sq[g]/count) + 1e-9))
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}
