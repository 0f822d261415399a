package engine

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/spindleml/spindle/internal/tensor"
)

func init() {
	register("Unique", newUnique)
}

// newUnique returns the distinct elements of X (or, with axis, its
// distinct slices along axis), sorted (the default) or in order of first
// appearance, with the index of each one's first appearance, each input
// element's index among them, and their counts. Elements are equal when
// their values are (-0 is 0; NaNs with the same bits are one value).
func newUnique(n *Node) (Kernel, error) {
	sorted := n.Int("sorted", 1) != 0
	axis, hasAxis := n.Int("axis", 0), n.Has("axis")
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		sz := x.DType.Size()
		if sz == 0 {
			return nil, fmt.Errorf("input X: dtype %s is not supported", x.DType)
		}
		shape, a, err := axisOrFlat(x, axis, hasAxis)
		if err != nil {
			return nil, err
		}
		outer, count, inner := tensor.NumElements(shape[:a]), shape[a], tensor.NumElements(shape[a+1:])
		raw := x.Bytes()
		if x.DType == tensor.Float32 || x.DType == tensor.Float64 {
			// -0 and 0 are one value: hash them alike.
			c := tensor.New(x.DType, x.Shape...)
			copy(c.Bytes(), raw)
			for i, v := range c.F32 {
				if v == 0 {
					c.F32[i] = 0
				}
			}
			for i, v := range c.F64 {
				if v == 0 {
					c.F64[i] = 0
				}
			}
			raw = c.Bytes()
		}
		// slice(i) is the i-th slice along the axis, gathered over outer.
		slice := func(i int) []byte {
			b := make([]byte, 0, outer*inner*sz)
			for o := range outer {
				b = append(b, raw[((o*count+i)*inner)*sz:((o*count+i+1)*inner)*sz]...)
			}
			return b
		}
		parts := make([][]byte, count)
		for i := range count {
			parts[i] = slice(i)
		}
		var order []int // first appearance of each distinct slice
		inverse := make([]int64, count)
		seen := map[string]int{}
		for i, s := range parts {
			k, ok := seen[string(s)]
			if !ok {
				k = len(order)
				seen[string(s)] = k
				order = append(order, i)
			}
			inverse[i] = int64(k)
		}
		rank := make([]int, len(order)) // position of distinct k in the output
		for k := range rank {
			rank[k] = k
		}
		if sorted {
			perm := make([]int, len(order))
			for k := range perm {
				perm[k] = k
			}
			byValue := sliceOrder(x, outer, count, inner)
			slices.SortStableFunc(perm, func(p, q int) int { return byValue(order[p], order[q]) })
			for pos, k := range perm {
				rank[k] = pos
			}
			newOrder := make([]int, len(order))
			for pos, k := range perm {
				newOrder[pos] = order[k]
			}
			order = newOrder
			for i := range inverse {
				inverse[i] = int64(rank[inverse[i]])
			}
		}
		counts := make([]int64, len(order))
		for _, k := range inverse {
			counts[k]++
		}
		idx := make([]int64, len(order))
		for pos, i := range order {
			idx[pos] = int64(i)
		}
		yShape := append([]int(nil), shape...)
		yShape[a] = len(order)
		y := newTyped(x.DType, yShape...)
		yb := y.Bytes()
		for pos, i := range order {
			s := parts[i]
			for o := range outer {
				copy(yb[((o*len(order)+pos)*inner)*sz:], s[o*inner*sz:(o+1)*inner*sz])
			}
		}
		return []*tensor.Tensor{y, tensor.FromI64(idx, len(idx)), tensor.FromI64(inverse, len(inverse)), tensor.FromI64(counts, len(counts))}, nil
	}, nil
}

// sliceOrder returns a comparison of slices i and j of x along its axis
// (outer × count × inner elements), element by element, numerically.
func sliceOrder(x *tensor.Tensor, outer, count, inner int) func(i, j int) int {
	at := func(i, e int) int { return (e/inner*count+i)*inner + e%inner }
	if x.DType == tensor.Int64 {
		return func(i, j int) int {
			for e := range outer * inner {
				if c := cmp.Compare(x.I64[at(i, e)], x.I64[at(j, e)]); c != 0 {
					return c
				}
			}
			return 0
		}
	}
	v, _ := castTensor(x, tensor.Float64)
	return func(i, j int) int {
		for e := range outer * inner {
			if c := cmp.Compare(v.F64[at(i, e)], v.F64[at(j, e)]); c != 0 {
				return c
			}
		}
		return 0
	}
}
