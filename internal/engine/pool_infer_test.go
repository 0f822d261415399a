package engine

import (
	"context"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestAveragePoolDilationsBeforeOpset19 checks that shape inference and the
// kernel agree that AveragePool has no dilations before opset 19 (a model
// setting them got an internal error from Run, inference having applied
// them), and that both apply them from opset 19.
func TestAveragePoolDilationsBeforeOpset19(t *testing.T) {
	tests := []struct {
		opset int64
		want  []int
	}{
		{13, []int{1, 1, 4, 4}}, // 5x5 input, 2x2 window, dilations ignored
		{19, []int{1, 1, 3, 3}}, // dilated window spans 3
	}
	for _, tt := range tests {
		b := modelgen.NewBuilder("avgpool", tt.opset, 1)
		b.Input("x", tensor.Float32, []int64{1, 1, 5, 5})
		b.Node("AveragePool", []string{"x"}, []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("dilations", 2, 2)}, "y")
		b.Output("y", tensor.Float32, nil)
		m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
		if err != nil {
			t.Fatalf("opset %d: %v", tt.opset, err)
		}
		out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": randTensor(1, 1, 1, 5, 5)})
		if err != nil {
			t.Fatalf("opset %d: %v", tt.opset, err)
		}
		if got := out["y"].Shape; tensor.ShapeString(got) != tensor.ShapeString(tt.want) {
			t.Errorf("opset %d: shape %v, want %v", tt.opset, got, tt.want)
		}
	}
}
