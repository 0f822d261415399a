package engine

import (
	"math"

	"github.com/spindleml/spindle/internal/tensor"
)

// convAffine folds a per-channel affine map into the convolution before
// it: when step i is a Conv with constant weights (and bias) whose output
// only the next step reads, and that step is an inference
// BatchNormalization with constant parameters, or a Mul, Add or Sub (the
// convolution's output minus a constant) by a constant that is one number
// per output channel or one for all (a normalisation spelled out op by op,
// as paddle2onnx writes PP-LCNet's), that map y = x*s + t (for a
// BatchNormalization s = scale/sqrt(var+eps), t = B - mean*s, per output
// channel) moves into the convolution's weights and bias, W' = W*s and B' =
// B*s + t, and the step goes. The folded convolution is tried again, so a
// run of such steps folds one by one. Exporters leave every normalisation
// after its convolution (PyTorch, paddle2onnx); ONNX Runtime folds them the
// same way. The folded weights are new constants: the convolution is
// compiled again with them, so it packs them as it did the originals.
func (f *fuser) convAffine(i int) {
	st := f.m.steps[i]
	if f.op(i) != "Conv" || len(st.in) < 2 || st.fused != nil {
		return
	}
	w := f.consts[st.in[1]]
	if w == nil || w.DType != tensor.Float32 || len(w.Shape) < 3 {
		return
	}
	M := w.Shape[0]
	var bias *tensor.Tensor
	if len(st.in) > 2 && st.in[2] >= 0 {
		if bias = f.consts[st.in[2]]; bias == nil || bias.DType != tensor.Float32 || len(bias.F32) != M {
			return
		}
	}
	bi := f.sole(f.out0(i))
	if bi < 0 || f.isOut[f.out0(i)] {
		return
	}
	scale, shift, ok := f.affineAfter(bi, f.out0(i), M, len(w.Shape))
	if !ok {
		return
	}
	bn := f.m.steps[bi]
	fw := tensor.New(tensor.Float32, w.Shape...)
	fb := tensor.New(tensor.Float32, M)
	per := len(w.F32) / M
	for m := range M {
		s := scale[m]
		for k, v := range w.F32[m*per : (m+1)*per] {
			fw.F32[m*per+k] = float32(float64(v) * s)
		}
		b := 0.0
		if bias != nil {
			b = float64(bias.F32[m])
		}
		fb.F32[m] = float32(b*s + shift[m])
	}
	// Compile the convolution again, with the folded weights as its
	// constant inputs and the normalisation's output as its own.
	n := *st.node
	ws, bs := f.newConst(fw), f.newConst(fb)
	in := []int{st.in[0], ws, bs}
	n.Inputs = []string{st.node.Inputs[0], st.node.Inputs[1] + "+" + bn.node.Name, bn.node.Outputs[0] + "+bias"}
	n.Outputs = []string{bn.node.Outputs[0]}
	n.Name = st.node.Name + "+" + bn.node.Name
	n.inShapes = [][]int{st.node.InShape(0), fw.Shape, fb.Shape}
	n.inRanks = []int{st.node.InRank(0), len(fw.Shape), 1}
	n.Const = func(j int) *tensor.Tensor {
		if j == 0 || j >= len(in) {
			return nil
		}
		return f.consts[in[j]]
	}
	n.threaded, n.reluThreaded, n.reluPool, n.clipThreaded, n.epiThreaded, n.packedBytes = nil, nil, nil, nil, nil, 0
	k, err := callFactory(ops["Conv"], &n)
	if err != nil {
		return // keep both steps as they were
	}
	f.m.stats.PackedBytes += n.packedBytes - st.node.packedBytes
	f.m.stats.Fused++
	f.dead[i] = true
	f.m.steps[bi] = step{node: &n, kernel: k, in: in, out: []int{bn.out[0]}}
	setSizeClasses(&f.m.steps[bi])
}

// affineAfter returns the per-channel map y = x*scale + shift that step j
// applies to slot x, the output of a convolution with M output channels and
// rank dimensions, when it is one convAffine folds.
func (f *fuser) affineAfter(j, x, M, rank int) (scale, shift []float64, ok bool) {
	st := f.m.steps[j]
	scale, shift = make([]float64, M), make([]float64, M)
	for m := range M {
		scale[m] = 1
	}
	switch op := f.op(j); op {
	case "BatchNormalization":
		if len(st.in) != 5 || st.in[0] != x || st.node.Int("training_mode", 0) != 0 || len(st.out) < 1 {
			return nil, nil, false
		}
		for _, s := range st.out[1:] {
			if s >= 0 {
				return nil, nil, false // training outputs
			}
		}
		var p [4]*tensor.Tensor // scale, B, mean, var
		for k := range p {
			if p[k] = f.consts[st.in[k+1]]; p[k] == nil || p[k].DType != tensor.Float32 || len(p[k].F32) != M {
				return nil, nil, false
			}
		}
		eps := float64(st.node.Float("epsilon", 1e-5))
		for m := range M {
			scale[m] = float64(p[0].F32[m]) / math.Sqrt(float64(p[3].F32[m])+eps)
			shift[m] = float64(p[1].F32[m]) - float64(p[2].F32[m])*scale[m]
		}
		return scale, shift, true
	case "Mul", "Add", "Sub":
		if len(st.in) != 2 || len(st.out) != 1 {
			return nil, nil, false
		}
		c := st.in[1]
		switch {
		case st.in[0] == x && st.in[1] != x:
		case st.in[1] == x && op != "Sub":
			c = st.in[0]
		default:
			return nil, nil, false
		}
		v, ok := f.perChannel(c, M, rank)
		if !ok {
			return nil, nil, false
		}
		for m := range M {
			switch op {
			case "Mul":
				scale[m] = v[m]
			case "Add":
				shift[m] = v[m]
			case "Sub":
				shift[m] = -v[m]
			}
		}
		return scale, shift, true
	}
	return nil, nil, false
}

// perChannel returns constant slot s as one value per channel of a
// convolution output with M channels and rank dimensions, when s is a
// float32 constant that broadcasts against it along the channel axis only
// (shape [M 1 1], [1 M 1 1], or one number).
func (f *fuser) perChannel(s, M, rank int) ([]float64, bool) {
	c := f.consts[s]
	if c == nil || c.DType != tensor.Float32 || len(c.Shape) > rank {
		return nil, false
	}
	v := make([]float64, M)
	if len(c.F32) == 1 {
		for m := range v {
			v[m] = float64(c.F32[0])
		}
		return v, true
	}
	for k, d := range c.Shape {
		axis := rank - len(c.Shape) + k
		if d != 1 && (axis != 1 || d != M) {
			return nil, false
		}
	}
	if len(c.F32) != M {
		return nil, false
	}
	for m := range v {
		v[m] = float64(c.F32[m])
	}
	return v, true
}

// newConst adds a slot holding the constant t and returns it.
func (f *fuser) newConst(t *tensor.Tensor) int {
	s := f.m.nslots
	f.m.nslots++
	f.consts = append(f.consts, t)
	f.shapes = append(f.shapes, shapeOf(t))
	return s
}
