package engine

import (
	"fmt"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// Node is one graph node as an op factory sees it at compile time.
type Node struct {
	Name    string
	OpType  string
	Opset   int64
	Inputs  []string // "" marks an omitted optional input
	Outputs []string
	// implicit counts the last Inputs that are not the node's own but the
	// outer values its subgraphs read (If's branches), in implicitInputs'
	// order.
	implicit int
	attrs    map[string]*onnxpb.AttributeProto
	// Const returns the value of input i when it is a weight or a folded constant,
	// or nil when it is only known at run time.
	Const func(i int) *tensor.Tensor
	// inShapes holds the statically inferred shape of each input, nil where unknown.
	inShapes [][]int
	// inRanks holds the rank of each input where Compile knows it, else -1
	// (see InRank).
	inRanks []int
	// pack lets factories prepare constant operands (pack a MatMul weight);
	// they add the bytes that costs to packedBytes.
	pack        bool
	packedBytes int64
	// qpacked is MatMulInteger's constant B packed for the int8 kernels,
	// for the fuser's int8 multiply with a float epilogue (fuse_quant.go).
	qpacked *kernels.PackedQB
	// qconv is ConvInteger's or QLinearConv's constant weight prepared as
	// the left operand of the int8 kernels, one per group, for the fuser's
	// int8 convolution.
	qconv []*qconvWeight
	// noFusion and foldLeft are the compile's options and folding budget,
	// for factories that compile subgraphs (If).
	noFusion bool
	foldLeft *int64
	// fromArtifact says the model is a compiled artifact, whose weights
	// are shared between processes: factories make no private copies of
	// them beyond the artifact's packed companions.
	fromArtifact bool
	// weights are the model's initializers by name, where factories find
	// the prepacked companions of a compiled artifact (see packWeight).
	weights map[string]*tensor.Tensor
	// control, when a factory sets it, is the kernel of an op that runs
	// subgraphs (If, Loop): Run calls it with its state, whose context
	// and memory budget the subgraphs' runs take on. threaded still serves
	// constant folding.
	control func(rs *runState, in []*tensor.Tensor) ([]*tensor.Tensor, error)
	// threaded, when a factory sets it, is the node's kernel taking a thread
	// budget (intra-op parallelism); Run calls it instead of the Kernel.
	threaded threadedKernel
	// reluThreaded, when a factory sets it, is threaded followed by Relu
	// on its output, done inside the kernel (Conv applies it block by block
	// while the output is in cache); the fuser uses it for Conv + Relu.
	reluThreaded threadedKernel
	// clipThreaded, when a factory sets it, makes threaded followed by a
	// Clip to [lo, hi] on its output, done inside the kernel as Relu is
	// (ReLU6 after a convolution).
	clipThreaded func(lo, hi float32) threadedKernel
	// reluPool, when a factory sets it, is reluThreaded followed by a 2×2
	// max pool of stride 2, done inside the kernel; it returns ok false,
	// having done nothing, where the kernel cannot (the fuser's Conv + Relu +
	// MaxPool then runs reluThreaded and the pool).
	reluPool fastKernel
	// epiThreaded, when a factory sets it, is threaded with an epilogue
	// made for its output: bind gets the output tensor as soon as it is
	// allocated and returns what to call on finished segments of it, while
	// they are in cache (nil for nothing). The fuser runs an
	// elementwise program so after a convolution (see convProgram).
	epiThreaded func(threads int, in []*tensor.Tensor, bind func(y *tensor.Tensor) postFunc) ([]*tensor.Tensor, error)
	// fresh, when a factory sets it, says the kernel's outputs are new
	// memory (or views of its inputs), never a tensor it keeps, so Run may
	// recycle them once no live value uses them (recycle.go).
	fresh bool
}

// InShape returns the shape of input i when Compile inferred it statically (the
// graph's inputs declare static shapes, or the input is a constant), or nil.
func (n *Node) InShape(i int) []int {
	if i < 0 || i >= len(n.inShapes) {
		return nil
	}
	return n.inShapes[i]
}

// Has reports whether the node sets attribute name.
func (n *Node) Has(name string) bool { _, ok := n.attrs[name]; return ok }

// Int returns integer attribute name, or def when it is absent.
func (n *Node) Int(name string, def int64) int64 {
	if a, ok := n.attrs[name]; ok {
		return a.GetI()
	}
	return def
}

// Float returns float attribute name, or def when it is absent.
func (n *Node) Float(name string, def float32) float32 {
	if a, ok := n.attrs[name]; ok {
		return a.GetF()
	}
	return def
}

// String returns string attribute name, or def when it is absent.
func (n *Node) String(name string, def string) string {
	if a, ok := n.attrs[name]; ok {
		return string(a.GetS())
	}
	return def
}

// Ints returns integer-list attribute name, or def when it is absent.
func (n *Node) Ints(name string, def []int64) []int64 {
	if a, ok := n.attrs[name]; ok {
		return a.GetInts()
	}
	return def
}

// Floats returns float-list attribute name, or def when it is absent.
func (n *Node) Floats(name string, def []float32) []float32 {
	if a, ok := n.attrs[name]; ok {
		return a.GetFloats()
	}
	return def
}

// Tensor returns tensor attribute name decoded, or nil when it is absent.
func (n *Node) Tensor(name string) (*tensor.Tensor, error) {
	a, ok := n.attrs[name]
	if !ok {
		return nil, nil
	}
	t, err := onnx.TensorFromProto(a.GetT())
	if err != nil {
		return nil, fmt.Errorf("attribute %s: %w", name, err)
	}
	return t, nil
}

// Errorf returns an error that names the node and its op.
func (n *Node) Errorf(format string, args ...any) error {
	return fmt.Errorf("node %q (%s): %s", n.Name, n.OpType, fmt.Sprintf(format, args...))
}
