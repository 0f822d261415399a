package quantize

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// model writes a graph with a shared input, two MatMuls on one weight, a
// MatMul of two activations, an embedding Gather and one along axis 1.
func model(t *testing.T, opset int64) string {
	t.Helper()
	b := modelgen.NewBuilder("q", opset, 1)
	b.Input("x", tensor.Float32, []int64{3, 8})
	b.Input("ids", tensor.Int64, []int64{4})
	w := b.Uniform("w", 1, 8, 6)
	table := b.Uniform("table", 1, 10, 8)
	b.Node("MatMul", []string{"x", w}, nil, "a")
	b.Node("MatMul", []string{"x", w}, nil, "b")
	b.Node("MatMul", []string{"x", b.Node("Transpose", []string{"x"}, nil)}, nil, "gram")
	b.Node("Gather", []string{table, "ids"}, nil, "emb")
	b.Node("Gather", []string{table, "ids"}, []modelgen.Attr{modelgen.AInt("axis", 1)}, "cols")
	for _, o := range []string{"a", "b", "gram", "emb", "cols"} {
		b.Output(o, tensor.Float32, nil)
	}
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return path
}

// ops counts the op types of the model at path, and returns its weights.
func ops(t *testing.T, path string) (map[string]int, map[string]*tensor.Tensor, int64) {
	t.Helper()
	src, err := onnx.Load(path, onnx.Copy)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, node := range src.Proto.GetGraph().GetNode() {
		n[node.GetOpType()]++
	}
	return n, src.Weights, src.Opset()
}

func TestDynamicRewritesMatMulsAndEmbeddings(t *testing.T) {
	src := model(t, 13)
	for _, tt := range []struct {
		name       string
		opt        Options
		matmuls    int // float MatMuls left
		gathersDQ  int // DequantizeLinear after Gathers
		scaleShape []int
	}{
		{"default", Options{}, 1, 1, nil},
		{"per-channel", Options{PerChannel: true}, 1, 1, []int{6}},
		{"matmul only", Options{OpTypes: []string{"MatMul"}}, 1, 0, nil},
		{"gather only", Options{OpTypes: []string{"Gather"}}, 3, 1, nil},
		{"exclude", Options{Exclude: []string{"MatMul_2"}}, 2, 1, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "q.onnx")
			rep, err := Dynamic(src, out, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			n, w, _ := ops(t, out)
			if n["MatMul"] != tt.matmuls || n["DequantizeLinear"] != tt.gathersDQ {
				t.Fatalf("ops %v: want %d float MatMuls and %d DequantizeLinear", n, tt.matmuls, tt.gathersDQ)
			}
			quantized := 3 - tt.matmuls
			if n["MatMulInteger"] != quantized || quantized > 0 && n["DynamicQuantizeLinear"] != 1 {
				t.Fatalf("ops %v: want %d MatMulInteger on one DynamicQuantizeLinear of x", n, quantized)
			}
			if rep.Quantized != quantized+tt.gathersDQ {
				t.Errorf("report %+v: %d nodes quantized, want %d", rep, rep.Quantized, quantized+tt.gathersDQ)
			}
			if quantized > 0 {
				q := w["w_quantized"]
				if q == nil || q.DType != tensor.Int8 || w["w"] != nil && tt.matmuls == 1 {
					t.Fatalf("weights: w_quantized %v, float w kept: %v", q, w["w"] != nil)
				}
				if s := w["w_scale"]; len(s.Shape) != len(tt.scaleShape) || len(s.Shape) == 1 && s.Shape[0] != 6 {
					t.Errorf("w_scale shape %v, want %v", s.Shape, tt.scaleShape)
				}
			}
		})
	}
}

// TestDynamicComputesWhatTheFloatModelDoes runs a quantized model in the
// engine: within the weights' and activations' quantization error of the
// float model, and its weights symmetric (zero points 0, |q| <= 127).
func TestDynamicComputesWhatTheFloatModelDoes(t *testing.T) {
	src := model(t, 17)
	out := filepath.Join(t.TempDir(), "q.onnx")
	if _, err := Dynamic(src, out, Options{PerChannel: true}); err != nil {
		t.Fatal(err)
	}
	_, w, _ := ops(t, out)
	for _, v := range w["w_zero_point"].I8 {
		if v != 0 {
			t.Fatalf("zero point %d, want 0 (symmetric)", v)
		}
	}
	for _, v := range w["w_quantized"].I8 {
		if v == -128 {
			t.Fatal("weight quantized to -128, outside the symmetric [-127, 127]")
		}
	}
	x := tensor.New(tensor.Float32, 3, 8)
	for i := range x.F32 {
		x.F32[i] = float32(math.Sin(float64(i)))
	}
	in := map[string]*tensor.Tensor{"x": x, "ids": tensor.FromI64([]int64{0, 7, 3, 3}, 4)}
	run := func(path string) map[string]*tensor.Tensor {
		m, err := onnx.Load(path, onnx.Copy)
		if err != nil {
			t.Fatal(err)
		}
		c, err := engine.Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	want, got := run(src), run(out)
	for _, name := range []string{"a", "b", "gram", "emb", "cols"} {
		var worst, scale float64
		for i, v := range want[name].F32 {
			worst = max(worst, math.Abs(float64(got[name].F32[i]-v)))
			scale = max(scale, math.Abs(float64(v)))
		}
		// 8-bit activations and weights: a few steps of 1/127 of the range.
		if worst > 0.03*scale {
			t.Errorf("output %s: max |diff| %.4g against a max of %.4g", name, worst, scale)
		}
	}
}

func TestDynamicRejectsWhatItCannotDo(t *testing.T) {
	src := model(t, 13)
	_, err := Dynamic(src, filepath.Join(t.TempDir(), "q.onnx"), Options{OpTypes: []string{"Conv"}})
	if !errors.Is(err, ErrOption) {
		t.Fatalf("op type Conv: %v, want ErrOption", err)
	}
}

// TestDynamicRaisesOldOpsets checks that a model below opset 11 (which has
// no DynamicQuantizeLinear) is raised to 11, and that per-channel tables
// stay per tensor below opset 13 (DequantizeLinear's axis).
func TestDynamicRaisesOldOpsets(t *testing.T) {
	src := model(t, 10)
	out := filepath.Join(t.TempDir(), "q.onnx")
	if _, err := Dynamic(src, out, Options{PerChannel: true}); err != nil {
		t.Fatal(err)
	}
	_, w, opset := ops(t, out)
	if opset != 11 {
		t.Errorf("opset %d, want 11", opset)
	}
	if s := w["table_scale"]; s == nil || s.Len() != 1 {
		t.Errorf("table_scale %v: want one scale below opset 13", s)
	}
}

// TestQuantizedModelRunsConcurrently runs one compiled int8 model from
// several goroutines with intra-op threads, as an instance's workers do:
// every run gives the single-threaded answer (go test -race checks the
// pooled and shared buffers).
func TestQuantizedModelRunsConcurrently(t *testing.T) {
	// Five panels of columns, so that threads split the multiplies.
	b := modelgen.NewBuilder("wide", 17, 2)
	b.Input("x", tensor.Float32, []int64{17, 256})
	h := b.Node("Relu", []string{b.Node("MatMul", []string{"x", b.Uniform("w1", 0.1, 256, 300)}, nil)}, nil)
	b.Node("MatMul", []string{h, b.Uniform("w2", 0.1, 300, 40)}, nil, "y")
	b.Output("y", tensor.Float32, nil)
	src := filepath.Join(t.TempDir(), "wide.onnx")
	if err := b.Save(src, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "q.onnx")
	if _, err := Dynamic(src, out, Options{PerChannel: true}); err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Load(out, onnx.Copy)
	if err != nil {
		t.Fatal(err)
	}
	c, err := engine.Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(tensor.Float32, 17, 256)
	for i := range x.F32 {
		x.F32[i] = float32(math.Cos(float64(i)))
	}
	in := map[string]*tensor.Tensor{"x": x}
	want, err := c.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for range 20 {
				got, err := c.RunWith(context.Background(), in, engine.RunOptions{Threads: 1 + g%3})
				if err != nil {
					errs <- err
					return
				}
				for name, w := range want {
					for i, v := range w.F32 {
						if got[name].F32[i] != v {
							errs <- fmt.Errorf("goroutine %d: output %s[%d] = %v, want %v", g, name, i, got[name].F32[i], v)
							return
						}
					}
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// convModel writes Conv -> BatchNormalization -> Relu -> Conv on x [1 3 8 8].
func convModel(t *testing.T, opset int64) string {
	t.Helper()
	b := modelgen.NewBuilder("c", opset, 3)
	b.Input("x", tensor.Float32, []int64{1, 3, 8, 8})
	y := b.Node("Conv", []string{"x", b.Uniform("w1", 0.5, 6, 3, 3, 3), b.Uniform("b1", 0.1, 6)}, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)})
	y = b.Node("BatchNormalization", []string{y, b.Fill("g", 1.5, 6), b.Uniform("be", 0.2, 6), b.Uniform("mu", 0.2, 6), b.Fill("var", 0.8, 6)}, nil)
	y = b.Node("Relu", []string{y}, nil)
	b.Node("Conv", []string{y, b.Uniform("w2", 0.5, 4, 6, 1, 1)}, nil, "y")
	b.Output("y", tensor.Float32, nil)
	path := filepath.Join(t.TempDir(), "c.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStaticQDQ checks the static form: BatchNormalization folded, every
// Conv reading a QuantizeLinear/DequantizeLinear pair and an int8 weight
// (per channel: one scale per filter, axis 0) and an int32 bias, and the
// result within quantization error of the float model.
func TestStaticQDQ(t *testing.T) {
	src := convModel(t, 13)
	x := tensor.New(tensor.Float32, 1, 3, 8, 8)
	for i := range x.F32 {
		x.F32[i] = float32(math.Sin(float64(i) / 3))
	}
	calib := []Calibration{{"x": x}}
	out := filepath.Join(t.TempDir(), "c.qdq.onnx")
	rep, err := Static(src, out, Options{PerChannel: true}, calib)
	if err != nil {
		t.Fatal(err)
	}
	n, w, _ := ops(t, out)
	if n["BatchNormalization"] != 0 || n["QuantizeLinear"] != 2 || n["DequantizeLinear"] != 5 || rep.Quantized != 2 {
		t.Fatalf("ops %v, report %+v: want BatchNormalization folded, 2 Q and 5 DQ (2 inputs, 2 weights, 1 bias)", n, rep)
	}
	if s := w["w2_scale"]; s == nil || s.Len() != 4 {
		t.Errorf("w2_scale %v: want one scale per filter (4)", s)
	}
	if q := w["w2_quantized"]; q == nil || q.DType != tensor.Int8 {
		t.Errorf("w2_quantized %v: want int8", q)
	}
	run := func(path string) *tensor.Tensor {
		m, err := onnx.Load(path, onnx.Copy)
		if err != nil {
			t.Fatal(err)
		}
		c, err := engine.Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Run(context.Background(), map[string]*tensor.Tensor{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		return res["y"]
	}
	want, got := run(src), run(out)
	var worst, top float64
	for i, v := range want.F32 {
		worst = max(worst, math.Abs(float64(got.F32[i]-v)))
		top = max(top, math.Abs(float64(v)))
	}
	if worst > 0.05*top {
		t.Errorf("max |diff| %.4g against a max of %.4g", worst, top)
	}
	if _, err := Static(convModel(t, 11), out, Options{PerChannel: true}, calib); !errors.Is(err, ErrOption) {
		t.Errorf("per channel at opset 11: %v, want ErrOption", err)
	}
	if _, err := Static(src, out, Options{}, nil); !errors.Is(err, ErrOption) {
		t.Errorf("no calibration: %v, want ErrOption", err)
	}
}
