package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spindleml/spindle/internal/tensor"
)

// Einsum (issue 13, item 5). Each operand is first brought to the letters
// still needed: one strided copy takes diagonals (a letter repeated in a
// term), broadcasts size-1 axes and moves letters no one else reads to the
// end, where they are summed away. Operands are then contracted pairwise,
// left to right, as batched matrix multiplies (letters in both and still
// needed are the batch, letters in both and needed no more are contracted),
// and the last result is transposed to the output's order.

func init() {
	register("Einsum", newEinsum)
}

// einsumSpec is a parsed equation: each term's letters (an ellipsis
// expanded to its own letters, numbered from 'A' + 26 down so they sort
// before the alphabet's), and the output's.
type einsumSpec struct {
	terms [][]rune
	out   []rune
}

func parseEinsum(eq string, ranks []int) (*einsumSpec, error) {
	eq = strings.ReplaceAll(eq, " ", "")
	lhs, rhs, explicit := strings.Cut(eq, "->")
	parts := strings.Split(lhs, ",")
	if len(parts) != len(ranks) {
		return nil, fmt.Errorf("attribute equation %q: %d terms for %d inputs", eq, len(parts), len(ranks))
	}
	ell := 0 // the ellipsis's rank: the most any term's covers
	spec := &einsumSpec{}
	parsed := make([][]rune, len(parts))
	for i, p := range parts {
		letters := 0
		for _, r := range strings.ReplaceAll(p, "...", "") {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return nil, fmt.Errorf("attribute equation %q: %q is not a letter", eq, r)
			}
			letters++
		}
		has := strings.Contains(p, "...")
		switch {
		case !has && letters != ranks[i]:
			return nil, fmt.Errorf("attribute equation %q: term %q has %d letters, input %d has rank %d", eq, p, letters, i, ranks[i])
		case has && letters > ranks[i]:
			return nil, fmt.Errorf("attribute equation %q: term %q has %d letters, more than input %d's rank %d", eq, p, letters, i, ranks[i])
		case has:
			ell = max(ell, ranks[i]-letters)
		}
		parsed[i] = []rune(p)
	}
	ellipsis := func(n int) []rune { // the last n of the ellipsis's letters
		rs := make([]rune, n)
		for j := range rs {
			rs[j] = rune(0x100 + ell - n + j)
		}
		return rs
	}
	expand := func(p []rune, rank int) []rune {
		s := string(p)
		before, after, ok := strings.Cut(s, "...")
		if !ok {
			return p
		}
		n := rank - len([]rune(before)) - len([]rune(after))
		return append(append([]rune(before), ellipsis(n)...), []rune(after)...)
	}
	count := map[rune]int{}
	for i, p := range parsed {
		spec.terms = append(spec.terms, expand(p, ranks[i]))
		for _, r := range spec.terms[i] {
			count[r]++
		}
	}
	if explicit {
		if strings.Count(rhs, "...") > 0 {
			rhs = strings.Replace(rhs, "...", string(ellipsis(ell)), 1)
		}
		for _, r := range rhs {
			if count[r] == 0 {
				return nil, fmt.Errorf("attribute equation %q: output letter %q is in no input term", eq, r)
			}
			if slices.Contains(spec.out, r) {
				return nil, fmt.Errorf("attribute equation %q: output letter %q repeats", eq, r)
			}
			spec.out = append(spec.out, r)
		}
		return spec, nil
	}
	// Implicit output: the ellipsis, then letters seen once, alphabetically.
	spec.out = ellipsis(ell)
	var once []rune
	for r, c := range count {
		if c == 1 && r < 0x100 {
			once = append(once, r)
		}
	}
	slices.Sort(once)
	spec.out = append(spec.out, once...)
	return spec, nil
}

// einTensor is an operand during the contraction: data laid out over
// letters, with their sizes.
type einTensor[T float32 | float64] struct {
	data    []T
	letters []rune
	sizes   []int
}

// wrap views data as a tensor of shape.
func wrap[T float32 | float64](data []T, shape []int) *tensor.Tensor {
	switch d := any(data).(type) {
	case []float32:
		return tensor.FromF32(d, shape...)
	case []float64:
		return &tensor.Tensor{DType: tensor.Float64, Shape: slices.Clone(shape), F64: d}
	}
	panic("unreachable")
}

// newData allocates a zeroed tensor of T and returns it and its data.
func newData[T float32 | float64](shape []int) (*tensor.Tensor, []T) {
	var z T
	if _, ok := any(z).(float32); ok {
		t := tensor.New(tensor.Float32, shape...)
		return t, any(t.F32).([]T)
	}
	t := tensor.New(tensor.Float64, shape...)
	return t, any(t.F64).([]T)
}

func newEinsum(n *Node) (Kernel, error) {
	eq := n.String("equation", "")
	if eq == "" {
		return nil, fmt.Errorf("attribute equation: required")
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if len(in) == 0 {
			return nil, fmt.Errorf("no inputs; Einsum needs at least one")
		}
		ranks := make([]int, len(in))
		for i, t := range in {
			if t == nil || t.DType != in[0].DType || t.DType != tensor.Float32 && t.DType != tensor.Float64 {
				return nil, fmt.Errorf("input %d: %v, Einsum supports float32 and float64 (all inputs alike)", i, t)
			}
			ranks[i] = len(t.Shape)
		}
		spec, err := parseEinsum(eq, ranks)
		if err != nil {
			return nil, err
		}
		if in[0].DType == tensor.Float64 {
			return einsum[float64](eq, spec, in)
		}
		return einsum[float32](eq, spec, in)
	}, nil
}

// einsum evaluates spec on in (all of T).
func einsum[T float32 | float64](eq string, spec *einsumSpec, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	size := map[rune]int{}
	for i, term := range spec.terms {
		for a, r := range term {
			d := in[i].Shape[a]
			switch s, ok := size[r]; {
			case !ok || s == 1:
				size[r] = d
			case d != s && d != 1:
				return nil, fmt.Errorf("attribute equation %q: letter %q is %d long in one input, %d in input %d", eq, r, s, d, i)
			}
		}
	}
	// needed(i) lists the letters read after operand i: by the output or
	// a later operand.
	needed := func(i int) map[rune]bool {
		return lettersOf(spec.terms[i+1:], spec.out)
	}
	acc := reduceTerm[T](in[0], spec.terms[0], size, needed(0))
	for i := 1; i < len(in); i++ {
		b := reduceTerm[T](in[i], spec.terms[i], size, lettersOf(append([][]rune{acc.letters}, spec.terms[i+1:]...), spec.out))
		acc = contract(acc, b, needed(i))
	}
	perm := make([]int, len(spec.out))
	for j, r := range spec.out {
		perm[j] = slices.Index(acc.letters, r)
	}
	xs := contiguousStrides(acc.sizes)
	shape, st := make([]int, len(perm)), make([]int, len(perm))
	for j, p := range perm {
		shape[j], st[j] = acc.sizes[p], xs[p]
	}
	out, _ := newData[T](shape)
	if out.Len() > 0 {
		copyStrided(out, wrap(acc.data, acc.sizes), shape, st, 0)
	}
	return []*tensor.Tensor{out}, nil
}

// lettersOf returns the set of letters in terms and out.
func lettersOf(terms [][]rune, out []rune) map[rune]bool {
	m := map[rune]bool{}
	for _, t := range append(terms, out) {
		for _, r := range t {
			m[r] = true
		}
	}
	return m
}

// reduceTerm brings operand x, over letters term, to one axis per distinct
// letter (a repeated letter reads the diagonal; a size-1 axis broadcasts to
// the letter's size), keeping the letters in keep in the order first seen
// and summing the others away.
func reduceTerm[T float32 | float64](x *tensor.Tensor, term []rune, size map[rune]int, keep map[rune]bool) einTensor[T] {
	xs := contiguousStrides(x.Shape)
	var kept, summed []rune
	stride := map[rune]int{}
	for a, r := range term {
		if _, seen := stride[r]; !seen {
			if keep[r] {
				kept = append(kept, r)
			} else {
				summed = append(summed, r)
			}
		}
		if x.Shape[a] != 1 || size[r] == 1 {
			stride[r] += xs[a] // a diagonal adds the strides of its axes
		}
	}
	letters := append(slices.Clone(kept), summed...)
	shape, st := make([]int, len(letters)), make([]int, len(letters))
	for j, r := range letters {
		shape[j], st[j] = size[r], stride[r]
	}
	full, fd := newData[T](shape)
	if len(fd) > 0 {
		copyStrided(full, x, shape, st, 0)
	}
	rows := tensor.NumElements(shape[:len(kept)])
	inner := tensor.NumElements(shape[len(kept):])
	data := fd
	if len(summed) > 0 {
		data = make([]T, rows)
		for i := range rows {
			var s T
			for _, v := range fd[i*inner : (i+1)*inner] {
				s += v
			}
			data[i] = s
		}
	}
	return einTensor[T]{data: data, letters: kept, sizes: shape[:len(kept)]}
}

// contract multiplies a and b over their shared letters: shared letters in
// keep are the batch, the other shared ones are summed; the result is over
// batch, then a's own, then b's own letters.
func contract[T float32 | float64](a, b einTensor[T], keep map[rune]bool) einTensor[T] {
	var batch, sum, left, right []rune
	for _, r := range a.letters {
		switch {
		case slices.Contains(b.letters, r) && keep[r]:
			batch = append(batch, r)
		case slices.Contains(b.letters, r):
			sum = append(sum, r)
		default:
			left = append(left, r)
		}
	}
	for _, r := range b.letters {
		if !slices.Contains(a.letters, r) {
			right = append(right, r)
		}
	}
	sizeOf := func(t einTensor[T], r rune) int { return t.sizes[slices.Index(t.letters, r)] }
	arrange := func(t einTensor[T], order []rune) []T {
		ts := contiguousStrides(t.sizes)
		shape, st := make([]int, len(order)), make([]int, len(order))
		for j, r := range order {
			k := slices.Index(t.letters, r)
			shape[j], st[j] = t.sizes[k], ts[k]
		}
		out, od := newData[T](shape)
		if len(od) > 0 {
			copyStrided(out, wrap(t.data, t.sizes), shape, st, 0)
		}
		return od
	}
	prod := func(t einTensor[T], rs []rune) int {
		p := 1
		for _, r := range rs {
			p *= sizeOf(t, r)
		}
		return p
	}
	nb, nl, nc, nr := prod(a, batch), prod(a, left), prod(a, sum), prod(b, right)
	am := arrange(a, append(append(slices.Clone(batch), left...), sum...))
	bm := arrange(b, append(append(slices.Clone(batch), sum...), right...))
	out := make([]T, nb*nl*nr)
	for i := range nb {
		ab, bb, ob := am[i*nl*nc:(i+1)*nl*nc], bm[i*nc*nr:(i+1)*nc*nr], out[i*nl*nr:(i+1)*nl*nr]
		if a32, ok := any(ab).([]float32); ok {
			gemmF32(false, false, nl, nr, nc, 1, a32, max(1, nc), any(bb).([]float32), max(1, nr), 0, any(ob).([]float32), max(1, nr))
			continue
		}
		for r := range nl {
			for p := range nc {
				av := ab[r*nc+p]
				for c := range nr {
					ob[r*nr+c] += av * bb[p*nr+c]
				}
			}
		}
	}
	res := einTensor[T]{data: out}
	for _, r := range batch {
		res.letters, res.sizes = append(res.letters, r), append(res.sizes, sizeOf(a, r))
	}
	for _, r := range left {
		res.letters, res.sizes = append(res.letters, r), append(res.sizes, sizeOf(a, r))
	}
	for _, r := range right {
		res.letters, res.sizes = append(res.letters, r), append(res.sizes, sizeOf(b, r))
	}
	return res
}
