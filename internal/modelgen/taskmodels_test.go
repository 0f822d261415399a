package modelgen

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestTaskModelsRun generates each small task model, compiles it and runs it
// on a batch of two, checking the declared outputs and their shapes.
func TestTaskModelsRun(t *testing.T) {
	ids := tensor.FromI64([]int64{101, 7592, 2088, 102, 101, 2023, 102, 0})
	ids.Shape = []int{2, 4}
	mask := tensor.FromI64([]int64{1, 1, 1, 1, 1, 1, 1, 0})
	mask.Shape = []int{2, 4}
	types := tensor.New(tensor.Int64, 2, 4)
	text := map[string]*tensor.Tensor{"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
	img := tensor.New(tensor.Float32, 2, 3, 32, 32)
	for i := range img.F32 {
		img.F32[i] = float32(i%17) / 17
	}
	tests := []struct {
		kind   string
		inputs map[string]*tensor.Tensor
		want   map[string]string // output -> shape
	}{
		{"tiny-bert", text, map[string]string{"last_hidden_state": "[2 4 64]", "sentence_embedding": "[2 64]"}},
		{"tiny-bert-cls", text, map[string]string{"logits": "[2 3]"}},
		{"tiny-image-cls", map[string]*tensor.Tensor{"pixel_values": img}, map[string]string{"logits": "[2 5]"}},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			dir := t.TempDir()
			if err := Generate(tc.kind, dir, 1); err != nil {
				t.Fatal(err)
			}
			src, err := onnx.Load(filepath.Join(dir, "model.onnx"), onnx.Mmap)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			m, err := engine.Compile(src)
			if err != nil {
				t.Fatal(err)
			}
			outs, err := m.Run(context.Background(), tc.inputs)
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != len(tc.want) {
				t.Fatalf("%d outputs, want %d", len(outs), len(tc.want))
			}
			for name, shape := range tc.want {
				o := outs[name]
				if o == nil {
					t.Fatalf("no output %q", name)
				}
				if got := tensor.ShapeString(o.Shape); got != shape {
					t.Errorf("%s: shape %s, want %s", name, got, shape)
				}
				if o.F32[0] == o.F32[1] {
					t.Errorf("%s: first two values are equal (%v): weights look constant", name, o.F32[0])
				}
			}
		})
	}
}
