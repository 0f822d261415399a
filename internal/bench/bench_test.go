package bench

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name  string
		times []time.Duration
		want  Latency
	}{
		{"none", nil, Latency{}},
		{"one", ms(7), Latency{Runs: 1, Median: 7, P90: 7, P99: 7, Mean: 7, Min: 7, Max: 7}},
		// Nearest rank: the median of 4 is the 2nd smallest, p90 the 4th.
		{"four unsorted", ms(4, 1, 3, 2), Latency{Runs: 4, Median: 2, P90: 4, P99: 4, Mean: 2.5, Min: 1, Max: 4}},
		{"ten", ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), Latency{Runs: 10, Median: 5, P90: 9, P99: 10, Mean: 5.5, Min: 1, Max: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summarize(tt.times); got != tt.want {
				t.Errorf("Summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// loadKind generates a model kind into a temporary folder and compiles it.
func loadKind(t *testing.T, kind string) (string, *engine.Model, *onnx.Model) {
	t.Helper()
	dir := t.TempDir()
	if err := modelgen.Generate(kind, dir, 1); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "model.onnx")
	src, err := onnx.Load(path, onnx.Copy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	m, err := engine.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	return path, m, src
}

func TestGenerateInputsTransformer(t *testing.T) {
	_, m, src := loadKind(t, "tiny-bert")
	given := tensor.FromI64([]int64{1, 1, 1}, 1, 3)
	in, err := GenerateInputs(m, src, map[string]*tensor.Tensor{"token_type_ids": given}, Shape{Batch: 1, Seq: 3}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if in["token_type_ids"] != given {
		t.Errorf("a given input was replaced")
	}
	ids, mask := in["input_ids"], in["attention_mask"]
	for name, x := range map[string]*tensor.Tensor{"input_ids": ids, "attention_mask": mask} {
		if x == nil || x.DType != tensor.Int64 || !slices.Equal(x.Shape, []int{1, 3}) {
			t.Fatalf("%s = %v, want int64 [1 3]", name, x)
		}
	}
	if !slices.Equal(mask.I64, []int64{1, 1, 1}) {
		t.Errorf("attention_mask = %v, want ones", mask.I64)
	}
	vocab := int64(modelgen.TinyBERT.Vocab)
	for _, id := range ids.I64 {
		if id < 0 || id >= vocab {
			t.Errorf("input id %d outside the vocabulary [0, %d)", id, vocab)
		}
	}
	// The generated inputs must be ones the model accepts.
	if _, err := m.Run(context.Background(), in); err != nil {
		t.Fatalf("Run on generated inputs: %v", err)
	}
}

func TestGenerateInputsImageBatch(t *testing.T) {
	_, m, src := loadKind(t, "mnist-cnn")
	in, err := GenerateInputs(m, src, nil, Shape{Batch: 3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	x := in["input"]
	if x == nil || x.DType != tensor.Float32 || !slices.Equal(x.Shape, []int{3, 1, 28, 28}) {
		t.Fatalf("input = %v, want float32 [3 1 28 28]", x)
	}
	for _, v := range x.F32 {
		if v < 0 || v >= 1 {
			t.Fatalf("pixel %v outside [0, 1)", v)
		}
	}
}

func TestEngineMeasures(t *testing.T) {
	path, _, _ := loadKind(t, "mnist-cnn")
	res, in, err := Engine(context.Background(), path, Options{Threads: 1, Runs: 3, Shape: Shape{Batch: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Engine != "spindle" || res.Threads != 1 || res.Runs != 3 {
		t.Errorf("result = %+v, want spindle, 1 thread, 3 runs", res)
	}
	if res.Min <= 0 || res.Min > res.Median || res.Median > res.Max || res.LoadMs <= 0 || res.FirstRunMs <= 0 {
		t.Errorf("timings out of order: %+v", res)
	}
	if res.Memory.AfterRuns == 0 || res.Memory.WeightBytes <= 0 {
		t.Errorf("memory = %+v, want readings and the weight size", res.Memory)
	}
	if got := in["input"]; got == nil || got.Shape[0] != 2 {
		t.Errorf("returned inputs = %v, want the batch-2 input it ran", in)
	}
}

// TestEngineOpsProfile checks the per-step profile: every step of the MNIST
// CNN once (its Relus and pools fused into the convolutions, a Relu into the
// first Gemm), the slowest first, their times adding up to no more than a
// run.
func TestEngineOpsProfile(t *testing.T) {
	path, _, _ := loadKind(t, "mnist-cnn")
	res, _, err := Engine(context.Background(), path, Options{Threads: 1, Runs: 3, Ops: true, Shape: Shape{Batch: 4}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var sum float64
	for i, o := range res.Ops {
		names = append(names, o.Name)
		sum += o.Ms
		if i > 0 && o.Ms > res.Ops[i-1].Ms {
			t.Errorf("step %s (%.4f ms) listed after a faster one (%.4f ms)", o.Name, o.Ms, res.Ops[i-1].Ms)
		}
	}
	slices.Sort(names)
	want := []string{"Conv_1+Relu_3+MaxPool_2", "Conv_4+Relu_6+MaxPool_5", "Flatten_7", "Gemm_10", "Gemm_8+Relu_9", "LogSoftmax_11"}
	if !slices.Equal(names, want) {
		t.Errorf("profiled steps %v, want %v", names, want)
	}
	if sum <= 0 || sum > res.Mean {
		t.Errorf("steps take %.4f ms per run in all, want more than 0 and at most the mean run, %.4f ms", sum, res.Mean)
	}
	// The MNIST CNN at batch 4: conv1 1->10 5x5 to 24x24, conv2 10->20 5x5
	// to 8x8, Gemm 320->50, Gemm 50->10.
	wantFLOPs := map[string]float64{
		"Conv_1+Relu_3+MaxPool_2": 2 * 4 * 10 * 24 * 24 * 25, "Conv_4+Relu_6+MaxPool_5": 2 * 4 * 20 * 8 * 8 * 10 * 25,
		"Gemm_8+Relu_9": 2 * 4 * 320 * 50, "Gemm_10": 2 * 4 * 50 * 10, "Flatten_7": 0, "LogSoftmax_11": 0,
	}
	for _, o := range res.Ops {
		if o.FLOPs != wantFLOPs[o.Name] || o.Bytes <= 0 {
			t.Errorf("step %s: %g FLOPs and %g bytes per run, want %g FLOPs and some bytes", o.Name, o.FLOPs, o.Bytes, wantFLOPs[o.Name])
		}
	}
	if res.Peak == nil || res.Peak.GFLOPS <= 0 || res.Peak.GBps <= 0 {
		t.Errorf("peak %+v, want both rates measured", res.Peak)
	}
	res, _, err = Engine(context.Background(), path, Options{Threads: 1, Runs: 1})
	if err != nil || res.Ops != nil {
		t.Errorf("without Options.Ops: ops %v, err %v; want none", res.Ops, err)
	}
}

// TestWriteOps checks the profile listing: the slowest steps first with
// their share of the median and their rates against the peak, then every
// step summed by op type.
func TestWriteOps(t *testing.T) {
	rows := []Comparison{{Case: "m", Threads: 2, Spindle: Result{Latency: Latency{Median: 10}, Peak: &Peak{GFLOPS: 100, GBps: 20}, Ops: []OpTime{
		{Name: "a", OpType: "MatMul", Ms: 4, FLOPs: 200e6, Bytes: 8e6}, {Name: "b", OpType: "Relu", Ms: 3, Bytes: 30e6}, {Name: "c", OpType: "MatMul", Ms: 2, FLOPs: 100e6, Bytes: 4e6},
	}}}}
	var out strings.Builder
	if err := WriteOps(&out, rows, 2); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			got = append(got, strings.Join(f, " "))
		}
	}
	want := []string{
		"m, 2 threads: steps by mean time per run",
		"peak measured here: 100.0 GFLOP/s (packed SGEMM), 20.0 GB/s (copy)",
		"ms share op GFLOP/s of peak GB/s of peak step",
		"4.000 40.0% MatMul 50.0 50% 2.0 10% a",
		"3.000 30.0% Relu - - 10.0 50% b",
		"6.000 60.0% MatMul 50.0 50% 2.0 10% all 2",
		"3.000 30.0% Relu - - 10.0 50% all 1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("WriteOps printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestGenerateInputsDims checks that Shape.Dims fills the dynamic dimensions
// after the batch in order, its last value repeated.
func TestGenerateInputsDims(t *testing.T) {
	b := modelgen.NewBuilder("img", 13, 1)
	b.Input("x", tensor.Float32, []int64{-1, 3, -1, -1, -1})
	b.Node("Relu", []string{"x"}, nil, "y")
	b.Output("y", tensor.Float32, nil)
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	src, err := onnx.Load(path, onnx.Copy)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	m, err := engine.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	in, err := GenerateInputs(m, src, nil, Shape{Batch: 2, Dims: []int{48, 192}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := tensor.ShapeString(in["x"].Shape); got != tensor.ShapeString([]int{2, 3, 48, 192, 192}) {
		t.Errorf("shape %s, want [2 3 48 192 192]", got)
	}
}
