package engine

import (
	"fmt"
	"slices"

	"github.com/spindleml/spindle/internal/tensor"
)

// Sequence and optional values (ONNX's non-tensor types), held as
// tensor.Tensor of kind tensor.Sequence (the elements in Seq) and
// tensor.None (an optional holding nothing; an optional holding a value is
// the value itself). Sequences are immutable like every value: the ops that
// change one return a new sequence sharing the elements.

func init() {
	register("SequenceEmpty", func(*Node) (Kernel, error) {
		return func([]*tensor.Tensor) ([]*tensor.Tensor, error) {
			return []*tensor.Tensor{tensor.NewSequence(nil)}, nil
		}, nil
	})
	register("SequenceConstruct", newSequenceConstruct)
	register("SequenceInsert", newSequenceInsert)
	register("SequenceAt", newSequenceAt)
	register("SequenceErase", newSequenceErase)
	register("SequenceLength", newSequenceLength)
	register("SplitToSequence", newSplitToSequence)
	register("ConcatFromSequence", newConcatFromSequence)
	register("SequenceMap", newSequenceMap)
	register("Optional", newOptional)
	register("OptionalHasElement", newOptionalHasElement)
	register("OptionalGetElement", newOptionalGetElement)
}

// maxSequence bounds the elements SplitToSequence makes: each is a tensor
// of its own (a header and a slice), which the memory budget does not see.
const maxSequence = 1 << 16

// seqInput returns input i as a sequence, or an error naming it.
func seqInput(in []*tensor.Tensor, i int, name string) (*tensor.Tensor, error) {
	if i >= len(in) || in[i] == nil {
		return nil, fmt.Errorf("input %s is required", name)
	}
	if in[i].DType != tensor.Sequence {
		return nil, fmt.Errorf("input %s: %s, must be a sequence", name, in[i])
	}
	return in[i], nil
}

// tensorInput returns input i, which must be a tensor (not a sequence or
// none).
func tensorInput(in []*tensor.Tensor, i int, name string) (*tensor.Tensor, error) {
	if i >= len(in) || in[i] == nil {
		return nil, fmt.Errorf("input %s is required", name)
	}
	if dt := in[i].DType; dt == tensor.Sequence || dt == tensor.None {
		return nil, fmt.Errorf("input %s: %s, must be a tensor", name, in[i])
	}
	return in[i], nil
}

// seqPosition reads a position input (one integer) into [0, n) or, when
// end, [0, n]; negative positions count from the end. absent is the
// position when the input is omitted.
func seqPosition(in []*tensor.Tensor, i, n int, end bool, absent int) (int, error) {
	if i >= len(in) || in[i] == nil {
		return absent, nil
	}
	p, err := castTensor(in[i], tensor.Int64)
	if err != nil || p.Len() != 1 || (in[i].DType != tensor.Int64 && in[i].DType != tensor.Int32) {
		return 0, fmt.Errorf("input position: %s, must be one int32 or int64", in[i])
	}
	pos, hi := p.I64[0], int64(n)
	if end {
		hi++
	}
	if pos < -int64(n) || pos >= hi {
		return 0, fmt.Errorf("input position: %d is outside [%d, %d] for a sequence of %d", pos, -n, hi-1, n)
	}
	if pos < 0 {
		pos += int64(n)
	}
	return int(pos), nil
}

// newSequenceConstruct makes a sequence of its inputs, tensors of one dtype.
func newSequenceConstruct(*Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, len(in)); err != nil {
			return nil, err
		}
		for i := range in {
			if _, err := tensorInput(in, i, fmt.Sprint(i)); err != nil {
				return nil, err
			}
			if in[i].DType != in[0].DType {
				return nil, fmt.Errorf("input %d: dtype %s, input 0 has %s; a sequence holds one dtype", i, in[i].DType, in[0].DType)
			}
		}
		return []*tensor.Tensor{tensor.NewSequence(slices.Clone(in))}, nil
	}, nil
}

// newSequenceInsert returns the sequence with the tensor inserted at
// position (the end by default).
func newSequenceInsert(*Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 3); err != nil {
			return nil, err
		}
		s, err := seqInput(in, 0, "input_sequence")
		if err != nil {
			return nil, err
		}
		t, err := tensorInput(in, 1, "tensor")
		if err != nil {
			return nil, err
		}
		if len(s.Seq) > 0 && s.Seq[0].DType != t.DType {
			return nil, fmt.Errorf("input tensor: dtype %s, the sequence holds %s", t.DType, s.Seq[0].DType)
		}
		pos, err := seqPosition(in, 2, len(s.Seq), true, len(s.Seq))
		if err != nil {
			return nil, err
		}
		if len(s.Seq) >= maxSequence {
			return nil, fmt.Errorf("%w: input input_sequence holds %d tensors, as many as a sequence may", ErrBadInput, len(s.Seq))
		}
		return []*tensor.Tensor{tensor.NewSequence(slices.Insert(slices.Clone(s.Seq), pos, t))}, nil
	}, nil
}

// newSequenceAt returns the element at position.
func newSequenceAt(*Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		s, err := seqInput(in, 0, "input_sequence")
		if err != nil {
			return nil, err
		}
		pos, err := seqPosition(in, 1, len(s.Seq), false, 0)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{s.Seq[pos]}, nil
	}, nil
}

// newSequenceErase returns the sequence without the element at position
// (the last by default).
func newSequenceErase(*Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 2); err != nil {
			return nil, err
		}
		s, err := seqInput(in, 0, "input_sequence")
		if err != nil {
			return nil, err
		}
		if len(s.Seq) == 0 {
			return nil, fmt.Errorf("input input_sequence: empty, nothing to erase")
		}
		pos, err := seqPosition(in, 1, len(s.Seq), false, len(s.Seq)-1)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{tensor.NewSequence(slices.Delete(slices.Clone(s.Seq), pos, pos+1))}, nil
	}, nil
}

// newSequenceLength returns the number of elements as an int64 scalar.
func newSequenceLength(*Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		s, err := seqInput(in, 0, "input_sequence")
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{tensor.FromI64([]int64{int64(len(s.Seq))})}, nil
	}, nil
}

// newSplitToSequence cuts the input along axis into a sequence: parts of
// the sizes in split (a 1-D input), of split's one size (a scalar; the last
// part may be smaller), or of size 1 when split is omitted, in which case
// keepdims=0 drops the axis from each part.
func newSplitToSequence(n *Node) (Kernel, error) {
	axis, keep := n.Int("axis", 0), n.Int("keepdims", 1) != 0
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 2); err != nil {
			return nil, err
		}
		x, err := tensorInput(in, 0, "input")
		if err != nil {
			return nil, err
		}
		if x.DType.Size() == 0 {
			return nil, fmt.Errorf("input input: dtype %s cannot be split", x.DType)
		}
		ax, err := normAxis(axis, len(x.Shape), false)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		dim := x.Shape[ax]
		var sizes []int
		split := len(in) > 1 && in[1] != nil
		switch {
		case !split:
			sizes = slices.Repeat([]int{1}, dim)
		case len(in[1].Shape) == 0:
			req, err := intList(in[1], "split")
			if err != nil {
				return nil, err
			}
			if req[0] <= 0 {
				return nil, fmt.Errorf("input split: %d, a scalar split must be positive", req[0])
			}
			for rest := dim; rest > 0; rest -= min(rest, int(req[0])) {
				sizes = append(sizes, min(rest, int(req[0])))
			}
		default:
			req, err := intList(in[1], "split")
			if err != nil {
				return nil, err
			}
			total := int64(0)
			for i, v := range req {
				if v < 0 {
					return nil, fmt.Errorf("input split: %v, entry %d is negative", req, i)
				}
				total += v
				sizes = append(sizes, int(v))
			}
			if total != int64(dim) {
				return nil, fmt.Errorf("input split: %v sums to %d, axis %d has %d", req, total, ax, dim)
			}
		}
		if len(sizes) > maxSequence {
			return nil, fmt.Errorf("%w: %d parts, more than a sequence may hold (%d)", ErrBadInput, len(sizes), maxSequence)
		}
		parts := splitTensor(x, ax, sizes)
		if !split && !keep {
			for i, p := range parts {
				parts[i] = reshaped(p, slices.Delete(slices.Clone(p.Shape), ax, ax+1))
			}
		}
		return []*tensor.Tensor{tensor.NewSequence(parts)}, nil
	}, nil
}

// newConcatFromSequence joins a sequence's tensors along axis, or stacks
// them along a new axis when new_axis is 1.
func newConcatFromSequence(n *Node) (Kernel, error) {
	if !n.Has("axis") {
		return nil, fmt.Errorf("attribute axis: required")
	}
	axis, stack := n.Int("axis", 0), n.Int("new_axis", 0) != 0
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		s, err := seqInput(in, 0, "input_sequence")
		if err != nil {
			return nil, err
		}
		if len(s.Seq) == 0 {
			return nil, fmt.Errorf("input input_sequence: empty; there is nothing to concatenate")
		}
		parts := s.Seq
		if stack {
			// The axis counts in the result's rank, one more than the elements'.
			ax, err := normAxis(axis, len(parts[0].Shape)+1, false)
			if err != nil {
				return nil, fmt.Errorf("attribute axis: %w", err)
			}
			parts = make([]*tensor.Tensor, len(s.Seq))
			for i, p := range s.Seq {
				parts[i] = reshaped(p, slices.Insert(slices.Clone(p.Shape), ax, 1))
			}
			axis = int64(ax)
		}
		out, err := concatTensors(parts, axis)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newSequenceMap runs its body once per element of the input sequence: the
// body's inputs are that element and, for each additional input, its
// element of the same position (a sequence of the same length) or the
// whole input (a tensor); each body output becomes a sequence output.
func newSequenceMap(n *Node) (Kernel, error) {
	body := n.attrs["body"].GetG()
	if body == nil {
		return nil, fmt.Errorf("attribute body: required, a graph")
	}
	own := len(n.Inputs) - n.implicit
	if len(body.GetInput()) != own {
		return nil, fmt.Errorf("attribute body: %d inputs, the node has %d", len(body.GetInput()), own)
	}
	if len(body.GetOutput()) != len(n.Outputs) {
		return nil, fmt.Errorf("attribute body: %d outputs, the node has %d", len(body.GetOutput()), len(n.Outputs))
	}
	b, err := compileBranch(n, body)
	if err != nil {
		return nil, fmt.Errorf("attribute body: %w", err)
	}
	return control(n, func(rs *runState, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		s, err := seqInput(in, 0, "input_sequence")
		if err != nil {
			return nil, err
		}
		for i := 1; i < own; i++ {
			if in[i] == nil {
				return nil, fmt.Errorf("input %d is required", i)
			}
			if in[i].DType == tensor.Sequence && len(in[i].Seq) != len(s.Seq) {
				return nil, fmt.Errorf("input %d: a sequence of %d, input_sequence has %d", i, len(in[i].Seq), len(s.Seq))
			}
		}
		outs := make([][]*tensor.Tensor, len(n.Outputs))
		args := make([]*tensor.Tensor, own)
		for e := range s.Seq {
			for i := range own {
				args[i] = in[i]
				if in[i].DType == tensor.Sequence {
					args[i] = in[i].Seq[e]
				}
			}
			res, err := b.run(rs, args, in)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", e, err)
			}
			for j, r := range res {
				outs[j] = append(outs[j], r)
			}
		}
		res := make([]*tensor.Tensor, len(outs))
		for j := range outs {
			res[j] = tensor.NewSequence(outs[j])
		}
		return res, nil
	}), nil
}

// newOptional wraps its input as an optional (which is the input itself),
// or makes an empty optional when the input is omitted.
func newOptional(*Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 0, 1); err != nil {
			return nil, err
		}
		if len(in) == 0 || in[0] == nil {
			return []*tensor.Tensor{{DType: tensor.None}}, nil
		}
		return []*tensor.Tensor{in[0]}, nil
	}, nil
}

// newOptionalHasElement says whether its input holds a value: false for an
// empty optional or an omitted input.
func newOptionalHasElement(*Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 0, 1); err != nil {
			return nil, err
		}
		has := len(in) > 0 && in[0] != nil && in[0].DType != tensor.None
		return []*tensor.Tensor{{DType: tensor.Bool, Shape: []int{}, B: []bool{has}}}, nil
	}, nil
}

// newOptionalGetElement returns the value an optional holds (a tensor or
// sequence passes through); an empty optional is an error.
func newOptionalGetElement(*Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		if in[0].DType == tensor.None {
			return nil, fmt.Errorf("input input: the optional holds no value")
		}
		return []*tensor.Tensor{in[0]}, nil
	}, nil
}
