package modelgen

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestCNNs builds every convolutional network, checks its parameter count
// against the published architecture's (within 2%: torchvision's layers with
// our BatchNormalization nodes), compiles it and runs one image, checking the
// outputs' shapes.
func TestCNNs(t *testing.T) {
	tests := []struct {
		kind   string
		params int64 // published, in the classifier's own count
		size   int
		outs   map[string][]int
	}{
		{"mobilenet-v2", 3504872, 224, map[string][]int{"output": {1, 1000}}},
		{"mobilenet-v3-small", 2542856, 224, map[string][]int{"output": {1, 1000}}},
		{"resnet50", 25557032, 224, map[string][]int{"output": {1, 1000}}},
		{"efficientnet-b0", 5288548, 224, map[string][]int{"output": {1, 1000}}},
		{"unet", 0, 256, map[string][]int{"output": {1, 2, 256, 256}}},
		{"yolo-style", 0, 320, map[string][]int{"p8": {1, 85, 40, 40}, "p16": {1, 85, 20, 20}, "p32": {1, 85, 10, 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			dir := t.TempDir()
			g := generators[tt.kind]
			b := g.build(1)
			if err := b.Save(filepath.Join(dir, "model.onnx"), g.save); err != nil {
				t.Fatal(err)
			}
			if tt.params > 0 {
				got := b.NumParams()
				if d := float64(got-tt.params) / float64(tt.params); d > 0.02 || d < -0.02 {
					t.Errorf("%d parameters, the published network has %d", got, tt.params)
				}
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
			x := tensor.New(tensor.Float32, 1, 3, tt.size, tt.size)
			for i := range x.F32 {
				x.F32[i] = float32(i%255)/255 - 0.5
			}
			out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"input": x})
			if err != nil {
				t.Fatal(err)
			}
			for name, shape := range tt.outs {
				y := out[name]
				if y == nil || tensor.ShapeString(y.Shape) != tensor.ShapeString(shape) {
					t.Errorf("output %s: %v, want shape %v", name, y, shape)
				}
			}
		})
	}
}
