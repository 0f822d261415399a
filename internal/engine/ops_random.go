package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/spindleml/spindle/internal/tensor"
)

// Random ops (issue 13, item 5). With a seed attribute a node draws the
// same values on every run (its generator starts from the seed each time),
// so a seeded model answers a request the same way every time; the values
// are Spindle's own stream (PCG), not numpy's or ONNX Runtime's. Without a
// seed each run draws fresh values. Constant folding never runs them.

func init() {
	register("RandomNormal", func(n *Node) (Kernel, error) { return newRandom(n, true, false) })
	register("RandomUniform", func(n *Node) (Kernel, error) { return newRandom(n, false, false) })
	register("RandomNormalLike", func(n *Node) (Kernel, error) { return newRandom(n, true, true) })
	register("RandomUniformLike", func(n *Node) (Kernel, error) { return newRandom(n, false, true) })
	register("Bernoulli", newBernoulli)
	register("Multinomial", newMultinomial)
}

// rng returns the generator of one run of n: from its seed attribute, or
// fresh.
func rng(n *Node) *rand.Rand {
	if n.Has("seed") {
		s := uint64(math.Float32bits(n.Float("seed", 0)))
		return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
	}
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}

// randomDType reads a float dtype attribute (def when absent).
func randomDType(n *Node, def tensor.DType) (tensor.DType, error) {
	dt := def
	if n.Has("dtype") {
		dt = tensor.DType(n.Int("dtype", 0))
	}
	if dt.Wide() {
		dt = tensor.Float32 // float16 and bfloat16 are held as float32
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return 0, fmt.Errorf("attribute dtype: %s: %w (float, float16 and double are)", dt, ErrUnsupported)
	}
	return dt, nil
}

// newRandom draws from N(mean, scale²) or U[low, high), of the shape
// attribute, or (like) of the input's shape and, without dtype, its type.
func newRandom(n *Node, normal, like bool) (Kernel, error) {
	a, b := n.Float("low", 0), n.Float("high", 1)
	if normal {
		a, b = n.Float("mean", 0), n.Float("scale", 1)
	}
	var shape []int
	if !like {
		for _, d := range n.Ints("shape", nil) {
			if d < 0 || d > maxElements {
				return nil, fmt.Errorf("attribute shape: %v: dimensions must be in [0, %d]", n.Ints("shape", nil), int64(maxElements))
			}
			shape = append(shape, int(d))
		}
		if !n.Has("shape") {
			return nil, fmt.Errorf("attribute shape: required")
		}
		if c, err := tensor.Count(shape); err != nil || c > maxElements {
			return nil, fmt.Errorf("attribute shape: %v: more than %d elements", shape, int64(maxElements))
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		def := tensor.Float32
		s := shape
		if like {
			if err := checkInputs(in, 1, 1); err != nil {
				return nil, err
			}
			s = in[0].Shape
			if in[0].DType == tensor.Float64 {
				def = tensor.Float64
			}
		}
		dt, err := randomDType(n, def)
		if err != nil {
			return nil, err
		}
		r := rng(n)
		out := tensor.New(dt, slices.Clone(s)...)
		for i := range out.Len() {
			var v float64
			if normal {
				v = float64(a) + float64(b)*r.NormFloat64()
			} else {
				v = float64(a) + float64(b-a)*r.Float64()
			}
			if dt == tensor.Float32 {
				out.F32[i] = float32(v)
			} else {
				out.F64[i] = v
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newBernoulli draws 1 with each input element's probability, else 0, in
// dtype (the input's by default).
func newBernoulli(n *Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		p, err := castTensor(in[0], tensor.Float64)
		if err != nil || in[0].DType != tensor.Float32 && in[0].DType != tensor.Float64 {
			return nil, fmt.Errorf("input input: %s, must be float probabilities", in[0])
		}
		dt := in[0].DType
		if n.Has("dtype") {
			dt = tensor.DType(n.Int("dtype", 0))
			if !castTypes[dt] {
				return nil, fmt.Errorf("attribute dtype: %s: %w", dt, ErrUnsupported)
			}
		}
		r := rng(n)
		draws := make([]float64, len(p.F64))
		for i, q := range p.F64 {
			if q < 0 || q > 1 || math.IsNaN(q) {
				return nil, fmt.Errorf("input input: element %d is %v, not a probability", i, q)
			}
			if r.Float64() < q {
				draws[i] = 1
			}
		}
		out, err := castTensor(&tensor.Tensor{DType: tensor.Float64, Shape: p.Shape, F64: draws}, dt)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newMultinomial draws sample_size class indices per row of input [batch
// classes], unnormalised log-probabilities, into int32 (or int64 by dtype).
func newMultinomial(n *Node) (Kernel, error) {
	samples := n.Int("sample_size", 1)
	if samples < 1 || samples > maxElements {
		return nil, fmt.Errorf("attribute sample_size: %d, must be at least 1", samples)
	}
	dt := tensor.DType(n.Int("dtype", int64(tensor.Int32)))
	if dt != tensor.Int32 && dt != tensor.Int64 {
		return nil, fmt.Errorf("attribute dtype: %s, must be int32 or int64", dt)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x, err := castTensor(in[0], tensor.Float64)
		if err != nil || len(in[0].Shape) != 2 || in[0].DType != tensor.Float32 && in[0].DType != tensor.Float64 {
			return nil, fmt.Errorf("input input: %s, must be float [batch classes]", in[0])
		}
		B, C := in[0].Shape[0], in[0].Shape[1]
		if int64(B)*samples > maxElements || C == 0 {
			return nil, fmt.Errorf("input input: %s: no classes, or too many samples", in[0])
		}
		r := rng(n)
		idx := make([]int64, 0, B*int(samples))
		cdf := make([]float64, C)
		for b := range B {
			row := x.F64[b*C : (b+1)*C]
			m := slices.Max(row)
			sum := 0.0
			for c, v := range row {
				sum += math.Exp(v - m)
				cdf[c] = sum
			}
			for range samples {
				u := r.Float64() * sum
				k, _ := slices.BinarySearch(cdf, u)
				idx = append(idx, int64(min(k, C-1)))
			}
		}
		out, err := castTensor(tensor.FromI64(idx, B, int(samples)), dt)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}
