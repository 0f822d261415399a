package difftest

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/spindleml/spindle/internal/bench"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/quantize"
	"github.com/spindleml/spindle/internal/tensor"
)

// Whole int8 transformers cannot match ONNX Runtime to float32 rounding,
// though every quantized step does (TestQuantizedMatMulExact): a value
// within a last-bit difference of a rounding boundary of
// DynamicQuantizeLinear lands one step (1/255 of its range) apart, and the
// difference travels through the layers. So a whole model is held to
// ONNX Runtime's own quantization error: Spindle's int8 output may differ
// from the float32 model's by at most quantSlack times what ONNX Runtime's
// int8 output does, and from ONNX Runtime's int8 output by at most
// quantWhole of its largest magnitude (measured on this machine, 2 x 128
// tokens: MiniLM-L6 0.14-0.52% apart against a 0.9-1.0% quantization
// error, BERT-base 2.5% apart against 3.4%, its logits being small).
const (
	quantSlack = 2.0
	quantWhole = 0.05
)

// quantized returns a model generated as kind and quantized by
// `spindle model quantize` with opt, in a test folder.
func quantized(t *testing.T, kind string, opt quantize.Options) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "model.int8.onnx")
	rep, err := quantize.Dynamic(generated(t, kind), out, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Quantized == 0 {
		t.Fatalf("%s: nothing was quantized", kind)
	}
	return out
}

// TestQuantizedTransformers runs MiniLM-L6 and BERT-base quantized by
// `spindle model quantize` (per tensor, per channel, reduced range) against
// ONNX Runtime on the same files and against the float32 models.
func TestQuantizedTransformers(t *testing.T) {
	ort := reference(t)
	for _, kind := range []string{"minilm-l6", "bert-base"} {
		fp := generated(t, kind)
		for _, opt := range []quantize.Options{{}, {PerChannel: true}, {ReduceRange: true}} {
			path := quantized(t, kind, opt)
			for _, s := range []struct{ batch, seq int }{{1, 16}, {2, 128}} {
				name := fmt.Sprintf("%s/perchannel=%v/reduce=%v/batch%d_seq%d", kind, opt.PerChannel, opt.ReduceRange, s.batch, s.seq)
				t.Run(name, func(t *testing.T) {
					checkQuantized(t, ort, fp, path, tokens(s.batch, s.seq, uint64(s.seq)))
				})
			}
		}
	}
}

// checkQuantized runs the float32 model fp and its quantized form q8 in
// ONNX Runtime and q8 in Spindle on in, and holds Spindle to ONNX
// Runtime's own quantization error (quantSlack) and to quantWhole of ONNX
// Runtime's int8 output.
func checkQuantized(t *testing.T, ort *ORT, fp, q8 string, in map[string]*tensor.Tensor) {
	t.Helper()
	ctx := context.Background()
	names := outputNames(t, fp)
	ref, err := ort.Run(ctx, fp, in, names)
	if err != nil {
		t.Fatal(err)
	}
	o8, err := ort.Run(ctx, q8, in, names)
	if err != nil {
		t.Fatal(err)
	}
	s8, err := compile(t, q8).Run(ctx, in)
	if err != nil {
		t.Fatalf("spindle engine: %v", err)
	}
	for _, n := range names {
		ortErr, err := Compare(ref[n], o8[n], math.Inf(1))
		if err != nil {
			t.Fatalf("output %q: onnx runtime: %v", n, err)
		}
		ourErr, err := Compare(ref[n], s8[n], math.Inf(1))
		if err != nil {
			t.Fatalf("output %q: %v", n, err)
		}
		apart, err := Compare(o8[n], s8[n], quantWhole)
		t.Logf("output %q: int8 vs float32: onnx runtime %.3g, spindle %.3g; spindle vs onnx runtime int8: %v", n, ortErr.MaxAbs, ourErr.MaxAbs, apart)
		if err != nil {
			t.Errorf("output %q: %v", n, err)
		}
		if ourErr.MaxAbs > quantSlack*ortErr.MaxAbs+1e-6*ortErr.WantMax {
			t.Errorf("output %q: spindle's int8 error %.3g is more than %v times onnx runtime's %.3g", n, ourErr.MaxAbs, quantSlack, ortErr.MaxAbs)
		}
	}
}

// TestStaticQuantizedTransformer quantizes MiniLM-L6 statically (QDQ
// MatMuls, calibrated on generated token ids) and runs it against ONNX
// Runtime on the same file.
func TestStaticQuantizedTransformer(t *testing.T) {
	ort := reference(t)
	fp := generated(t, "minilm-l6")
	var calib []quantize.Calibration
	for i := range 2 {
		calib = append(calib, tokens(1, 16, uint64(50+i)))
	}
	q8 := filepath.Join(t.TempDir(), "model.qdq.onnx")
	if _, err := quantize.Static(fp, q8, quantize.Options{PerChannel: true}, calib); err != nil {
		t.Fatal(err)
	}
	checkQuantized(t, ort, fp, q8, tokens(2, 16, 9))
}

// TestStaticQuantizedCNNs quantizes CNNs statically (QDQ, calibrated on
// generated images, per tensor and per channel) with `spindle model
// quantize --mode static` and runs them against ONNX Runtime on the same
// files: ResNet-50 (int8 convolutions with residuals), MobileNetV2
// (depthwise, ReLU6) and the MNIST CNN.
func TestStaticQuantizedCNNs(t *testing.T) {
	ort := reference(t)
	for _, kind := range []string{"mnist-cnn", "resnet50", "mobilenet-v2"} {
		fp := generated(t, kind)
		m := compile(t, fp)
		src, err := onnx.Load(fp, onnx.Mmap)
		if err != nil {
			t.Fatal(err)
		}
		var calib []quantize.Calibration
		for i := range 2 {
			in, err := bench.GenerateInputs(m, src, nil, bench.Shape{Batch: 1}, uint64(100+i))
			if err != nil {
				t.Fatal(err)
			}
			calib = append(calib, in)
		}
		in, err := bench.GenerateInputs(m, src, nil, bench.Shape{Batch: 2}, 7)
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, perChannel := range []bool{false, true} {
			q8 := filepath.Join(t.TempDir(), "model.qdq.onnx")
			if _, err := quantize.Static(fp, q8, quantize.Options{PerChannel: perChannel}, calib); err != nil {
				t.Fatal(err)
			}
			t.Run(fmt.Sprintf("%s/perchannel=%v", kind, perChannel), func(t *testing.T) {
				checkQuantized(t, ort, fp, q8, in)
			})
		}
	}
}

// TestQuantizedMatMulExact runs one quantized MatMul (every weight and
// activation range, a K long enough for large sums) against ONNX Runtime:
// the integer path is exact, so the outputs must agree to float32
// rounding.
func TestQuantizedMatMulExact(t *testing.T) {
	ort := reference(t)
	for _, opt := range []quantize.Options{{}, {PerChannel: true}, {ReduceRange: true}} {
		b := modelgen.NewBuilder("qmm", 17, 3)
		b.Input("x", tensor.Float32, []int64{-1, 768}, "rows")
		w := b.Uniform("w", 0.1, 768, 300)
		b.Node("MatMul", []string{"x", w}, nil, "y")
		b.Output("y", tensor.Float32, []int64{-1, 300}, "rows")
		src := filepath.Join(t.TempDir(), "mm.onnx")
		if err := b.Save(src, modelgen.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "mm.int8.onnx")
		if _, err := quantize.Dynamic(src, out, opt); err != nil {
			t.Fatal(err)
		}
		c := diffCase{
			name:   fmt.Sprintf("perchannel=%v/reduce=%v", opt.PerChannel, opt.ReduceRange),
			model:  func(*testing.T) string { return out },
			inputs: map[string]*tensor.Tensor{"x": uniform(9, -3, 5, 37, 768)},
		}
		t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
	}
}

// TestQuantContribOps runs the com.microsoft quantized ops (expanded into
// default-domain ops) against ONNX Runtime's kernels for them. Float
// outputs agree to float32 rounding; requantised ones (dequantized here)
// may sit one step apart, where ONNX Runtime's fixed-point arithmetic and
// the dequantize-compute-quantize expansion round a value near a half
// differently.
func TestQuantContribOps(t *testing.T) {
	ort := reference(t)
	path := filepath.Join(t.TempDir(), "quant-contrib.onnx")
	if err := modelgen.QuantContribOps(1).Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	in := map[string]*tensor.Tensor{"x": uniform(1, -2, 3, 2, 16, 32), "x2": uniform(2, -1, 1, 2, 16, 32), "img": uniform(3, -1, 2, 1, 8, 5, 5)}
	names := outputNames(t, path)
	want, err := ort.Run(context.Background(), path, in, names)
	if err != nil {
		t.Fatal(err)
	}
	got, err := compile(t, path).Run(context.Background(), in)
	if err != nil {
		t.Fatalf("spindle engine: %v", err)
	}
	steps := map[string]float64{"qadd_f": 0.03, "qmul_f": 0.03, "qcat_f": 0.03, "qgap_f": 0.03, "qgap_last_f": 0.03, "qgemm_q_f": 0.03, "qsig_f": 1.0 / 255}
	for _, n := range names {
		d, err := Compare(want[n], got[n], math.Inf(1))
		if err != nil {
			t.Errorf("output %q: %v", n, err)
			continue
		}
		limit := tolerance * d.WantMax
		if s, ok := steps[n]; ok {
			limit = s * 1.001
		}
		t.Logf("output %q %s: %v (limit %.3g)", n, tensor.ShapeString(want[n].Shape), d, limit)
		if d.MaxAbs > limit {
			t.Errorf("output %q: max |diff| %.3g over %.3g", n, d.MaxAbs, limit)
		}
	}
}

// TestQDQMatMul runs MatMuls in QDQ form (a static quantizer's output)
// against ONNX Runtime: Spindle sums them in int8 (rewriteQDQ), as ONNX
// Runtime's QDQ transformer does, so only float32 rounding differs.
func TestQDQMatMul(t *testing.T) {
	ort := reference(t)
	for _, signed := range []bool{false, true} {
		for _, perChannel := range []bool{false, true} {
			path := filepath.Join(t.TempDir(), "qdq.onnx")
			if err := modelgen.QDQMatMul(1, signed, perChannel).Save(path, modelgen.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			c := diffCase{
				name:   fmt.Sprintf("signed=%v/perchannel=%v", signed, perChannel),
				model:  func(*testing.T) string { return path },
				inputs: map[string]*tensor.Tensor{"x": uniform(4, -3, 4, 33, 64)},
			}
			t.Run(c.name, func(t *testing.T) { check(t, ort, c) })
		}
	}
}
