package engine

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// mnistModels saves the generated MNIST CNN once, with its weights in an aligned
// external data file so that single and mmap modes view them in place, and
// compiles it in every load mode.
func mnistModels(t *testing.T) map[onnx.LoadMode]*Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	opt := modelgen.SaveOptions{ExternalData: "model.onnx.data"}
	if err := modelgen.MNISTCNN(1).Save(path, opt); err != nil {
		t.Fatal(err)
	}
	out := map[onnx.LoadMode]*Model{}
	for _, mode := range []onnx.LoadMode{onnx.Copy, onnx.Single, onnx.Mmap} {
		src, err := onnx.Load(path, mode)
		if err != nil {
			t.Fatalf("load %s: %v", mode, err)
		}
		t.Cleanup(func() { src.Close() })
		if mode != onnx.Copy && src.Report.CopiedTensors != 0 {
			t.Fatalf("load %s copied %d tensors; the test wants weights viewed in place", mode, src.Report.CopiedTensors)
		}
		m, err := Compile(src)
		if err != nil {
			t.Fatalf("compile %s: %v", mode, err)
		}
		out[mode] = m
	}
	return out
}

// digits returns n pseudo-random 28×28 images with pixels in [0, 1).
func digits(n int, seed uint64) *tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := tensor.New(tensor.Float32, n, 1, 28, 28)
	for i := range x.F32 {
		x.F32[i] = float32(rng.Float64())
	}
	return x
}

func runMNIST(t *testing.T, m *Model, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"input": x})
	if err != nil {
		t.Fatal(err)
	}
	y := out["output"]
	if y == nil || y.DType != tensor.Float32 || tensor.ShapeString(y.Shape) != tensor.ShapeString([]int{x.Shape[0], 10}) {
		t.Fatalf("output %v, want float32[%d 10]", y, x.Shape[0])
	}
	return y
}

func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestMNISTLoadModesAgree(t *testing.T) {
	models := mnistModels(t)
	x := digits(8, 1)
	xCopy := slices.Clone(x.F32)
	want := runMNIST(t, models[onnx.Copy], x)
	for _, mode := range []onnx.LoadMode{onnx.Single, onnx.Mmap} {
		if got := runMNIST(t, models[mode], x); !sameBits(got.F32, want.F32) {
			t.Errorf("mode %s: output differs from copy mode\n got  %v\n want %v", mode, got.F32[:10], want.F32[:10])
		}
	}
	if !sameBits(x.F32, xCopy) {
		t.Error("Run modified its input")
	}

	// Every row is a log-probability distribution, and not a constant one.
	for r := 0; r < 8; r++ {
		row := want.F32[r*10 : (r+1)*10]
		var s float64
		for _, v := range row {
			if v > 0 || math.IsNaN(float64(v)) {
				t.Fatalf("row %d: %v is not a log-probability", r, row)
			}
			s += math.Exp(float64(v))
		}
		if lse := math.Log(s); math.Abs(lse) > 1e-5 {
			t.Errorf("row %d: logsumexp %g, want 0", r, lse)
		}
		if slices.Min(row) == slices.Max(row) {
			t.Errorf("row %d is uniform: %v", r, row)
		}
	}

	// A second run allocates fresh outputs: nothing is shared between calls.
	again := runMNIST(t, models[onnx.Copy], x)
	if &again.F32[0] == &want.F32[0] {
		t.Error("two runs returned the same output buffer")
	}
	if !sameBits(again.F32, want.F32) {
		t.Error("a second run gave a different result")
	}
}

// TestMNISTBatchRows checks that a batch of 8 gives the rows that 8 batches of 1
// give. The tolerance allows a future blocked gemm to sum in another order.
func TestMNISTBatchRows(t *testing.T) {
	m := mnistModels(t)[onnx.Mmap]
	x := digits(8, 2)
	batch := runMNIST(t, m, x)
	for r := 0; r < 8; r++ {
		one := tensor.FromF32(x.F32[r*784:(r+1)*784], 1, 1, 28, 28)
		got := runMNIST(t, m, one)
		for j, v := range got.F32 {
			if d := math.Abs(float64(v - batch.F32[r*10+j])); d > 1e-5 {
				t.Fatalf("row %d class %d: batch of 1 gives %v, batch of 8 gives %v", r, j, v, batch.F32[r*10+j])
			}
		}
	}
}

// TestMNISTConcurrent runs one compiled model from 16 goroutines at once; every
// result must equal the serial one bit for bit (run with -race).
func TestMNISTConcurrent(t *testing.T) {
	m := mnistModels(t)[onnx.Mmap]
	const workers = 16
	inputs := make([]*tensor.Tensor, workers)
	want := make([]*tensor.Tensor, workers)
	for i := range inputs {
		inputs[i] = digits(1+i%3, uint64(100+i))
		want[i] = runMNIST(t, m, inputs[i])
	}
	got := make([]*tensor.Tensor, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := 0; rep < 3; rep++ {
				out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"input": inputs[i]})
				if err != nil {
					errs[i] = err
					return
				}
				if rep > 0 && !sameBits(out["output"].F32, got[i].F32) {
					errs[i] = errors.New("repeated runs on one goroutine disagree")
					return
				}
				got[i] = out["output"]
			}
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		if !sameBits(got[i].F32, want[i].F32) {
			t.Errorf("worker %d: concurrent result differs from the serial one", i)
		}
	}
}

func TestMNISTBadInputs(t *testing.T) {
	m := mnistModels(t)[onnx.Copy]
	good := digits(1, 3)
	tests := []struct {
		name   string
		inputs map[string]*tensor.Tensor
		frag   []string
	}{
		{"missing", map[string]*tensor.Tensor{}, []string{`"input"`, "missing"}},
		{"nil tensor", map[string]*tensor.Tensor{"input": nil}, []string{`"input"`, "missing"}},
		{"unknown name", map[string]*tensor.Tensor{"input": good, "image": good}, []string{`"image"`, "no such input", "input"}},
		{"wrong dtype", map[string]*tensor.Tensor{"input": tensor.New(tensor.Float64, 1, 1, 28, 28)}, []string{`"input"`, "float64", "float32"}},
		{"wrong rank", map[string]*tensor.Tensor{"input": tensor.New(tensor.Float32, 1, 28, 28)}, []string{`"input"`, "rank 3", "rank 4", "[N 1 28 28]"}},
		{"wrong static dim", map[string]*tensor.Tensor{"input": tensor.New(tensor.Float32, 2, 1, 28, 27)}, []string{`"input"`, "[2 1 28 27]", "dimension 3 must be 28"}},
		{"data too short", map[string]*tensor.Tensor{"input": tensor.FromF32(make([]float32, 10), 1, 1, 28, 28)}, []string{`"input"`, "784"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Run(context.Background(), tt.inputs)
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("got %v, want an error wrapping ErrBadInput", err)
			}
			wantErr(t, err, tt.frag...)
		})
	}
}

func TestMNISTCanceled(t *testing.T) {
	m := mnistModels(t)[onnx.Copy]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Run(ctx, map[string]*tensor.Tensor{"input": digits(1, 4)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
