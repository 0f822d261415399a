package artifact

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/quantize"
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
	bertFeeds := map[string]*tensor.Tensor{"input_ids": ids, "attention_mask": tensor.FromI64([]int64{1, 1, 1, 1, 1, 0}, 2, 3), "token_type_ids": tensor.FromI64(make([]int64, 6), 2, 3)}
	tests := []struct {
		kind   string
		int8   bool // quantized by quantize.Dynamic first
		packed int
		feeds  map[string]*tensor.Tensor
	}{
		// 2 layers x 6 dense MatMuls (no pooler in tiny-bert).
		{"tiny-bert", false, 12, bertFeeds},
		// The same MatMuls on int8 (MatMulInteger's B packed for the int8
		// kernels).
		{"tiny-bert", true, 12, bertFeeds},
		{"mnist-cnn", false, 2, map[string]*tensor.Tensor{"input": img}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/int8=%v", tt.kind, tt.int8), func(t *testing.T) {
			dir := t.TempDir()
			if err := modelgen.Generate(tt.kind, filepath.Join(dir, "orig"), 1); err != nil {
				t.Fatal(err)
			}
			origPath := filepath.Join(dir, "orig", "model.onnx")
			if tt.int8 {
				q := filepath.Join(dir, "orig", "model.int8.onnx")
				if _, err := quantize.Dynamic(origPath, q, quantize.Options{}); err != nil {
					t.Fatal(err)
				}
				origPath = q
			}
			out := filepath.Join(dir, "compiled", "model.spindle")
			rep, err := Compile(origPath, out)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Packed != tt.packed || rep.PackedBytes <= 0 || rep.DataFile != "model.spindle.data" {
				t.Errorf("report %+v, want %d companions in model.spindle.data", rep, tt.packed)
			}
			_, orig := load(t, origPath)
			src, comp := load(t, out)
			if src.Report.CopiedBytes != 0 {
				t.Errorf("artifact load copied %d bytes, want 0 (every tensor page-aligned)", src.Report.CopiedBytes)
			}
			if got := comp.Stats().PackedBytes; got != 0 {
				t.Errorf("PackedBytes = %d, want 0: companions are used in place", got)
			}
			checkLayout(t, out)
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

// checkLayout checks the order of the artifact's data file: initializers
// without a companion, then the companions, then the originals that have one
// (read only by a fallback), so that what a run reads is contiguous.
func checkLayout(t *testing.T, path string) {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(buf, &m); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, init := range m.GetGraph().GetInitializer() {
		names[init.GetName()] = true
	}
	group := func(name string) int {
		switch {
		case strings.HasSuffix(name, engine.PackedSuffix) || strings.HasSuffix(name, engine.PackedTransSuffix) || strings.HasSuffix(name, engine.PackedQSuffix):
			return 1
		case names[name+engine.PackedSuffix] || names[name+engine.PackedTransSuffix] || names[name+engine.PackedQSuffix]:
			return 2
		}
		return 0
	}
	type placed struct {
		name  string
		group int
		off   int64
	}
	var all []placed
	for _, init := range m.GetGraph().GetInitializer() {
		for _, e := range init.GetExternalData() {
			if e.GetKey() == "offset" {
				off, err := strconv.ParseInt(e.GetValue(), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, placed{init.GetName(), group(init.GetName()), off})
			}
		}
	}
	slices.SortFunc(all, func(a, b placed) int { return cmp.Compare(a.off, b.off) })
	seen := [3]int{}
	for i, p := range all {
		seen[p.group]++
		if i > 0 && p.group < all[i-1].group {
			t.Errorf("%s (group %d) at offset %d follows %s (group %d)", p.name, p.group, p.off, all[i-1].name, all[i-1].group)
		}
	}
	if seen[0] == 0 || seen[1] == 0 || seen[1] != seen[2] {
		t.Errorf("data file holds %v initializers (plain, companions, originals), want some of each and one original per companion", seen)
	}
}
