package engine

import (
	"slices"
	"time"

	"github.com/spindleml/spindle/internal/tensor"
)

// StepTiming is what RunOptions.OnStep reports of one step: how long it
// took and how much work it did, so a profile can set each step against the
// machine's peak (spindle bench engine --ops prints GFLOP/s and GB/s).
type StepTiming struct {
	// Name is the node's name; a fused step joins its nodes' names with "+".
	Name   string
	OpType string
	Took   time.Duration
	// FLOPs counts the step's multiply-adds twice: those of a Conv,
	// ConvTranspose, MatMul or Gemm, alone or at the head of a fused step
	// (and both multiplies of fused attention). 0 for every other op.
	FLOPs int64
	// Bytes is the size of the step's inputs, weights included, and of its
	// outputs: what it must move at least once.
	Bytes int64
}

// stepWork returns the FLOPs and bytes of st run on args giving outs (see
// StepTiming).
func stepWork(st *step, args, outs []*tensor.Tensor) (flops, bytes int64) {
	for _, t := range args {
		if t != nil {
			bytes += tensorBytes(t)
		}
	}
	for _, t := range outs {
		if t != nil {
			bytes += tensorBytes(t)
		}
	}
	head, in := st.node, args
	if st.fused != nil {
		// The head of a fused run is its first step; its inputs are among
		// the fused step's.
		h := &st.fused.run[0]
		head = h.node
		in = make([]*tensor.Tensor, len(h.in))
		for j, s := range h.in {
			if k := slices.Index(st.fused.ins, s); k >= 0 {
				in[j] = args[k]
			}
		}
	}
	flops = 2 * multiplyAdds(head, in)
	if st.node.OpType == opAttention {
		flops *= 2 // scores times values: as many multiply-adds as Q times K^T
	}
	return flops, bytes
}

// multiplyAdds returns the multiply-adds of a Conv, ConvTranspose, MatMul or
// Gemm node on inputs in, or 0 for another op or inputs it cannot read.
func multiplyAdds(n *Node, in []*tensor.Tensor) int64 {
	if len(in) < 2 || in[0] == nil || in[1] == nil {
		return 0
	}
	a, b := in[0].Shape, in[1].Shape
	prod := func(s []int) int64 {
		p := int64(1)
		for _, d := range s {
			p *= int64(d)
		}
		return p
	}
	switch n.OpType {
	case "Conv":
		if len(a) < 3 || len(b) != len(a) {
			return 0
		}
		attrs, err := readWindowAttrs(n)
		if err != nil {
			return 0
		}
		k := make([]int64, len(b)-2)
		for i := range k {
			k[i] = int64(b[2+i])
		}
		out, _, _, err := attrs.geometry(a[2:], k)
		if err != nil {
			return 0
		}
		return int64(a[0]) * int64(b[0]) * prod(out) * prod(b[1:])
	case "ConvTranspose":
		if len(a) < 3 || len(b) != len(a) {
			return 0
		}
		return prod(a) * prod(b[1:])
	case "MatMul":
		if len(a) == 0 || len(b) == 0 {
			return 0
		}
		// Batch dimensions broadcast: the larger side sets how many
		// products there are.
		m, k, nn := int64(1), int64(a[len(a)-1]), int64(b[len(b)-1])
		if len(a) > 1 {
			m = int64(a[len(a)-2])
		}
		if len(b) == 1 {
			nn = 1
		}
		if m*k == 0 || k*nn == 0 {
			return 0
		}
		batch := max(prod(a)/(m*k), prod(b)/(k*nn))
		return batch * m * k * nn
	case "Gemm":
		if len(a) != 2 || len(b) != 2 {
			return 0
		}
		k := a[1]
		if n.Int("transA", 0) != 0 {
			k = a[0]
		}
		return prod(a) * prod(b) / int64(max(k, 1))
	}
	return 0
}
