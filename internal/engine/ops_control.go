package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// Control flow (issue 13, item 2). A subgraph (an If's branches) reads the
// values it defines (its inputs, initializers and nodes' outputs) and any
// value of the scopes around it by name. The node holding it takes those
// outer values as implicit inputs after its own: they order it after their
// producers and reach its kernel like any input. Each branch compiles into a
// Model of its own whose inputs are the outer values it reads (those known
// at compile time become its constants, so folding and fusion see through
// them). An If whose condition is known at compile time is not a step at
// all: the branch it takes is compiled into the graph around it (inlineIf).

func init() {
	register("If", newIf)
}

// subgraphs returns the graphs among pn's attributes.
func subgraphs(pn *onnxpb.NodeProto) []*onnxpb.GraphProto {
	var gs []*onnxpb.GraphProto
	for _, a := range pn.GetAttribute() {
		if g := a.GetG(); g != nil {
			gs = append(gs, g)
		}
		gs = append(gs, a.GetGraphs()...)
	}
	return gs
}

// implicitInputs returns the outer values pn's subgraphs read, each once, in
// the order they are first read; nil for a node without subgraphs.
func implicitInputs(pn *onnxpb.NodeProto) []string {
	var names []string
	for _, g := range subgraphs(pn) {
		for _, name := range outerReads(g) {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	return names
}

// outerReads returns the values g (and the subgraphs inside it) reads that g
// does not define, each once, in the order they are first read.
func outerReads(g *onnxpb.GraphProto) []string {
	defined := map[string]bool{"": true}
	for _, vi := range g.GetInput() {
		defined[vi.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		defined[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			defined[o] = true
		}
	}
	var names []string
	seen := map[string]bool{}
	read := func(name string) {
		if !defined[name] && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			read(in)
		}
		for _, name := range implicitInputs(n) {
			read(name)
		}
	}
	for _, o := range g.GetOutput() {
		read(o.GetName()) // a branch may return an outer value as it is
	}
	return names
}

// branchGraphs returns If's then and else branches, checking that each
// returns as many values as the node has outputs.
func branchGraphs(pn *onnxpb.NodeProto) (then, els *onnxpb.GraphProto, err error) {
	for _, a := range pn.GetAttribute() {
		switch a.GetName() {
		case "then_branch":
			then = a.GetG()
		case "else_branch":
			els = a.GetG()
		}
	}
	for _, b := range []struct {
		name string
		g    *onnxpb.GraphProto
	}{{"then_branch", then}, {"else_branch", els}} {
		if b.g == nil {
			return nil, nil, fmt.Errorf("attribute %s: required, a graph", b.name)
		}
		if len(b.g.GetOutput()) != len(pn.GetOutput()) {
			return nil, nil, fmt.Errorf("attribute %s: %d outputs, the node has %d", b.name, len(b.g.GetOutput()), len(pn.GetOutput()))
		}
	}
	return then, els, nil
}

// condition reads If's condition: one element, bool or (as ONNX Runtime
// accepts) a number, true when not zero.
func condition(t *tensor.Tensor) (bool, error) {
	if t.Len() != 1 {
		return false, fmt.Errorf("input cond: shape %s, must hold one element", tensor.ShapeString(t.Shape))
	}
	b, err := castTensor(t, tensor.Bool)
	if err != nil {
		return false, fmt.Errorf("input cond: %w", err)
	}
	return b.B[0], nil
}

// inlineIf compiles the branch an If with the constant condition cond takes
// into the graph around it: the branch's initializers become constants, its
// nodes are compiled in order after the outer values they read (all
// compiled already: the If comes after their producers), and the If's
// outputs name the branch's.
func (c *compiler) inlineIf(pn *onnxpb.NodeProto, cond *tensor.Tensor) error {
	fail := func(err error) error {
		return fmt.Errorf("node %q (If, opset %d): %w: %w", pn.GetName(), c.opset, onnx.ErrBadModel, err)
	}
	then, els, err := branchGraphs(pn)
	if err != nil {
		return fail(err)
	}
	take, err := condition(cond)
	if err != nil {
		return fail(err)
	}
	g := els
	if take {
		g = then
	}
	for _, init := range g.GetInitializer() {
		t, err := onnx.TensorFromProto(init)
		if err != nil {
			return fail(fmt.Errorf("initializer %q: %w", init.GetName(), err))
		}
		if _, dup := c.slots[init.GetName()]; dup {
			return fail(fmt.Errorf("initializer %q: the name is taken in an outer scope", init.GetName()))
		}
		s := c.slot(init.GetName())
		c.consts[s], c.shapes[s], c.ranks[s] = t, shapeOf(t), len(t.Shape)
	}
	given := map[string]bool{"": true}
	for name := range c.slots {
		given[name] = true
	}
	nodes, err := sortNodes(g.GetNode(), given)
	if err != nil {
		return fail(err)
	}
	c.m.stats.Nodes += len(nodes)
	for i, bn := range nodes {
		if err := c.compileNode(i, bn); err != nil {
			return err
		}
	}
	for j, o := range g.GetOutput() {
		out := pn.GetOutput()[j]
		if out == "" {
			continue
		}
		if _, taken := c.slots[out]; taken {
			return fail(fmt.Errorf("output %q: the name is taken", out))
		}
		src, ok := c.slots[o.GetName()]
		if !ok {
			return fail(fmt.Errorf("branch output %q is produced by no node", o.GetName()))
		}
		c.slots[out] = src
	}
	return nil
}

// branch is one of If's branches compiled as a Model: in[k] is the index
// among the node's inputs of the value its input k is.
type branch struct {
	m   *Model
	in  []int
	out []string
}

// compileBranch compiles g, a subgraph of n, as a Model whose inputs are the
// outer values it reads that are not constant at compile time; the
// constant ones and g's initializers are its weights.
func compileBranch(n *Node, g *onnxpb.GraphProto) (*branch, error) {
	weights := map[string]*tensor.Tensor{}
	for _, init := range g.GetInitializer() {
		t, err := onnx.TensorFromProto(init)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", init.GetName(), err)
		}
		weights[init.GetName()] = t
	}
	sub := &onnxpb.GraphProto{Name: g.Name, Node: g.GetNode(), Output: g.GetOutput()}
	b := &branch{}
	outer := n.Inputs[len(n.Inputs)-n.implicit:]
	for _, name := range outerReads(g) {
		i := slices.Index(outer, name) + len(n.Inputs) - n.implicit
		if t := n.Const(i); t != nil {
			weights[name] = t
			continue
		}
		sub.Input = append(sub.Input, &onnxpb.ValueInfoProto{Name: &name})
		b.in = append(b.in, i)
	}
	src := &onnx.Model{
		Proto:   &onnxpb.ModelProto{Graph: sub, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: &n.Opset}}},
		Weights: weights,
	}
	m, err := CompileWith(src, Options{KeepWeightsUnpacked: !n.pack, NoFusion: n.noFusion, foldLeft: n.foldLeft})
	if err != nil {
		return nil, err
	}
	b.m = m
	for _, o := range g.GetOutput() {
		b.out = append(b.out, o.GetName())
	}
	return b, nil
}

// run runs the branch on the node's inputs in.
func (b *branch) run(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	inputs := make(map[string]*tensor.Tensor, len(b.in))
	for k, i := range b.in {
		if in[i] == nil {
			return nil, fmt.Errorf("outer value %q has no value", b.m.Inputs[k].Name)
		}
		inputs[b.m.Inputs[k].Name] = in[i]
	}
	outs, err := b.m.RunWith(context.Background(), inputs, RunOptions{Threads: threads})
	if err != nil {
		return nil, err
	}
	res := make([]*tensor.Tensor, len(b.out))
	for j, name := range b.out {
		res[j] = outs[name]
	}
	return res, nil
}

// newIf runs the branch its condition picks, each compiled once here.
func newIf(n *Node) (Kernel, error) {
	pn := &onnxpb.NodeProto{Output: n.Outputs}
	for _, a := range n.attrs {
		pn.Attribute = append(pn.Attribute, a)
	}
	then, els, err := branchGraphs(pn)
	if err != nil {
		return nil, err
	}
	var bs [2]*branch
	for i, g := range []*onnxpb.GraphProto{els, then} {
		if bs[i], err = compileBranch(n, g); err != nil {
			name := [2]string{"else_branch", "then_branch"}[i]
			return nil, fmt.Errorf("attribute %s: %w", name, err)
		}
	}
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if len(in) == 0 || in[0] == nil {
			return nil, fmt.Errorf("input cond: required")
		}
		take, err := condition(in[0])
		if err != nil {
			return nil, err
		}
		if take {
			return bs[1].run(threads, in)
		}
		return bs[0].run(threads, in)
	}
	return withThreads(n.threaded, 1), nil
}
