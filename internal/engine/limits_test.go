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

// dyn is a fully dynamic shape of the given rank for a graph input.
func dyn(rank int) []int64 {
	s := make([]int64, rank)
	for i := range s {
		s[i] = -1
	}
	return s
}

// TestRunMemoryBudget sends requests whose intermediate tensors would take
// far more memory than the Run's limit (terabytes, most of them: each would
// end the test process with a fatal out-of-memory error were it allocated)
// and checks that Run refuses each before allocating, with an error wrapping
// ErrBadInput that names the node, the size and the limit, and that the same
// model then runs a small request.
func TestRunMemoryBudget(t *testing.T) {
	const big = 1 << 20
	ones := func(shape ...int) *tensor.Tensor {
		return tensor.FromF32(make([]float32, tensor.NumElements(shape)), shape...)
	}
	tests := []struct {
		name     string
		opset    int64
		build    func(b *modelgen.Builder)
		feeds    map[string]*tensor.Tensor
		small    map[string]*tensor.Tensor // a request the model runs
		maxBytes int64
		want     []string
	}{
		{"ReduceSum over an empty axis", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(2))
			b.Node("ReduceSum", []string{"x", b.Ints64("axes", 1)}, nil, "y")
		}, map[string]*tensor.Tensor{"x": tensor.FromF32(nil, 1<<30, 0)},
			map[string]*tensor.Tensor{"x": tensor.FromF32([]float32{1, 2}, 1, 2)}, 0,
			[]string{`node "ReduceSum_1" (ReduceSum)`, "intermediate tensor of 8 GiB", "more than the limit of 4 GiB"}},
		{"Resize to sizes from the request, past the kernel's bound", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(4))
			b.Input("sizes", tensor.Int64, []int64{4})
			b.Node("Resize", []string{"x", "", "", "sizes"}, nil, "y")
		}, map[string]*tensor.Tensor{"x": ones(1, 1, 1, 1), "sizes": i64([]int64{1, 1, big, big}, 4)},
			map[string]*tensor.Tensor{"x": ones(1, 1, 1, 1), "sizes": i64([]int64{1, 1, 2, 2}, 4)}, 0,
			[]string{`node "Resize_1" (Resize)`, "shape [1 1 1048576 1048576] has more than 1073741824 elements"}},
		{"Resize to sizes from the request, past the budget", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(4))
			b.Input("sizes", tensor.Int64, []int64{4})
			b.Node("Resize", []string{"x", "", "", "sizes"}, nil, "y")
		}, map[string]*tensor.Tensor{"x": ones(1, 1, 1, 1), "sizes": i64([]int64{1, 1, 1 << 14, 1 << 14}, 4)},
			map[string]*tensor.Tensor{"x": ones(1, 1, 1, 1), "sizes": i64([]int64{1, 1, 2, 2}, 4)}, 1 << 29,
			[]string{`node "Resize_1" (Resize)`, "intermediate tensor of 1 GiB", "more than the limit of 512 MiB"}},
		{"broadcast Add", 13, func(b *modelgen.Builder) {
			b.Input("a", tensor.Float32, dyn(2))
			b.Input("c", tensor.Float32, dyn(2))
			b.Node("Add", []string{"a", "c"}, nil, "y")
		}, map[string]*tensor.Tensor{"a": ones(big, 1), "c": ones(1, big)},
			map[string]*tensor.Tensor{"a": ones(2, 1), "c": ones(1, 3)}, 0,
			[]string{`node "Add_1" (Add)`, "intermediate tensor of 4 TiB"}},
		{"MatMul with an empty inner dimension", 13, func(b *modelgen.Builder) {
			b.Input("a", tensor.Float32, dyn(2))
			b.Input("c", tensor.Float32, dyn(2))
			b.Node("MatMul", []string{"a", "c"}, nil, "y")
		}, map[string]*tensor.Tensor{"a": tensor.FromF32(nil, 1<<31, 0), "c": tensor.FromF32(nil, 0, 1)},
			map[string]*tensor.Tensor{"a": ones(1, 2), "c": ones(2, 1)}, 0,
			[]string{`node "MatMul_1" (MatMul)`, "intermediate tensor of 8 GiB"}},
		{"Gemm with an empty inner dimension", 13, func(b *modelgen.Builder) {
			b.Input("a", tensor.Float32, dyn(2))
			b.Input("c", tensor.Float32, dyn(2))
			b.Node("Gemm", []string{"a", "c"}, nil, "y")
		}, map[string]*tensor.Tensor{"a": tensor.FromF32(nil, big, 0), "c": tensor.FromF32(nil, 0, big)},
			map[string]*tensor.Tensor{"a": ones(1, 2), "c": ones(2, 1)}, 0,
			[]string{`node "Gemm_1" (Gemm)`, "intermediate tensor of 4 TiB"}},
		{"Expand to a shape from the request", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(1))
			b.Input("shape", tensor.Int64, []int64{2})
			b.Node("Expand", []string{"x", "shape"}, nil, "y")
		}, map[string]*tensor.Tensor{"x": ones(1), "shape": i64([]int64{big, big}, 2)},
			map[string]*tensor.Tensor{"x": ones(1), "shape": i64([]int64{2, 2}, 2)}, 0,
			[]string{`node "Expand_1" (Expand)`, "intermediate tensor of 4 TiB"}},
		{"Tile", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(2))
			b.Input("repeats", tensor.Int64, []int64{2})
			b.Node("Tile", []string{"x", "repeats"}, nil, "y")
		}, map[string]*tensor.Tensor{"x": ones(1, 1), "repeats": i64([]int64{big, big}, 2)},
			map[string]*tensor.Tensor{"x": ones(1, 1), "repeats": i64([]int64{2, 3}, 2)}, 0,
			[]string{`node "Tile_1" (Tile)`, "intermediate tensor of 4 TiB"}},
		{"Pad", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(1))
			b.Input("pads", tensor.Int64, []int64{2})
			b.Node("Pad", []string{"x", "pads"}, nil, "y")
		}, map[string]*tensor.Tensor{"x": ones(1), "pads": i64([]int64{0, 1 << 29}, 2)},
			map[string]*tensor.Tensor{"x": ones(1), "pads": i64([]int64{1, 1}, 2)}, 1 << 30,
			[]string{`node "Pad_1" (Pad)`, "intermediate tensor of 2 GiB", "more than the limit of 1 GiB"}},
		{"ConstantOfShape", 13, func(b *modelgen.Builder) {
			b.Input("shape", tensor.Int64, []int64{2})
			b.Node("ConstantOfShape", []string{"shape"}, nil, "y")
		}, map[string]*tensor.Tensor{"shape": i64([]int64{big, big}, 2)},
			map[string]*tensor.Tensor{"shape": i64([]int64{2, 2}, 2)}, 0,
			[]string{`node "ConstantOfShape_1" (ConstantOfShape)`, "intermediate tensor of 4 TiB"}},
		{"Range", 13, func(b *modelgen.Builder) {
			b.Input("limit", tensor.Int64, []int64{})
			start, delta := b.InitTensor("start", i64([]int64{0})), b.InitTensor("delta", i64([]int64{1}))
			b.Node("Range", []string{start, "limit", delta}, nil, "y")
		}, map[string]*tensor.Tensor{"limit": i64([]int64{1 << 40})},
			map[string]*tensor.Tensor{"limit": i64([]int64{5})}, 0,
			[]string{`node "Range_1" (Range)`, "intermediate tensor of 8 TiB"}},
		{"Gather with many indices", 13, func(b *modelgen.Builder) {
			b.Input("ids", tensor.Int64, dyn(1))
			b.Node("Gather", []string{b.Normal("table", 1, 2, 4096), "ids"}, nil, "y")
		}, map[string]*tensor.Tensor{"ids": i64(make([]int64, big), big)},
			map[string]*tensor.Tensor{"ids": i64([]int64{1, 0}, 2)}, 0,
			[]string{`node "Gather_1" (Gather)`, "intermediate tensor of 16 GiB"}},
		{"Concat of one input many times", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(1))
			b.Node("Concat", []string{"x", "x", "x", "x"}, []modelgen.Attr{modelgen.AInt("axis", 0)}, "y")
		}, map[string]*tensor.Tensor{"x": ones(1 << 18)},
			map[string]*tensor.Tensor{"x": ones(3)}, 2 << 20,
			[]string{`node "Concat_1" (Concat)`, "intermediate tensor of 4 MiB", "more than the limit of 2 MiB"}},
		{"tensors held together", 13, func(b *modelgen.Builder) {
			b.Input("x", tensor.Float32, dyn(1))
			y := b.Node("Neg", []string{"x"}, nil, "y")
			z := b.Node("Neg", []string{y}, nil, "z")
			w := b.Node("Neg", []string{z}, nil, "w")
			for _, o := range []string{y, z, w} {
				b.Output(o, tensor.Float32, nil)
			}
		}, map[string]*tensor.Tensor{"x": ones(1 << 18)},
			map[string]*tensor.Tensor{"x": ones(3)}, 2<<20 + 1<<19,
			[]string{`node "Neg_3" (Neg)`, "needs 1 MiB of intermediate tensors", "with 2 MiB held already", "more than the limit of 2.5 MiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opset := tt.opset
			b := modelgen.NewBuilder("budget", opset, 1)
			tt.build(b)
			if tt.name != "tensors held together" {
				b.Output("y", tensor.Float32, nil)
			}
			m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.RunWith(context.Background(), tt.feeds, RunOptions{MaxBytes: tt.maxBytes, Threads: 2})
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("Run error %v, want one wrapping ErrBadInput", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run error %q does not say %q", err, w)
				}
			}
			if _, err := m.RunWith(context.Background(), tt.small, RunOptions{MaxBytes: tt.maxBytes, Threads: 2}); err != nil {
				t.Errorf("small request after the refused one: %v", err)
			}
		})
	}
}

// TestRunMemoryBudgetFused checks the budget on fused steps, fused and
// unfused plans alike: a transformer (embeddings, attention, mean pooling)
// given empty inputs of a huge batch ([1073741824 0]: no data, accepted by
// CheckInputs), and attention whose scores would take 16 GiB although q and
// kt are empty.
func TestRunMemoryBudgetFused(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *modelgen.Builder) *modelgen.Builder
		feeds map[string]*tensor.Tensor
		small map[string]*tensor.Tensor
		want  []string // for the fused plan, then the unfused one
	}{
		{"transformer, empty batch of 2^30", func(*modelgen.Builder) *modelgen.Builder {
			return modelgen.Transformer(modelgen.TinyBERT, 1)
		}, map[string]*tensor.Tensor{
			"input_ids": i64(nil, 1<<30, 0), "attention_mask": i64(nil, 1<<30, 0), "token_type_ids": i64(nil, 1<<30, 0),
		}, map[string]*tensor.Tensor{
			"input_ids": i64([]int64{101, 7, 102}, 1, 3), "attention_mask": i64([]int64{1, 1, 1}, 1, 3), "token_type_ids": i64(make([]int64, 3), 1, 3),
		}, []string{"request needs an intermediate tensor of", "more than the limit of 4 GiB"}},
		{"attention over empty heads", func(b *modelgen.Builder) *modelgen.Builder {
			b.Input("q", tensor.Float32, dyn(3))
			b.Input("kt", tensor.Float32, dyn(3))
			b.Input("v", tensor.Float32, dyn(3))
			b.Output(attentionGraph(b, "q", "kt", "v", "", 4), tensor.Float32, nil)
			return b
		}, map[string]*tensor.Tensor{
			"q": tensor.FromF32(nil, 1, 1<<16, 0), "kt": tensor.FromF32(nil, 1, 0, 1<<16), "v": tensor.FromF32(make([]float32, 1<<16), 1, 1<<16, 1),
		}, map[string]*tensor.Tensor{
			"q": randTensor(1, 2, 3, 4), "kt": randTensor(2, 2, 4, 5), "v": randTensor(3, 2, 5, 6),
		}, []string{"intermediate tensor of 16 GiB", "more than the limit of 4 GiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fused, plain := compileBoth(t, tt.build(modelgen.NewBuilder("budget_fused", 13, 1)))
			for _, m := range []*Model{fused, plain} {
				_, err := m.RunWith(context.Background(), tt.feeds, RunOptions{Threads: 2})
				if !errors.Is(err, ErrBadInput) {
					t.Fatalf("fused=%v: Run error %v, want one wrapping ErrBadInput", m == fused, err)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("fused=%v: Run error %q does not say %q", m == fused, err, w)
					}
				}
				if _, err := m.RunWith(context.Background(), tt.small, RunOptions{Threads: 2}); err != nil {
					t.Errorf("fused=%v: small request after the refused one: %v", m == fused, err)
				}
			}
		})
	}
}

// TestRunMaxBytesNegative checks that a negative RunOptions.MaxBytes turns
// the budget off and 0 means DefaultMaxBytes.
func TestRunMaxBytesNegative(t *testing.T) {
	b := modelgen.NewBuilder("budget_off", 13, 1)
	b.Input("x", tensor.Float32, dyn(1))
	b.Node("Concat", []string{"x", "x"}, []modelgen.Attr{modelgen.AInt("axis", 0)}, "y")
	b.Output("y", tensor.Float32, nil)
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	feeds := map[string]*tensor.Tensor{"x": tensor.FromF32(make([]float32, 1024), 1024)}
	for _, tt := range []struct {
		maxBytes int64
		refused  bool
	}{{4 << 10, true}, {8 << 10, false}, {-1, false}, {0, false}} {
		_, err := m.RunWith(context.Background(), feeds, RunOptions{MaxBytes: tt.maxBytes})
		if refused := errors.Is(err, ErrBadInput); refused != tt.refused || (err != nil && !refused) {
			t.Errorf("MaxBytes %d: error %v, want refused=%v", tt.maxBytes, err, tt.refused)
		}
	}
}
