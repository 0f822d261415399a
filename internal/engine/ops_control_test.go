package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// ifModel builds y = If(cond, then: (h + w) * tw, else: h - w), where h =
// Relu(x) is computed outside and w is an outer weight, tw the then
// branch's own initializer. The If is listed before the node computing h,
// which it must follow. cond is the graph input "cond", or a constant when
// constCond is not nil.
func ifModel(constCond *bool) *modelgen.Builder {
	b := modelgen.NewBuilder("if", 17, 1)
	b.Input("x", tensor.Float32, []int64{3})
	cond := "cond"
	if constCond != nil {
		cond = b.InitTensor("cond", &tensor.Tensor{DType: tensor.Bool, Shape: []int{}, B: []bool{*constCond}})
	} else {
		b.Input("cond", tensor.Bool, []int64{-1}, "n") // one element, but the model cannot say so
	}
	b.Output("y", tensor.Float32, []int64{3})
	w := b.Init("w", []int64{3}, []float32{1, 2, 3})
	then := b.Subgraph("then")
	tw := then.Init("then/tw", []int64{1}, []float32{10})
	then.Node("Mul", []string{then.Node("Add", []string{"h", w}, nil), tw}, nil, "then/y")
	then.Output("then/y", tensor.Float32, []int64{3})
	els := b.Subgraph("else")
	els.Node("Sub", []string{"h", w}, nil, "else/y")
	els.Output("else/y", tensor.Float32, []int64{3})
	b.Node("If", []string{cond}, []modelgen.Attr{modelgen.AGraph("then_branch", then), modelgen.AGraph("else_branch", els)}, "y")
	b.Node("Relu", []string{"x"}, nil, "h")
	return b
}

func TestIf(t *testing.T) {
	m, err := compileGraph(t, ifModel(nil), onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x := f32([]float32{-1, 1, 2}, 3)
	for _, tt := range []struct {
		cond bool
		want []float32
	}{{true, []float32{10, 30, 50}}, {false, []float32{-1, -1, -1}}} {
		out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": x, "cond": {DType: tensor.Bool, Shape: []int{1}, B: []bool{tt.cond}}})
		if err != nil {
			t.Fatalf("cond %v: %v", tt.cond, err)
		}
		checkTensor(t, out["y"], f32(tt.want, 3), 0)
	}
	_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"x": x, "cond": {DType: tensor.Bool, Shape: []int{2}, B: []bool{true, false}}})
	wantErr(t, err, "cond", "one element")
}

// TestIfConstantConditionInlined checks that an If whose condition is known
// at compile time leaves no If step: the branch taken is compiled into the
// graph (and its Add and Mul fuse or run as steps of their own).
func TestIfConstantConditionInlined(t *testing.T) {
	for _, cond := range []bool{true, false} {
		m, err := compileGraph(t, ifModel(&cond), onnx.Copy, modelgen.SaveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range m.steps {
			if st.node.OpType == "If" {
				t.Errorf("cond %v: an If step remains", cond)
			}
		}
		out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": f32([]float32{-1, 1, 2}, 3)})
		if err != nil {
			t.Fatal(err)
		}
		want := []float32{-1, -1, -1}
		if cond {
			want = []float32{10, 30, 50}
		}
		checkTensor(t, out["y"], f32(want, 3), 0)
	}
}

// TestIfNested runs an If inside a branch whose branches read a value two
// scopes out and one of the branch around them.
func TestIfNested(t *testing.T) {
	b := modelgen.NewBuilder("nested", 17, 1)
	b.Input("x", tensor.Float32, []int64{2})
	b.Input("a", tensor.Bool, []int64{})
	b.Input("c", tensor.Bool, []int64{})
	b.Output("y", tensor.Float32, []int64{2})
	outer := b.Subgraph("outer")
	mid := outer.Node("Neg", []string{"x"}, nil, "outer/mid")
	in1 := outer.Subgraph("outer/t")
	in1.Node("Add", []string{"x", mid}, nil, "outer/t/y") // x + -x = 0
	in1.Output("outer/t/y", tensor.Float32, []int64{2})
	in2 := outer.Subgraph("outer/e")
	in2.Node("Mul", []string{"x", mid}, nil, "outer/e/y") // -x²
	in2.Output("outer/e/y", tensor.Float32, []int64{2})
	outer.Node("If", []string{"c"}, []modelgen.Attr{modelgen.AGraph("then_branch", in1), modelgen.AGraph("else_branch", in2)}, "outer/y")
	outer.Output("outer/y", tensor.Float32, []int64{2})
	other := b.Subgraph("other")
	other.Output("x", tensor.Float32, []int64{2}) // returns the outer value as it is
	b.Node("If", []string{"a"}, []modelgen.Attr{modelgen.AGraph("then_branch", outer), modelgen.AGraph("else_branch", other)}, "y")
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bl := func(v bool) *tensor.Tensor { return &tensor.Tensor{DType: tensor.Bool, Shape: []int{}, B: []bool{v}} }
	x := f32([]float32{2, 3}, 2)
	for _, tt := range []struct {
		a, c bool
		want []float32
	}{{true, true, []float32{0, 0}}, {true, false, []float32{-4, -9}}, {false, true, []float32{2, 3}}} {
		out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": x, "a": bl(tt.a), "c": bl(tt.c)})
		if err != nil {
			t.Fatalf("a %v c %v: %v", tt.a, tt.c, err)
		}
		checkTensor(t, out["y"], f32(tt.want, 2), 0)
	}
}

func TestIfErrors(t *testing.T) {
	b := modelgen.NewBuilder("bad", 17, 1)
	b.Input("cond", tensor.Bool, []int64{})
	b.Output("y", tensor.Float32, []int64{1})
	then := b.Subgraph("then")
	then.Output(then.Init("then/one", []int64{1}, []float32{1}), tensor.Float32, []int64{1})
	els := b.Subgraph("else")
	els.Output(els.Init("else/a", []int64{1}, []float32{1}), tensor.Float32, []int64{1})
	els.Output(els.Init("else/b", []int64{1}, []float32{2}), tensor.Float32, []int64{1})
	b.Node("If", []string{"cond"}, []modelgen.Attr{modelgen.AGraph("then_branch", then), modelgen.AGraph("else_branch", els)}, "y")
	_, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	wantErr(t, err, "else_branch", "2 outputs", "the node has 1")
	if !errors.Is(err, onnx.ErrBadModel) {
		t.Errorf("error %v does not wrap ErrBadModel", err)
	}

	b = modelgen.NewBuilder("unsupported inside", 17, 1)
	b.Input("cond", tensor.Bool, []int64{})
	b.Output("y", tensor.Float32, []int64{1})
	then = b.Subgraph("then")
	then.Node("Foo", []string{then.Init("then/one", []int64{1}, []float32{1})}, nil, "then/y")
	then.Output("then/y", tensor.Float32, []int64{1})
	els = b.Subgraph("else")
	els.Output(els.Init("else/a", []int64{1}, []float32{1}), tensor.Float32, []int64{1})
	b.Node("If", []string{"cond"}, []modelgen.Attr{modelgen.AGraph("then_branch", then), modelgen.AGraph("else_branch", els)}, "y")
	_, err = compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("If with an unsupported op in a branch: %v, want ErrUnsupported", err)
	}
	wantErr(t, err, `Foo (node "then/Foo_1")`)
}

// doublingLoop is what modelgen.DoublingLoop computes, written plainly.
func doublingLoop(x [2]float32, limit float32, trips int64) (s []float32, states []float32, steps []float32) {
	s = []float32{1, 1}
	for i := int64(0); (trips < 0 || i < trips) && s[0]+s[1] < limit; i++ {
		s = []float32{s[0]*2 + x[0], s[1]*2 + x[1]}
		states = append(states, s...)
		steps = append(steps, float32(i))
	}
	return s, states, steps
}

func TestLoop(t *testing.T) {
	for _, withM := range []bool{true, false} {
		m, err := compileGraph(t, modelgen.DoublingLoop(withM), onnx.Copy, modelgen.SaveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			x     [2]float32
			limit float32
			trips int64
		}{{[2]float32{1, 0.5}, 100, 3}, {[2]float32{1, 0.5}, 100, 50}, {[2]float32{0, 0}, 1, 5}, {[2]float32{3, -1}, 1e6, 0}} {
			if !withM {
				tt.trips = -1
			}
			in := map[string]*tensor.Tensor{"x": f32(tt.x[:], 2), "limit": f32([]float32{tt.limit})}
			if withM {
				in["M"] = i64([]int64{tt.trips})
			}
			out, err := m.Run(context.Background(), in)
			if err != nil {
				t.Fatalf("M %v %+v: %v", withM, tt, err)
			}
			s, states, steps := doublingLoop(tt.x, tt.limit, tt.trips)
			n := len(steps)
			checkTensor(t, out["s"], f32(s, 2), 0)
			checkTensor(t, out["states"], f32(states, n, 2), 0)
			checkTensor(t, out["steps"], f32(steps, n), 0)
		}
	}
}

// TestLoopBounded checks that a Loop whose condition never turns false and
// has no trip count ends with an error, not a hung request.
func TestLoopBounded(t *testing.T) {
	m, err := compileGraph(t, modelgen.DoublingLoop(false), onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// s = 2s - 1 stays [1 1]: the sum stays under the limit forever.
	defer func(n int64) { maxLoopIterations = n }(maxLoopIterations)
	maxLoopIterations = 1000
	_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"x": f32([]float32{-1, -1}, 2), "limit": f32([]float32{3})})
	wantErr(t, err, "Loop", "more than 1000 iterations")
	if !errors.Is(err, ErrBadInput) {
		t.Errorf("error %v does not wrap ErrBadInput", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = m.Run(ctx, map[string]*tensor.Tensor{"x": f32([]float32{-1, -1}, 2), "limit": f32([]float32{3})})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v, want context.Canceled", err)
	}
}

// TestRecurrentErrors checks that bad attributes and inputs of the
// recurrent ops are refused naming the field and the rule (their results
// are checked against ONNX Runtime in the difftest package).
func TestRecurrentErrors(t *testing.T) {
	cfg := modelgen.RecurrentConfig{Op: "GRU", Seq: 2, Batch: 2, In: 3, Hidden: 4, SeqLens: true}
	compile := func(edit func(*modelgen.Builder)) (*Model, error) {
		b := modelgen.Recurrent(cfg, 1)
		if edit != nil {
			edit(b)
		}
		return compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	}
	m, err := compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	x := f32(make([]float32, 12), 2, 2, 3)
	_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"X": x, "sequence_lens": {DType: tensor.Int32, Shape: []int{2}, I32: []int32{2, 3}}})
	wantErr(t, err, "sequence_lens", "entry 1 is 3", "[0, 2]")

	for _, tt := range []struct {
		attr modelgen.Attr
		frag []string
	}{
		{modelgen.AString("direction", "sideways"), []string{"direction", "sideways", "bidirectional"}},
		{modelgen.AStrings("activations", "Sigmoid"), []string{"activations", "1 names", "2 per direction"}},
		{modelgen.AStrings("activations", "Sigmoid", "Swish"), []string{"activations", "Swish", "not an activation"}},
		{modelgen.AInt("hidden_size", 5), []string{"W", "hidden_size 5"}},
		{modelgen.AFloat("clip", -1), []string{"clip", "positive"}},
	} {
		m, err := compile(func(b *modelgen.Builder) { b.SetAttr("GRU_1", tt.attr) })
		if err == nil {
			_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"X": x, "sequence_lens": {DType: tensor.Int32, Shape: []int{2}, I32: []int32{2, 2}}})
		}
		wantErr(t, err, tt.frag...)
	}
}

// TestContribExpansions checks the contrib ops ONNX Runtime's CPU provider
// does not run (so the difftest cannot compare them): BiasAdd (x + bias +
// skip) and com.microsoft's Trilu; and that an unknown contrib op is named
// as unsupported.
func TestContribExpansions(t *testing.T) {
	b := modelgen.NewBuilder("contrib", 17, 1)
	b.Input("x", tensor.Float32, []int64{1, 2, 3})
	b.Output("y", tensor.Float32, []int64{1, 2, 3})
	b.Output("tri", tensor.Float32, []int64{1, 2, 3})
	bias := b.Init("bias", []int64{3}, []float32{10, 20, 30})
	skip := b.Init("skip", []int64{1, 2, 3}, []float32{1, 1, 1, 2, 2, 2})
	b.SetDomain(b.Node("BiasAdd", []string{"x", bias, skip}, nil, "y"), "com.microsoft")
	b.SetDomain(b.Node("Trilu", []string{"x"}, []modelgen.Attr{modelgen.AInt("upper", 0)}, "tri"), "com.microsoft")
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": f32([]float32{1, 2, 3, 4, 5, 6}, 1, 2, 3)})
	if err != nil {
		t.Fatal(err)
	}
	checkTensor(t, out["y"], f32([]float32{12, 23, 34, 16, 27, 38}, 1, 2, 3), 0)
	checkTensor(t, out["tri"], f32([]float32{1, 0, 0, 4, 5, 0}, 1, 2, 3), 0)

	// BiasSplitGelu: (x + bias) halved, a ⊙ Gelu(g); Gelu(3) = 2.9959502, Gelu(4) = 3.9998733.
	b = modelgen.NewBuilder("bias split gelu", 17, 1)
	b.Input("x", tensor.Float32, []int64{1, 1, 4})
	b.Output("y", tensor.Float32, []int64{1, 1, 2})
	b.SetDomain(b.Node("BiasSplitGelu", []string{"x", b.Init("b", []int64{4}, []float32{0, 1, -1, 0})}, nil, "y"), "com.microsoft")
	m, err = compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err = m.Run(context.Background(), map[string]*tensor.Tensor{"x": f32([]float32{1, 1, 4, 4}, 1, 1, 4)})
	if err != nil {
		t.Fatal(err)
	}
	checkTensor(t, out["y"], f32([]float32{1 * 2.9959502, 2 * 3.9998733}, 1, 1, 2), 1e-5)

	b = modelgen.NewBuilder("unknown contrib", 17, 1)
	b.Input("x", tensor.Float32, []int64{2})
	b.Output("y", tensor.Float32, []int64{2})
	b.SetDomain(b.Node("DecoderMaskedMultiHeadAttention", []string{"x"}, nil, "y"), "com.microsoft")
	_, err = compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown contrib op: %v, want ErrUnsupported", err)
	}
	wantErr(t, err, "com.microsoft:DecoderMaskedMultiHeadAttention")
}

// TestMaskScores checks every mask_index form of com.microsoft Attention
// (the difftest covers [B] and [B T] against ONNX Runtime): [2B] end and
// start positions, [B S T] per query, unidirectional and attention_bias.
func TestMaskScores(t *testing.T) {
	scores := f32(make([]float32, 8), 1, 1, 2, 4) // B N S T = 1 1 2 4
	const f = -10000
	i32 := func(v []int32, shape ...int) *tensor.Tensor {
		return &tensor.Tensor{DType: tensor.Int32, Shape: shape, I32: v}
	}
	for _, tt := range []struct {
		name   string
		attrs  []modelgen.Attr
		inputs []*tensor.Tensor
		want   []float32
	}{
		{"end and start", nil, []*tensor.Tensor{scores, i32([]int32{3, 1}, 2)}, []float32{f, 0, 0, f, f, 0, 0, f}},
		{"per query", nil, []*tensor.Tensor{scores, i32([]int32{1, 0, 1, 1, 0, 1, 1, 1}, 1, 2, 4)}, []float32{0, f, 0, 0, f, 0, 0, 0}},
		{"unidirectional", []modelgen.Attr{modelgen.AInt("unidirectional", 1)}, []*tensor.Tensor{scores}, []float32{0, 0, 0, f, 0, 0, 0, 0}},
		{"bias", []modelgen.Attr{modelgen.AFloat("mask_filter_value", -5)}, []*tensor.Tensor{scores, i32([]int32{2}, 1), f32([]float32{1, 2, 3, 4}, 1, 1, 1, 4)},
			[]float32{1, 2, 3 - 5, 4 - 5, 1, 2, 3 - 5, 4 - 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runOp(t, opCase{opset: 17, op: opMaskScores, attrs: tt.attrs, inputs: tt.inputs})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, out[0], f32(tt.want, 1, 1, 2, 4), 0)
		})
	}
	_, err := runOp(t, opCase{opset: 17, op: opMaskScores, inputs: []*tensor.Tensor{scores, i32([]int32{1, 2, 3}, 3)}})
	wantErr(t, err, "mask_index", "shape [3]", "[1 4]")
}

// TestEinsumErrors checks that bad equations are refused naming the rule
// (results are checked against ONNX Runtime in the difftest package).
func TestEinsumErrors(t *testing.T) {
	a, b := f32(make([]float32, 6), 2, 3), f32(make([]float32, 8), 4, 2)
	eq := func(s string) []modelgen.Attr { return []modelgen.Attr{modelgen.AString("equation", s)} }
	for _, tt := range []struct {
		eq     string
		inputs []*tensor.Tensor
		frag   []string
	}{
		{"ij,jk->ik", []*tensor.Tensor{a, b}, []string{`letter 'j'`, "3 long", "4"}},
		{"ij->ix", []*tensor.Tensor{a}, []string{`output letter 'x'`, "no input term"}},
		{"ijk->i", []*tensor.Tensor{a}, []string{"3 letters", "rank 2"}},
		{"ij,jk->ik", []*tensor.Tensor{a}, []string{"2 terms for 1 inputs"}},
		{"i1->i", []*tensor.Tensor{a}, []string{"not a letter"}},
		{"ij->ii", []*tensor.Tensor{a}, []string{"repeats"}},
	} {
		_, err := runOp(t, opCase{opset: 17, op: "Einsum", attrs: eq(tt.eq), inputs: tt.inputs})
		wantErr(t, err, tt.frag...)
	}
}

// TestLoopFloat16ScanNoIterations checks that a Loop running no iteration
// stacks an empty float16 scan output as float32 (float16's form here).
func TestLoopFloat16ScanNoIterations(t *testing.T) {
	b := modelgen.NewBuilder("loop16", 17, 1)
	b.Input("x", tensor.Float32, []int64{2})
	b.Output("carried", tensor.Float32, []int64{2})
	b.Output("scan", tensor.Float16, []int64{-1, 2}, "n")
	body := b.Subgraph("body")
	body.Input("body/i", tensor.Int64, []int64{})
	body.Input("body/c", tensor.Bool, []int64{})
	body.Input("body/v", tensor.Float32, []int64{2})
	body.Node("Identity", []string{"body/c"}, nil, "body/c_out")
	body.Node("Identity", []string{"body/v"}, nil, "body/v_out")
	body.Node("Cast", []string{"body/v"}, []modelgen.Attr{modelgen.AInt("to", int64(tensor.Float16))}, "body/h")
	body.Output("body/c_out", tensor.Bool, []int64{})
	body.Output("body/v_out", tensor.Float32, []int64{2})
	body.Output("body/h", tensor.Float16, []int64{2})
	b.Node("Loop", []string{b.InitTensor("zero", tensor.FromI64([]int64{0})), "", "x"}, []modelgen.Attr{modelgen.AGraph("body", body)}, "carried", "scan")
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": f32([]float32{1, 2}, 2)})
	if err != nil {
		t.Fatal(err)
	}
	checkTensor(t, out["scan"], f32(nil, 0, 2), 0)
}

// TestRandomOps checks the random ops by their distributions: a seeded
// node draws the same values every run, an unseeded one fresh ones; means
// and spreads within 5 standard errors over 20,000 draws; Bernoulli's 0 and
// 1 are certain; Multinomial follows a dominant logit.
func TestRandomOps(t *testing.T) {
	const n = 20000
	run := func(b *modelgen.Builder, in map[string]*tensor.Tensor) (*Model, func() *tensor.Tensor) {
		m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m, func() *tensor.Tensor {
			out, err := m.Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			return out["y"]
		}
	}
	stats := func(v []float32) (mean, std float64) {
		for _, x := range v {
			mean += float64(x)
		}
		mean /= float64(len(v))
		for _, x := range v {
			std += (float64(x) - mean) * (float64(x) - mean)
		}
		return mean, math.Sqrt(std / float64(len(v)))
	}
	for _, tt := range []struct {
		op              string
		attrs           []modelgen.Attr
		mean, std, tolS float64
	}{
		{"RandomNormal", []modelgen.Attr{modelgen.AFloat("mean", 2), modelgen.AFloat("scale", 3)}, 2, 3, 0.1},
		{"RandomUniform", []modelgen.Attr{modelgen.AFloat("low", -1), modelgen.AFloat("high", 3)}, 1, 4 / math.Sqrt(12), 0.05},
	} {
		for _, seeded := range []bool{true, false} {
			b := modelgen.NewBuilder("random", 17, 1)
			b.Output("y", tensor.Float32, []int64{n})
			attrs := append([]modelgen.Attr{modelgen.AInts("shape", n)}, tt.attrs...)
			if seeded {
				attrs = append(attrs, modelgen.AFloat("seed", 7))
			}
			b.Node(tt.op, nil, attrs, "y")
			_, draw := run(b, nil)
			first, second := draw(), draw()
			mean, std := stats(first.F32)
			if math.Abs(mean-tt.mean) > 5*tt.std/math.Sqrt(n) || math.Abs(std-tt.std) > tt.tolS {
				t.Errorf("%s: mean %.3f std %.3f, want %.3f and %.3f", tt.op, mean, std, tt.mean, tt.std)
			}
			if same := slices.Equal(first.F32, second.F32); same != seeded {
				t.Errorf("%s seeded %v: two runs equal = %v", tt.op, seeded, same)
			}
		}
	}
	b := modelgen.NewBuilder("bernoulli", 17, 1)
	b.Input("p", tensor.Float32, []int64{4})
	b.Output("y", tensor.Float32, []int64{4})
	b.Node("Bernoulli", []string{"p"}, nil, "y")
	_, draw := run(b, map[string]*tensor.Tensor{"p": f32([]float32{0, 1, 0, 1}, 4)})
	checkTensor(t, draw(), f32([]float32{0, 1, 0, 1}, 4), 0)

	b = modelgen.NewBuilder("multinomial", 17, 1)
	b.Input("x", tensor.Float32, []int64{2, 3})
	b.Output("y", tensor.Int64, []int64{2, 50})
	b.Node("Multinomial", []string{"x"}, []modelgen.Attr{modelgen.AInt("sample_size", 50), modelgen.AInt("dtype", int64(tensor.Int64))}, "y")
	_, draw = run(b, map[string]*tensor.Tensor{"x": f32([]float32{0, 40, 0, 0, 0, 40}, 2, 3)})
	y := draw()
	for i, v := range y.I64 {
		if want := int64(1 + i/50); v != want {
			t.Fatalf("Multinomial with one dominant logit: sample %d is class %d, want %d", i, v, want)
		}
	}
}

// TestRandomWithinBudget checks that a random op's output counts against a
// run's memory budget (a 1 GiB draw under a 1 MiB limit is refused before
// the allocation).
func TestRandomWithinBudget(t *testing.T) {
	b := modelgen.NewBuilder("big random", 17, 1)
	b.Output("y", tensor.Float32, []int64{1 << 28})
	b.Node("RandomUniform", nil, []modelgen.Attr{modelgen.AInts("shape", 1<<28)}, "y")
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.RunWith(context.Background(), nil, RunOptions{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrBadInput) {
		t.Fatalf("1 GiB draw under a 1 MiB limit: %v, want ErrBadInput", err)
	}
	wantErr(t, err, "RandomUniform_1", "limit of 1 MiB") // sized as up to 8 bytes an element: the dtype may be double
}

// TestSignalOpsWithinBudget checks that sizes given at run time (a
// window's size, a DFT's length) count against the run's memory budget.
func TestSignalOpsWithinBudget(t *testing.T) {
	b := modelgen.NewBuilder("big window", 17, 1)
	b.Input("n", tensor.Int64, []int64{})
	b.Input("x", tensor.Float32, []int64{1, 8, 1})
	b.Input("len", tensor.Int64, []int64{})
	b.Output("w", tensor.Float32, []int64{-1}, "n")
	b.Output("f", tensor.Float32, []int64{1, -1, 2}, "bins")
	b.Node("HannWindow", []string{"n"}, nil, "w")
	b.Node("DFT", []string{"x", "len"}, nil, "f")
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x := f32(make([]float32, 8), 1, 8, 1)
	for _, tt := range []struct {
		name      string
		n, length int64
		node      string
	}{{"window", 1 << 28, 8, "HannWindow_1"}, {"dft length", 8, 1 << 26, "DFT_2"}} {
		_, err = m.RunWith(context.Background(), map[string]*tensor.Tensor{"n": tensor.FromI64([]int64{tt.n}), "x": x, "len": tensor.FromI64([]int64{tt.length})}, RunOptions{MaxBytes: 64 << 20})
		if !errors.Is(err, ErrBadInput) {
			t.Fatalf("%s: %v, want ErrBadInput", tt.name, err)
		}
		wantErr(t, err, tt.node, "limit of 64 MiB")
	}
}

// TestRunOwnedReleasesOnlyItsOwn checks which outputs RunOwned gives back:
// the one the run allocated, while outputs that are the caller's input or
// a constant never are; and that release may be called twice.
func TestRunOwnedReleasesOnlyItsOwn(t *testing.T) {
	b := modelgen.NewBuilder("owned", 17, 1)
	b.Input("x", tensor.Float32, []int64{8192})
	b.Output("y", tensor.Float32, []int64{8192})
	b.Output("same", tensor.Float32, []int64{8192})
	b.Output("k", tensor.Float32, []int64{8192})
	b.Node("Sigmoid", []string{"x"}, nil, "y")
	b.Node("Identity", []string{"x"}, nil, "same")
	b.Node("Identity", []string{b.Fill("konst", 2, 8192)}, nil, "k")
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x := f32(make([]float32, 8192), 8192)
	out, owned, err := m.run(context.Background(), map[string]*tensor.Tensor{"x": x}, RunOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(owned) != 1 || &owned[0][0] != &out["y"].F32[0] {
		t.Fatalf("owned buffers: %d, want exactly y's", len(owned))
	}
	_, release, err := m.RunOwned(context.Background(), map[string]*tensor.Tensor{"x": x}, RunOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	release()
	release() // a second call does nothing
	out, release, err = m.RunOwned(context.Background(), map[string]*tensor.Tensor{"x": x}, RunOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if out["y"].F32[0] != 0.5 || x.F32[0] != 0 || out["k"].F32[0] != 2 {
		t.Errorf("y %v, x %v, k %v: want 0.5, 0 and 2 (the input and the constant untouched)", out["y"].F32[0], x.F32[0], out["k"].F32[0])
	}
}

// TestControlFlowConcurrent runs one compiled model with an If and a Loop
// (and its branches' and body's compiled models) from several goroutines at
// once, each answer equal to the one run alone: the race detector (CI runs
// this test under it) checks that runs share nothing they write.
func TestControlFlowConcurrent(t *testing.T) {
	loop, err := compileGraph(t, modelgen.DoublingLoop(true), onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gru, err := compileGraph(t, modelgen.StreamingGRU(1), onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bl := func(v bool) *tensor.Tensor { return &tensor.Tensor{DType: tensor.Bool, Shape: []int{}, B: []bool{v}} }
	inputs := func(i int) (map[string]*tensor.Tensor, map[string]*tensor.Tensor) {
		x := make([]float32, 6*40)
		for j := range x {
			x[j] = float32((i+j)%7) / 7
		}
		return map[string]*tensor.Tensor{"x": f32([]float32{float32(i % 3), 1}, 2), "limit": f32([]float32{500}), "M": i64([]int64{int64(3 + i%5)})},
			map[string]*tensor.Tensor{"x": f32(x, 6, 1, 40), "h": f32(make([]float32, 64), 1, 1, 64), "reset": bl(i%2 == 0)}
	}
	want := make([][2]map[string]*tensor.Tensor, 8)
	for i := range want {
		li, gi := inputs(i)
		a, err := loop.RunWith(context.Background(), li, RunOptions{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		b, err := gru.RunWith(context.Background(), gi, RunOptions{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = [2]map[string]*tensor.Tensor{a, b}
	}
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for k := range 10 {
				i := (w + k) % len(want)
				li, gi := inputs(i)
				a, err := loop.RunWith(context.Background(), li, RunOptions{Threads: 2})
				if err == nil {
					var b map[string]*tensor.Tensor
					if b, err = gru.RunWith(context.Background(), gi, RunOptions{Threads: 2}); err == nil {
						if !slices.Equal(a["states"].F32, want[i][0]["states"].F32) || !slices.Equal(b["logits"].F32, want[i][1]["logits"].F32) {
							err = fmt.Errorf("input %d: a concurrent run answered differently", i)
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
