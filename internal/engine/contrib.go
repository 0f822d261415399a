package engine

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// ONNX Runtime's contrib ops (issue 13, item 4): graphs that Hugging Face
// Optimum or ORT's own optimiser wrote hold ops of the com.microsoft domain.
// Each supported one is expanded, before the graph is sorted, into the
// default-domain ops it stands for (SkipLayerNormalization into an Add and a
// LayerNormalization, FastGelu into an Add and a tanh Gelu, ...), which the
// fuser then fuses back into the engine's fused kernels: one mechanism, and
// every later fusion applies to exported and optimised graphs alike. The
// expansions follow ORT's definitions (onnxruntime/core/graph/contrib_ops).

// msDomain is ONNX Runtime's contrib op domain.
const msDomain = "com.microsoft"

// opTransposeLast2 swaps the last two axes of its input, whatever its rank
// (FusedMatMul's transA and transB).
const opTransposeLast2 = "spindle.TransposeLast2"

func init() {
	register(opTransposeLast2, func(n *Node) (Kernel, error) {
		return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
			if err := checkInputs(in, 1, 1); err != nil {
				return nil, err
			}
			x := in[0]
			r := len(x.Shape)
			if sz := x.DType.Size(); r < 2 || sz != 1 && sz != 4 && sz != 8 {
				return nil, fmt.Errorf("input: %s, must have at least 2 axes and a numeric dtype", x)
			}
			shape := slices.Clone(x.Shape)
			shape[r-2], shape[r-1] = shape[r-1], shape[r-2]
			st := contiguousStrides(x.Shape)
			st[r-2], st[r-1] = st[r-1], st[r-2]
			out := newTyped(x.DType, shape...)
			if out.Len() > 0 {
				copyStrided(out, x, shape, st, 0)
			}
			return []*tensor.Tensor{out}, nil
		}, nil
	})
}

// contribOps maps each supported contrib op to its expansion.
var contribOps = map[string]func(e *expander, pn *onnxpb.NodeProto) error{
	"Gelu": func(e *expander, pn *onnxpb.NodeProto) error {
		e.out(pn, 0, e.node("Gelu", inputAt(pn, 0)))
		return nil
	},
	"BiasGelu": func(e *expander, pn *onnxpb.NodeProto) error {
		e.out(pn, 0, e.node("Gelu", e.node("Add", inputAt(pn, 0), inputAt(pn, 1))))
		return nil
	},
	"FastGelu": func(e *expander, pn *onnxpb.NodeProto) error {
		var x any = inputAt(pn, 0)
		if b := inputAt(pn, 1); b != "" {
			x = e.node("Add", x, b)
		}
		e.out(pn, 0, e.node("Gelu", x).with(attrString("approximate", "tanh")))
		return nil
	},
	"QuickGelu": func(e *expander, pn *onnxpb.NodeProto) error {
		alpha := attrFloat(pn, "alpha", 1.702)
		x := inputAt(pn, 0)
		e.out(pn, 0, e.node("Mul", x, e.node("Sigmoid", e.node("Mul", x, e.scalar(alpha)))))
		return nil
	},
	"BiasAdd": func(e *expander, pn *onnxpb.NodeProto) error {
		e.out(pn, 0, e.node("Add", e.node("Add", inputAt(pn, 0), inputAt(pn, 1)), inputAt(pn, 2)))
		return nil
	},
	"SkipLayerNormalization": func(e *expander, pn *onnxpb.NodeProto) error {
		return e.skipNorm(pn, false)
	},
	"SkipSimplifiedLayerNormalization": func(e *expander, pn *onnxpb.NodeProto) error {
		return e.skipNorm(pn, true)
	},
	"SimplifiedLayerNormalization": func(e *expander, pn *onnxpb.NodeProto) error {
		if axis := attrInt(pn, "axis", -1); axis != -1 {
			return fmt.Errorf("attribute axis: %d: %w (only -1 is)", axis, ErrUnsupported)
		}
		e.out(pn, 0, e.rmsNorm(inputAt(pn, 0), inputAt(pn, 1), attrFloat(pn, "epsilon", 1e-5)))
		return nil
	},
	"FusedMatMul": func(e *expander, pn *onnxpb.NodeProto) error {
		for _, a := range []string{"transBatchA", "transBatchB"} {
			if attrInt(pn, a, 0) != 0 {
				return fmt.Errorf("attribute %s: 1: %w", a, ErrUnsupported)
			}
		}
		var a, b any = inputAt(pn, 0), inputAt(pn, 1)
		if attrInt(pn, "transA", 0) != 0 {
			a = e.node(opTransposeLast2, a)
		}
		if attrInt(pn, "transB", 0) != 0 {
			b = e.node(opTransposeLast2, b)
		}
		y := e.node("MatMul", a, b)
		if alpha := attrFloat(pn, "alpha", 1); alpha != 1 {
			y = e.node("Mul", y, e.scalar(alpha))
		}
		e.out(pn, 0, y)
		return nil
	},
	"Attention":               (*expander).attention,
	"MultiHeadAttention":      (*expander).multiHeadAttention,
	"RotaryEmbedding":         (*expander).rotaryEmbedding,
	"BiasSplitGelu":           (*expander).biasSplitGelu,
	"EmbedLayerNormalization": (*expander).embedLayerNorm,
	"Trilu": func(e *expander, pn *onnxpb.NodeProto) error {
		args := make([]any, len(pn.GetInput()))
		for i, x := range pn.GetInput() {
			args[i] = x
		}
		e.out(pn, 0, e.node("Trilu", args...).with(pn.GetAttribute()...))
		return nil
	},
}

// onnxDomainContrib lists the contrib ops ONNX Runtime registers in the
// default ONNX domain rather than com.microsoft.
var onnxDomainContrib = map[string]bool{"SimplifiedLayerNormalization": true}

// expandContrib returns nodes with every supported contrib op replaced by
// its expansion (the nodes themselves are not modified). Ops of other
// domains, and contrib ops without an expansion, are left for
// unsupportedOps to name.
func expandContrib(nodes []*onnxpb.NodeProto, opset int64) ([]*onnxpb.NodeProto, error) {
	var out []*onnxpb.NodeProto
	for i, pn := range nodes {
		expand, ok := contribOps[pn.GetOpType()]
		d := pn.GetDomain()
		if !ok || d != msDomain && !((d == "" || d == "ai.onnx") && onnxDomainContrib[pn.GetOpType()]) {
			if out != nil {
				out = append(out, pn)
			}
			continue
		}
		if out == nil {
			out = slices.Clip(nodes[:i:i])
		}
		name := pn.GetName()
		if name == "" {
			name = fmt.Sprintf("%s_%d", pn.GetOpType(), i)
		}
		e := &expander{prefix: name + "/", opset: opset}
		if err := expand(e, pn); err != nil {
			return nil, fmt.Errorf("node %q (%s:%s): %w", name, msDomain, pn.GetOpType(), err)
		}
		out = append(out, e.nodes...)
	}
	if out == nil {
		return nodes, nil
	}
	return out, nil
}

// expander writes the default-domain nodes of one contrib node's expansion.
type expander struct {
	prefix string
	opset  int64
	nodes  []*onnxpb.NodeProto
	n      int
}

// exNode is a node of an expansion; use its name (its output's) as an
// input of later nodes.
type exNode struct {
	name string
	pn   *onnxpb.NodeProto
}

// with adds attributes to the node and returns it.
func (x exNode) with(attrs ...*onnxpb.AttributeProto) exNode {
	x.pn.Attribute = append(x.pn.Attribute, attrs...)
	return x
}

// node adds op on inputs (strings or exNodes) with one output.
func (e *expander) node(op string, inputs ...any) exNode {
	e.n++
	name := fmt.Sprintf("%s%s_%d", e.prefix, op, e.n)
	pn := &onnxpb.NodeProto{Name: proto.String(name), OpType: proto.String(op), Output: []string{name}}
	for _, x := range inputs {
		switch v := x.(type) {
		case string:
			pn.Input = append(pn.Input, v)
		case exNode:
			pn.Input = append(pn.Input, v.name)
		}
	}
	e.nodes = append(e.nodes, pn)
	return exNode{name: name, pn: pn}
}

// out renames what produces value (an exNode or the name of one) to
// output j of the contrib node pn, when pn has it.
func (e *expander) out(pn *onnxpb.NodeProto, j int, value any) {
	if j >= len(pn.GetOutput()) || pn.GetOutput()[j] == "" {
		return
	}
	name, ok := value.(string)
	if x, isNode := value.(exNode); isNode {
		name, ok = x.name, true
	}
	if !ok {
		return
	}
	for _, n := range e.nodes {
		for k, o := range n.Output {
			if o == name {
				n.Output[k] = pn.GetOutput()[j]
				for _, m := range e.nodes {
					for q, i := range m.Input {
						if i == name {
							m.Input[q] = pn.GetOutput()[j]
						}
					}
				}
				return
			}
		}
	}
	// An input passed through unchanged.
	e.nodes = append(e.nodes, &onnxpb.NodeProto{Name: proto.String(e.prefix + "Identity"), OpType: proto.String("Identity"),
		Input: []string{name}, Output: []string{pn.GetOutput()[j]}})
}

// scalar adds a Constant node holding the float32 scalar v.
func (e *expander) scalar(v float32) exNode {
	t := tensor.FromF32([]float32{v})
	return e.node("Constant").with(attrTensor("value", t))
}

// rmsNorm is x / sqrt(mean(x², last axis) + eps) * scale.
func (e *expander) rmsNorm(x, scale any, eps float32) exNode {
	sq := e.node("Mul", x, x)
	var mean exNode
	if e.opset >= 18 {
		axes := e.node("Constant").with(attrTensor("value", tensor.FromI64([]int64{-1}, 1)))
		mean = e.node("ReduceMean", sq, axes)
	} else {
		mean = e.node("ReduceMean", sq).with(&onnxpb.AttributeProto{Name: proto.String("axes"), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: []int64{-1}})
	}
	std := e.node("Sqrt", e.node("Add", mean, e.scalar(eps)))
	return e.node("Mul", e.node("Div", x, std), scale)
}

// skipNorm expands SkipLayerNormalization(input, skip, gamma, beta, bias)
// (beta absent when simplified: SkipSimplifiedLayerNormalization(input,
// skip, gamma, bias)): s = input + skip (+ bias), normalised over the
// last axis. Outputs: the result, mean and inverse standard deviation
// (not the simplified op's), and s.
func (e *expander) skipNorm(pn *onnxpb.NodeProto, simplified bool) error {
	eps := attrFloat(pn, "epsilon", 1e-12)
	s := e.node("Add", inputAt(pn, 0), inputAt(pn, 1))
	bias := inputAt(pn, 4)
	if simplified {
		bias = inputAt(pn, 3)
	}
	if bias != "" {
		s = e.node("Add", s, bias)
	}
	if simplified {
		if len(pn.GetOutput()) > 1 && pn.GetOutput()[1] != "" || len(pn.GetOutput()) > 2 && pn.GetOutput()[2] != "" {
			return fmt.Errorf("outputs mean and inv_std_var: %w", ErrUnsupported)
		}
		e.out(pn, 0, e.rmsNorm(s, inputAt(pn, 2), eps))
		e.out(pn, 3, s)
		return nil
	}
	args := []any{s, inputAt(pn, 2)}
	if beta := inputAt(pn, 3); beta != "" {
		args = append(args, beta)
	}
	ln := e.node("LayerNormalization", args...).with(
		&onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(-1)},
		&onnxpb.AttributeProto{Name: proto.String("epsilon"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(eps)})
	for j := 1; j <= 2; j++ {
		if j < len(pn.GetOutput()) && pn.GetOutput()[j] != "" {
			for len(ln.pn.Output) <= j {
				ln.pn.Output = append(ln.pn.Output, "")
			}
			ln.pn.Output[j] = pn.GetOutput()[j]
		}
	}
	e.out(pn, 0, ln)
	e.out(pn, 3, s)
	return nil
}

// inputAt returns input i of pn, or "" when it is absent.
func inputAt(pn *onnxpb.NodeProto, i int) string {
	if i < len(pn.GetInput()) {
		return pn.GetInput()[i]
	}
	return ""
}

func attrOf(pn *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range pn.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func attrFloat(pn *onnxpb.NodeProto, name string, def float32) float32 {
	if a := attrOf(pn, name); a != nil {
		return a.GetF()
	}
	return def
}

func attrInt(pn *onnxpb.NodeProto, name string, def int64) int64 {
	if a := attrOf(pn, name); a != nil {
		return a.GetI()
	}
	return def
}

func attrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func attrTensor(name string, t *tensor.Tensor) *onnxpb.AttributeProto {
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = int64(d)
	}
	dt := int32(t.DType)
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_TENSOR.Enum(),
		T: &onnxpb.TensorProto{DataType: &dt, Dims: dims, RawData: append([]byte(nil), t.Bytes()...)}}
}

// ints adds a Constant node holding int64s as a 1-D tensor.
func (e *expander) ints(v ...int64) exNode {
	return e.node("Constant").with(attrTensor("value", tensor.FromI64(v, len(v))))
}

// reduce adds a reduction over axes, as an input or an attribute as the
// model's opset wants (ReduceSum took axes as an input from opset 13, the
// others from 18).
func (e *expander) reduce(op string, x any, keep int64, axes ...int64) exNode {
	from := int64(18)
	if op == "ReduceSum" {
		from = 13
	}
	keepdims := &onnxpb.AttributeProto{Name: proto.String("keepdims"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(keep)}
	if e.opset >= from {
		return e.node(op, x, e.ints(axes...)).with(keepdims)
	}
	return e.node(op, x).with(keepdims, &onnxpb.AttributeProto{Name: proto.String("axes"), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: axes})
}

// attention expands com.microsoft Attention(input, weights, bias,
// mask_index, past, attention_bias): one projection to Q, K and V, split
// into num_heads heads, scores scaled (by 1/sqrt(head size) unless the
// scale attribute says), masked (spindle.MaskScores: every mask_index
// form, unidirectional) and turned into weights of V by Softmax; the heads
// joined again. past and present (a decoder's cache) are not supported.
func (e *expander) attention(pn *onnxpb.NodeProto) error {
	heads := attrInt(pn, "num_heads", 0)
	if heads < 1 {
		return fmt.Errorf("attribute num_heads: %d, must be at least 1", heads)
	}
	if inputAt(pn, 4) != "" || len(pn.GetOutput()) > 1 && pn.GetOutput()[1] != "" {
		return fmt.Errorf("input past and output present (a decoder's key/value cache): %w", ErrUnsupported)
	}
	if attrInt(pn, "do_rotary", 0) != 0 {
		return fmt.Errorf("attribute do_rotary: %w", ErrUnsupported)
	}
	var qkv any = e.node("MatMul", inputAt(pn, 0), inputAt(pn, 1))
	if b := inputAt(pn, 2); b != "" {
		qkv = e.node("Add", qkv, b)
	}
	return e.attentionOn(pn, heads, qkv, inputAt(pn, 3), inputAt(pn, 5))
}

// attentionOn is Attention after its projection: qkv [B S 3·N·H] (or as
// qkv_hidden_sizes splits it) split into Q, K and V, then attend.
func (e *expander) attentionOn(pn *onnxpb.NodeProto, heads int64, qkv any, mask, bias string) error {
	split := e.node("Split", qkv).with(&onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(-1)})
	split.pn.Output = []string{split.name + "_q", split.name + "_k", split.name + "_v"}
	if sizes := attrOf(pn, "qkv_hidden_sizes"); sizes != nil {
		if len(sizes.GetInts()) != 3 {
			return fmt.Errorf("attribute qkv_hidden_sizes: %v, must have 3 entries", sizes.GetInts())
		}
		split.pn.Input = append(split.pn.Input, e.ints(sizes.GetInts()...).name)
	}
	q, k, v := split.pn.Output[0], split.pn.Output[1], split.pn.Output[2]
	e.out(pn, 0, e.attend(pn, e.heads(q, heads, false), e.heads(k, heads, true), e.heads(v, heads, false), mask, bias))
	return nil
}

// perm returns the Transpose attribute perm.
func perm(p ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String("perm"), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: p}
}

// heads adds opHeads on x: [B S N·H] (or heads [B N S H] as they are) to
// [B N S H], or to [B N H S] when transposed (a key, for Q·Kᵀ).
func (e *expander) heads(x any, heads int64, transposed bool) exNode {
	t := int64(0)
	if transposed {
		t = 1
	}
	return e.node(opHeads, x).with(
		&onnxpb.AttributeProto{Name: proto.String("num_heads"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(heads)},
		&onnxpb.AttributeProto{Name: proto.String("transposed"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(t)})
}

// attend computes scaled dot-product attention over heads: queries qh
// [B N S H], keys kt [B N H L] (transposed), values vh [B N L H], with an
// optional mask (any mask_index form) and attention bias (opMaskScores)
// and pn's unidirectional, and returns the heads joined again, [B S N·H].
// The scale is pn's attribute scale, or 1/sqrt(H).
func (e *expander) attend(pn *onnxpb.NodeProto, qh, kt, vh any, mask, bias string) exNode {
	var scale any
	if a := attrOf(pn, "scale"); a != nil && a.GetF() != 0 {
		scale = e.scalar(a.GetF())
	} else {
		// 1/sqrt(head size), the head size read from Q's shape (folded
		// when the shapes are static).
		dim := e.node("Gather", e.node("Shape", qh), e.node("Constant").with(attrTensor("value", tensor.FromI64([]int64{3}))))
		hs := e.node("Cast", dim).with(&onnxpb.AttributeProto{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(tensor.Float32))})
		scale = e.node("Reciprocal", e.node("Sqrt", hs))
	}
	scores := e.node("Mul", e.node("MatMul", qh, kt), scale)
	if mask != "" || bias != "" || attrInt(pn, "unidirectional", 0) != 0 {
		scores = e.node(opMaskScores, scores, mask, bias).with(
			&onnxpb.AttributeProto{Name: proto.String("mask_filter_value"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(attrFloat(pn, "mask_filter_value", -10000))},
			&onnxpb.AttributeProto{Name: proto.String("unidirectional"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(attrInt(pn, "unidirectional", 0))})
	}
	probs := e.node("Softmax", scores).with(&onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(-1)})
	ctx := e.node("Transpose", e.node("MatMul", probs, vh)).with(perm(0, 2, 1, 3))
	return e.node("Reshape", ctx, e.ints(0, 0, -1))
}

// unpack splits x [B S N k H] (packed QKV, k = 3, or KV, k = 2) into k
// heads tensors [B N S H].
func (e *expander) unpack(x string, k int) []exNode {
	split := e.node("Split", x).with(&onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(3)})
	split.pn.Output = nil
	for j := range k {
		split.pn.Output = append(split.pn.Output, fmt.Sprintf("%s_%d", split.name, j))
	}
	out := make([]exNode, k)
	for j, part := range split.pn.Output {
		out[j] = e.node("Transpose", e.node("Squeeze", part, e.ints(3))).with(perm(0, 2, 1, 3))
	}
	return out
}

// multiHeadAttention expands com.microsoft MultiHeadAttention(query, key,
// value, bias, key_padding_mask, attention_bias, past_key, past_value) in
// each of its input forms: separate 3-D query, key and value (self- or
// cross-attention, the bias's three thirds added to them); packed QKV
// (query [B S N 3 H], no key or value); packed KV (key [B L N 2 H], no
// value); key and value already in heads [B N L H] (a cross-attention's
// cached encoder states). With past_key and past_value [B N P H] the new
// keys and values follow them, and present_key and present_value (outputs 1
// and 2) are the concatenations: a decoder's cache.
func (e *expander) multiHeadAttention(pn *onnxpb.NodeProto) error {
	heads := attrInt(pn, "num_heads", 0)
	if heads < 1 {
		return fmt.Errorf("attribute num_heads: %d, must be at least 1", heads)
	}
	q, k, v := inputAt(pn, 0), inputAt(pn, 1), inputAt(pn, 2)
	bias := inputAt(pn, 3)
	pastK, pastV := inputAt(pn, 6), inputAt(pn, 7)
	if (pastK == "") != (pastV == "") {
		return fmt.Errorf("inputs past_key and past_value: give both or neither")
	}
	if len(pn.GetInput()) > 8 && inputAt(pn, 8) != "" {
		return fmt.Errorf("input 8 (past_sequence_length or cache_indirection, a beam search's): %w", ErrUnsupported)
	}
	if len(pn.GetOutput()) > 3 && pn.GetOutput()[3] != "" {
		return fmt.Errorf("output 3 (qk, the attention scores): %w", ErrUnsupported)
	}
	var qh, kh, vh any
	switch {
	case k == "" && v == "":
		// Packed QKV: [B S N 3 H].
		if bias != "" {
			return fmt.Errorf("input bias with packed QKV: %w", ErrUnsupported)
		}
		parts := e.unpack(q, 3)
		qh, kh, vh = parts[0], parts[1], parts[2]
	case v == "":
		// Packed KV: [B L N 2 H].
		if bias != "" {
			return fmt.Errorf("input bias with packed KV: %w", ErrUnsupported)
		}
		parts := e.unpack(k, 2)
		qh, kh, vh = e.heads(q, heads, false), parts[0], parts[1]
	case k == "":
		return fmt.Errorf("input key: absent while value is given")
	default:
		if bias != "" {
			// Key and value in heads [B N L H] take no bias (ONNX
			// Runtime's rule); opHeads refuses a 4-D input of a wrong size.
			split := e.node("Split", bias).with(&onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0)})
			split.pn.Output = []string{split.name + "_q", split.name + "_k", split.name + "_v"}
			q = e.node("Add", q, split.pn.Output[0]).name
			k = e.node("Add", k, split.pn.Output[1]).name
			v = e.node("Add", v, split.pn.Output[2]).name
		}
		qh, kh, vh = e.heads(q, heads, false), e.heads(k, heads, false), e.heads(v, heads, false)
	}
	if pastK != "" {
		axis2 := &onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(2)}
		kh = e.node("Concat", pastK, kh).with(axis2)
		vh = e.node("Concat", pastV, vh).with(axis2)
	}
	e.out(pn, 0, e.attend(pn, qh, e.heads(kh, heads, true), vh, inputAt(pn, 4), inputAt(pn, 5)))
	e.out(pn, 1, kh)
	e.out(pn, 2, vh)
	return nil
}

// rotaryEmbedding expands com.microsoft RotaryEmbedding into
// spindle.Rotary, which rotates pairs of each head's first
// rotary_embedding_dim features by the cached angles of their positions.
func (e *expander) rotaryEmbedding(pn *onnxpb.NodeProto) error {
	if attrInt(pn, "is_packed_batching", 0) != 0 {
		return fmt.Errorf("attribute is_packed_batching: %w", ErrUnsupported)
	}
	args := make([]any, len(pn.GetInput()))
	for i, x := range pn.GetInput() {
		args[i] = x
	}
	e.out(pn, 0, e.node(opRotary, args...).with(pn.GetAttribute()...))
	return nil
}

// biasSplitGelu expands com.microsoft BiasSplitGelu(X [B S 2C], bias
// [2C]): X + bias halved along the last axis into a and g, a ⊙ Gelu(g).
func (e *expander) biasSplitGelu(pn *onnxpb.NodeProto) error {
	split := e.node("Split", e.node("Add", inputAt(pn, 0), inputAt(pn, 1))).with(&onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(-1)})
	split.pn.Output = []string{split.name + "_a", split.name + "_g"}
	e.out(pn, 0, e.node("Mul", split.pn.Output[0], e.node("Gelu", split.pn.Output[1])))
	return nil
}

// embedLayerNorm expands com.microsoft EmbedLayerNormalization(input_ids,
// segment_ids, word_embedding, position_embedding, segment_embedding,
// gamma, beta, mask, position_ids): the embeddings gathered and summed
// (positions 0..S-1 unless given), layer-normalised. Outputs: the result,
// mask_index (each row's count of mask ones, int32; zeros without a mask)
// and the sum before normalisation.
func (e *expander) embedLayerNorm(pn *onnxpb.NodeProto) error {
	ids := inputAt(pn, 0)
	sum := e.node("Gather", inputAt(pn, 2), ids)
	pos := inputAt(pn, 8)
	var posIDs any = pos
	if pos == "" {
		scalar := func(v int64) exNode { return e.node("Constant").with(attrTensor("value", tensor.FromI64([]int64{v}))) }
		seq := e.node("Gather", e.node("Shape", ids), scalar(1))
		posIDs = e.node("Unsqueeze", e.node("Range", scalar(0), seq, scalar(1)), e.ints(0))
	}
	sum = e.node("Add", sum, e.node("Gather", inputAt(pn, 3), posIDs))
	if seg := inputAt(pn, 1); seg != "" && inputAt(pn, 4) != "" {
		sum = e.node("Add", sum, e.node("Gather", inputAt(pn, 4), seg))
	}
	ln := e.node("LayerNormalization", sum, inputAt(pn, 5), inputAt(pn, 6)).with(
		&onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(-1)},
		&onnxpb.AttributeProto{Name: proto.String("epsilon"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(attrFloat(pn, "epsilon", 1e-12))})
	e.out(pn, 0, ln)
	toInt32 := &onnxpb.AttributeProto{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(tensor.Int32))}
	if mask := inputAt(pn, 7); mask != "" {
		e.out(pn, 1, e.node("Cast", e.reduce("ReduceSum", e.node("Cast", mask).with(toInt32), 0, 1)).with(toInt32))
	} else {
		zeros := e.node("ConstantOfShape", e.node("Slice", e.node("Shape", ids), e.ints(0), e.ints(1))).with(attrTensor("value", &tensor.Tensor{DType: tensor.Int32, Shape: []int{1}, I32: []int32{0}}))
		e.out(pn, 1, zeros)
	}
	e.out(pn, 2, sum)
	return nil
}

// opHeads splits x [B S N·H] into num_heads heads [B N S H] (taking a 4-D
// x as heads already), transposed to [B N H S] when transposed is 1.
const opHeads = "spindle.Heads"

func init() {
	register(opHeads, newHeads)
}

func newHeads(n *Node) (Kernel, error) {
	heads := int(n.Int("num_heads", 0))
	if heads < 1 {
		return nil, fmt.Errorf("attribute num_heads: %d, must be at least 1", heads)
	}
	transposed := n.Int("transposed", 0) != 0
	n.fresh = true
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input: %s, must be float32", x)
		}
		var B, N, S, H int
		var st [4]int // x's strides of b, n, s, h
		switch len(x.Shape) {
		case 3:
			B, S, H = x.Shape[0], x.Shape[1], x.Shape[2]
			if H%heads != 0 {
				return nil, fmt.Errorf("input: shape %s, its last dimension must split into %d heads", tensor.ShapeString(x.Shape), heads)
			}
			N, H = heads, H/heads
			st = [4]int{S * N * H, H, N * H, 1}
		case 4:
			B, N, S, H = x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
			if N != heads {
				return nil, fmt.Errorf("input: shape %s, heads [B N S H] must have %d heads", tensor.ShapeString(x.Shape), heads)
			}
			st = [4]int{N * S * H, S * H, H, 1}
		default:
			return nil, fmt.Errorf("input: shape %s, must be [B S N·H] or [B N S H]", tensor.ShapeString(x.Shape))
		}
		shape, strides := []int{B, N, S, H}, []int{st[0], st[1], st[2], st[3]}
		if transposed {
			shape, strides = []int{B, N, H, S}, []int{st[0], st[1], st[3], st[2]}
		}
		out := newF32Dirty(shape...)
		if len(out.F32) > 0 {
			copyStrided(out, x, shape, strides, 0)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// opMaskScores masks attention scores [B N S T] (com.microsoft Attention's
// mask_index in any of its forms, its attention_bias and unidirectional).
const opMaskScores = "spindle.MaskScores"

func init() {
	register(opMaskScores, newMaskScores)
}

// newMaskScores adds to scores [B N S T]: mask_filter_value where
// mask_index masks a key (a 1-D [B] count of leading keys to keep; [2B]
// end then start positions; a 2-D [B T] raw mask, 0 masking; 3-D [B S T]
// per query), mask_filter_value past the diagonal when unidirectional, and
// attention_bias broadcast to [B N S T].
func newMaskScores(n *Node) (Kernel, error) {
	filter := n.Float("mask_filter_value", -10000)
	causal := n.Int("unidirectional", 0) != 0
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 3); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 || len(x.Shape) != 4 {
			return nil, fmt.Errorf("input scores: %s, must be float32 [B N S T]", x)
		}
		B, N, S, T := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		out := tensor.FromF32(slices.Clone(x.F32), x.Shape...)
		// masked(b, i, j) says key j is masked for query i of batch b.
		masked := func(b, i, j int) bool { return false }
		if len(in) > 1 && in[1] != nil {
			m, err := castTensor(in[1], tensor.Int64)
			if err != nil {
				return nil, fmt.Errorf("input mask_index: %w", err)
			}
			v, ms := m.I64, m.Shape
			switch {
			case len(ms) == 1 && ms[0] == B:
				masked = func(b, _, j int) bool { return int64(j) >= v[b] }
			case len(ms) == 1 && ms[0] == 2*B:
				masked = func(b, _, j int) bool { return int64(j) >= v[b] || int64(j) < v[B+b] }
			case len(ms) == 2 && ms[0] == B && ms[1] == T:
				masked = func(b, _, j int) bool { return v[b*T+j] == 0 }
			case len(ms) == 3 && ms[0] == B && ms[1] == S && ms[2] == T:
				masked = func(b, i, j int) bool { return v[(b*S+i)*T+j] == 0 }
			default:
				return nil, fmt.Errorf("input mask_index: shape %s, must be [%d], [%d], [%d %d] or [%d %d %d]", tensor.ShapeString(ms), B, 2*B, B, T, B, S, T)
			}
		}
		var bias []float32
		var bstr [4]int
		if len(in) > 2 && in[2] != nil {
			bt := in[2]
			if bt.DType != tensor.Float32 || len(bt.Shape) != 4 {
				return nil, fmt.Errorf("input attention_bias: %s, must be float32 of rank 4", bt)
			}
			st := 1
			for a := 3; a >= 0; a-- {
				switch bt.Shape[a] {
				case x.Shape[a]:
					bstr[a] = st
				case 1:
				default:
					return nil, fmt.Errorf("input attention_bias: shape %s does not broadcast to %s", tensor.ShapeString(bt.Shape), tensor.ShapeString(x.Shape))
				}
				st *= bt.Shape[a]
			}
			bias = bt.F32
		}
		for b := range B {
			for h := range N {
				for i := range S {
					row := out.F32[((b*N+h)*S+i)*T : ((b*N+h)*S+i+1)*T]
					for j := range row {
						if masked(b, i, j) || causal && j > i+T-S {
							row[j] += filter
						}
						if bias != nil {
							row[j] += bias[b*bstr[0]+h*bstr[1]+i*bstr[2]+j*bstr[3]]
						}
					}
				}
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// opRotary is com.microsoft RotaryEmbedding's kernel.
const opRotary = "spindle.Rotary"

func init() {
	register(opRotary, newRotary)
}

// newRotary rotates, in each head vector x of input ([B S N·H] with
// num_heads, or [B N S H]), the first rotary_embedding_dim features (all by
// default) by the angles of its position: cos and sin from the caches
// [max_position R/2] at position_ids[b, s] (or position_ids[0] + s when it
// holds one offset). Halves (x1, x2) rotate as (x1·cos − x2·sin, x2·cos +
// x1·sin); with interleaved, each pair (x[2i], x[2i+1]) does.
func newRotary(n *Node) (Kernel, error) {
	interleaved := n.Int("interleaved", 0) != 0
	heads := int(n.Int("num_heads", 0))
	rotDim := int(n.Int("rotary_embedding_dim", 0))
	scale := n.Float("scale", 1)
	if scale != 1 {
		return nil, fmt.Errorf("attribute scale: %v: %w (only 1 is)", scale, ErrUnsupported)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 4, 4); err != nil {
			return nil, err
		}
		x, pos, cosC, sinC := in[0], in[1], in[2], in[3]
		if x.DType != tensor.Float32 || len(x.Shape) != 3 && len(x.Shape) != 4 {
			return nil, fmt.Errorf("input input: %s, must be float32 [B S N·H] or [B N S H]", x)
		}
		var B, S, N, H int
		seqFirst := len(x.Shape) == 3 // [B S N·H]: heads inside each position
		if seqFirst {
			if heads < 1 || x.Shape[2]%heads != 0 {
				return nil, fmt.Errorf("attribute num_heads: %d, must divide the input's last axis %d", heads, x.Shape[2])
			}
			B, S, N, H = x.Shape[0], x.Shape[1], heads, x.Shape[2]/heads
		} else {
			B, N, S, H = x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		}
		R := H
		if rotDim > 0 {
			R = rotDim
		}
		if R > H || R%2 != 0 {
			return nil, fmt.Errorf("attribute rotary_embedding_dim: %d, must be even and at most the head size %d", R, H)
		}
		if cosC.DType != tensor.Float32 || sinC.DType != tensor.Float32 || len(cosC.Shape) != 2 || !slices.Equal(cosC.Shape, sinC.Shape) || cosC.Shape[1] != R/2 {
			return nil, fmt.Errorf("inputs cos_cache %s and sin_cache %s: must be float32 [max_position %d]", cosC, sinC, R/2)
		}
		maxPos := int64(cosC.Shape[0])
		p, err := castTensor(pos, tensor.Int64)
		if err != nil {
			return nil, fmt.Errorf("input position_ids: %w", err)
		}
		position := func(b, s int) (int64, error) {
			var v int64
			switch {
			case p.Len() == 1:
				v = p.I64[0] + int64(s)
			case len(p.Shape) == 2 && p.Shape[0] == B && p.Shape[1] == S:
				v = p.I64[b*S+s]
			default:
				return 0, fmt.Errorf("input position_ids: shape %s, must be [%d %d] or hold one offset", tensor.ShapeString(p.Shape), B, S)
			}
			if v < 0 || v >= maxPos {
				return 0, fmt.Errorf("input position_ids: position %d is outside the caches' %d", v, maxPos)
			}
			return v, nil
		}
		out := tensor.FromF32(slices.Clone(x.F32), x.Shape...)
		half := R / 2
		for b := range B {
			for s := range S {
				ps, err := position(b, s)
				if err != nil {
					return nil, err
				}
				cs, sn := cosC.F32[int(ps)*half:int(ps+1)*half], sinC.F32[int(ps)*half:int(ps+1)*half]
				for h := range N {
					off := ((b*N+h)*S + s) * H
					if seqFirst {
						off = ((b*S+s)*N + h) * H
					}
					src, dst := x.F32[off:off+H], out.F32[off:off+H]
					for i := range half {
						var a, c int // the pair's indices
						if interleaved {
							a, c = 2*i, 2*i+1
						} else {
							a, c = i, i+half
						}
						x1, x2 := src[a], src[c]
						dst[a] = x1*cs[i] - x2*sn[i]
						dst[c] = x2*cs[i] + x1*sn[i]
					}
				}
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}
