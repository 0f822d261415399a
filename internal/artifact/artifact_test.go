package artifact

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

func load(t *testing.T, path string) (*onnx.Model, *engine.Model) {
	t.Helper()
	src, err := onnx.Load(path, onnx.Mmap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	m, err := engine.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	return src, m
}

// TestCompile writes artifacts of a transformer (MatMul weights) and a CNN
// (Gemm weights with transB) and checks that the engine uses every companion
// in place (no packed copy, nothing copied at load) and computes what the
// original model computes.
func TestCompile(t *testing.T) {
	ids := tensor.FromI64([]int64{5, 17, 99, 3, 42, 7}, 2, 3)
	img := tensor.New(tensor.Float32, 2, 1, 28, 28)
	for i := range img.F32 {
		img.F32[i] = float32(i%13) / 13
	}
	tests := []struct {
		kind   string
		packed int
		feeds  map[string]*tensor.Tensor
	}{
		// 2 layers x 6 dense MatMuls (no pooler in tiny-bert).
		{"tiny-bert", 12, map[string]*tensor.Tensor{"input_ids": ids, "attention_mask": tensor.FromI64([]int64{1, 1, 1, 1, 1, 0}, 2, 3), "token_type_ids": tensor.FromI64(make([]int64, 6), 2, 3)}},
		{"mnist-cnn", 2, map[string]*tensor.Tensor{"input": img}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			dir := t.TempDir()
			if err := modelgen.Generate(tt.kind, filepath.Join(dir, "orig"), 1); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "compiled", "model.spindle")
			rep, err := Compile(filepath.Join(dir, "orig", "model.onnx"), out)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Packed != tt.packed || rep.PackedBytes <= 0 || rep.DataFile != "model.spindle.data" {
				t.Errorf("report %+v, want %d companions in model.spindle.data", rep, tt.packed)
			}
			_, orig := load(t, filepath.Join(dir, "orig", "model.onnx"))
			src, comp := load(t, out)
			if src.Report.CopiedBytes != 0 {
				t.Errorf("artifact load copied %d bytes, want 0 (every tensor page-aligned)", src.Report.CopiedBytes)
			}
			if got := comp.Stats().PackedBytes; got != 0 {
				t.Errorf("PackedBytes = %d, want 0: companions are used in place", got)
			}
			want, err := orig.Run(context.Background(), tt.feeds)
			if err != nil {
				t.Fatal(err)
			}
			got, err := comp.Run(context.Background(), tt.feeds)
			if err != nil {
				t.Fatal(err)
			}
			for name, w := range want {
				g := got[name]
				if g == nil || len(g.F32) != len(w.F32) {
					t.Fatalf("output %s: got %v, want %v", name, g, w)
				}
				for i := range w.F32 {
					if math.Abs(float64(g.F32[i]-w.F32[i])) > 1e-5 {
						t.Fatalf("output %s[%d] = %v, original model gives %v", name, i, g.F32[i], w.F32[i])
					}
				}
			}
		})
	}
}
