package engine

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// onnxNodeTests is where Debian's libonnx-testdata installs the ONNX backend
// node tests (model.onnx plus test_data_set_0/{input,output}_N.pb per case).
const onnxNodeTests = "/usr/share/libonnx-testdata/data/node"

// conformanceCases selects the backend node tests of the ops implemented here.
var conformanceCases = regexp.MustCompile(`^test_(conv_with|maxpool|gemm|matmul_|softmax|logsoftmax|reshape|flatten|add|sub|mul|div|relu|dropout|constant$|identity$)`)

// conformanceSkips are selected cases the engine rejects on purpose, with why.
var conformanceSkips = map[string]string{
	"test_add_uint8":        "uint8 arithmetic is not implemented",
	"test_sub_uint8":        "uint8 arithmetic is not implemented",
	"test_mul_uint8":        "uint8 arithmetic is not implemented",
	"test_div_uint8":        "uint8 arithmetic is not implemented",
	"test_maxpool_2d_uint8": "MaxPool is float32 only",
	"test_maxpool_with_argmax_2d_precomputed_pads":    "MaxPool Indices output is not implemented",
	"test_maxpool_with_argmax_2d_precomputed_strides": "MaxPool Indices output is not implemented",
}

// TestONNXBackendNodeTests runs the official ONNX node tests of the supported
// ops against their reference outputs (relative tolerance 1e-4).
func TestONNXBackendNodeTests(t *testing.T) {
	ents, err := os.ReadDir(onnxNodeTests)
	if err != nil {
		t.Skipf("ONNX node tests not installed (apt install libonnx-testdata): %v", err)
	}
	ran := 0
	for _, e := range ents {
		name := e.Name()
		if !conformanceCases.MatchString(name) || strings.HasSuffix(name, "_expanded") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if why, ok := conformanceSkips[name]; ok {
				t.Skip(why)
			}
			ran++
			runNodeTest(t, filepath.Join(onnxNodeTests, name))
		})
	}
	if ran < 60 {
		t.Errorf("ran %d node tests, expected at least 60: did the test data layout change?", ran)
	}
}

func runNodeTest(t *testing.T, dir string) {
	t.Helper()
	src, err := onnx.Load(filepath.Join(dir, "model.onnx"), onnx.Copy)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]*tensor.Tensor{}
	for i, vi := range m.Inputs {
		in[vi.Name] = readTensorPB(t, filepath.Join(dir, "test_data_set_0", fmt.Sprintf("input_%d.pb", i)))
	}
	out, err := m.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i, vo := range m.Outputs {
		want := readTensorPB(t, filepath.Join(dir, "test_data_set_0", fmt.Sprintf("output_%d.pb", i)))
		got := out[vo.Name]
		if want.DType != tensor.Float32 {
			checkTensor(t, got, want, 0)
			continue
		}
		if got == nil || got.DType != want.DType || tensor.ShapeString(got.Shape) != tensor.ShapeString(want.Shape) {
			t.Fatalf("output %q: got %v, want %v", vo.Name, got, want)
		}
		for j, w := range want.F32 {
			if d := math.Abs(float64(got.F32[j] - w)); d > 1e-4*(1+math.Abs(float64(w))) {
				t.Fatalf("output %q element %d: got %v, want %v", vo.Name, j, got.F32[j], w)
			}
		}
	}
}

func readTensorPB(t *testing.T, path string) *tensor.Tensor {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tp onnxpb.TensorProto
	if err := proto.Unmarshal(b, &tp); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	x, err := onnx.TensorFromProto(&tp)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return x
}
