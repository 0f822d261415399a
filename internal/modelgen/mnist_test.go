package modelgen

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/onnx"
)

func TestMNISTCNNParams(t *testing.T) {
	if got := MNISTCNN(1).NumParams(); got != MNISTParams {
		t.Fatalf("MNISTCNN has %d parameters, want %d", got, MNISTParams)
	}
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	if err := Generate("mnist-cnn", filepath.Join(dir, "a"), 7); err != nil {
		t.Fatal(err)
	}
	if err := Generate("mnist-cnn", filepath.Join(dir, "b"), 7); err != nil {
		t.Fatal(err)
	}
	if err := Generate("mnist-cnn", filepath.Join(dir, "c"), 8); err != nil {
		t.Fatal(err)
	}
	read := func(sub string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, sub, "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := read("a"), read("b"), read("c")
	if !bytes.Equal(a, b) {
		t.Error("same seed gave different model files")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same model file")
	}

	m, err := onnx.Load(filepath.Join(dir, "a", "model.onnx"), onnx.Copy)
	if err != nil {
		t.Fatal(err)
	}
	if m.Opset() != 13 {
		t.Errorf("opset %d, want 13", m.Opset())
	}
	var ops []string
	for _, n := range m.Proto.GetGraph().GetNode() {
		ops = append(ops, n.GetOpType())
	}
	want := "Conv MaxPool Relu Conv MaxPool Relu Flatten Gemm Relu Gemm LogSoftmax"
	if got := strings.Join(ops, " "); got != want {
		t.Errorf("ops %q, want %q", got, want)
	}
	var n int64
	for _, w := range m.Weights {
		n += int64(w.Len())
		for _, v := range w.F32 {
			if v == 0 || v < -1 || v > 1 {
				t.Fatalf("weight value %v outside U(-1/sqrt(fan_in), 1/sqrt(fan_in))", v)
			}
		}
	}
	if n != MNISTParams {
		t.Errorf("loaded %d weights, want %d", n, MNISTParams)
	}
}

func TestGenerateUnknownKind(t *testing.T) {
	err := Generate("resnet-9000", t.TempDir(), 1)
	if err == nil || !strings.Contains(err.Error(), `"resnet-9000"`) || !strings.Contains(err.Error(), "mnist-cnn") {
		t.Fatalf("got %v, want an error naming the kind and listing mnist-cnn", err)
	}
}
