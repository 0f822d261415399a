package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestFoldShapeChain builds the chain exporters write to flatten a feature map,
// Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])), and checks that with
// a static input shape every node but the Reshape is folded, while a dynamic
// batch keeps the chain and still computes the same result.
func TestFoldShapeChain(t *testing.T) {
	build := func(batch int64) *modelgen.Builder {
		b := modelgen.NewBuilder("chain", 13, 1)
		b.Input("x", tensor.Float32, []int64{batch, 2, 3})
		b.Output("y", tensor.Float32, nil)
		shape := b.Node("Shape", []string{"x"}, nil)
		n := b.Node("Gather", []string{shape, b.InitTensor("zero", tensor.FromI64([]int64{0}))}, []modelgen.Attr{modelgen.AInt("axis", 0)})
		n = b.Node("Unsqueeze", []string{n, b.Ints64("axes", 0)}, nil)
		target := b.Node("Concat", []string{n, b.Ints64("minus1", -1)}, []modelgen.Attr{modelgen.AInt("axis", 0)})
		b.Node("Reshape", []string{"x", target}, nil, "y")
		return b
	}
	x := f32(seq(0, 12), 2, 2, 3)
	want := f32(seq(0, 12), 2, 6)
	tests := []struct {
		name       string
		batch      int64
		folded     int
		steps      int
		inputBatch []int
	}{
		{"static", 2, 4, 1, []int{2}},
		{"dynamic batch", -1, 0, 5, []int{2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := compileGraph(t, build(tt.batch), onnx.Copy, modelgen.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			st := m.Stats()
			if st.Nodes != 5 || st.Folded != tt.folded || st.Steps != tt.steps {
				t.Errorf("stats %+v, want 5 nodes, %d folded, %d steps", st, tt.folded, tt.steps)
			}
			for _, nb := range tt.inputBatch {
				in := f32(x.F32[:nb*6], nb, 2, 3)
				out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": in})
				if err != nil {
					t.Fatal(err)
				}
				checkTensor(t, out["y"], f32(want.F32[:nb*6], nb, 6), 0)
			}
		})
	}
}

// TestFoldWeights checks that a Transpose of a weight and arithmetic on Constant
// nodes run once at compile time, that the weights they consumed are not kept
// for Run, and that a folded value can be a graph output.
func TestFoldWeights(t *testing.T) {
	b := modelgen.NewBuilder("weights", 13, 1)
	b.Input("x", tensor.Float32, []int64{1, 3})
	b.Output("y", tensor.Float32, nil)
	b.Output("k", tensor.Float32, nil)
	w := b.Init("w", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}) // [out in], as nn.Linear stores it
	wt := b.Node("Transpose", []string{w}, []modelgen.Attr{modelgen.AInts("perm", 1, 0)})
	two := b.Init("two", nil, []float32{2})
	scaled := b.Node("Mul", []string{wt, two}, nil)
	b.Node("MatMul", []string{"x", scaled}, nil, "y")
	b.Node("Add", []string{two, two}, nil, "k")
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Folded != 3 || st.Steps != 1 || st.FoldedBytes != 24+24+4 {
		t.Errorf("stats %+v, want 3 folded nodes (52 bytes) and 1 step", st)
	}
	if len(m.consts) != 2 {
		t.Errorf("Run starts from %d constants, want 2 (the folded weight and output k); w and two are dead", len(m.consts))
	}
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": f32([]float32{1, 1, 1}, 1, 3)})
	if err != nil {
		t.Fatal(err)
	}
	checkTensor(t, out["y"], f32([]float32{12, 30}, 1, 2), 0)
	checkTensor(t, out["k"], f32([]float32{4}), 0)
}

// TestFoldLimits checks what Compile must not fold: a constant far larger than
// its inputs (it would multiply the model's memory), and a node whose kernel
// fails on its constant inputs: it would fail every Run, so Compile refuses
// the model, naming the node and the failure.
func TestFoldLimits(t *testing.T) {
	t.Run("huge output", func(t *testing.T) {
		b := modelgen.NewBuilder("huge", 13, 1)
		b.Input("x", tensor.Float32, []int64{1})
		b.Output("y", tensor.Float32, nil)
		big := b.Node("ConstantOfShape", []string{b.Ints64("shape", 1<<30)}, nil)
		b.Node("Add", []string{"x", big}, nil, "y")
		m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st := m.Stats(); st.Folded != 0 || st.Steps != 2 {
			t.Errorf("stats %+v, want ConstantOfShape of 4 GiB left unfolded", st)
		}
	})
	t.Run("failing kernel", func(t *testing.T) {
		b := modelgen.NewBuilder("divzero", 13, 1)
		b.Input("x", tensor.Int64, []int64{1})
		b.Output("y", tensor.Int64, nil)
		q := b.Node("Div", []string{b.Ints64("one", 1), b.Ints64("zero", 0)}, nil)
		b.Node("Add", []string{"x", q}, nil, "y")
		_, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
		if !errors.Is(err, onnx.ErrBadModel) {
			t.Errorf("Compile error %v, want one wrapping onnx.ErrBadModel", err)
		}
		wantErr(t, err, "Div", "division by zero")
	})
}

// TestFoldTransformer compiles a small generated BERT twice, once with its
// declared dynamic [batch sequence] inputs and once with the inputs declared
// static, and checks that the static compile folds the Shape chains (fewer
// steps) without changing any output bit.
func TestFoldTransformer(t *testing.T) {
	cfg := modelgen.TransformerConfig{Name: "tiny", Layers: 2, Hidden: 32, Heads: 4, FFN: 64, Vocab: 50,
		MaxPos: 16, TypeVocab: 2, Eps: 1e-12, FusedLayerNorm: true}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := modelgen.Transformer(cfg, 3).Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	const B, S = 2, 7
	compile := func(static bool) *Model {
		src, err := onnx.Load(path, onnx.Copy)
		if err != nil {
			t.Fatal(err)
		}
		if static {
			for _, in := range src.Proto.GetGraph().GetInput() {
				for i, d := range in.GetType().GetTensorType().GetShape().GetDim() {
					d.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: []int64{B, S}[i]}
				}
			}
		}
		m, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	dyn, stat := compile(false), compile(true)
	if d, s := dyn.Stats(), stat.Stats(); s.Steps >= d.Steps || s.Folded <= d.Folded {
		t.Errorf("static shapes folded nothing more: dynamic %+v, static %+v", d, s)
	}
	for _, st := range stat.steps {
		if st.node.OpType == "Shape" || st.node.OpType == "Concat" {
			t.Errorf("static shapes left %s node %q unfolded", st.node.OpType, st.node.Name)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ids, mask, types := tensor.New(tensor.Int64, B, S), tensor.New(tensor.Int64, B, S), tensor.New(tensor.Int64, B, S)
	for i := range ids.I64 {
		ids.I64[i] = rng.Int64N(cfg.Vocab)
		mask.I64[i] = int64(min(1, rng.IntN(4)))
		types.I64[i] = int64(rng.IntN(2))
	}
	in := map[string]*tensor.Tensor{"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
	want, err := dyn.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := stat.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		checkTensor(t, got[name], w, 0)
	}
}

// TestFloat16Inputs checks that a float16 graph input takes float32 values, the
// engine's representation of float16.
func TestFloat16Inputs(t *testing.T) {
	b := modelgen.NewBuilder("half", 13, 1)
	b.Input("x", tensor.Float16, []int64{2})
	b.Output("y", tensor.Float32, nil)
	b.Node("Relu", []string{"x"}, nil, "y")
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": f32([]float32{-1, 2}, 2)})
	if err != nil {
		t.Fatal(err)
	}
	checkTensor(t, out["y"], f32([]float32{0, 2}, 2), 0)
	_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"x": tensor.FromI64([]int64{1, 2}, 2)})
	if !errors.Is(err, ErrBadInput) {
		t.Errorf("int64 for a float16 input: got %v, want ErrBadInput", err)
	}
}

// TestFloat16Weights checks that float16 initializers stay float16 at load,
// that Compile widens those a kernel cannot read as float16 (an Add's) and
// keeps the MatMul weight as it is mapped, that Stats says which is which,
// and that both compute.
func TestFloat16Weights(t *testing.T) {
	b := modelgen.NewBuilder("half", 13, 1)
	b.Input("x", tensor.Float32, []int64{1, 3})
	b.Output("y", tensor.Float32, nil)
	b.Node("MatMul", []string{b.Node("Add", []string{"x", "w"}, nil), "m"}, nil, "y")
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	src, err := onnx.Load(path, onnx.Copy)
	if err != nil {
		t.Fatal(err)
	}
	// 1, -2 and 0.5 as IEEE half-precision bit patterns: w = [1 -2 0.5], m
	// the 3x2 matrix [[1 -2] [0.5 1] [-2 0.5]].
	dt, half := int32(tensor.Float16), []byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38}
	mat := []byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38}
	mp := proto.Clone(src.Proto).(*onnxpb.ModelProto)
	mp.Graph.Initializer = append(mp.Graph.Initializer,
		&onnxpb.TensorProto{Name: proto.String("w"), Dims: []int64{3}, DataType: &dt, RawData: half},
		&onnxpb.TensorProto{Name: proto.String("m"), Dims: []int64{3, 2}, DataType: &dt, RawData: mat})
	raw, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if src, err = onnx.Load(path, onnx.Mmap); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if r := src.Report; r.Float16Tensors != 2 || r.WidenedBytes != 0 || !strings.Contains(r.String(), "(2 float16)") {
		t.Errorf("report %+v (%s), want 2 float16 tensors, nothing widened", r, r)
	}
	if w := src.Weights["m"]; w.DType != tensor.Float16 || len(w.U16) != 6 {
		t.Errorf("weight m loaded as %s, want float16 [3 2] held as float16", w)
	}
	m, err := Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.HalfBytes != 12 || st.WidenedBytes != 12 {
		t.Errorf("HalfBytes %d, WidenedBytes %d: want 12 (m kept) and 12 (w widened)", st.HalfBytes, st.WidenedBytes)
	}
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": f32([]float32{1, 1, 1}, 1, 3)})
	if err != nil {
		t.Fatal(err)
	}
	// x + w = [2 -1 1.5]; times m: [2 - 0.5 - 3, -4 - 1 + 0.75].
	checkTensor(t, out["y"], f32([]float32{-1.5, -4.25}, 1, 2), 0)
}

// TestPackedWeights checks that constant MatMul and Gemm weights are packed at
// compile time (Stats.PackedBytes), that KeepWeightsUnpacked turns that off,
// and that both compute the same outputs.
func TestPackedWeights(t *testing.T) {
	b := modelgen.NewBuilder("packed", 13, 1)
	b.Input("x", tensor.Float32, []int64{-1, 3, 20})
	b.Output("y", tensor.Float32, nil)
	b.Output("z", tensor.Float32, nil)
	w := b.Uniform("w", 1, 20, 17)
	b.Node("MatMul", []string{"x", w}, nil, "y")
	flat := b.Node("Flatten", []string{"x"}, []modelgen.Attr{modelgen.AInt("axis", 2)})
	wt := b.Uniform("wt", 1, 5, 20) // [N K] with transB
	b.Node("Gemm", []string{flat, wt, b.Uniform("c", 1, 5)}, []modelgen.Attr{modelgen.AInt("transB", 1), modelgen.AFloat("alpha", 0.5)}, "z")
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	src, err := onnx.Load(path, onnx.Mmap)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	packed, err := Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := CompileWith(src, Options{KeepWeightsUnpacked: true})
	if err != nil {
		t.Fatal(err)
	}
	// Panels are 16 columns wide: 17 columns take 2 panels, 5 take 1.
	if got, want := packed.Stats().PackedBytes, int64(4*(20*32+20*16)); got != want {
		t.Errorf("PackedBytes = %d, want %d", got, want)
	}
	if got := plain.Stats().PackedBytes; got != 0 {
		t.Errorf("PackedBytes with KeepWeightsUnpacked = %d, want 0", got)
	}
	x := tensor.New(tensor.Float32, 2, 3, 20)
	for i := range x.F32 {
		x.F32[i] = float32(i%7) - 3
	}
	want, err := plain.Run(context.Background(), map[string]*tensor.Tensor{"x": x})
	if err != nil {
		t.Fatal(err)
	}
	got, err := packed.Run(context.Background(), map[string]*tensor.Tensor{"x": x})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"y", "z"} {
		checkTensor(t, got[name], want[name], 1e-5)
	}
}

// TestShapeCheck checks that Run rejects a kernel output whose shape differs
// from the one Compile inferred (later folded constants may depend on it), by
// corrupting the inferred shape of a compiled model.
func TestShapeCheck(t *testing.T) {
	b := modelgen.NewBuilder("check", 13, 1)
	b.Input("x", tensor.Float32, []int64{2})
	b.Output("y", tensor.Float32, nil)
	b.Node("Relu", []string{"x"}, nil, "y")
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.shapes[m.outSlot[0]]; len(got) != 1 || got[0] != 2 {
		t.Fatalf("inferred shape of y: %v, want [2]", got)
	}
	m.shapes[m.outSlot[0]] = []int{3}
	_, err = m.Run(context.Background(), map[string]*tensor.Tensor{"x": f32([]float32{1, 2}, 2)})
	wantErr(t, err, "Relu", "shape [2]", "inference said [3]")
}
