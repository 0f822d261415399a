package engine

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
)

// BenchmarkRunMiniLM runs a whole fused MiniLM-L6-shaped transformer (two
// layers, sequence 128) on one thread; with -benchmem it shows what one
// Run allocates.
func BenchmarkRunMiniLM(b *testing.B) {
	cfg := modelgen.MiniLML6
	cfg.Layers = 2
	path := filepath.Join(b.TempDir(), "model.onnx")
	if err := modelgen.Transformer(cfg, 1).Save(path, modelgen.SaveOptions{}); err != nil {
		b.Fatal(err)
	}
	src, err := onnx.Load(path, onnx.Copy)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	m, err := Compile(src)
	if err != nil {
		b.Fatal(err)
	}
	feeds := transformerFeeds(cfg, 1, 128, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Run(ctx, feeds); err != nil {
			b.Fatal(err)
		}
	}
}
