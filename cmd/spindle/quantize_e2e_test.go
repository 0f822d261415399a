package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/npy"
	"github.com/spindleml/spindle/internal/tensor"
)

// writeImageNpy writes a 1x3x32x32 float32 image as work/img.npy.
func writeImageNpy(t *testing.T, work string) string {
	t.Helper()
	img := tensor.New(tensor.Float32, 1, 3, 32, 32)
	for i := range img.F32 {
		img.F32[i] = float32(i%17) / 17
	}
	path := filepath.Join(work, "img.npy")
	if err := npy.WriteFile(path, img); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestQuantizeEndToEnd quantizes a model with `spindle model quantize`,
// deploys a float32 model with `spindle deploy --quantize int8` beside the
// same model unquantized, and checks the int8 function's sentence
// embeddings against the float32 one's over a set of texts; bad options
// exit 2 without touching anything.
func TestQuantizeEndToEnd(t *testing.T) {
	work := t.TempDir()
	mustRun(t, "model", "gen", "tiny-bert", "-o", filepath.Join(work, "tb"))
	src := filepath.Join(work, "tb", "model.onnx")
	out := mustRun(t, "model", "quantize", src, "-o", filepath.Join(work, "q", "model.int8.onnx"), "--per-channel")
	if !strings.Contains(out, "nodes on int8") {
		t.Fatalf("quantize: %q", out)
	}
	for _, name := range []string{"model.int8.onnx", "model.int8.onnx.data"} {
		if st, err := os.Stat(filepath.Join(work, "q", name)); err != nil || st.Size() == 0 {
			t.Fatalf("quantize wrote no %s: %v", name, err)
		}
	}
	wantExit2(t, "--op-types \"Conv\": dynamic quantization covers MatMul and Gather", "model", "quantize", src, "-o", filepath.Join(work, "x.onnx"), "--op-types", "Conv")
	wantExit2(t, "-o: required", "model", "quantize", src)
	wantExit2(t, "--mode", "model", "quantize", src, "-o", filepath.Join(work, "x.onnx"), "--mode", "qat")
	wantExit2(t, "only with --mode static", "model", "quantize", src, "-o", filepath.Join(work, "x.onnx"), "--calibration-sets", "3")
	wantExit2(t, "--calibrate", "model", "quantize", src, "-o", filepath.Join(work, "x.onnx"), "--mode", "static", "--calibrate", "nope")
	wantExit2(t, "static quantization covers Conv and MatMul", "model", "quantize", src, "-o", filepath.Join(work, "x.onnx"), "--mode", "static", "--op-types", "Gather")

	// Static (QDQ): a CNN calibrated on generated images.
	mustRun(t, "model", "gen", "tiny-image-cls", "-o", filepath.Join(work, "img"))
	out = mustRun(t, "model", "quantize", filepath.Join(work, "img", "model.onnx"), "-o", filepath.Join(work, "img", "model.qdq.onnx"), "--mode", "static", "--per-channel", "--calibration-sets", "2")
	if !strings.Contains(out, "(static)") || !strings.Contains(out, "nodes on int8") {
		t.Fatalf("quantize --mode static: %q", out)
	}
	mustRun(t, "run", "--model", filepath.Join(work, "img", "model.qdq.onnx"), "--input", "pixel_values="+writeImageNpy(t, work), "--out", filepath.Join(work, "img-out"))
	wantExit2(t, "the only mode is int8", "deploy", "e", "--model", src, "--quantize", "int4")
	if _, err := os.Stat(filepath.Join(work, "x.onnx")); err == nil {
		t.Fatal("a refused quantize wrote its output")
	}

	tok := realTokenizer(t, work)
	p := startPlatform(t, filepath.Join(work, "home"))
	gw := "--gateway=" + p.url
	mustRun(t, "deploy", "fp32", "--model", src, "--task", "embedding", "--file", tok, gw)
	r := spindle(t, "deploy", "int8", "--model", src, "--quantize", "int8", "--task", "embedding", "--file", tok, gw)
	if r.code != 0 || !strings.Contains(r.stderr, "quantized") || !strings.Contains(r.stdout, "deployed int8") {
		t.Fatalf("deploy --quantize int8: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	embed := func(fn, text string) []float32 {
		body, _ := json.Marshal(map[string]string{"text": text})
		code, b := postAs(t, p.url+"/v1/tasks/"+fn, "application/json", body)
		var got struct{ Embedding []float32 }
		if code != 200 || json.Unmarshal(b, &got) != nil || len(got.Embedding) == 0 {
			t.Fatalf("%s: got %d %s", fn, code, b)
		}
		return got.Embedding
	}
	for _, text := range []string{
		"a cat sat on the mat",
		"Spindle starts models in milliseconds.",
		"The quick brown fox jumps over the lazy dog.",
		"int8 weights take a quarter of the memory of float32 ones",
		"Serverless inference without cold starts",
	} {
		a, b := embed("fp32", text), embed("int8", text)
		if len(a) != len(b) {
			t.Fatalf("%q: %d and %d values", text, len(a), len(b))
		}
		var dot, na, nb float64
		for i := range a {
			dot += float64(a[i]) * float64(b[i])
			na += float64(a[i]) * float64(a[i])
			nb += float64(b[i]) * float64(b[i])
		}
		cos := dot / math.Sqrt(na*nb)
		t.Logf("%q: cosine %.5f", text, cos)
		if cos < 0.99 {
			t.Errorf("%q: int8 embedding's cosine with the float32 one is %.4f, want >= 0.99", text, cos)
		}
	}
}
