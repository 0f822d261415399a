package autoscale

import (
	"math"
	"sort"
)

// placer tracks free capacity while one decision places instances. It never
// writes to the state's node list: what the decision takes is kept as a delta.
type placer struct {
	spec   Spec
	nodes  []Node
	taken  map[int]float64 // vCPUs this decision added (or freed, negative) per node
	byName map[string]int
}

func newPlacer(nodes []Node, spec Spec) *placer {
	return &placer{spec: spec, nodes: nodes, taken: map[int]float64{}}
}

// index finds a node by name; -1 when the node is unknown.
func (p *placer) index(name string) int {
	if p.byName == nil {
		p.byName = make(map[string]int, len(p.nodes))
		for i, n := range p.nodes {
			p.byName[n.Name] = i
		}
	}
	if i, ok := p.byName[name]; ok {
		return i
	}
	return -1
}

func (p *placer) free(i int) float64 { return p.nodes[i].Free() - p.taken[i] }

func (p *placer) take(i int, v float64) { p.taken[i] += v }

// pick chooses a node for a new instance of the given size, never one in
// avoid; it settles for a node with at least least free vCPUs when none
// holds size. -1 when no node has room.
func (p *placer) pick(size, least float64, avoid map[int]bool) int {
	best, bestFree := -1, math.Inf(-1)
	fallback, fallbackFree := -1, math.Inf(-1)
	for i := range p.nodes {
		if avoid[i] {
			continue
		}
		f := p.free(i)
		if f < least-1e-9 {
			continue
		}
		if p.spec.Placement == FirstFit && f >= size-1e-9 {
			return i
		}
		if f > bestFree {
			best, bestFree = i, f
		}
		if f > fallbackFree {
			fallback, fallbackFree = i, f
		}
	}
	if p.spec.Placement == Spread {
		return best
	}
	return fallback
}

// grow returns the instances with want vCPUs in all (or as close as room
// allows): existing instances grow on their own nodes first, up to the cap;
// what is still missing goes to new instances on nodes that run none of the
// function's instances (the thesis's rule: never two replicas on one node).
func grow(st State, spec Spec, want float64) []Instance {
	p := newPlacer(st.Nodes, spec)
	out := append([]Instance(nil), st.Instances...)
	need := want - st.total()
	avoid := map[int]bool{}
	for _, in := range out {
		if i := p.index(in.Node); i >= 0 {
			avoid[i] = true
		}
	}
	for k := range out {
		if need < Quantum/2 {
			break
		}
		i := p.index(out[k].Node)
		if i < 0 {
			continue
		}
		room := quantizeDown(min(spec.capOn(p.nodes[i])-out[k].VCPUs, p.free(i)))
		add := min(room, quantizeUp(need))
		if add <= 0 {
			continue
		}
		out[k].VCPUs += add
		p.take(i, add)
		need -= add
	}
	for need >= Quantum/2 && (spec.MaxInstances == 0 || len(out) < spec.MaxInstances) {
		size := max(spec.MinVCPUs, quantizeUp(need))
		i := p.pick(size, spec.MinVCPUs, avoid)
		if i < 0 {
			break
		}
		size = min(size, spec.capOn(p.nodes[i]), quantizeDown(p.free(i)))
		out = append(out, Instance{Node: p.nodes[i].Name, VCPUs: size})
		p.take(i, size)
		avoid[i] = true
		need -= size
	}
	return out
}

// shrink returns the instances cut down to want vCPUs in all: the largest
// instances keep their vCPUs, the rest shrink or stop, so that load gathers in
// as few instances, and as few copies of the model, as possible. At least
// max(1, MinInstances) instances of MinVCPUs stay.
func shrink(st State, spec Spec, want float64) []Instance {
	order := make([]int, len(st.Instances))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := st.Instances[order[a]], st.Instances[order[b]]
		if x.VCPUs != y.VCPUs {
			return x.VCPUs > y.VCPUs
		}
		return x.Ready && !y.Ready
	})
	keepMin := max(1, spec.MinInstances)
	size := make([]float64, len(st.Instances))
	left := want
	for rank, k := range order {
		v := st.Instances[k].VCPUs
		give := min(v, quantizeUp(left))
		if give < Quantum/2 && rank < keepMin {
			give = min(v, spec.MinVCPUs)
		}
		if give > 0 && give < spec.MinVCPUs {
			give = min(v, spec.MinVCPUs)
		}
		size[k] = give
		left -= give
	}
	var out []Instance
	for k, in := range st.Instances {
		if size[k] > 0 {
			in.VCPUs = size[k]
			out = append(out, in)
		}
	}
	return out
}

// total sums the vCPUs of instances.
func total(ins []Instance) float64 {
	var t float64
	for _, in := range ins {
		t += in.VCPUs
	}
	return t
}
