package engine

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// compileBoth saves b and compiles it with and without fusion.
func compileBoth(t *testing.T, b *modelgen.Builder) (fused, plain *Model) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	src, err := onnx.Load(path, onnx.Copy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if fused, err = CompileWith(src, Options{}); err != nil {
		t.Fatal(err)
	}
	if plain, err = CompileWith(src, Options{NoFusion: true}); err != nil {
		t.Fatal(err)
	}
	return fused, plain
}

// scalarConst adds a Constant node holding v, as exporters write scalars.
func scalarConst(b *modelgen.Builder, v float32) string {
	return b.Node("Constant", nil, []modelgen.Attr{tensorAttr("value", f32([]float32{v}))})
}

// geluGraph adds x*0.5*(1+erf(x/sqrt 2)) on x and returns its output.
func geluGraph(b *modelgen.Builder, x string, halfFirst bool) string {
	sqrt2 := scalarConst(b, float32(math.Sqrt2))
	e := b.Node("Erf", []string{b.Node("Div", []string{x, sqrt2}, nil)}, nil)
	a := b.Node("Add", []string{e, scalarConst(b, 1)}, nil)
	half := scalarConst(b, 0.5)
	if halfFirst {
		return b.Node("Mul", []string{b.Node("Mul", []string{x, half}, nil), a}, nil)
	}
	return b.Node("Mul", []string{b.Node("Mul", []string{x, a}, nil), half}, nil)
}

// attentionGraph adds softmax(q·kt/sqrt(d) + mask)·v.
func attentionGraph(b *modelgen.Builder, q, kt, v, mask string, d int) string {
	s := b.Node("MatMul", []string{q, kt}, nil)
	s = b.Node("Div", []string{s, scalarConst(b, float32(math.Sqrt(float64(d))))}, nil)
	if mask != "" {
		s = b.Node("Add", []string{s, mask}, nil)
	}
	p := b.Node("Softmax", []string{s}, []modelgen.Attr{modelgen.AInt("axis", -1)})
	return b.Node("MatMul", []string{p, v}, nil)
}

// TestFusion checks that each pattern fuses (Stats.Fused counts the steps
// merged away) and that fused and unfused plans agree, at 1 and 3 threads;
// the fallback cases fuse too but hand inputs the fast kernel does not take
// back to the original steps.
func TestFusion(t *testing.T) {
	mask := f32([]float32{0, 0, -1e4, 0, 0, -1e4, -1e4, 0, 0, 0, 0, 0}, 2, 1, 1, 6)
	tests := []struct {
		name      string
		build     func(b *modelgen.Builder) string // returns the output
		feeds     map[string]*tensor.Tensor
		wantFused int
	}{
		{"gelu", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{3, 50})
			return geluGraph(b, "x", false)
		}, map[string]*tensor.Tensor{"x": randTensor(1, 3, 50)}, 4},
		{"gelu half first", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{3, 50})
			return geluGraph(b, "x", true)
		}, map[string]*tensor.Tensor{"x": randTensor(1, 3, 50)}, 4},
		{"matmul bias gelu residual", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{2, 5, 24})
			y := b.Node("MatMul", []string{"x", b.Normal("w", 0.3, 24, 24)}, nil)
			y = b.Node("Add", []string{b.Normal("bias", 0.3, 24), y}, nil)
			return b.Node("Add", []string{geluGraph(b, y, false), "x"}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(2, 2, 5, 24)}, 4 + 3},
		{"gemm relu", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{4, 30})
			y := b.Node("Gemm", []string{"x", b.Normal("w", 0.3, 30, 7), b.Normal("c", 0.3, 7)}, nil)
			return b.Node("Relu", []string{y}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(3, 4, 30)}, 1},
		{"conv relu", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{2, 3, 9, 9})
			y := b.Node("Conv", []string{"x", b.Normal("w", 0.3, 5, 3, 3, 3), b.Normal("c", 0.3, 5)}, nil)
			return b.Node("Relu", []string{y}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(4, 2, 3, 9, 9)}, 1},
		{"conv relu pointwise without bias", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 6, 5, 7})
			y := b.Node("Conv", []string{"x", b.Normal("w", 0.3, 4, 6, 1, 1)}, nil)
			return b.Node("Relu", []string{y}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(17, 1, 6, 5, 7)}, 1},
		{"conv relu grouped strided", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 4, 11, 11})
			y := b.Node("Conv", []string{"x", b.Normal("w", 0.3, 6, 2, 3, 3), b.Normal("c", 0.3, 6)},
				[]modelgen.Attr{modelgen.AInt("group", 2), modelgen.AInts("strides", 2, 2), modelgen.AInts("pads", 1, 0, 1, 2)})
			return b.Node("Relu", []string{y}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(18, 1, 4, 11, 11)}, 1},
		{"conv relu in several blocks", func(b *modelgen.Builder) string {
			// K = 128*9 and 36*36 outputs: more than one im2col block.
			b.Input("x", tensor.Float32, []int64{1, 128, 36, 36})
			y := b.Node("Conv", []string{"x", b.Normal("w", 0.1, 3, 128, 3, 3), b.Normal("c", 0.3, 3)},
				[]modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)})
			return b.Node("Relu", []string{y}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(19, 1, 128, 36, 36)}, 1},
		{"conv maxpool relu: relu moves before the pool, both into the conv", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{2, 3, 10, 10})
			y := b.Node("Conv", []string{"x", b.Normal("w", 0.3, 5, 3, 3, 3), b.Normal("c", 0.3, 5)}, nil)
			y = b.Node("MaxPool", []string{y}, []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2)})
			return b.Node("Relu", []string{y}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(20, 2, 3, 10, 10)}, 2},
		{"conv relu maxpool pooled by the indirect conv", func(b *modelgen.Builder) string {
			// 3×3, pad 1, 18×18: the indirect convolution, in bands of even rows.
			b.Input("x", tensor.Float32, []int64{2, 8, 18, 18})
			y := b.Node("Conv", []string{"x", b.Normal("w", 0.3, 20, 8, 3, 3), b.Normal("c", 0.3, 20)}, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)})
			y = b.Node("Relu", []string{y}, nil)
			return b.Node("MaxPool", []string{y}, []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2)})
		}, map[string]*tensor.Tensor{"x": randTensor(28, 2, 8, 18, 18)}, 2},
		{"conv relu maxpool of an odd output pools after", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 4, 17, 17})
			y := b.Node("Conv", []string{"x", b.Normal("w", 0.3, 6, 4, 3, 3)}, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)})
			y = b.Node("Relu", []string{y}, nil)
			return b.Node("MaxPool", []string{y}, []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2)})
		}, map[string]*tensor.Tensor{"x": randTensor(29, 1, 4, 17, 17)}, 2},
		{"conv relu maxpool with pads stays apart", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 4, 16, 16})
			y := b.Node("Conv", []string{"x", b.Normal("w", 0.3, 6, 4, 3, 3)}, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)})
			y = b.Node("Relu", []string{y}, nil)
			return b.Node("MaxPool", []string{y}, []modelgen.Attr{modelgen.AInts("kernel_shape", 2, 2), modelgen.AInts("strides", 2, 2), modelgen.AInts("pads", 1, 1, 1, 1)})
		}, map[string]*tensor.Tensor{"x": randTensor(30, 1, 4, 16, 16)}, 1},
		{"conv maxpool relu with the conv output read twice stays", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 3, 8, 8})
			y := b.Node("Conv", []string{"x", b.Normal("w", 0.3, 4, 3, 3, 3)}, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)})
			p := b.Node("MaxPool", []string{y}, []modelgen.Attr{modelgen.AInts("kernel_shape", 3, 3), modelgen.AInts("pads", 1, 1, 1, 1)})
			return b.Node("Add", []string{b.Node("Relu", []string{p}, nil), y}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(21, 1, 3, 8, 8)}, 1}, // only Relu + Add, elementwise
		{"matmul bias of two axes falls back", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{3, 8})
			y := b.Node("MatMul", []string{"x", b.Normal("w", 0.3, 8, 4)}, nil)
			return b.Node("Add", []string{y, b.Normal("bias", 0.3, 3, 4)}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(5, 3, 8)}, 1},
		{"layernorm spelled out", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{2, 3, 16})
			axes := []modelgen.Attr{modelgen.AInts("axes", -1)}
			mean := b.Node("ReduceMean", []string{"x"}, axes)
			d := b.Node("Sub", []string{"x", mean}, nil)
			v := b.Node("ReduceMean", []string{b.Node("Pow", []string{d, scalarConst(b, 2)}, nil)}, axes)
			s := b.Node("Sqrt", []string{b.Node("Add", []string{v, scalarConst(b, 1e-5)}, nil)}, nil)
			y := b.Node("Mul", []string{b.Node("Div", []string{d, s}, nil), b.Normal("g", 1, 16)}, nil)
			return b.Node("Add", []string{y, b.Normal("beta", 1, 16)}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(6, 2, 3, 16)}, 8},
		{"attention with mask", func(b *modelgen.Builder) string {
			b.Input("q", tensor.Float32, []int64{2, 3, 6, 4})
			b.Input("kt", tensor.Float32, []int64{2, 3, 4, 6})
			b.Input("v", tensor.Float32, []int64{2, 3, 6, 5})
			b.Input("mask", tensor.Float32, []int64{2, 1, 1, 6})
			return attentionGraph(b, "q", "kt", "v", "mask", 4)
		}, map[string]*tensor.Tensor{"q": randTensor(7, 2, 3, 6, 4), "kt": randTensor(8, 2, 3, 4, 6), "v": randTensor(9, 2, 3, 6, 5), "mask": mask}, 4},
		{"attention with heads transposes", func(b *modelgen.Builder) string {
			// Q, K, V as projections leave them, [B S H D]; the output
			// transposed back to [B S H Dv].
			b.Input("q", tensor.Float32, []int64{2, 6, 3, 4})
			b.Input("k", tensor.Float32, []int64{2, 7, 3, 4})
			b.Input("v", tensor.Float32, []int64{2, 7, 3, 5})
			b.Input("mask", tensor.Float32, []int64{2, 1, 1, 7})
			perm := func(p ...int64) []modelgen.Attr { return []modelgen.Attr{modelgen.AInts("perm", p...)} }
			q := b.Node("Transpose", []string{"q"}, perm(0, 2, 1, 3))
			kt := b.Node("Transpose", []string{"k"}, perm(0, 2, 3, 1))
			v := b.Node("Transpose", []string{"v"}, perm(0, 2, 1, 3))
			return b.Node("Transpose", []string{attentionGraph(b, q, kt, v, "mask", 4)}, perm(0, 2, 1, 3))
		}, map[string]*tensor.Tensor{"q": randTensor(22, 2, 6, 3, 4), "k": randTensor(23, 2, 7, 3, 4), "v": randTensor(24, 2, 7, 3, 5),
			"mask": f32([]float32{0, 0, -1e4, 0, 0, -1e4, 0, -1e4, 0, 0, 0, 0, 0, 0}, 2, 1, 1, 7)}, 8},
		{"attention with another transpose keeps it", func(b *modelgen.Builder) string {
			b.Input("q", tensor.Float32, []int64{2, 3, 6, 4})
			b.Input("kt", tensor.Float32, []int64{3, 2, 4, 7})
			b.Input("v", tensor.Float32, []int64{3, 2, 7, 5})
			q := b.Node("Transpose", []string{"q"}, []modelgen.Attr{modelgen.AInts("perm", 1, 0, 2, 3)})
			return attentionGraph(b, q, "kt", "v", "", 4)
		}, map[string]*tensor.Tensor{"q": randTensor(25, 2, 3, 6, 4), "kt": randTensor(26, 3, 2, 4, 7), "v": randTensor(27, 3, 2, 7, 5)}, 3},
		{"attention without mask", func(b *modelgen.Builder) string {
			b.Input("q", tensor.Float32, []int64{3, 6, 4})
			b.Input("kt", tensor.Float32, []int64{3, 4, 7})
			b.Input("v", tensor.Float32, []int64{3, 7, 5})
			return attentionGraph(b, "q", "kt", "v", "", 4)
		}, map[string]*tensor.Tensor{"q": randTensor(10, 3, 6, 4), "kt": randTensor(11, 3, 4, 7), "v": randTensor(12, 3, 7, 5)}, 3},
		{"attention broadcasting heads falls back", func(b *modelgen.Builder) string {
			b.Input("q", tensor.Float32, []int64{2, 6, 4})
			b.Input("kt", tensor.Float32, []int64{1, 4, 6})
			b.Input("v", tensor.Float32, []int64{2, 6, 5})
			return attentionGraph(b, "q", "kt", "v", "", 4)
		}, map[string]*tensor.Tensor{"q": randTensor(13, 2, 6, 4), "kt": randTensor(14, 1, 4, 6), "v": randTensor(15, 2, 6, 5)}, 3},
		{"shared intermediate is not fused into the multiply", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{3, 8})
			y := b.Node("MatMul", []string{"x", b.Normal("w", 0.3, 8, 8)}, nil)
			z := b.Node("Relu", []string{y}, nil)
			return b.Node("Add", []string{z, y}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(16, 3, 8)}, 1}, // Relu + Add, elementwise, reading y twice
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := modelgen.NewBuilder("fuse", 13, 1)
			out := tt.build(b)
			b.Output(out, tensor.Float32, nil)
			fused, plain := compileBoth(t, b)
			if got := fused.Stats().Fused; got != tt.wantFused {
				t.Errorf("Stats().Fused = %d, want %d", got, tt.wantFused)
			}
			if got := plain.Stats().Fused; got != 0 {
				t.Errorf("NoFusion: Stats().Fused = %d, want 0", got)
			}
			want, err := plain.RunWith(context.Background(), tt.feeds, RunOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, threads := range []int{1, 3} {
				got, err := fused.RunWith(context.Background(), tt.feeds, RunOptions{Threads: threads})
				if err != nil {
					t.Fatalf("threads %d: %v", threads, err)
				}
				if d := maxDiff(want[out], got[out]); d > 2e-5 {
					t.Errorf("threads %d: fused output differs from unfused by %g", threads, d)
				}
			}
		})
	}
}

// TestFusedBERT checks that every pattern of a generated transformer fuses
// and that the fused plan gives the unfused answer. Per layer, GELU merges 5
// steps into 1, attention with its 4 heads transposes 9 into 1, and the 6
// multiplies absorb 11 steps (3
// bias Adds, then bias+residual, bias+GELU, bias+residual); a spelled-out
// LayerNorm (2 per layer and 1 for the embeddings) merges 9 steps into 1;
// and the elementwise pass merges the sum of the three embeddings (2 Adds)
// and the pooling's Clip + Div.
func TestFusedBERT(t *testing.T) {
	for _, cfg := range []modelgen.TransformerConfig{modelgen.TinyBERT, modelgen.TinyBERT.Decomposed()} {
		t.Run(cfg.Name, func(t *testing.T) {
			fused, plain := compileBoth(t, modelgen.Transformer(cfg, 1))
			wantFused := int(cfg.Layers)*(4+8+9) + 2
			if !cfg.FusedLayerNorm {
				wantFused += 8 * int(2*cfg.Layers+1)
			}
			if got := fused.Stats().Fused; got != wantFused {
				t.Errorf("Stats().Fused = %d, want %d", got, wantFused)
			}
			ids := make([]int64, 2*9)
			for i := range ids {
				ids[i] = int64(i*37) % cfg.Vocab
			}
			mask := []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}
			feeds := map[string]*tensor.Tensor{"input_ids": i64(ids, 2, 9), "attention_mask": i64(mask, 2, 9), "token_type_ids": i64(make([]int64, 18), 2, 9)}
			want, err := plain.Run(context.Background(), feeds)
			if err != nil {
				t.Fatal(err)
			}
			// A Run on other inputs first leaves its buffers, uncleared, for
			// the compared Run to reuse: nothing of it may show through.
			other := map[string]*tensor.Tensor{"input_ids": i64(slices.Repeat([]int64{7}, 18), 2, 9), "attention_mask": i64(slices.Repeat([]int64{1}, 18), 2, 9), "token_type_ids": i64(make([]int64, 18), 2, 9)}
			if _, err := fused.RunWith(context.Background(), other, RunOptions{Threads: 2}); err != nil {
				t.Fatal(err)
			}
			got, err := fused.RunWith(context.Background(), feeds, RunOptions{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			for name, w := range want {
				if d := maxDiff(w, got[name]); d > 1e-4 {
					t.Errorf("%s: fused differs from unfused by %g", name, d)
				}
			}
		})
	}
}

// TestGeluFusionFloat16Constant checks that GELU spelled out with sqrt 2 as
// a float16 graph stores it (1.4140625) fuses like the float32 spelling,
// and that the fused result stays within float16 precision of the graph
// computed as written: 2^-11 of the output's largest magnitude (far in the
// negative tail, where GELU is tiny, the relative difference grows with
// x^2: 0.13% at x = -3.3, a few float16 ulps of such a value).
func TestGeluFusionFloat16Constant(t *testing.T) {
	b := modelgen.NewBuilder("gelu16", 13, 1)
	b.Input("x", tensor.Float32, []int64{4, 64})
	sqrt2 := scalarConst(b, tensor.RoundHalf(float32(math.Sqrt2)))
	e := b.Node("Erf", []string{b.Node("Div", []string{"x", sqrt2}, nil)}, nil)
	a := b.Node("Add", []string{e, scalarConst(b, 1)}, nil)
	y := b.Node("Mul", []string{b.Node("Mul", []string{"x", a}, nil), scalarConst(b, 0.5)}, nil)
	b.Node("Identity", []string{y}, nil, "y")
	b.Output("y", tensor.Float32, []int64{4, 64})
	fused, plain := compileBoth(t, b)
	if got := fused.Stats().Fused; got != 4 {
		t.Fatalf("Fused = %d, want 4 (Div, Erf, Add, Mul into the last Mul)", got)
	}
	feeds := map[string]*tensor.Tensor{"x": randTensor(9, 4, 64)}
	for i := range feeds["x"].F32 {
		feeds["x"].F32[i] *= 4
	}
	got, err := fused.Run(context.Background(), feeds)
	if err != nil {
		t.Fatal(err)
	}
	want, err := plain.Run(context.Background(), feeds)
	if err != nil {
		t.Fatal(err)
	}
	top := 0.0
	for _, w := range want["y"].F32 {
		top = max(top, math.Abs(float64(w)))
	}
	for i, w := range want["y"].F32 {
		if g := got["y"].F32[i]; math.Abs(float64(g-w)) > top/2048 {
			t.Fatalf("element %d (x = %v): fused %v, as written %v", i, feeds["x"].F32[i], g, w)
		}
	}
}
