package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// ErrBadInput is wrapped by every Run error caused by the caller's inputs (missing,
// unknown, wrong dtype or shape), as opposed to a failure inside the graph.
var ErrBadInput = errors.New("bad input")

// ErrUnsupported is wrapped by Compile errors for ops the engine does not implement.
var ErrUnsupported = errors.New("unsupported")

// ValueInfo describes a graph input or output. A Shape entry of -1 is a dynamic
// dimension, named by the same entry of DimNames when the model names it.
//
// Spindle computes float16 as float32: a float16 input takes a float32 tensor
// and a float16 output is returned as a float32 tensor of float16 values
// when the graph casts to float16 (float16 weights are widened at load, see
// onnx.Report; the OIP server answers such outputs as FP16). DType still
// says what the model declares.
//
// A sequence value has DType tensor.Sequence and no Shape; an optional one
// is its type's with Optional set, and may also be a tensor.None.
type ValueInfo struct {
	Name     string       `json:"name"`
	DType    tensor.DType `json:"-"`
	Shape    []int        `json:"shape"`
	DimNames []string     `json:"-"`
	Optional bool         `json:"-"`
}

// step is one node of the compiled plan.
type step struct {
	node   *Node
	kernel Kernel
	in     []int // value slots; -1 for an omitted optional input
	out    []int // value slots; -1 for an omitted optional output
	// static holds the shapes of the outputs when Compile inferred all of
	// them, so Run's memory budget need not work them out per request.
	static [][]int
	// fused is set on a step that fusion made of others (fuse.go).
	fused *fusedRun
	// size says how Run's memory budget works out the outputs' size.
	size sizeClass
}

// constSlot is a value known at compile time: a weight or a folded output.
type constSlot struct {
	slot int
	t    *tensor.Tensor
}

// Stats says what Compile did to a graph.
type Stats struct {
	// Nodes is the number of nodes in the graph.
	Nodes int
	// Steps is the number of nodes every Run executes.
	Steps int
	// Folded counts nodes whose inputs were all constant, so Compile executed
	// them once and kept their outputs as constants (Shape nodes of tensors whose
	// shape inference knows count too).
	Folded int
	// FoldedBytes is the size of the constants folded nodes produced.
	FoldedBytes int64
	// StaticShapes counts the node outputs whose shapes Compile inferred.
	StaticShapes int
	// PackedBytes is the memory taken by constant MatMul and Gemm weights
	// repacked for the matrix kernels (see Options.KeepWeightsUnpacked).
	PackedBytes int64
	// Fused counts steps merged into a neighbour by graph fusion (fuse.go).
	Fused int
	// HalfBytes is the size of the float16 weights the kernels read as
	// float16 (MatMul and Gemm weights, Gather tables), where the model
	// file holds them; WidenedBytes the float32 copies made at compile
	// time of float16 weights used otherwise.
	HalfBytes, WidenedBytes int64
}

// Options tunes Compile. The zero value is the default.
type Options struct {
	// KeepWeightsUnpacked skips packing the constant B operands of MatMul and
	// Gemm into the matrix kernels' layout at compile time. Packing costs a
	// second copy of those weights (Stats.PackedBytes) and saves repacking them
	// on every request, which matters most for short inputs.
	KeepWeightsUnpacked bool
	// NoFusion keeps every node its own step instead of merging patterns
	// (MatMul + bias + activation, spelled-out LayerNorm, ...) into fused
	// kernels.
	NoFusion bool

	// foldLeft, set for a subgraph, is the folding budget of the model
	// around it, which the subgraph's folds draw on too.
	foldLeft *int64
	// subgraph says the graph is a subgraph compiled on its own: its
	// inputs include the outer values it reads, which carry no type.
	subgraph bool
}

// Model is a compiled graph. It is immutable and safe for concurrent Run calls.
type Model struct {
	Inputs  []ValueInfo
	Outputs []ValueInfo

	src     *onnx.Model
	stats   Stats
	steps   []step
	nslots  int
	consts  []constSlot // values Run starts from: weights and folded outputs still read
	inSlot  []int       // slot of each Inputs entry
	outSlot []int       // slot of each Outputs entry
	// lastUse[s] is the index of the last step that reads slot s, so Run can drop
	// intermediates early; len(steps) for graph outputs.
	lastUse []int
	isConst []bool
	// shapes[s] is the statically inferred shape of slot s, or nil when unknown.
	// Run checks every kernel output against it.
	shapes [][]int
}

// Source returns the loaded file this model was compiled from.
func (m *Model) Source() *onnx.Model { return m.src }

// Stats returns what Compile did to the graph.
func (m *Model) Stats() Stats { return m.stats }

// Compile turns a loaded model into an executable plan. It orders nodes
// topologically and resolves each to a kernel (an unsupported op is an error
// wrapping ErrUnsupported that names the op, its node and the opset). On the way
// it infers static shapes where the inputs' shapes are declared, and folds
// constants: a node whose inputs are all known at compile time (weights, Constant
// nodes, folded outputs, the Shape of a tensor with a static shape) runs once
// here and its outputs become constants that later nodes' factories see through
// Node.Const. Random ops are never folded, nor nodes whose outputs would be
// large and bigger than their inputs (see foldLimit).
func Compile(src *onnx.Model) (*Model, error) {
	return CompileWith(src, Options{})
}

// CompileWith is Compile with options. It runs in phases: bind the graph's
// values to slots, compile each node in topological order (resolve its
// kernel, check what it fixes, fold it or infer its output shapes), fuse,
// and plan the run (slot lifetimes and the constants Run starts from).
func CompileWith(src *onnx.Model, opt Options) (*Model, error) {
	c := newCompiler(src, opt)
	if err := c.bind(); err != nil {
		return nil, err
	}
	expanded, err := expandContrib(c.g.GetNode(), c.opset)
	if err != nil {
		if errors.Is(err, ErrUnsupported) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", onnx.ErrBadModel, err)
	}
	if !opt.NoFusion {
		expanded = rewriteQDQ(c.g, expanded, src.Weights)
	}
	nodes, err := topoSort(c.g, expanded, src.Weights)
	if err != nil {
		return nil, err
	}
	if err := unsupportedOps(nodes, c.opset); err != nil {
		return nil, err
	}
	c.widenHalves(nodes)
	c.m.stats.Nodes = len(nodes)
	for i, pn := range nodes {
		if err := c.compileNode(i, pn); err != nil {
			return nil, err
		}
	}
	c.m.stats.Steps = len(c.m.steps)
	for _, o := range c.m.Outputs {
		s, ok := c.slots[o.Name]
		if !ok {
			return nil, fmt.Errorf("%w: graph output %q is produced by no node", onnx.ErrBadModel, o.Name)
		}
		c.m.outSlot = append(c.m.outSlot, s)
	}
	if !opt.NoFusion {
		c.consts, c.shapes = c.m.fuse(c.consts, c.shapes)
	}
	c.plan()
	return c.m, nil
}

// halfReaders are the inputs, by op, whose kernels read a float16 weight as
// it is, widening it block by block as they pack or gather it: the weights
// of a float16 transformer. Any other use takes a float32 copy.
var halfReaders = map[string]int{"MatMul": 1, "Gemm": 1, "Gather": 0}

// widenHalves replaces, among the constants, every float16 weight that a
// node of nodes (or a subgraph, or the graph's outputs) uses other than as
// a halfReaders input by its float32 widening, and counts both kinds.
func (c *compiler) widenHalves(nodes []*onnxpb.NodeProto) {
	other := map[string]bool{}
	for _, pn := range nodes {
		reader, ok := halfReaders[pn.GetOpType()]
		if d := pn.GetDomain(); d != "" && d != "ai.onnx" {
			ok = false
		}
		for i, in := range pn.GetInput() {
			if !ok || i != reader {
				other[in] = true
			}
		}
		for _, name := range implicitInputs(pn) {
			other[name] = true
		}
	}
	for _, o := range c.g.GetOutput() {
		other[o.GetName()] = true
	}
	for name, s := range c.slots {
		w := c.consts[s]
		if w == nil || w.DType != tensor.Float16 {
			continue
		}
		if other[name] {
			c.consts[s] = widenHalf(w)
			c.m.stats.WidenedBytes += tensorBytes(c.consts[s])
		} else {
			c.m.stats.HalfBytes += tensorBytes(w)
		}
	}
}

// widenHalf returns a float16 weight's values as float32.
func widenHalf(w *tensor.Tensor) *tensor.Tensor {
	out := tensor.New(tensor.Float32, w.Shape...)
	kernels.HalfToFloat32(out.F32, w.U16)
	return out
}

// compiler is CompileWith's state while it works through a graph: per value
// slot, what is known at compile time.
type compiler struct {
	src *onnx.Model
	// artifact says src is a model `spindle model compile` wrote: its
	// weights include packed companions.
	artifact bool
	g        *onnxpb.GraphProto
	opset    int64
	opt      Options
	m        *Model

	slots map[string]int
	// shapes[s] is slot s's static shape, ranks[s] its rank (-1 unknown; a
	// graph input declares its rank even with dynamic dimensions), consts[s]
	// its value when it is a weight or a folded output.
	shapes [][]int
	ranks  []int
	consts []*tensor.Tensor
	// foldLeft is what folding may still add to the model's memory (see
	// foldBudget), shared with the compilers of its subgraphs.
	foldLeft *int64
}

func newCompiler(src *onnx.Model, opt Options) *compiler {
	c := &compiler{src: src, g: src.Proto.GetGraph(), opset: src.Opset(), opt: opt, m: &Model{src: src}, slots: map[string]int{}}
	for name := range src.Weights {
		if strings.HasSuffix(name, PackedSuffix) || strings.HasSuffix(name, PackedTransSuffix) {
			c.artifact = true
			break
		}
	}
	return c
}

// slot returns the slot of the value name, numbering a new one.
func (c *compiler) slot(name string) int {
	if s, ok := c.slots[name]; ok {
		return s
	}
	s := c.m.nslots
	c.slots[name] = s
	c.m.nslots++
	c.shapes = append(c.shapes, nil)
	c.ranks = append(c.ranks, -1)
	c.consts = append(c.consts, nil)
	return s
}

// bind numbers the slots of the weights (in name order, so that plans are
// the same from run to run), the graph's inputs and its outputs.
func (c *compiler) bind() error {
	names := make([]string, 0, len(c.src.Weights))
	var weightBytes int64
	for name, w := range c.src.Weights {
		names = append(names, name)
		weightBytes += tensorBytes(w)
	}
	slices.Sort(names)
	for _, name := range names {
		w := c.src.Weights[name]
		s := c.slot(name)
		c.consts[s], c.shapes[s], c.ranks[s] = w, shapeOf(w), len(w.Shape)
	}
	if c.foldLeft = c.opt.foldLeft; c.foldLeft == nil {
		budget := foldBudget(weightBytes)
		c.foldLeft = &budget
	}
	for _, vi := range c.g.GetInput() {
		if _, isWeight := c.src.Weights[vi.GetName()]; isWeight {
			continue
		}
		if vi.GetType() == nil && c.opt.subgraph {
			// An outer value a subgraph reads: any dtype and shape.
			c.m.Inputs = append(c.m.Inputs, ValueInfo{Name: vi.GetName()})
			c.m.inSlot = append(c.m.inSlot, c.slot(vi.GetName()))
			continue
		}
		info, err := valueInfo(vi)
		if err != nil {
			return err
		}
		if info.Shape != nil && len(info.Shape) > tensor.MaxRank {
			return fmt.Errorf("%w: graph input %q has %d dimensions, more than %d", onnx.ErrBadModel, info.Name, len(info.Shape), tensor.MaxRank)
		}
		c.m.Inputs = append(c.m.Inputs, info)
		s := c.slot(vi.GetName())
		c.m.inSlot = append(c.m.inSlot, s)
		if info.Shape != nil {
			c.ranks[s] = len(info.Shape)
		}
		if staticShape(info.Shape) {
			c.shapes[s] = info.Shape
		}
	}
	for _, vi := range c.g.GetOutput() {
		if vi.GetType() == nil && c.opt.subgraph {
			c.m.Outputs = append(c.m.Outputs, ValueInfo{Name: vi.GetName()}) // a subgraph's outputs may go untyped
			continue
		}
		info, err := valueInfo(vi)
		if err != nil {
			return err
		}
		c.m.Outputs = append(c.m.Outputs, info)
	}
	return nil
}

// unsupportedOps returns an error naming every op of nodes the engine does
// not implement, with how many nodes use it and the first one, so that a
// user learns all that stands between the model and the engine at once,
// not one op per attempt; nil when there is none.
func unsupportedOps(nodes []*onnxpb.NodeProto, opset int64) error {
	type use struct {
		nodes int
		first string
	}
	uses := map[string]*use{}
	var order []string
	note := func(i int, pn *onnxpb.NodeProto) {
		op := pn.GetOpType()
		if d := pn.GetDomain(); d != "" && d != "ai.onnx" {
			op = d + ":" + op
		} else if _, ok := ops[op]; ok {
			return
		}
		u := uses[op]
		if u == nil {
			name := pn.GetName()
			if name == "" {
				name = fmt.Sprintf("%s_%d", pn.GetOpType(), i)
			}
			u = &use{first: name}
			uses[op] = u
			order = append(order, op)
		}
		u.nodes++
	}
	var walk func(nodes []*onnxpb.NodeProto)
	walk = func(nodes []*onnxpb.NodeProto) {
		for i, pn := range nodes {
			note(i, pn)
			for _, g := range subgraphs(pn) {
				walk(g.GetNode()) // a subgraph's ops too
			}
		}
	}
	walk(nodes)
	if len(order) == 0 {
		return nil
	}
	parts := make([]string, len(order))
	for i, op := range order {
		u := uses[op]
		if u.nodes == 1 {
			parts[i] = fmt.Sprintf("%s (node %q)", op, u.first)
			continue
		}
		parts[i] = fmt.Sprintf("%s (%d nodes, the first %q)", op, u.nodes, u.first)
	}
	what := "an op"
	if len(order) > 1 {
		what = fmt.Sprintf("%d ops", len(order))
	}
	return fmt.Errorf("%w: the model uses %s the engine does not implement at opset %d (the default ONNX domain's are, and some of com.microsoft's): %s",
		ErrUnsupported, what, opset, strings.Join(parts, ", "))
}

// compileNode resolves node i (pn) to a kernel and checks it, then folds it
// into constants when its inputs are known, or appends it to the plan with
// the shapes of its outputs inferred.
func (c *compiler) compileNode(i int, pn *onnxpb.NodeProto) error {
	if d := pn.GetDomain(); d != "" && d != "ai.onnx" {
		return fmt.Errorf("node %q: op %s in domain %q: %w (only the default ONNX domain is)", pn.GetName(), pn.GetOpType(), d, ErrUnsupported)
	}
	if pn.GetOpType() == "If" && len(pn.GetInput()) == 1 {
		if s, ok := c.slots[pn.GetInput()[0]]; ok && c.consts[s] != nil {
			return c.inlineIf(pn, c.consts[s])
		}
	}
	n := &Node{Name: pn.GetName(), OpType: pn.GetOpType(), Opset: c.opset, Inputs: pn.GetInput(), Outputs: pn.GetOutput(), attrs: map[string]*onnxpb.AttributeProto{}}
	if n.Name == "" {
		n.Name = fmt.Sprintf("%s_%d", n.OpType, i)
	}
	if implicit := implicitInputs(pn); len(implicit) > 0 {
		// The kernel gets the outer values its subgraphs read after its
		// own inputs.
		n.Inputs = append(slices.Clip(n.Inputs), implicit...)
		n.implicit = len(implicit)
	}
	for _, a := range pn.GetAttribute() {
		n.attrs[a.GetName()] = a
	}
	st := step{node: n}
	for _, in := range n.Inputs {
		if in == "" {
			st.in = append(st.in, -1)
			continue
		}
		st.in = append(st.in, c.slot(in))
	}
	for _, out := range n.Outputs {
		if out == "" {
			st.out = append(st.out, -1)
			continue
		}
		st.out = append(st.out, c.slot(out))
	}
	n.inShapes = make([][]int, len(st.in))
	n.inRanks = make([]int, len(st.in))
	for j, s := range st.in {
		n.inRanks[j] = -1
		if s >= 0 {
			n.inShapes[j], n.inRanks[j] = c.shapes[s], c.ranks[s]
		}
	}
	n.Const = func(i int) *tensor.Tensor {
		if i >= len(st.in) || st.in[i] < 0 {
			return nil
		}
		return c.consts[st.in[i]]
	}
	n.pack = !c.opt.KeepWeightsUnpacked
	n.noFusion = c.opt.NoFusion
	n.foldLeft = c.foldLeft
	n.weights = c.src.Weights
	n.fromArtifact = c.artifact
	f, ok := ops[n.OpType]
	if !ok {
		return fmt.Errorf("node %q: op %s (opset %d): %w", n.Name, n.OpType, c.opset, ErrUnsupported)
	}
	var err error
	st.kernel, err = callFactory(f, n)
	if err != nil {
		// A factory reports ErrUnsupported for a supported op used in a way
		// the engine does not implement; anything else is a malformed node.
		cause := onnx.ErrBadModel
		if errors.Is(err, ErrUnsupported) {
			cause = ErrUnsupported
		}
		return fmt.Errorf("node %q (%s, opset %d): %w: %w", n.Name, n.OpType, c.opset, cause, err)
	}
	if err := checkNode(n); err != nil {
		return fmt.Errorf("%w: %w", onnx.ErrBadModel, err)
	}
	setSizeClasses(&st)
	outs, err := c.fold(&st)
	if err != nil {
		return fmt.Errorf("%w: %w", onnx.ErrBadModel, err)
	}
	if outs != nil {
		for j, s := range st.out {
			if s >= 0 && j < len(outs) {
				c.consts[s], c.shapes[s], c.ranks[s] = outs[j], shapeOf(outs[j]), len(outs[j].Shape)
				c.m.stats.FoldedBytes += tensorBytes(outs[j])
			}
		}
		c.m.stats.Folded++
		return nil
	}
	c.m.stats.PackedBytes += n.packedBytes
	for j, shape := range inferShapes(n, n.inShapes) {
		if j < len(st.out) && st.out[j] >= 0 && shape != nil {
			c.shapes[st.out[j]], c.ranks[st.out[j]] = shape, len(shape)
			c.m.stats.StaticShapes++
		}
	}
	if r := inferRank(n); r >= 0 && len(st.out) > 0 && st.out[0] >= 0 && c.ranks[st.out[0]] < 0 {
		c.ranks[st.out[0]] = r
	}
	c.m.steps = append(c.m.steps, st)
	return nil
}

// plan works out what Run needs besides the steps: the last step that reads
// each slot, the constants still read, and each step's static output shapes.
func (c *compiler) plan() {
	m := c.m
	m.lastUse = make([]int, m.nslots)
	for i := range m.lastUse {
		m.lastUse[i] = -1
	}
	for i, st := range m.steps {
		for _, s := range st.in {
			if s >= 0 {
				m.lastUse[s] = i
			}
		}
	}
	for _, s := range m.outSlot {
		m.lastUse[s] = len(m.steps)
	}
	// Keep only the constants something still reads: weights that only fed
	// folded nodes are not needed at run time.
	m.isConst = make([]bool, m.nslots)
	for s, t := range c.consts {
		if t != nil && m.lastUse[s] >= 0 {
			m.consts = append(m.consts, constSlot{s, t})
			m.isConst[s] = true
		}
	}
	m.shapes = c.shapes
	for i := range m.steps {
		st := &m.steps[i]
		static := make([][]int, len(st.out))
		for j, s := range st.out {
			if s >= 0 && c.shapes[s] == nil {
				static = nil
				break
			} else if s >= 0 {
				static[j] = c.shapes[s]
			}
		}
		st.static = static
		setSizeClasses(st)
	}
}

// callFactory runs an op factory, turning a panic (a factory that failed to
// check a malformed attribute) into an error.
func callFactory(f OpFactory, n *Node) (k Kernel, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return f(n)
}

// shapeOf returns t's shape, never nil: a nil shape means unknown to shape
// inference, while a scalar built without dimensions has a nil Shape.
func shapeOf(t *tensor.Tensor) []int {
	if t.Shape == nil {
		return []int{}
	}
	return t.Shape
}

// staticShape reports whether a declared shape has a known rank and no dynamic
// dimensions.
func staticShape(shape []int) bool {
	if shape == nil {
		return false
	}
	for _, d := range shape {
		if d < 0 {
			return false
		}
	}
	return true
}

// valueInfo converts a graph input or output declaration.
func valueInfo(vi *onnxpb.ValueInfoProto) (ValueInfo, error) {
	info := ValueInfo{Name: vi.GetName()}
	typ := vi.GetType()
	if o := typ.GetOptionalType(); o != nil {
		info.Optional, typ = true, o.GetElemType()
	}
	if typ.GetSequenceType() != nil {
		info.DType = tensor.Sequence
		return info, nil
	}
	tt := typ.GetTensorType()
	if tt == nil {
		return info, fmt.Errorf("value %q: %w: only tensors, sequences and optionals are supported, not maps or sparse tensors", vi.GetName(), ErrUnsupported)
	}
	info.DType = tensor.DType(tt.GetElemType())
	if tt.GetShape() == nil {
		info.Shape = nil // unknown rank
		return info, nil
	}
	info.Shape = []int{}
	for _, d := range tt.GetShape().GetDim() {
		if _, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok && d.GetDimValue() >= 0 {
			info.Shape = append(info.Shape, int(d.GetDimValue()))
			info.DimNames = append(info.DimNames, "")
			continue
		}
		info.Shape = append(info.Shape, -1)
		info.DimNames = append(info.DimNames, d.GetDimParam())
	}
	return info, nil
}

// topoSort orders the graph's nodes so each runs after the producers of its inputs
// (Kahn's algorithm, stable in file order: of the nodes whose inputs are all
// ready, the one earliest in the file goes first, so a file already in order
// keeps its order). It takes O(E log V) for E input references, where a
// rescan of the pending nodes per round took quadratic time on a long chain
// listed backwards.
func topoSort(g *onnxpb.GraphProto, nodes []*onnxpb.NodeProto, weights map[string]*tensor.Tensor) ([]*onnxpb.NodeProto, error) {
	given := map[string]bool{"": true}
	for name := range weights {
		given[name] = true
	}
	for _, vi := range g.GetInput() {
		given[vi.GetName()] = true
	}
	return sortNodes(nodes, given)
}

// sortNodes is topoSort of nodes whose inputs are the values given or
// other nodes' outputs. A node reads, besides its inputs, the outer values
// its subgraphs read (implicitInputs): it runs after their producers too.
func sortNodes(nodes []*onnxpb.NodeProto, given map[string]bool) ([]*onnxpb.NodeProto, error) {
	// producer maps a value to the first node in the file that outputs it.
	producer := map[string]int{}
	for i, n := range nodes {
		for _, o := range n.GetOutput() {
			if _, dup := producer[o]; !dup && !given[o] {
				producer[o] = i
			}
		}
	}
	// waiting[i] counts node i's input references to values not yet
	// computed; users[p] lists, once per reference, the nodes reading one of
	// node p's outputs.
	waiting := make([]int, len(nodes))
	users := make([][]int, len(nodes))
	undefined := false
	for i, n := range nodes {
		for _, in := range append(slices.Clip(n.GetInput()), implicitInputs(n)...) {
			if given[in] {
				continue
			}
			p, ok := producer[in]
			if !ok {
				undefined = true
				waiting[i]++ // never ready
				continue
			}
			waiting[i]++
			users[p] = append(users[p], i)
		}
	}
	ready := &indexHeap{}
	for i, w := range waiting {
		if w == 0 {
			heap.Push(ready, i)
		}
	}
	out := make([]*onnxpb.NodeProto, 0, len(nodes))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		out = append(out, nodes[i])
		for _, u := range users[i] {
			if waiting[u]--; waiting[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	if len(out) == len(nodes) && !undefined {
		return out, nil
	}
	done := make(map[string]bool, len(given))
	for name := range given {
		done[name] = true
	}
	for _, n := range out {
		for _, o := range n.GetOutput() {
			done[o] = true
		}
	}
	var missing []string
	for i, n := range nodes {
		if waiting[i] == 0 {
			continue
		}
		for _, in := range append(slices.Clip(n.GetInput()), implicitInputs(n)...) {
			if !done[in] {
				missing = append(missing, fmt.Sprintf("%s needs %q", n.GetName()+"/"+n.GetOpType(), in))
				break
			}
		}
	}
	return nil, fmt.Errorf("%w: graph has a cycle or undefined inputs: %s", onnx.ErrBadModel, strings.Join(missing, "; "))
}

// indexHeap is a min-heap of node indices (container/heap).
type indexHeap []int

func (h indexHeap) Len() int           { return len(h) }
func (h indexHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h indexHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *indexHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *indexHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// CheckInputs validates inputs against the model's declared inputs: every declared
// input present, no unknown names, matching dtype, rank and static dimensions.
// Errors wrap ErrBadInput and name the input and the rule.
func (m *Model) CheckInputs(inputs map[string]*tensor.Tensor) error {
	for name := range inputs {
		if m.input(name) == nil {
			names := make([]string, len(m.Inputs))
			for i, in := range m.Inputs {
				names[i] = in.Name
			}
			return fmt.Errorf("%w: input %q: the model has no such input (inputs: %s)", ErrBadInput, name, strings.Join(names, ", "))
		}
	}
	for _, want := range m.Inputs {
		t, ok := inputs[want.Name]
		if !ok || t == nil {
			return fmt.Errorf("%w: input %q: missing", ErrBadInput, want.Name)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("%w: input %q: %v", ErrBadInput, want.Name, err)
		}
		if t.DType == tensor.None && want.Optional || want.DType == tensor.Sequence && t.DType == tensor.Sequence {
			continue
		}
		if want.DType != tensor.Invalid && t.DType != want.DType && !(want.DType.Wide() && t.DType == tensor.Float32) {
			return fmt.Errorf("%w: input %q: dtype %s, the model wants %s", ErrBadInput, want.Name, t.DType, want.DType)
		}
		if want.Shape == nil {
			continue
		}
		if len(t.Shape) != len(want.Shape) {
			return fmt.Errorf("%w: input %q: shape %s has rank %d, the model wants rank %d %s", ErrBadInput, want.Name, tensor.ShapeString(t.Shape), len(t.Shape), len(want.Shape), shapeSpec(want))
		}
		for i, d := range want.Shape {
			if d >= 0 && t.Shape[i] != d {
				return fmt.Errorf("%w: input %q: shape %s, the model wants %s (dimension %d must be %d)", ErrBadInput, want.Name, tensor.ShapeString(t.Shape), shapeSpec(want), i, d)
			}
		}
	}
	return nil
}

// shapeSpec formats a declared shape with dynamic dimensions by name, e.g. [N 1 28 28].
func shapeSpec(v ValueInfo) string {
	parts := make([]string, len(v.Shape))
	for i, d := range v.Shape {
		switch {
		case d >= 0:
			parts[i] = fmt.Sprint(d)
		case i < len(v.DimNames) && v.DimNames[i] != "":
			parts[i] = v.DimNames[i]
		default:
			parts[i] = "?"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func (m *Model) input(name string) *ValueInfo {
	for i := range m.Inputs {
		if m.Inputs[i].Name == name {
			return &m.Inputs[i]
		}
	}
	return nil
}

// Run executes the graph on inputs and returns every graph output by name. It
// checks inputs first (errors wrap ErrBadInput); a kernel failure names its node.
// Run never modifies inputs.
func (m *Model) Run(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	return m.RunWith(ctx, inputs, RunOptions{})
}

// RunWith is Run with options.
func (m *Model) RunWith(ctx context.Context, inputs map[string]*tensor.Tensor, ro RunOptions) (map[string]*tensor.Tensor, error) {
	outs, _, err := m.run(ctx, inputs, ro)
	return outs, err
}

// RunOwned is RunWith that also returns release, which gives the memory of
// the outputs the Run allocated back for later Runs to reuse: a caller that
// is done with the outputs (an instance that has written its answer) calls
// it and must not read them afterwards. Reused memory is already mapped,
// where a fresh output of a megabyte costs hundreds of page faults on every
// request. Outputs that are inputs, constants or views of them are never
// given back. release may be called once; it is never nil.
func (m *Model) RunOwned(ctx context.Context, inputs map[string]*tensor.Tensor, ro RunOptions) (map[string]*tensor.Tensor, func(), error) {
	outs, owned, err := m.run(ctx, inputs, ro)
	if err != nil || len(owned) == 0 {
		return outs, func() {}, err
	}
	var once sync.Once
	return outs, func() {
		once.Do(func() {
			for _, b := range owned {
				putF32(b)
			}
		})
	}, nil
}

// run is RunWith, also returning the buffers of the outputs the Run
// allocated itself (each once).
func (m *Model) run(ctx context.Context, inputs map[string]*tensor.Tensor, ro RunOptions) (map[string]*tensor.Tensor, [][]float32, error) {
	rs := &runState{ctx: ctx, threads: ro.threads(), limit: ro.maxBytes(), onStep: ro.OnStep}
	if err := m.CheckInputs(inputs); err != nil {
		return nil, nil, err
	}
	vals := make([]*tensor.Tensor, m.nslots)
	for _, c := range m.consts {
		vals[c.slot] = c.t
	}
	for i, in := range m.Inputs {
		vals[m.inSlot[i]] = inputs[in.Name]
	}
	// held[s] is what slot s's value counts for in rs.live: its bytes, or
	// 0 for inputs, constants and views of another value's memory.
	held := make([]int64, m.nslots)
	rec := newRecycler(m.nslots)
	args := make([]*tensor.Tensor, 0, 8)
	for i := range m.steps {
		st := &m.steps[i]
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		args = args[:0]
		for _, s := range st.in {
			if s < 0 {
				args = append(args, nil)
				continue
			}
			if vals[s] == nil {
				return nil, nil, st.node.Errorf("input %q has no value", st.node.Inputs[len(args)])
			}
			args = append(args, vals[s])
		}
		outs, err := rs.exec(st, args)
		if err != nil {
			return nil, nil, err
		}
		for j, s := range st.out {
			if j < len(outs) && s >= 0 {
				vals[s] = outs[j]
				held[s] = rs.hold(outs[j], st.in, args, held)
				rec.produced(s, outs[j], j == 0 && st.node.fresh && !rs.replaced, st.in, args)
				// Later constants may rely on the inferred shape (a folded
				// Shape node), so a disagreement must not go unnoticed.
				if m.shapes[s] != nil && outs[j] != nil && !slices.Equal(outs[j].Shape, m.shapes[s]) {
					return nil, nil, st.node.Errorf("internal error: output %d has shape %s, compile-time shape inference said %s", j, tensor.ShapeString(outs[j].Shape), tensor.ShapeString(m.shapes[s]))
				}
			}
		}
		for _, s := range st.in {
			if s >= 0 && m.lastUse[s] == i && !m.isConst[s] {
				vals[s] = nil
				rs.live -= held[s]
				held[s] = 0
				rec.dropped(s)
			}
		}
	}
	out := make(map[string]*tensor.Tensor, len(m.Outputs))
	for i, o := range m.Outputs {
		if vals[m.outSlot[i]] == nil {
			return nil, nil, fmt.Errorf("graph output %q was not computed", o.Name)
		}
		out[o.Name] = vals[m.outSlot[i]]
	}
	// The buffers the Run allocated that outputs hold (every other slot
	// was dropped at its last use, so only outputs still use them).
	var owned [][]float32
	for _, s := range m.outSlot {
		if id := rec.of[s]; id >= 0 && rec.buf[id] != nil {
			owned = append(owned, rec.buf[id])
			rec.buf[id] = nil // once, however many outputs share it
		}
	}
	return out, owned, nil
}

// runKernel calls a kernel, turning a kernel panic (a bug, or a shape the kernel
// failed to check) into an error so one bad request cannot take down an instance.
func runKernel(st step, args []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return runStep(st, args, 1)
}

// runStep is runKernel with a thread budget for kernels that split their work.
func runStep(st step, args []*tensor.Tensor, threads int) (outs []*tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = st.node.Errorf("internal error: %v", r)
		}
	}()
	if st.node.threaded != nil {
		outs, err = st.node.threaded(threads, args)
	} else {
		outs, err = st.kernel(args)
	}
	if err != nil {
		if errors.Is(err, ErrBadInput) {
			return nil, fmt.Errorf("node %q (%s): %w", st.node.Name, st.node.OpType, err)
		}
		// Compile checked everything that does not depend on a request's
		// values, so a kernel refusing them at run time (an index out of
		// range, a shape that does not reshape) is the request's fault.
		// A bug panics instead, and is an internal error.
		return nil, fmt.Errorf("%w: node %q (%s): %w", ErrBadInput, st.node.Name, st.node.OpType, err)
	}
	return outs, nil
}
