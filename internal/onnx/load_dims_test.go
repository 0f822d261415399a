package onnx_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestLoadRejectsOverflowingDims checks that an initializer whose dimensions
// multiply past an int (here to exactly 2^64, which wraps to 0) is refused
// rather than loaded as a huge tensor with no data, whether its (empty) data
// is raw bytes or typed fields.
func TestLoadRejectsOverflowingDims(t *testing.T) {
	tests := []struct {
		name string
		dims []int64
		raw  bool
	}{
		{"raw data, wraps to zero", []int64{1 << 32, 1 << 32}, true},
		{"typed fields, wraps to zero", []int64{1 << 32, 1 << 32}, false},
		{"raw data, empty but overflowing", []int64{1 << 40, 1 << 40, 0}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := modelgen.NewBuilder("t", 13, 1)
			b.Input("x", tensor.Float32, []int64{4})
			b.Fill("w", 1, 4)
			b.Node("Add", []string{"x", "w"}, nil, "y")
			b.Output("y", tensor.Float32, []int64{4})
			path := filepath.Join(t.TempDir(), "model.onnx")
			if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(path)
			m := &onnxpb.ModelProto{}
			if err := proto.Unmarshal(raw, m); err != nil {
				t.Fatal(err)
			}
			w := m.Graph.Initializer[0]
			w.Dims = tt.dims
			w.FloatData = nil
			w.RawData = nil
			if tt.raw {
				w.RawData = []byte{}
			}
			raw, _ = proto.Marshal(m)
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, mode := range []onnx.LoadMode{onnx.Copy, onnx.Single, onnx.Mmap} {
				got, err := onnx.Load(path, mode)
				if err == nil {
					got.Close()
					t.Fatalf("%s: loaded weight w of shape %v", mode, got.Weights["w"].Shape)
				}
				if !errors.Is(err, onnx.ErrBadModel) || !strings.Contains(err.Error(), "too many elements") {
					t.Errorf("%s: %v, want ErrBadModel saying too many elements", mode, err)
				}
			}
		})
	}
}
