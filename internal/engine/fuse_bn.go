package engine

import (
	"math"

	"github.com/spindleml/spindle/internal/tensor"
)

// convBatchNorm folds a BatchNormalization into the convolution before it:
// when step i is a Conv with constant weights (and bias) whose output only
// an inference BatchNormalization with constant parameters reads, the
// normalisation y = x*s + t (s = scale/sqrt(var+eps), t = B - mean*s, per
// output channel) moves into the convolution's weights and bias, W' = W*s
// and B' = B*s + t, and the BatchNormalization step goes. Exporters leave
// every normalisation after its convolution (PyTorch, paddle2onnx); ONNX
// Runtime folds them the same way. The folded weights are new constants:
// the convolution is compiled again with them, so it packs them as it did
// the originals.
func (f *fuser) convBatchNorm(i int) {
	st := f.m.steps[i]
	if f.op(i) != "Conv" || len(st.in) < 2 || st.fused != nil {
		return
	}
	bi := f.sole(f.out0(i))
	if f.op(bi) != "BatchNormalization" {
		return
	}
	bn := f.m.steps[bi]
	if len(bn.in) != 5 || bn.in[0] != f.out0(i) || bn.node.Int("training_mode", 0) != 0 || len(bn.out) < 1 {
		return
	}
	for _, s := range bn.out[1:] {
		if s >= 0 {
			return // training outputs
		}
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
	var p [4]*tensor.Tensor // scale, B, mean, var
	for j := range p {
		if p[j] = f.consts[bn.in[j+1]]; p[j] == nil || p[j].DType != tensor.Float32 || len(p[j].F32) != M {
			return
		}
	}
	eps := float64(bn.node.Float("epsilon", 1e-5))
	fw := tensor.New(tensor.Float32, w.Shape...)
	fb := tensor.New(tensor.Float32, M)
	per := len(w.F32) / M
	for m := range M {
		s := float64(p[0].F32[m]) / math.Sqrt(float64(p[3].F32[m])+eps)
		for k, v := range w.F32[m*per : (m+1)*per] {
			fw.F32[m*per+k] = float32(float64(v) * s)
		}
		b := 0.0
		if bias != nil {
			b = float64(bias.F32[m])
		}
		fb.F32[m] = float32(b*s + float64(p[1].F32[m]) - float64(p[2].F32[m])*s)
	}
	// Compile the convolution again, with the folded weights as its
	// constant inputs and the normalisation's output as its own.
	n := *st.node
	ws, bs := f.newConst(fw), f.newConst(fb)
	in := []int{st.in[0], ws, bs}
	n.Inputs = []string{st.node.Inputs[0], st.node.Inputs[1] + "+bn", bn.node.Outputs[0] + "+bias"}
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

// newConst adds a slot holding the constant t and returns it.
func (f *fuser) newConst(t *tensor.Tensor) int {
	s := f.m.nslots
	f.m.nslots++
	f.consts = append(f.consts, t)
	f.shapes = append(f.shapes, shapeOf(t))
	return s
}
