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
	register("Loop", newLoop)
	register("Scan", newScan)
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

// branch is a subgraph compiled as a Model: its inputs are the graph's own
// (a Loop body's iteration number, condition and carried values), then the
// outer values it reads that are not constant, outer[k] being the index
// among the node's inputs of the k-th of those.
type branch struct {
	m     *Model
	own   int
	outer []int
	out   []string
}

// compileBranch compiles g, a subgraph of n, as a branch; the outer values
// it reads that are constant at compile time and g's initializers are its
// weights.
func compileBranch(n *Node, g *onnxpb.GraphProto) (*branch, error) {
	weights := map[string]*tensor.Tensor{}
	for _, init := range g.GetInitializer() {
		t, err := onnx.TensorFromProto(init)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", init.GetName(), err)
		}
		weights[init.GetName()] = t
	}
	sub := &onnxpb.GraphProto{Name: g.Name, Node: g.GetNode(), Input: slices.Clone(g.GetInput()), Output: g.GetOutput()}
	b := &branch{own: len(g.GetInput())}
	first := len(n.Inputs) - n.implicit
	for _, name := range outerReads(g) {
		i := slices.Index(n.Inputs[first:], name) + first
		if t := n.Const(i); t != nil {
			weights[name] = t
			continue
		}
		sub.Input = append(sub.Input, &onnxpb.ValueInfoProto{Name: &name})
		b.outer = append(b.outer, i)
	}
	src := &onnx.Model{
		Proto:   &onnxpb.ModelProto{Graph: sub, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: &n.Opset}}},
		Weights: weights,
	}
	m, err := CompileWith(src, Options{KeepWeightsUnpacked: !n.pack, NoFusion: n.noFusion, foldLeft: n.foldLeft, subgraph: true})
	if err != nil {
		return nil, err
	}
	b.m = m
	for _, o := range g.GetOutput() {
		b.out = append(b.out, o.GetName())
	}
	return b, nil
}

// run runs the branch on its own inputs own and the node's inputs in, with
// the context, threads and what is left of the memory budget of rs (a
// fresh budget when rs is nil: a fold at compile time).
func (b *branch) run(rs *runState, own, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	inputs := make(map[string]*tensor.Tensor, len(own)+len(b.outer))
	for k, t := range own {
		inputs[b.m.Inputs[k].Name] = t
	}
	for k, i := range b.outer {
		if in[i] == nil {
			return nil, fmt.Errorf("outer value %q has no value", b.m.Inputs[b.own+k].Name)
		}
		inputs[b.m.Inputs[b.own+k].Name] = in[i]
	}
	ctx, ro := context.Background(), RunOptions{Threads: 1}
	if rs != nil {
		ctx, ro = rs.ctx, RunOptions{Threads: rs.threads, MaxBytes: -1, OnStep: rs.onStep}
		if rs.limit >= 0 {
			ro.MaxBytes = max(1, rs.limit-rs.live)
		}
	}
	outs, err := b.m.RunWith(ctx, inputs, ro)
	if err != nil {
		return nil, err
	}
	res := make([]*tensor.Tensor, len(b.out))
	for j, name := range b.out {
		res[j] = outs[name]
	}
	return res, nil
}

// control sets n's kernels from run, a kernel taking the Run's state (nil
// when folding at compile time).
func control(n *Node, run func(rs *runState, in []*tensor.Tensor) ([]*tensor.Tensor, error)) Kernel {
	n.control = run
	n.threaded = func(_ int, in []*tensor.Tensor) ([]*tensor.Tensor, error) { return run(nil, in) }
	return withThreads(n.threaded, 1)
}

// runControl runs a control-flow step's kernel, turning a panic into an
// error as runStep does.
func runControl(st *step, rs *runState, args []*tensor.Tensor) (outs []*tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = st.node.Errorf("internal error: %v", r)
		}
	}()
	if outs, err = st.node.control(rs, args); err != nil {
		return nil, fmt.Errorf("node %q (%s): %w", st.node.Name, st.node.OpType, err)
	}
	return outs, nil
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
	return control(n, func(rs *runState, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if len(in) == 0 || in[0] == nil {
			return nil, fmt.Errorf("input cond: required")
		}
		take, err := condition(in[0])
		if err != nil {
			return nil, err
		}
		if take {
			return bs[1].run(rs, nil, in)
		}
		return bs[0].run(rs, nil, in)
	}), nil
}

// maxLoopIterations bounds a Loop: one with neither a trip count nor a
// condition would run forever, and a runaway one would hold its instance
// until the request's deadline (which also stops it: the body's runs take
// the request's context). A variable for tests.
var maxLoopIterations int64 = 1 << 20

// newLoop runs its body while the trip count M (when given) is not reached
// and the condition (when given) holds, carrying N values from one
// iteration to the next and stacking the body's K scan outputs along a new
// first axis. Outputs: the N final values, then the K stacks.
func newLoop(n *Node) (Kernel, error) {
	body := n.attrs["body"].GetG()
	if body == nil {
		return nil, fmt.Errorf("attribute body: required, a graph")
	}
	own := len(n.Inputs) - n.implicit
	if own < 2 {
		return nil, fmt.Errorf("inputs: %d, Loop takes M and cond (either may be empty) then the carried values", own)
	}
	nv := own - 2
	k := len(n.Outputs) - nv
	if k < 0 {
		return nil, fmt.Errorf("outputs: %d for %d carried values: Loop returns each carried value, then its scan outputs", len(n.Outputs), nv)
	}
	if len(body.GetInput()) != 2+nv {
		return nil, fmt.Errorf("attribute body: %d inputs, want %d (iteration number, condition and %d carried values)", len(body.GetInput()), 2+nv, nv)
	}
	if len(body.GetOutput()) != 1+nv+k {
		return nil, fmt.Errorf("attribute body: %d outputs, want %d (condition, %d carried values and %d scan outputs)", len(body.GetOutput()), 1+nv+k, nv, k)
	}
	b, err := compileBranch(n, body)
	if err != nil {
		return nil, fmt.Errorf("attribute body: %w", err)
	}
	return control(n, func(rs *runState, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		trips := int64(-1)
		if in[0] != nil {
			m, err := castTensor(in[0], tensor.Int64)
			if err != nil || m.Len() != 1 {
				return nil, fmt.Errorf("input M: %s, must be one integer", in[0])
			}
			trips = m.I64[0]
		}
		cond := true
		if in[1] != nil {
			var err error
			if cond, err = condition(in[1]); err != nil {
				return nil, err
			}
		}
		carried := slices.Clone(in[2 : 2+nv])
		scans := make([][]*tensor.Tensor, k)
		var scanBytes int64
		args := make([]*tensor.Tensor, 2+nv)
		for i := int64(0); (trips < 0 || i < trips) && cond; i++ {
			if i == maxLoopIterations {
				return nil, fmt.Errorf("%w: more than %d iterations: the trip count and condition never stopped the loop", ErrBadInput, maxLoopIterations)
			}
			args[0] = tensor.FromI64([]int64{i})
			args[1] = &tensor.Tensor{DType: tensor.Bool, Shape: []int{}, B: []bool{cond}}
			copy(args[2:], carried)
			outs, err := b.run(rs, args, in)
			if err != nil {
				return nil, fmt.Errorf("iteration %d: %w", i, err)
			}
			if in[1] != nil {
				if cond, err = condition(outs[0]); err != nil {
					return nil, fmt.Errorf("iteration %d: body output condition: %w", i, err)
				}
			}
			copy(carried, outs[1:1+nv])
			for j := range k {
				t := outs[1+nv+j]
				if len(scans[j]) > 0 && (t.DType != scans[j][0].DType || !slices.Equal(t.Shape, scans[j][0].Shape)) {
					return nil, fmt.Errorf("iteration %d: scan output %d is %s, earlier iterations gave %s", i, j, t, scans[j][0])
				}
				scans[j] = append(scans[j], t)
				scanBytes += int64(len(t.Bytes()))
			}
			if rs != nil && rs.limit >= 0 && scanBytes > rs.limit-rs.live {
				return nil, fmt.Errorf("%w: the scan outputs of %d iterations take %s, more than the request's memory limit allows", ErrBadInput, i+1, formatBytes(scanBytes))
			}
		}
		res := carried
		for j := range k {
			st, err := stack(scans[j], body.GetOutput()[1+nv+j])
			if err != nil {
				return nil, fmt.Errorf("scan output %d: %w", j, err)
			}
			res = append(res, st)
		}
		return res, nil
	}), nil
}

// stack joins same-shaped tensors along a new first axis. With none, the
// result is empty along it, with the rest of the shape the body declares
// (0 where it names no size) and its dtype.
func stack(ts []*tensor.Tensor, decl *onnxpb.ValueInfoProto) (*tensor.Tensor, error) {
	if len(ts) == 0 {
		info, err := valueInfo(decl)
		if err != nil || info.DType.Size() == 0 {
			return nil, fmt.Errorf("no iterations, and the body declares no dtype for it")
		}
		shape := []int{0}
		for _, d := range info.Shape {
			shape = append(shape, max(d, 0))
		}
		dt := info.DType
		if dt.Wide() {
			dt = tensor.Float32 // float16 and bfloat16 are held as float32
		}
		return tensor.New(dt, shape...), nil
	}
	first := ts[0]
	if first.DType.Size() == 0 {
		return nil, fmt.Errorf("dtype %s cannot be stacked", first.DType)
	}
	out := tensor.New(first.DType, append([]int{len(ts)}, first.Shape...)...)
	dst := out.Bytes()
	for i, t := range ts {
		b := t.Bytes()
		copy(dst[i*len(b):], b)
	}
	return out, nil
}

// newScan runs its body once per position along the scan inputs' axes
// (forward or reverse each), carrying N state values and stacking K scan
// outputs along their axes (in either direction). Inputs: the N initial
// states, then the M scan inputs; outputs: the N final states, then the K
// stacks. Before opset 9 every input and output has a batch axis first,
// scanned along axis 1, each batch entry for its own length (the optional
// first input sequence_lens), and the scan outputs of shorter entries are
// padded with zeros.
func newScan(n *Node) (Kernel, error) {
	body := n.attrs["body"].GetG()
	if body == nil {
		return nil, fmt.Errorf("attribute body: required, a graph")
	}
	batched := n.Opset < 9
	m := int(n.Int("num_scan_inputs", 0))
	own := len(n.Inputs) - n.implicit
	first := 0 // where the states start among the inputs
	if batched {
		first = 1
	}
	if m < 1 || m > own-first {
		return nil, fmt.Errorf("attribute num_scan_inputs: %d, must be in [1, %d] (the inputs)", m, own-first)
	}
	states := own - first - m
	k := len(n.Outputs) - states
	if k < 0 || len(body.GetInput()) != own-first || len(body.GetOutput()) != len(n.Outputs) {
		return nil, fmt.Errorf("attribute body: %d inputs and %d outputs, want %d (states and scan slices) and %d (states and scan outputs)",
			len(body.GetInput()), len(body.GetOutput()), own-first, len(n.Outputs))
	}
	list := func(name string, count int) ([]int64, error) {
		v := n.Ints(name, nil)
		if v == nil {
			return make([]int64, count), nil
		}
		if len(v) != count {
			return nil, fmt.Errorf("attribute %s: %d entries, want %d", name, len(v), count)
		}
		return v, nil
	}
	sc := scanner{states: states, m: m, k: k}
	var err error
	dirsName := "scan_input_directions"
	if batched {
		dirsName = "directions"
	}
	if sc.inDirs, err = list(dirsName, m); err != nil {
		return nil, err
	}
	if sc.inAxes, err = list("scan_input_axes", m); err != nil {
		return nil, err
	}
	if sc.outAxes, err = list("scan_output_axes", k); err != nil {
		return nil, err
	}
	if sc.outDirs, err = list("scan_output_directions", k); err != nil {
		return nil, err
	}
	if sc.body, err = compileBranch(n, body); err != nil {
		return nil, fmt.Errorf("attribute body: %w", err)
	}
	return control(n, func(rs *runState, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if batched {
			return sc.runBatched(rs, in, own)
		}
		return sc.run(rs, in, in[:states], in[states:own], -1)
	}), nil
}

// scanner is a compiled Scan: its body and how it walks its inputs.
type scanner struct {
	states, m, k                     int
	inAxes, inDirs, outAxes, outDirs []int64
	body                             *branch
}

// run scans the inputs scan (M of them) with the initial states init; in
// are the node's inputs, for the outer values the body reads. A length
// limit >= 0 scans only the first limit positions along the axes.
func (sc *scanner) run(rs *runState, in, init, scan []*tensor.Tensor, limit int) ([]*tensor.Tensor, error) {
	// Each scan input's axis, and the sequence length they share.
	axes := make([]int, sc.m)
	T := -1
	for j, x := range scan {
		if x == nil || x.DType.Size() == 0 {
			return nil, fmt.Errorf("scan input %d: missing or of an unsupported dtype", j)
		}
		a, err := normAxis(sc.inAxes[j], len(x.Shape), false)
		if err != nil {
			return nil, fmt.Errorf("attribute scan_input_axes: %w", err)
		}
		axes[j] = a
		if T >= 0 && x.Shape[a] != T {
			return nil, fmt.Errorf("scan input %d: %d long along axis %d, the others %d", j, x.Shape[a], a, T)
		}
		T = x.Shape[a]
	}
	if limit >= 0 {
		T = min(T, limit)
	}
	carried := slices.Clone(init)
	scans := make([][]*tensor.Tensor, sc.k)
	args := make([]*tensor.Tensor, sc.states+sc.m)
	for t := range T {
		copy(args, carried)
		for j := range sc.m {
			pos := t
			if sc.inDirs[j] != 0 {
				pos = T - 1 - t
			}
			args[sc.states+j] = sliceAt(scan[j], axes[j], pos)
		}
		outs, err := sc.body.run(rs, args, in)
		if err != nil {
			return nil, fmt.Errorf("iteration %d: %w", t, err)
		}
		copy(carried, outs[:sc.states])
		for j := range sc.k {
			scans[j] = append(scans[j], outs[sc.states+j])
		}
	}
	res := carried
	for j := range sc.k {
		st, err := stackAlong(scans[j], sc.outAxes[j], sc.outDirs[j] != 0)
		if err != nil {
			return nil, fmt.Errorf("scan output %d: %w", j, err)
		}
		res = append(res, st)
	}
	return res, nil
}

// runBatched is opset 8's Scan: in are sequence_lens (or nil), the states
// and the scan inputs, all with a batch axis first; each batch entry is
// scanned along its axis 0 for its own length, and the results are stacked
// back along the batch axis, scan outputs zero-padded to the longest.
func (sc *scanner) runBatched(rs *runState, in []*tensor.Tensor, own int) ([]*tensor.Tensor, error) {
	vals := in[1:own]
	batch, T := -1, -1
	for i, x := range vals {
		if x == nil || len(x.Shape) < 1 || (i >= sc.states && len(x.Shape) < 2) {
			return nil, fmt.Errorf("input %d: needs a batch axis (and a sequence axis for scan inputs)", i+1)
		}
		if batch >= 0 && x.Shape[0] != batch {
			return nil, fmt.Errorf("input %d: batch of %d, the others %d", i+1, x.Shape[0], batch)
		}
		batch = x.Shape[0]
		if i >= sc.states {
			T = x.Shape[1]
		}
	}
	lens := make([]int64, batch)
	for b := range lens {
		lens[b] = int64(T)
	}
	if in[0] != nil {
		l, err := intList(in[0], "sequence_lens")
		if err != nil {
			return nil, err
		}
		if len(l) != batch {
			return nil, fmt.Errorf("input sequence_lens: %d entries for a batch of %d", len(l), batch)
		}
		for b, v := range l {
			if v < 1 || v > int64(T) {
				return nil, fmt.Errorf("input sequence_lens: entry %d is %d, outside [1, %d]", b, v, T)
			}
		}
		lens = l
	}
	per := make([][]*tensor.Tensor, sc.states+sc.k) // per output, one per batch entry
	for b := range batch {
		args := make([]*tensor.Tensor, len(vals))
		for i, x := range vals {
			args[i] = sliceAt(x, 0, b)
		}
		res, err := sc.run(rs, in, args[:sc.states], args[sc.states:], int(lens[b]))
		if err != nil {
			return nil, fmt.Errorf("batch entry %d: %w", b, err)
		}
		for j, r := range res {
			if j >= sc.states && r.Len() > 0 && r.Shape[0] < T {
				r = padAxis0(r, T)
			}
			per[j] = append(per[j], r)
		}
	}
	out := make([]*tensor.Tensor, len(per))
	for j, ts := range per {
		st, err := stackAlong(ts, 0, false)
		if err != nil {
			return nil, fmt.Errorf("output %d: %w", j, err)
		}
		out[j] = st
	}
	return out, nil
}

// padAxis0 returns x grown to n along axis 0 with zeros.
func padAxis0(x *tensor.Tensor, n int) *tensor.Tensor {
	shape := slices.Clone(x.Shape)
	shape[0] = n
	out := tensor.New(x.DType, shape...)
	copy(out.Bytes(), x.Bytes())
	return out
}

// sliceAt returns x's slice at index pos of axis a (the axis removed).
func sliceAt(x *tensor.Tensor, a, pos int) *tensor.Tensor {
	xs := contiguousStrides(x.Shape)
	shape := slices.Delete(slices.Clone(x.Shape), a, a+1)
	st := slices.Delete(slices.Clone(xs), a, a+1)
	out := newTyped(x.DType, shape...)
	if out.Len() > 0 {
		copyStrided(out, x, shape, st, pos*xs[a])
	}
	return out
}

// stackAlong joins same-shaped tensors along a new axis (negative counts
// from the end of the result's rank), last first when reverse.
func stackAlong(ts []*tensor.Tensor, axis int64, reverse bool) (*tensor.Tensor, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("no iterations: the stack's shape is unknown")
	}
	first := ts[0]
	a, err := normAxis(axis, len(first.Shape)+1, false)
	if err != nil {
		return nil, fmt.Errorf("attribute scan_output_axes: %w", err)
	}
	shape := slices.Insert(slices.Clone(first.Shape), a, len(ts))
	out := newTyped(first.DType, shape...)
	os := contiguousStrides(shape)
	dst := slices.Delete(slices.Clone(os), a, a+1)
	for i, t := range ts {
		if t.DType != first.DType || !slices.Equal(t.Shape, first.Shape) {
			return nil, fmt.Errorf("iteration %d gave %s, the first %s", i, t, first)
		}
		pos := i
		if reverse {
			pos = len(ts) - 1 - i
		}
		if t.Len() > 0 {
			moveStrided(out, pos*os[a], dst, t, 0, contiguousStrides(t.Shape), t.Shape)
		}
	}
	return out, nil
}
