package bench

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// Shape fills the dynamic dimensions of generated inputs. The zero value
// means batch 1 and sequence 16.
type Shape struct {
	// Batch replaces a dynamic first dimension.
	Batch int
	// Seq replaces every other dynamic dimension, unless Dims is set.
	Seq int
	// Dims, when set, replaces the other dynamic dimensions in order (an
	// image's height and width), its last value any beyond it.
	Dims []int
}

func (s Shape) withDefaults() Shape {
	if s.Batch <= 0 {
		s.Batch = 1
	}
	if s.Seq <= 0 {
		s.Seq = 16
	}
	return s
}

// GenerateInputs makes one tensor for every input of m that given lacks,
// from the model's input metadata, and returns them together with given's.
// Dynamic dimensions come from shape. Values are deterministic in seed:
//
//   - float inputs: uniform in [0, 1), as a normalised image would be;
//   - integer inputs named like a mask ("mask"): all ones;
//   - integer inputs named like token types ("type"): all zeros;
//   - other integer inputs: token ids, uniform below the row count of the
//     embedding table a Gather reads with them (100 when no Gather does);
//   - bool inputs: all true.
func GenerateInputs(m *engine.Model, src *onnx.Model, given map[string]*tensor.Tensor, shape Shape, seed uint64) (map[string]*tensor.Tensor, error) {
	shape = shape.withDefaults()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make(map[string]*tensor.Tensor, len(m.Inputs))
	for name, t := range given {
		out[name] = t
	}
	for _, in := range m.Inputs {
		if _, ok := out[in.Name]; ok {
			continue
		}
		if in.Shape == nil {
			return nil, fmt.Errorf("input %q: the model does not declare its rank; give it as NAME=FILE.npy", in.Name)
		}
		dims := make([]int, len(in.Shape))
		next := 0 // the next of shape.Dims to use
		for i, d := range in.Shape {
			switch {
			case d >= 0:
				dims[i] = d
			case i == 0:
				dims[i] = shape.Batch
			case len(shape.Dims) > 0:
				dims[i] = shape.Dims[min(next, len(shape.Dims)-1)]
				next++
			default:
				dims[i] = shape.Seq
			}
		}
		lower := strings.ToLower(in.Name)
		var t *tensor.Tensor
		switch in.DType {
		case tensor.Float32, tensor.Float16:
			t = tensor.New(tensor.Float32, dims...)
			for i := range t.F32 {
				t.F32[i] = rng.Float32()
			}
		case tensor.Float64:
			t = tensor.New(tensor.Float64, dims...)
			for i := range t.F64 {
				t.F64[i] = rng.Float64()
			}
		case tensor.Int64, tensor.Int32:
			vals := intValues(lower, tensor.NumElements(dims), vocab(src, in.Name), rng)
			t = tensor.New(in.DType, dims...)
			for i, v := range vals {
				if t.I64 != nil {
					t.I64[i] = v
				} else {
					t.I32[i] = int32(v)
				}
			}
		case tensor.Bool:
			t = tensor.New(tensor.Bool, dims...)
			for i := range t.B {
				t.B[i] = true
			}
		default:
			return nil, fmt.Errorf("input %q: cannot generate dtype %s; give it as NAME=FILE.npy", in.Name, in.DType)
		}
		out[in.Name] = t
	}
	return out, nil
}

// intValues returns n values for an integer input whose lower-case name is
// lower.
func intValues(lower string, n int, vocab int64, rng *rand.Rand) []int64 {
	vals := make([]int64, n)
	switch {
	case strings.Contains(lower, "mask"):
		for i := range vals {
			vals[i] = 1
		}
	case strings.Contains(lower, "type"):
		// zeros
	default:
		for i := range vals {
			vals[i] = rng.Int64N(vocab)
		}
	}
	return vals
}

// vocab returns the number of rows of the weight a Gather indexes with input
// name, or 100 when no Gather of a weight reads it.
func vocab(src *onnx.Model, name string) int64 {
	for _, n := range src.Proto.GetGraph().GetNode() {
		in := n.GetInput()
		if n.GetOpType() != "Gather" || len(in) < 2 || in[1] != name {
			continue
		}
		if w, ok := src.Weights[in[0]]; ok && len(w.Shape) > 0 && w.Shape[0] > 0 {
			return int64(w.Shape[0])
		}
	}
	return 100
}
