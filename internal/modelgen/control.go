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
