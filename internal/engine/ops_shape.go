package engine

import (
	"fmt"

	"github.com/spindleml/spindle/internal/tensor"
)

// Shape ops. Flatten, Reshape, Squeeze, Unsqueeze, Identity and Dropout return tensors that share
// their input's data slice with a new Shape: the engine never writes into a
// kernel's inputs or outputs after they are produced, so sharing is safe as long
// as every consumer (including the caller of Run) treats tensors as read-only.
// Constant returns the same decoded tensor on every call, like a weight.

func init() {
	register("Identity", func(n *Node) (Kernel, error) {
		return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
			if err := checkInputs(in, 1, 1); err != nil {
				return nil, err
			}
			return []*tensor.Tensor{reshaped(in[0], in[0].Shape)}, nil
		}, nil
	})
	register("Flatten", newFlatten)
	register("Reshape", newReshape)
	register("Dropout", newDropout)
	register("Constant", newConstant)
	register("Squeeze", newSqueeze)
	register("Unsqueeze", newUnsqueeze)
}

// reshaped returns a tensor sharing t's data with a copy of shape.
func reshaped(t *tensor.Tensor, shape []int) *tensor.Tensor {
	out := *t
	out.Shape = append([]int{}, shape...)
	return &out
}

// normAxis maps axis (negative counts from the end) into [0, rank) or, when
// inclusive, [0, rank].
func normAxis(axis int64, rank int, inclusive bool) (int, error) {
	hi := rank
	if inclusive {
		hi = rank + 1
	}
	a := axis
	if a < 0 {
		a += int64(rank)
	}
	if a < 0 || a >= int64(hi) {
		if inclusive {
			return 0, fmt.Errorf("axis %d is out of range [%d, %d] for rank %d", axis, -rank, rank, rank)
		}
		return 0, fmt.Errorf("axis %d is out of range [%d, %d] for rank %d", axis, -rank, rank-1, rank)
	}
	return int(a), nil
}

// newFlatten: output is 2-D [prod(shape[:axis]), prod(shape[axis:])]; axis
// defaults to 1 and may be negative (opset 11+) or equal to the rank.
func newFlatten(n *Node) (Kernel, error) {
	axis := n.Int("axis", 1)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		a, err := normAxis(axis, len(x.Shape), true)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		return []*tensor.Tensor{reshaped(x, []int{tensor.NumElements(x.Shape[:a]), tensor.NumElements(x.Shape[a:])})}, nil
	}, nil
}

// newReshape: the shape input is a 1-D int64 tensor; 0 copies the input's
// dimension at that index (unless allowzero=1, opset 14+, where it means 0) and
// at most one -1 is inferred from the element count.
func newReshape(n *Node) (Kernel, error) {
	allowZero := n.Int("allowzero", 0) == 1
	if n.Opset < 5 {
		return nil, fmt.Errorf("opset %d: Reshape before opset 5 (shape attribute) is not supported", n.Opset)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x, s := in[0], in[1]
		if s.DType != tensor.Int64 {
			return nil, fmt.Errorf("input shape: dtype %s, must be int64", s.DType)
		}
		if len(s.Shape) != 1 {
			return nil, fmt.Errorf("input shape: shape %s, must be 1-D", tensor.ShapeString(s.Shape))
		}
		shape, err := reshapeTarget(x.Shape, s.I64, allowZero)
		if err != nil {
			return nil, fmt.Errorf("input shape %v for data %s: %w", s.I64, tensor.ShapeString(x.Shape), err)
		}
		return []*tensor.Tensor{reshaped(x, shape)}, nil
	}, nil
}

// reshapeTarget resolves a Reshape shape request against the input shape.
func reshapeTarget(in []int, req []int64, allowZero bool) ([]int, error) {
	out := make([]int, len(req))
	infer := -1
	known := 1
	hasZero := false
	for i, d := range req {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("dimensions %d and %d are both -1; at most one may be inferred", infer, i)
			}
			infer = i
			continue
		case d < -1:
			return nil, fmt.Errorf("dimension %d is %d; dimensions must be >= -1", i, d)
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("dimension %d is 0 (copy input dimension) but the input has rank %d", i, len(in))
			}
			out[i] = in[i]
		default:
			out[i] = int(d)
		}
		if out[i] == 0 {
			hasZero = true
		}
		known *= out[i]
	}
	total := tensor.NumElements(in)
	if infer >= 0 {
		if allowZero && hasZero {
			return nil, fmt.Errorf("with allowzero=1 a shape may not hold both 0 and -1")
		}
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot infer dimension %d: %d elements are not a multiple of %d", infer, total, known)
		}
		out[infer] = total / known
		known *= out[infer]
	}
	if known != total {
		return nil, fmt.Errorf("target shape %s has %d elements, the input has %d", tensor.ShapeString(out), known, total)
	}
	return out, nil
}

// newDropout is the identity at inference. Since opset 12 the ratio and
// training_mode are inputs; training_mode=true is an error because the engine
// only serves inference. The optional mask output is all true (bool since opset
// 10, the input's dtype before).
func newDropout(n *Node) (Kernel, error) {
	wantMask := len(n.Outputs) > 1 && n.Outputs[1] != ""
	if n.Opset < 7 && n.Int("is_test", 0) == 0 {
		return nil, fmt.Errorf("attribute is_test: 0 asks for training mode; only inference is supported")
	}
	boolMask := n.Opset >= 10
	if t := n.Const(2); t != nil {
		if err := checkTrainingMode(t); err != nil {
			return nil, err
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 3); err != nil {
			return nil, err
		}
		if len(in) > 2 && in[2] != nil {
			if err := checkTrainingMode(in[2]); err != nil {
				return nil, err
			}
		}
		x := in[0]
		outs := []*tensor.Tensor{reshaped(x, x.Shape)}
		if !wantMask {
			return outs, nil
		}
		var mask *tensor.Tensor
		if boolMask {
			mask = tensor.New(tensor.Bool, x.Shape...)
			for i := range mask.B {
				mask.B[i] = true
			}
		} else {
			if x.DType != tensor.Float32 {
				return nil, fmt.Errorf("input data: dtype %s, the mask output before opset 10 is supported only for float32", x.DType)
			}
			mask = tensor.New(tensor.Float32, x.Shape...)
			for i := range mask.F32 {
				mask.F32[i] = 1
			}
		}
		return append(outs, mask), nil
	}, nil
}

func checkTrainingMode(t *tensor.Tensor) error {
	if t.DType != tensor.Bool || len(t.B) != 1 {
		return fmt.Errorf("input training_mode: %s, must be a bool scalar", t)
	}
	if t.B[0] {
		return fmt.Errorf("input training_mode: true asks for training; only inference is supported")
	}
	return nil
}

// newConstant decodes the node's value once at compile time. Exactly one of
// value, value_float, value_floats, value_int, value_ints must be set; string
// and sparse values are not supported.
func newConstant(n *Node) (Kernel, error) {
	for _, a := range []string{"sparse_value", "value_string", "value_strings"} {
		if n.Has(a) {
			return nil, fmt.Errorf("attribute %s: not supported (only numeric dense values are)", a)
		}
	}
	var val *tensor.Tensor
	set := 0
	if n.Has("value") {
		set++
		t, err := n.Tensor("value")
		if err != nil {
			return nil, err
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("attribute value: %w", err)
		}
		val = t
	}
	if n.Has("value_float") {
		set++
		val = tensor.FromF32([]float32{n.Float("value_float", 0)})
	}
	if n.Has("value_floats") {
		set++
		f := append([]float32(nil), n.Floats("value_floats", nil)...)
		val = tensor.FromF32(f, len(f))
	}
	if n.Has("value_int") {
		set++
		val = tensor.FromI64([]int64{n.Int("value_int", 0)})
	}
	if n.Has("value_ints") {
		set++
		v := append([]int64(nil), n.Ints("value_ints", nil)...)
		val = tensor.FromI64(v, len(v))
	}
	if set != 1 {
		return nil, fmt.Errorf("%d value attributes set; exactly one of value, value_float, value_floats, value_int, value_ints must be", set)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 0, 0); err != nil {
			return nil, err
		}
		return []*tensor.Tensor{val}, nil
	}, nil
}

// axesSource reads a Squeeze/Unsqueeze axes list: an attribute before opset
// 13, an input (optional for Squeeze) since. ok is false when none is given.
func axesSource(n *Node, in []*tensor.Tensor, attr []int64, hasAttr bool) (axes []int64, ok bool, err error) {
	if n.Opset < 13 {
		return attr, hasAttr, nil
	}
	if len(in) < 2 || in[1] == nil {
		return nil, false, nil
	}
	axes, err = intList(in[1], "axes")
	return axes, err == nil, err
}

// newSqueeze removes the listed size-1 dimensions, or every size-1 dimension
// when no axes are given.
func newSqueeze(n *Node) (Kernel, error) {
	attr, hasAttr := n.Ints("axes", nil), n.Has("axes")
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 2); err != nil {
			return nil, err
		}
		x := in[0]
		axes, ok, err := axesSource(n, in, attr, hasAttr)
		if err != nil {
			return nil, err
		}
		drop := make([]bool, len(x.Shape))
		if ok {
			ax, err := normAxes(axes, len(x.Shape), "axes")
			if err != nil {
				return nil, err
			}
			for _, a := range ax {
				if x.Shape[a] != 1 {
					return nil, fmt.Errorf("axes: dimension %d of input shape %s is %d, only size-1 dimensions can be squeezed", a, tensor.ShapeString(x.Shape), x.Shape[a])
				}
				drop[a] = true
			}
		} else {
			for d, v := range x.Shape {
				drop[d] = v == 1
			}
		}
		shape := []int{}
		for d, v := range x.Shape {
			if !drop[d] {
				shape = append(shape, v)
			}
		}
		return []*tensor.Tensor{reshaped(x, shape)}, nil
	}, nil
}

// newUnsqueeze inserts size-1 dimensions at the listed positions of the
// output (negative axes count from the end of the output's rank).
func newUnsqueeze(n *Node) (Kernel, error) {
	attr, hasAttr := n.Ints("axes", nil), n.Has("axes")
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 2); err != nil {
			return nil, err
		}
		x := in[0]
		axes, ok, err := axesSource(n, in, attr, hasAttr)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("axes: required")
		}
		r := len(x.Shape) + len(axes)
		ax, err := normAxes(axes, r, "axes")
		if err != nil {
			return nil, err
		}
		ins := make([]bool, r)
		for _, a := range ax {
			ins[a] = true
		}
		shape := make([]int, 0, r)
		j := 0
		for d := 0; d < r; d++ {
			if ins[d] {
				shape = append(shape, 1)
				continue
			}
			shape = append(shape, x.Shape[j])
			j++
		}
		return []*tensor.Tensor{reshaped(x, shape)}, nil
	}, nil
}
