package modelgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// Version identifies the output of this package's generators. Caches of
// generated models (the differential tests keep theirs under the user cache
// folder) key on it, so any change to what a generator writes for a given seed
// must bump it.
const Version = 1

// TransformerConfig describes a BERT-style encoder. The zero value is not a
// usable model; start from MiniLML6 or BERTBase.
type TransformerConfig struct {
	Name      string
	Layers    int64
	Hidden    int64
	Heads     int64
	FFN       int64 // width of the feed-forward layer
	Vocab     int64
	MaxPos    int64 // number of position embeddings, the longest sequence
	TypeVocab int64 // number of token types
	Eps       float32

	// FusedLayerNorm selects LayerNormalization nodes at opset 17; otherwise
	// each LayerNorm is spelled out in opset-13 primitives, as exporters that
	// predate LayerNormalization write it.
	FusedLayerNorm bool

	// Classes, when positive, adds BERT's pooler (first token -> dense -> Tanh)
	// and a classifier with this many classes, with the single output "logits".
	// When zero the outputs are "last_hidden_state" and "sentence_embedding",
	// the mean of the hidden states over the attention mask (sentence-transformers'
	// pooling, not normalised).
	Classes int64
}

// MiniLML6 is shaped like all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads,
// FFN 1536, BERT's uncased vocabulary, with mean pooling.
var MiniLML6 = TransformerConfig{
	Name: "minilm_l6", Layers: 6, Hidden: 384, Heads: 12, FFN: 1536,
	Vocab: 30522, MaxPos: 512, TypeVocab: 2, Eps: 1e-12, FusedLayerNorm: true,
}

// BERTBase is shaped like bert-base-uncased (12 layers, hidden 768, 12 heads,
// FFN 3072) with a 4-class sequence classification head.
var BERTBase = TransformerConfig{
	Name: "bert_base", Layers: 12, Hidden: 768, Heads: 12, FFN: 3072,
	Vocab: 30522, MaxPos: 512, TypeVocab: 2, Eps: 1e-12, FusedLayerNorm: true,
	Classes: 4,
}

// Decomposed returns c with LayerNorm spelled out at opset 13.
func (c TransformerConfig) Decomposed() TransformerConfig {
	c.FusedLayerNorm = false
	c.Name += "_decomposed"
	return c
}

// transformerStd is the standard deviation of every weight matrix and
// embedding, BERT's initializer_range.
const transformerStd = 0.02

// Transformer builds a BERT-style encoder the way torch.onnx.export writes one
// from Hugging Face's BertModel, so that engines meet the same graph patterns:
//
//	inputs input_ids, attention_mask, token_type_ids: int64[batch sequence]
//	embeddings: Gather(word) + Gather(position ids = Slice of a constant
//	  [0..MaxPos) up to Shape(input_ids)[1]) + Gather(token type) -> LayerNorm
//	attention mask: (1 - Cast(Unsqueeze(mask))) * float32 lowest, added to scores
//	each layer: Q, K, V = MatMul+Add; Reshape to heads with a shape built from
//	  Shape/Gather/Unsqueeze/Concat; Transpose; MatMul QK^T; Div sqrt(head dim);
//	  Add mask; Softmax; MatMul V; Transpose; Reshape; dense + residual ->
//	  LayerNorm; FFN with erf GELU (x*0.5*(1+erf(x/sqrt 2))) + residual -> LayerNorm
//
// Weights are N(0, 0.02²); biases N(0, 0.02²) and LayerNorm gains 1+N(0, 0.05²)
// and offsets N(0, 0.02²) rather than BERT's constant 0 and 1, so that a kernel
// that ignores a bias or gain shows in the output. Small shape constants are
// Constant nodes, as the exporter writes them, so an engine has to fold them.
func Transformer(c TransformerConfig, seed uint64) *Builder {
	opset := int64(13)
	if c.FusedLayerNorm {
		opset = 17
	}
	t := &tgraph{Builder: NewBuilder(c.Name, opset, seed), c: c}
	b := t.Builder
	dims := []string{"batch", "sequence"}
	for _, in := range []string{"input_ids", "attention_mask", "token_type_ids"} {
		b.Input(in, tensor.Int64, []int64{-1, -1}, dims...)
	}
	h := t.embeddings()
	mask := t.extendedMask()
	for i := range c.Layers {
		h = t.layer(fmt.Sprintf("encoder.layer.%d.", i), h, mask)
	}
	if c.Classes > 0 {
		t.classifier(h)
	} else {
		t.meanPool(h)
	}
	return b
}

// tgraph holds the state of one Transformer build.
type tgraph struct {
	*Builder
	c TransformerConfig
}

func (t *tgraph) node(op string, attrs []Attr, inputs ...string) string {
	return t.Node(op, inputs, attrs)
}

// constant adds a Constant node holding v and returns its output.
func (t *tgraph) constant(v *tensor.Tensor) string {
	return t.Node("Constant", nil, []Attr{aTensor("value", v)})
}

func (t *tgraph) i64(vals ...int64) string {
	return t.constant(tensor.FromI64(vals, len(vals)))
}

func (t *tgraph) scalarI64(v int64) string { return t.constant(tensor.FromI64([]int64{v})) }

func (t *tgraph) scalarF32(v float32) string { return t.constant(tensor.FromF32([]float32{v})) }

func (t *tgraph) embeddings() string {
	c := t.c
	word := t.node("Gather", nil, t.weight("embeddings.word_embeddings.weight", c.Vocab, c.Hidden), "input_ids")
	// BertEmbeddings keeps position_ids as a [1, MaxPos] buffer and slices it to
	// the sequence length; the exporter writes that as a Slice whose end comes
	// from the input's shape.
	ids := make([]int64, c.MaxPos)
	for i := range ids {
		ids[i] = int64(i)
	}
	posIDs := t.InitTensor("embeddings.position_ids", tensor.FromI64(ids, 1, int(c.MaxPos)))
	seq := t.node("Unsqueeze", nil, t.dim("input_ids", 1), t.i64(0))
	pos := t.node("Slice", nil, posIDs, t.i64(0), seq, t.i64(1))
	posEmb := t.node("Gather", nil, t.weight("embeddings.position_embeddings.weight", c.MaxPos, c.Hidden), pos)
	typ := t.node("Gather", nil, t.weight("embeddings.token_type_embeddings.weight", c.TypeVocab, c.Hidden), "token_type_ids")
	x := t.node("Add", nil, word, posEmb)
	x = t.node("Add", nil, x, typ)
	return t.layerNorm("embeddings.LayerNorm.", x)
}

// dim returns Shape(x)[i] as an int64 scalar.
func (t *tgraph) dim(x string, i int64) string {
	return t.node("Gather", []Attr{AInt("axis", 0)}, t.node("Shape", nil, x), t.scalarI64(i))
}

// extendedMask turns attention_mask [B S] into the additive mask [B 1 1 S]:
// 0 where a token may be attended to, float32's lowest value where not
// (transformers' get_extended_attention_mask).
func (t *tgraph) extendedMask() string {
	m := t.node("Unsqueeze", nil, "attention_mask", t.i64(1, 2))
	m = t.node("Cast", []Attr{AInt("to", int64(tensor.Float32))}, m)
	m = t.node("Sub", nil, t.scalarF32(1), m)
	return t.node("Mul", nil, m, t.scalarF32(-math.MaxFloat32))
}

// linear is x @ W + b with W stored [in out], as the exporter stores a
// transposed nn.Linear weight for MatMul.
func (t *tgraph) linear(name, x string, in, out int64) string {
	y := t.node("MatMul", nil, x, t.weight(name+".weight", in, out))
	return t.node("Add", nil, t.bias(name+".bias", out), y)
}

// heads reshapes x [B S H] to [B S heads H/heads] with a shape computed from x.
func (t *tgraph) heads(x string) string {
	c := t.c
	shape := t.node("Concat", []Attr{AInt("axis", 0)},
		t.node("Unsqueeze", nil, t.dim(x, 0), t.i64(0)),
		t.node("Unsqueeze", nil, t.dim(x, 1), t.i64(0)),
		t.i64(c.Heads), t.i64(c.Hidden/c.Heads))
	return t.node("Reshape", nil, x, shape)
}

func (t *tgraph) layer(p, h, mask string) string {
	c := t.c
	q := t.linear(p+"attention.self.query", h, c.Hidden, c.Hidden)
	k := t.linear(p+"attention.self.key", h, c.Hidden, c.Hidden)
	v := t.linear(p+"attention.self.value", h, c.Hidden, c.Hidden)
	q = t.node("Transpose", []Attr{AInts("perm", 0, 2, 1, 3)}, t.heads(q))
	k = t.node("Transpose", []Attr{AInts("perm", 0, 2, 3, 1)}, t.heads(k))
	v = t.node("Transpose", []Attr{AInts("perm", 0, 2, 1, 3)}, t.heads(v))
	s := t.node("MatMul", nil, q, k)
	s = t.node("Div", nil, s, t.scalarF32(float32(math.Sqrt(float64(c.Hidden/c.Heads)))))
	s = t.node("Add", nil, s, mask)
	s = t.node("Softmax", []Attr{AInt("axis", -1)}, s)
	ctx := t.node("MatMul", nil, s, v)
	ctx = t.node("Transpose", []Attr{AInts("perm", 0, 2, 1, 3)}, ctx)
	shape := t.node("Concat", []Attr{AInt("axis", 0)},
		t.node("Unsqueeze", nil, t.dim(ctx, 0), t.i64(0)),
		t.node("Unsqueeze", nil, t.dim(ctx, 1), t.i64(0)),
		t.i64(c.Hidden))
	ctx = t.node("Reshape", nil, ctx, shape)
	a := t.linear(p+"attention.output.dense", ctx, c.Hidden, c.Hidden)
	h = t.layerNorm(p+"attention.output.LayerNorm.", t.node("Add", nil, a, h))

	f := t.linear(p+"intermediate.dense", h, c.Hidden, c.FFN)
	f = t.gelu(f)
	f = t.linear(p+"output.dense", f, c.FFN, c.Hidden)
	return t.layerNorm(p+"output.LayerNorm.", t.node("Add", nil, f, h))
}

// gelu is the exact GELU as torch exports it: x * 0.5 * (1 + erf(x / sqrt 2)).
func (t *tgraph) gelu(x string) string {
	e := t.node("Erf", nil, t.node("Div", nil, x, t.scalarF32(math.Sqrt2)))
	e = t.node("Add", nil, e, t.scalarF32(1))
	return t.node("Mul", nil, t.node("Mul", nil, x, e), t.scalarF32(0.5))
}

func (t *tgraph) layerNorm(p, x string) string {
	c := t.c
	gamma := t.Init(p+"weight", []int64{c.Hidden}, fastNormal(t.Rand(), 1, 0.05, int(c.Hidden)))
	beta := t.bias(p+"bias", c.Hidden)
	if c.FusedLayerNorm {
		return t.node("LayerNormalization", []Attr{AInt("axis", -1), AFloat("epsilon", c.Eps)}, x, gamma, beta)
	}
	mean := t.node("ReduceMean", []Attr{AInts("axes", -1)}, x)
	d := t.node("Sub", nil, x, mean)
	v := t.node("ReduceMean", []Attr{AInts("axes", -1)}, t.node("Pow", nil, d, t.scalarF32(2)))
	s := t.node("Sqrt", nil, t.node("Add", nil, v, t.scalarF32(c.Eps)))
	y := t.node("Mul", nil, t.node("Div", nil, d, s), gamma)
	return t.node("Add", nil, y, beta)
}

// meanPool adds the outputs last_hidden_state and sentence_embedding =
// sum(h * mask) / max(sum(mask), 1e-9) over the sequence.
func (t *tgraph) meanPool(h string) string {
	c := t.c
	t.Output("last_hidden_state", tensor.Float32, []int64{-1, -1, c.Hidden}, "batch", "sequence")
	t.Output("sentence_embedding", tensor.Float32, []int64{-1, c.Hidden}, "batch")
	t.Node("Identity", []string{h}, nil, "last_hidden_state")
	m := t.node("Unsqueeze", nil, "attention_mask", t.i64(-1))
	m = t.node("Expand", nil, m, t.node("Shape", nil, h))
	m = t.node("Cast", []Attr{AInt("to", int64(tensor.Float32))}, m)
	sum := t.node("ReduceSum", []Attr{AInt("keepdims", 0)}, t.node("Mul", nil, h, m), t.i64(1))
	n := t.node("ReduceSum", []Attr{AInt("keepdims", 0)}, m, t.i64(1))
	n = t.node("Clip", nil, n, t.scalarF32(1e-9))
	return t.Node("Div", []string{sum, n}, nil, "sentence_embedding")
}

// classifier adds BERT's pooler and a linear head with the output logits.
func (t *tgraph) classifier(h string) string {
	c := t.c
	t.Output("logits", tensor.Float32, []int64{-1, c.Classes}, "batch")
	first := t.node("Gather", []Attr{AInt("axis", 1)}, h, t.scalarI64(0))
	gemm := func(name, x string, in, out int64, outputs ...string) string {
		w := t.weight(name+".weight", out, in)
		return t.Node("Gemm", []string{x, w, t.bias(name+".bias", out)}, []Attr{AInt("transB", 1)}, outputs...)
	}
	p := t.node("Tanh", nil, gemm("pooler.dense", first, c.Hidden, c.Hidden))
	return gemm("classifier", p, c.Hidden, c.Classes, "logits")
}

func (t *tgraph) weight(name string, shape ...int64) string {
	return t.Init(name, shape, fastNormal(t.Rand(), 0, transformerStd, numel(shape)))
}

func (t *tgraph) bias(name string, n int64) string {
	return t.Init(name, []int64{n}, fastNormal(t.Rand(), 0, transformerStd, int(n)))
}

func numel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// aTensor returns a tensor attribute holding v's data, for Constant nodes.
func aTensor(name string, v *tensor.Tensor) Attr {
	dims := make([]int64, len(v.Shape))
	for i, d := range v.Shape {
		dims[i] = int64(d)
	}
	dt := int32(v.DType)
	typ := onnxpb.AttributeProto_TENSOR
	return &onnxpb.AttributeProto{
		Name: proto.String(name), Type: &typ,
		T: &onnxpb.TensorProto{Dims: dims, DataType: &dt, RawData: append([]byte{}, v.Bytes()...)},
	}
}

// fillChunk is how many values one generator stream of fastNormal produces.
// Chunks are filled in parallel, each from its own stream seeded by the
// tensor's seed and the chunk's index, so the result does not depend on how
// many goroutines run.
const fillChunk = 1 << 18

// fastNormal returns n values drawn from N(mean, std²). It takes one value from
// r, so successive tensors of a model get different streams, and fills chunks
// in parallel: hundreds of millions of weights take about a second.
func fastNormal(r *rand.Rand, mean, std float64, n int) []float32 {
	seed := r.Uint64()
	out := make([]float32, n)
	chunks := (n + fillChunk - 1) / fillChunk
	workers := min(runtime.GOMAXPROCS(0), chunks)
	var wg sync.WaitGroup
	next := make(chan int, chunks)
	for i := range chunks {
		next <- i
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for ci := range next {
				rc := rand.New(rand.NewPCG(seed, uint64(ci)))
				lo := ci * fillChunk
				for i := lo; i < min(lo+fillChunk, n); i++ {
					out[i] = float32(mean + std*rc.NormFloat64())
				}
			}
		})
	}
	wg.Wait()
	return out
}
