package modelgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// Builder assembles an ONNX graph. The zero value is not usable; call NewBuilder.
type Builder struct {
	g     *onnxpb.GraphProto
	opset int64
	data  map[string][]byte // initializer name -> little-endian bytes
	order []string
	rng   *rand.Rand
	n     int
	// prefix starts the names of a subgraph's nodes and values (see
	// Subgraph), which must differ from every name around them.
	prefix string
}

// Subgraph starts a graph called name to be an attribute of one of b's
// nodes (an If's branch): its nodes and their outputs are named
// "name/<op>_<n>", its weights come from b's random source, and AGraph
// makes it the attribute. It may read b's values by name.
func (b *Builder) Subgraph(name string) *Builder {
	return &Builder{g: &onnxpb.GraphProto{Name: proto.String(name)}, opset: b.opset, data: map[string][]byte{}, rng: b.rng, prefix: name + "/"}
}

// AGraph returns a graph attribute holding sub's graph, its initializers'
// data inline.
func AGraph(name string, sub *Builder) Attr {
	for _, t := range sub.g.Initializer {
		t.RawData = append([]byte{}, sub.data[t.GetName()]...)
	}
	typ := onnxpb.AttributeProto_GRAPH
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &typ, G: sub.g}
}

// NewBuilder starts a graph called name for the given default-domain opset, with
// a random source seeded by seed for weight generation.
func NewBuilder(name string, opset int64, seed uint64) *Builder {
	return &Builder{
		g:     &onnxpb.GraphProto{Name: proto.String(name)},
		opset: opset,
		data:  map[string][]byte{},
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// Rand returns the builder's deterministic random source.
func (b *Builder) Rand() *rand.Rand { return b.rng }

// Input declares a graph input; a negative dim is dynamic and named by dimNames[i].
func (b *Builder) Input(name string, dt tensor.DType, shape []int64, dimNames ...string) {
	b.g.Input = append(b.g.Input, valueInfo(name, dt, shape, dimNames))
}

// Output declares a graph output.
func (b *Builder) Output(name string, dt tensor.DType, shape []int64, dimNames ...string) {
	b.g.Output = append(b.g.Output, valueInfo(name, dt, shape, dimNames))
}

// InputTyped declares a graph input of any type (a sequence, an optional).
func (b *Builder) InputTyped(name string, tp *onnxpb.TypeProto) {
	b.g.Input = append(b.g.Input, &onnxpb.ValueInfoProto{Name: proto.String(name), Type: tp})
}

// OutputTyped declares a graph output of any type.
func (b *Builder) OutputTyped(name string, tp *onnxpb.TypeProto) {
	b.g.Output = append(b.g.Output, &onnxpb.ValueInfoProto{Name: proto.String(name), Type: tp})
}

// SequenceOf returns the type sequence(elem).
func SequenceOf(elem *onnxpb.TypeProto) *onnxpb.TypeProto {
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_SequenceType{SequenceType: &onnxpb.TypeProto_Sequence{ElemType: elem}}}
}

// OptionalOutput declares a graph output of optional(tensor(dt)).
func (b *Builder) OptionalOutput(name string, dt tensor.DType, shape []int64) {
	vi := valueInfo(name, dt, shape, nil)
	vi.Type = OptionalOf(vi.Type)
	b.g.Output = append(b.g.Output, vi)
}

// OptionalOf returns the type optional(elem).
func OptionalOf(elem *onnxpb.TypeProto) *onnxpb.TypeProto {
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_OptionalType{OptionalType: &onnxpb.TypeProto_Optional{ElemType: elem}}}
}

// TensorType returns the type tensor(dt) of unknown shape.
func TensorType(dt tensor.DType) *onnxpb.TypeProto {
	et := int32(dt)
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: &et}}}
}

// AType returns a type attribute (Optional's type).
func AType(name string, tp *onnxpb.TypeProto) Attr {
	t := onnxpb.AttributeProto_TYPE_PROTO
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &t, Tp: tp}
}

func valueInfo(name string, dt tensor.DType, shape []int64, dimNames []string) *onnxpb.ValueInfoProto {
	sh := &onnxpb.TensorShapeProto{}
	for i, d := range shape {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d >= 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		} else {
			p := "?"
			if i < len(dimNames) {
				p = dimNames[i]
			}
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: p}
		}
		sh.Dim = append(sh.Dim, dim)
	}
	et := int32(dt)
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: &et, Shape: sh}}},
	}
}

// Init adds a float32 initializer with the given data.
func (b *Builder) Init(name string, shape []int64, data []float32) string {
	return b.InitTensor(name, tensor.FromF32(data, toInts(shape)...))
}

// InitTensor adds an initializer holding t's data.
func (b *Builder) InitTensor(name string, t *tensor.Tensor) string {
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = int64(d)
	}
	dt := int32(t.DType)
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: &dt})
	b.data[name] = append([]byte(nil), t.Bytes()...)
	b.order = append(b.order, name)
	return name
}

// Normal adds a float32 initializer drawn from N(0, std²).
func (b *Builder) Normal(name string, std float64, shape ...int64) string {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(b.rng.NormFloat64() * std)
	}
	return b.Init(name, shape, data)
}

// Uniform adds a float32 initializer drawn from U(-bound, bound), the PyTorch
// default initialisation for Conv and Linear layers with bound 1/sqrt(fan_in).
func (b *Builder) Uniform(name string, bound float64, shape ...int64) string {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32((b.rng.Float64()*2 - 1) * bound)
	}
	return b.Init(name, shape, data)
}

// Fill adds a float32 initializer with every element set to v.
func (b *Builder) Fill(name string, v float32, shape ...int64) string {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = v
	}
	return b.Init(name, shape, data)
}

// Ints64 adds an int64 initializer (shapes, axes, indices).
func (b *Builder) Ints64(name string, vals ...int64) string {
	return b.InitTensor(name, tensor.FromI64(append([]int64(nil), vals...), len(vals)))
}

// Attr is one node attribute; build it with AInt, AInts, AFloat, AString, ATensor.
type Attr = *onnxpb.AttributeProto

// AInt returns an integer attribute.
func AInt(name string, v int64) Attr {
	t := onnxpb.AttributeProto_INT
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &t, I: proto.Int64(v)}
}

// AInts returns an integer-list attribute.
func AInts(name string, v ...int64) Attr {
	t := onnxpb.AttributeProto_INTS
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &t, Ints: v}
}

// AFloat returns a float attribute.
func AFloat(name string, v float32) Attr {
	t := onnxpb.AttributeProto_FLOAT
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &t, F: proto.Float32(v)}
}

// AFloats returns a float-list attribute.
func AFloats(name string, v ...float32) Attr {
	t := onnxpb.AttributeProto_FLOATS
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &t, Floats: v}
}

// AStrings returns a string-list attribute.
func AStrings(name string, v ...string) Attr {
	t := onnxpb.AttributeProto_STRINGS
	a := &onnxpb.AttributeProto{Name: proto.String(name), Type: &t}
	for _, s := range v {
		a.Strings = append(a.Strings, []byte(s))
	}
	return a
}

// AString returns a string attribute.
func AString(name, v string) Attr {
	t := onnxpb.AttributeProto_STRING
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &t, S: []byte(v)}
}

// Node adds a node and returns its first output's name. Outputs are named
// "<op>_<n>" (plus "_<i>" for extra outputs) unless outputs are given.
func (b *Builder) Node(op string, inputs []string, attrs []Attr, outputs ...string) string {
	b.n++
	name := fmt.Sprintf("%s%s_%d", b.prefix, op, b.n)
	if len(outputs) == 0 {
		outputs = []string{name}
	}
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		Name: proto.String(name), OpType: proto.String(op),
		Input: inputs, Output: outputs, Attribute: attrs,
	})
	return outputs[0]
}

// SetDomain puts the node called name (or whose first output is name, as
// Node returns it) in an operator set domain other than the default ONNX
// one (com.microsoft for ONNX Runtime's contrib ops); Save imports version 1
// of each such domain.
func (b *Builder) SetDomain(name, domain string) {
	for _, n := range b.g.Node {
		if n.GetName() == name || len(n.Output) > 0 && n.Output[0] == name {
			n.Domain = proto.String(domain)
			return
		}
	}
	panic("modelgen: SetDomain: no node " + name)
}

// SetAttr sets attribute a on the node called name, replacing one of the
// same name.
func (b *Builder) SetAttr(name string, a Attr) {
	for _, n := range b.g.Node {
		if n.GetName() != name {
			continue
		}
		for i, old := range n.Attribute {
			if old.GetName() == a.GetName() {
				n.Attribute[i] = a
				return
			}
		}
		n.Attribute = append(n.Attribute, a)
		return
	}
	panic("modelgen: SetAttr: no node " + name)
}

// NumParams returns the number of elements over all float initializers.
func (b *Builder) NumParams() int64 {
	var n int64
	for _, t := range b.g.Initializer {
		if t.GetDataType() != int32(tensor.Float32) {
			continue
		}
		c := int64(1)
		for _, d := range t.GetDims() {
			c *= d
		}
		n += c
	}
	return n
}

// SaveOptions says how Save lays out weights.
type SaveOptions struct {
	// ExternalData, when non-empty, names the file (beside the model) that holds
	// every initializer of at least ExternalMin bytes, each at an offset aligned to
	// Align bytes (4096 when zero) so it can be mapped and used in place.
	ExternalData string
	ExternalMin  int
	Align        int
}

// Save writes the model to path (and its external data file, if any), creating
// the folder.
func (b *Builder) Save(path string, opt SaveOptions) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	align := opt.Align
	if align <= 0 {
		align = 4096
	}
	var ext *os.File
	var off int64
	if opt.ExternalData != "" {
		f, err := os.Create(filepath.Join(filepath.Dir(path), opt.ExternalData))
		if err != nil {
			return err
		}
		defer f.Close()
		ext = f
	}
	for _, t := range b.g.Initializer {
		raw := b.data[t.GetName()]
		t.RawData, t.ExternalData, t.DataLocation = nil, nil, nil
		if ext == nil || len(raw) < opt.ExternalMin {
			t.RawData = raw
			if t.RawData == nil {
				t.RawData = []byte{}
			}
			continue
		}
		if pad := (int64(align) - off%int64(align)) % int64(align); pad > 0 {
			if _, err := ext.Write(make([]byte, pad)); err != nil {
				return err
			}
			off += pad
		}
		if _, err := ext.Write(raw); err != nil {
			return err
		}
		loc := onnxpb.TensorProto_EXTERNAL
		t.DataLocation = &loc
		t.ExternalData = []*onnxpb.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(opt.ExternalData)},
			{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(off, 10))},
			{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))},
		}
		off += int64(len(raw))
	}
	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("spindle modelgen"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(b.opset)}},
		Graph:        b.g,
	}
	imported := map[string]bool{"": true}
	for _, n := range b.g.Node {
		if d := n.GetDomain(); !imported[d] {
			imported[d] = true
			m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(d), Version: proto.Int64(1)})
		}
	}
	buf, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if ext != nil {
		if err := ext.Close(); err != nil {
			return err
		}
	}
	return os.WriteFile(path, buf, 0o644)
}

func toInts(s []int64) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}

// KaimingBound is 1/sqrt(fanIn), PyTorch's default init bound.
func KaimingBound(fanIn int64) float64 { return 1 / math.Sqrt(float64(fanIn)) }
