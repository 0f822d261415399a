package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestCheckInputsBoundsEmptyShapes checks that Run refuses input shapes
// outside tensor.CheckShape's bounds even when they hold no elements, with
// an error wrapping ErrBadInput that names the input and the rule.
func TestCheckInputsBoundsEmptyShapes(t *testing.T) {
	b := modelgen.NewBuilder("limits", 13, 1)
	b.Input("x", tensor.Float32, []int64{-1, -1, -1})
	b.Node("Identity", []string{"x"}, nil, "y")
	b.Output("y", tensor.Float32, nil)
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		shape []int
		want  string // "" for accepted
	}{
		{"empty", []int{1 << 20, 0, 3}, ""},
		{"dimension over the bound", []int{1 << 32, 0, 1}, "dimension 0 is 4294967296, more than 2147483648"},
		{"non-zero dimensions multiply past the bound", []int{1 << 20, 0, 1 << 20}, "non-zero dimensions is more than 2147483648"},
		{"product wraps to zero", []int{1 << 32, 1 << 32, 1}, "more than 2147483648"},
	}
	for _, tt := range tests {
		_, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": tensor.FromF32(nil, tt.shape...)})
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), `input "x"`) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrBadInput naming input \"x\" and saying %q", tt.name, err, tt.want)
		}
	}
}
