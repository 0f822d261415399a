package modelgen

import (
	"fmt"

	"github.com/spindleml/spindle/internal/tensor"
)

// DoublingLoop builds a Loop test model (issue 13): inputs x float32[2],
// limit float32 (scalar) and, when tripCount is set, M int64 (scalar);
// the loop carries s (starting at x's weight w0 = [1, 1]) and each iteration
// computes s = s*2 + x and its iteration number as float, continuing while
// sum(s) < limit (and fewer than M iterations ran). Outputs: the final s,
// then the stacks of every iteration's s [iters 2] and number [iters].
func DoublingLoop(tripCount bool) *Builder {
	b := NewBuilder("doubling_loop", 17, 1)
	b.Input("x", tensor.Float32, []int64{2})
	b.Input("limit", tensor.Float32, []int64{})
	m := ""
	if tripCount {
		b.Input("M", tensor.Int64, []int64{})
		m = "M"
	}
	b.Output("s", tensor.Float32, []int64{2})
	b.Output("states", tensor.Float32, []int64{-1, 2}, "iters")
	b.Output("steps", tensor.Float32, []int64{-1}, "iters")
	w0 := b.Init("w0", []int64{2}, []float32{1, 1})
	cond := b.Node("Less", []string{b.Node("ReduceSum", []string{w0}, []Attr{AInt("keepdims", 0)}), "limit"}, nil)

	body := b.Subgraph("body")
	body.Input("body/i", tensor.Int64, []int64{})
	body.Input("body/c", tensor.Bool, []int64{})
	body.Input("body/s", tensor.Float32, []int64{2})
	two := body.Init("body/two", []int64{}, []float32{2})
	s := body.Node("Add", []string{body.Node("Mul", []string{"body/s", two}, nil), "x"}, nil, "body/s_out")
	body.Node("Less", []string{body.Node("ReduceSum", []string{s}, []Attr{AInt("keepdims", 0)}), "limit"}, nil, "body/c_out")
	body.Node("Identity", []string{s}, nil, "body/state")
	body.Node("Cast", []string{"body/i"}, []Attr{AInt("to", int64(tensor.Float32))}, "body/step")
	body.Output("body/c_out", tensor.Bool, []int64{})
	body.Output("body/s_out", tensor.Float32, []int64{2})
	body.Output("body/state", tensor.Float32, []int64{2})
	body.Output("body/step", tensor.Float32, []int64{})
	b.Node("Loop", []string{m, cond, w0}, []Attr{AGraph("body", body)}, "s", "states", "steps")
	return b
}

// RecurrentConfig describes a one-node RNN, GRU or LSTM test model.
type RecurrentConfig struct {
	Op                     string // RNN, GRU or LSTM
	Direction              string // forward (""), reverse or bidirectional
	Layout                 int64
	Seq, Batch, In, Hidden int64
	LinearBeforeReset      bool
	InputForget            bool
	Clip                   float32
	Activations            []string
	Alpha, Beta            []float32
	Peepholes              bool // LSTM: input P
	// SeqLens and Initial add graph inputs sequence_lens (int32 [batch])
	// and initial_h (and initial_c for LSTM).
	SeqLens, Initial bool
}

// Recurrent builds the model c describes: input X, weights W, R and B (and
// P) drawn from U(-1/sqrt(hidden), 1/sqrt(hidden)) as PyTorch does, and
// every output of the node (Y, Y_h and, for LSTM, Y_c).
func Recurrent(c RecurrentConfig, seed uint64) *Builder {
	gates := map[string]int64{"RNN": 1, "GRU": 3, "LSTM": 4}[c.Op]
	dirs := int64(1)
	if c.Direction == "bidirectional" {
		dirs = 2
	}
	b := NewBuilder(c.Op, 14, seed)
	xs := []int64{c.Seq, c.Batch, c.In}
	ys := []int64{c.Seq, dirs, c.Batch, c.Hidden}
	hs := []int64{dirs, c.Batch, c.Hidden}
	if c.Layout == 1 {
		xs = []int64{c.Batch, c.Seq, c.In}
		ys = []int64{c.Batch, c.Seq, dirs, c.Hidden}
		hs = []int64{c.Batch, dirs, c.Hidden}
	}
	b.Input("X", tensor.Float32, xs)
	bound := KaimingBound(c.Hidden)
	in := []string{"X", b.Uniform("W", bound, dirs, gates*c.Hidden, c.In), b.Uniform("R", bound, dirs, gates*c.Hidden, c.Hidden),
		b.Uniform("B", bound, dirs, 2*gates*c.Hidden), "", "", "", ""}
	if c.SeqLens {
		b.Input("sequence_lens", tensor.Int32, []int64{c.Batch})
		in[4] = "sequence_lens"
	}
	if c.Initial {
		b.Input("initial_h", tensor.Float32, hs)
		in[5] = "initial_h"
		if c.Op == "LSTM" {
			b.Input("initial_c", tensor.Float32, hs)
			in[6] = "initial_c"
		}
	}
	if c.Peepholes {
		in[7] = b.Uniform("P", bound, dirs, 3*c.Hidden)
	}
	for len(in) > 3 && in[len(in)-1] == "" {
		in = in[:len(in)-1]
	}
	attrs := []Attr{AInt("hidden_size", c.Hidden), AInt("layout", c.Layout)}
	if c.Direction != "" {
		attrs = append(attrs, AString("direction", c.Direction))
	}
	if c.LinearBeforeReset {
		attrs = append(attrs, AInt("linear_before_reset", 1))
	}
	if c.InputForget {
		attrs = append(attrs, AInt("input_forget", 1))
	}
	if c.Clip > 0 {
		attrs = append(attrs, AFloat("clip", c.Clip))
	}
	if len(c.Activations) > 0 {
		attrs = append(attrs, AStrings("activations", c.Activations...))
	}
	if len(c.Alpha) > 0 {
		attrs = append(attrs, AFloats("activation_alpha", c.Alpha...))
	}
	if len(c.Beta) > 0 {
		attrs = append(attrs, AFloats("activation_beta", c.Beta...))
	}
	outs := []string{"Y", "Y_h"}
	if c.Op == "LSTM" {
		outs = append(outs, "Y_c")
	}
	b.Node(c.Op, in, attrs, outs...)
	b.Output("Y", tensor.Float32, ys)
	b.Output("Y_h", tensor.Float32, hs)
	if c.Op == "LSTM" {
		b.Output("Y_c", tensor.Float32, hs)
	}
	return b
}

// ContribOps builds a model of ONNX Runtime's com.microsoft ops as
// optimised transformer exports hold them (issue 13): input x [2 8 16] and
// skip [2 8 16]; each op's result is a graph output.
func ContribOps(seed uint64) *Builder {
	b := NewBuilder("contrib", 17, seed)
	b.Input("x", tensor.Float32, []int64{2, 8, 16})
	b.Input("skip", tensor.Float32, []int64{2, 8, 16})
	ms := func(op string, inputs []string, attrs []Attr, outputs ...string) string {
		y := b.Node(op, inputs, attrs, outputs...)
		b.SetDomain(y, "com.microsoft")
		return y
	}
	out := func(name string, shape ...int64) { b.Output(name, tensor.Float32, shape) }
	w := b.Uniform("w", 0.25, 32, 16)
	bias := b.Uniform("bias", 0.5, 32)
	ms("FusedMatMul", []string{"x", w}, []Attr{AInt("transB", 1), AFloat("alpha", 0.5)}, "proj")
	out("proj", 2, 8, 32)
	ms("BiasGelu", []string{"proj", bias}, nil, "bias_gelu")
	out("bias_gelu", 2, 8, 32)
	ms("FastGelu", []string{"proj", bias}, nil, "fast_gelu")
	out("fast_gelu", 2, 8, 32)
	ms("FastGelu", []string{"x"}, nil, "fast_gelu_nobias")
	out("fast_gelu_nobias", 2, 8, 16)
	ms("Gelu", []string{"x"}, nil, "gelu")
	out("gelu", 2, 8, 16)
	ms("QuickGelu", []string{"x"}, []Attr{AFloat("alpha", 1.5)}, "quick_gelu")
	out("quick_gelu", 2, 8, 16)
	ms("FusedMatMul", []string{"x", "skip"}, []Attr{AInt("transB", 1), AFloat("alpha", 0.25)}, "scores")
	out("scores", 2, 8, 8)
	ms("FusedMatMul", []string{"x", "skip"}, []Attr{AInt("transA", 1)}, "gram")
	out("gram", 2, 16, 16)
	gamma, beta, lnBias := b.Uniform("gamma", 1, 16), b.Uniform("beta", 1, 16), b.Uniform("ln_bias", 1, 16)
	ms("SkipLayerNormalization", []string{"x", "skip", gamma, beta, lnBias}, []Attr{AFloat("epsilon", 1e-5)}, "skip_ln", "", "", "skip_sum")
	out("skip_ln", 2, 8, 16)
	out("skip_sum", 2, 8, 16)
	ms("SkipLayerNormalization", []string{"x", "skip", gamma}, nil, "skip_ln_plain")
	out("skip_ln_plain", 2, 8, 16)
	ms("SkipSimplifiedLayerNormalization", []string{"x", "skip", gamma, lnBias}, []Attr{AFloat("epsilon", 1e-6)}, "skip_rms", "", "", "skip_rms_sum")
	out("skip_rms", 2, 8, 16)
	out("skip_rms_sum", 2, 8, 16)
	// ONNX Runtime registers this one in the default domain.
	b.Node("SimplifiedLayerNormalization", []string{"x", gamma}, []Attr{AInt("axis", -1), AFloat("epsilon", 1e-6)}, "rms")
	out("rms", 2, 8, 16)
	return b
}

// OptimizedBERT builds a small BERT the way ONNX Runtime's transformer
// optimiser (and Hugging Face Optimum) leaves it (issue 13): int64 inputs
// cast to int32, EmbedLayerNormalization, then per layer Attention,
// SkipLayerNormalization, BiasGelu and SkipLayerNormalization, all
// com.microsoft ops. rawMask feeds Attention the [B S] mask instead of the
// mask_index EmbedLayerNormalization computes; causal makes it
// unidirectional. Inputs input_ids, attention_mask, token_type_ids [B S];
// output last_hidden_state [B S 32].
func OptimizedBERT(seed uint64, rawMask, causal bool) *Builder {
	const hidden, heads, ffn, vocab, layers = 32, 4, 64, 100, 2
	b := NewBuilder("optimized_bert", 17, seed)
	for _, name := range []string{"input_ids", "attention_mask", "token_type_ids"} {
		b.Input(name, tensor.Int64, []int64{-1, -1}, "batch", "sequence")
	}
	b.Output("last_hidden_state", tensor.Float32, []int64{-1, -1, hidden}, "batch", "sequence")
	ms := func(op string, inputs []string, attrs []Attr, outputs ...string) string {
		y := b.Node(op, inputs, attrs, outputs...)
		b.SetDomain(y, "com.microsoft")
		return y
	}
	i32 := func(x string) string { return b.Node("Cast", []string{x}, []Attr{AInt("to", int64(tensor.Int32))}) }
	ids, mask, types := i32("input_ids"), i32("attention_mask"), i32("token_type_ids")
	emb := b.Node("EmbedLayerNormalization", []string{ids, types, b.Normal("word", 0.5, vocab, hidden), b.Normal("pos", 0.5, 64, hidden),
		b.Normal("seg", 0.5, 2, hidden), b.Uniform("emb_gamma", 1, hidden), b.Uniform("emb_beta", 0.5, hidden), mask}, []Attr{AFloat("epsilon", 1e-12)},
		"embeddings", "mask_index")
	b.SetDomain(emb, "com.microsoft")
	attnMask := "mask_index"
	if rawMask {
		attnMask = mask
	}
	x := "embeddings"
	for l := range layers {
		p := fmt.Sprintf("layer%d.", l)
		attrs := []Attr{AInt("num_heads", heads)}
		if causal {
			attrs = append(attrs, AInt("unidirectional", 1))
		}
		att := ms("Attention", []string{x, b.Uniform(p+"qkv", 0.3, hidden, 3*hidden), b.Uniform(p+"qkv_bias", 0.1, 3*hidden), attnMask}, attrs)
		mm := b.Node("MatMul", []string{att, b.Uniform(p+"out", 0.3, hidden, hidden)}, nil)
		h := ms("SkipLayerNormalization", []string{mm, x, b.Uniform(p+"ln1_gamma", 1, hidden), b.Uniform(p+"ln1_beta", 0.5, hidden), b.Uniform(p+"out_bias", 0.1, hidden)},
			[]Attr{AFloat("epsilon", 1e-12)})
		up := ms("BiasGelu", []string{b.Node("MatMul", []string{h, b.Uniform(p+"ffn_up", 0.3, hidden, ffn)}, nil), b.Uniform(p+"ffn_up_bias", 0.1, ffn)}, nil)
		down := b.Node("MatMul", []string{up, b.Uniform(p+"ffn_down", 0.2, ffn, hidden)}, nil)
		out := ""
		if l == layers-1 {
			out = "last_hidden_state"
		}
		args := []string{down, h, b.Uniform(p+"ln2_gamma", 1, hidden), b.Uniform(p+"ln2_beta", 0.5, hidden), b.Uniform(p+"ffn_down_bias", 0.1, hidden)}
		if out != "" {
			x = ms("SkipLayerNormalization", args, []Attr{AFloat("epsilon", 1e-12)}, out)
		} else {
			x = ms("SkipLayerNormalization", args, []Attr{AFloat("epsilon", 1e-12)})
		}
	}
	return b
}

// StreamingGRU builds a streaming speech-style model (issue 13): features
// x [1 T 40] and the recurrent state h [1 1 64] carried from the last call,
// reset (bool scalar) choosing zeros instead of h through an If, a GRU over
// the frames, and per-frame logits [1 T 1 10] and the new state [1 1 64].
func StreamingGRU(seed uint64) *Builder {
	const feat, hidden, classes = 40, 64, 10
	b := NewBuilder("streaming_gru", 17, seed)
	b.Input("x", tensor.Float32, []int64{-1, 1, feat}, "frames")
	b.Input("h", tensor.Float32, []int64{1, 1, hidden})
	b.Input("reset", tensor.Bool, []int64{})
	b.Output("logits", tensor.Float32, []int64{-1, 1, 1, classes}, "frames")
	b.Output("h_out", tensor.Float32, []int64{1, 1, hidden})
	zero := b.Subgraph("zero")
	zero.Node("Mul", []string{"h", zero.Init("zero/k", []int64{1}, []float32{0})}, nil, "zero/h")
	zero.Output("zero/h", tensor.Float32, []int64{1, 1, hidden})
	keep := b.Subgraph("keep")
	keep.Node("Identity", []string{"h"}, nil, "keep/h")
	keep.Output("keep/h", tensor.Float32, []int64{1, 1, hidden})
	h0 := b.Node("If", []string{"reset"}, []Attr{AGraph("then_branch", zero), AGraph("else_branch", keep)})
	bound := KaimingBound(hidden)
	b.Node("GRU", []string{"x", b.Uniform("W", bound, 1, 3*hidden, feat), b.Uniform("R", bound, 1, 3*hidden, hidden),
		b.Uniform("B", bound, 1, 6*hidden), "", h0}, []Attr{AInt("hidden_size", hidden), AInt("linear_before_reset", 1)}, "Y", "h_out")
	b.Node("MatMul", []string{"Y", b.Uniform("head", 0.3, hidden, classes)}, nil, "logits")
	return b
}

// GreedySeq2Seq builds an encoder-decoder with a Loop-based greedy decode
// (issue 13): src [1 S 16] is encoded (MatMul, Tanh, mean over S) into the
// decoder's first state; each of at most max_steps iterations embeds the
// last token, updates the state, picks the next token by ArgMax and stops
// after token 9 (end of sequence). Outputs: the tokens [steps] and the
// final state [1 16].
func GreedySeq2Seq(seed uint64) *Builder {
	const dim, vocab = 16, 12
	b := NewBuilder("greedy_seq2seq", 17, seed)
	b.Input("src", tensor.Float32, []int64{1, -1, dim}, "S")
	b.Input("max_steps", tensor.Int64, []int64{})
	b.Output("tokens", tensor.Int64, []int64{-1}, "steps")
	b.Output("state", tensor.Float32, []int64{1, dim})
	enc := b.Node("Tanh", []string{b.Node("MatMul", []string{"src", b.Normal("enc", 0.5, dim, dim)}, nil)}, nil)
	state := b.Node("ReduceMean", []string{enc}, []Attr{AInts("axes", 1), AInt("keepdims", 0)})
	start := b.InitTensor("bos", tensor.FromI64([]int64{1}, 1))
	cond := b.InitTensor("go", &tensor.Tensor{DType: tensor.Bool, Shape: []int{}, B: []bool{true}})
	emb, w, v := b.Normal("emb", 1, vocab, dim), b.Normal("dec", 0.4, 2*dim, dim), b.Normal("out", 1, dim, vocab)

	body := b.Subgraph("step")
	body.Input("step/i", tensor.Int64, []int64{})
	body.Input("step/c", tensor.Bool, []int64{})
	body.Input("step/tok", tensor.Int64, []int64{1})
	body.Input("step/h", tensor.Float32, []int64{1, dim})
	e := body.Node("Gather", []string{emb, "step/tok"}, nil)
	h := body.Node("Tanh", []string{body.Node("MatMul", []string{body.Node("Concat", []string{e, "step/h"}, []Attr{AInt("axis", 1)}), w}, nil)}, nil, "step/h_out")
	tok := body.Node("ArgMax", []string{body.Node("MatMul", []string{h, v}, nil)}, []Attr{AInt("axis", 1), AInt("keepdims", 0)}, "step/tok_out")
	body.Node("Not", []string{body.Node("Equal", []string{tok, body.InitTensor("step/eos", tensor.FromI64([]int64{9}, 1))}, nil)}, nil, "step/c_raw")
	body.Node("Squeeze", []string{"step/c_raw", body.Ints64("step/ax", 0)}, nil, "step/c_out")
	body.Node("Identity", []string{tok}, nil, "step/emit")
	body.Output("step/c_out", tensor.Bool, []int64{})
	body.Output("step/tok_out", tensor.Int64, []int64{1})
	body.Output("step/h_out", tensor.Float32, []int64{1, dim})
	body.Output("step/emit", tensor.Int64, []int64{1})
	b.Node("Loop", []string{"max_steps", cond, start, state}, []Attr{AGraph("body", body)}, "last", "state", "emitted")
	b.Node("Reshape", []string{"emitted", b.Ints64("flat", -1)}, nil, "tokens")
	return b
}

// ConformerBlock builds a Conformer-style block (issue 13): x [B T 32],
// layer norm, multi-head self-attention written with Einsum (4 heads of 8),
// a residual add, then the convolution module: pointwise projection, GLU,
// depthwise convolution over time (kernel 7), SiLU, pointwise projection,
// residual add.
func ConformerBlock(seed uint64) *Builder {
	const d, heads, hd = 32, 4, 8
	b := NewBuilder("conformer_block", 17, seed)
	b.Input("x", tensor.Float32, []int64{-1, -1, d}, "B", "T")
	b.Output("y", tensor.Float32, []int64{-1, -1, d}, "B", "T")
	ln := b.Node("LayerNormalization", []string{"x", b.Uniform("ln_g", 1, d), b.Uniform("ln_b", 0.2, d)}, []Attr{AInt("axis", -1)})
	ein := func(eq string, in ...string) string { return b.Node("Einsum", in, []Attr{AString("equation", eq)}) }
	q := ein("btd,hde->bhte", ln, b.Normal("wq", 0.2, heads, d, hd))
	k := ein("btd,hde->bhte", ln, b.Normal("wk", 0.2, heads, d, hd))
	v := ein("btd,hde->bhte", ln, b.Normal("wv", 0.2, heads, d, hd))
	scores := b.Node("Mul", []string{ein("bhte,bhse->bhts", q, k), b.InitTensor("scale", tensor.FromF32([]float32{0.35355339}))}, nil)
	probs := b.Node("Softmax", []string{scores}, []Attr{AInt("axis", -1)})
	ctx := ein("bhts,bhse->bthe", probs, v)
	x1 := b.Node("Add", []string{"x", ein("bthe,hed->btd", ctx, b.Normal("wo", 0.2, heads, hd, d))}, nil)
	ct := b.Node("Transpose", []string{x1}, []Attr{AInts("perm", 0, 2, 1)}) // [B d T]
	pw := b.Node("Conv", []string{ct, b.Normal("pw1", 0.2, 2*d, d, 1)}, nil)
	a, g := b.Node("Split", []string{pw}, []Attr{AInt("axis", 1)}, "glu_a", "glu_b"), "glu_b"
	glu := b.Node("Mul", []string{a, b.Node("Sigmoid", []string{g}, nil)}, nil)
	dw := b.Node("Conv", []string{glu, b.Normal("dw", 0.3, d, 1, 7), b.Uniform("dw_b", 0.1, d)}, []Attr{AInt("group", d), AInts("pads", 3, 3)})
	silu := b.Node("Mul", []string{dw, b.Node("Sigmoid", []string{dw}, nil)}, nil)
	out := b.Node("Transpose", []string{b.Node("Conv", []string{silu, b.Normal("pw2", 0.2, d, d, 1)}, nil)}, []Attr{AInts("perm", 0, 2, 1)})
	b.Node("Add", []string{x1, out}, nil, "y")
	return b
}
