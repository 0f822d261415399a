package engine

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestMultiHeadAttentionPacked checks com.microsoft MultiHeadAttention's
// packed forms, which ONNX Runtime's CPU provider does not run ("not
// implemented for CPU"), against the same attention given separate query,
// key and value: packed QKV [B S N 3 H], and packed KV [B L N 2 H] beside a
// query [B S N·H].
func TestMultiHeadAttentionPacked(t *testing.T) {
	const B, S, L, N, H = 2, 3, 5, 4, 4
	b := modelgen.NewBuilder("mha_packed", 17, 1)
	b.Input("qkv", tensor.Float32, []int64{B, S, N, 3, H})
	b.Input("kv", tensor.Float32, []int64{B, L, N, 2, H})
	b.Input("q", tensor.Float32, []int64{B, S, N * H})
	heads := []modelgen.Attr{modelgen.AInt("num_heads", N)}
	mha := func(inputs []string, out string) {
		b.SetDomain(b.Node("MultiHeadAttention", inputs, heads, out), "com.microsoft")
		b.Output(out, tensor.Float32, []int64{B, S, N * H})
	}
	// part j of a packed x along axis 3, flattened to [B T N·H].
	consts := 0
	ints := func(v ...int64) string {
		consts++
		return b.Ints64(fmt.Sprint("c", consts), v...)
	}
	part := func(x string, j, T int64) string {
		sl := b.Node("Slice", []string{x, ints(j), ints(j + 1), ints(3)}, nil)
		return b.Node("Reshape", []string{sl, ints(B, T, N*H)}, nil)
	}
	mha([]string{"qkv"}, "packed_qkv")
	mha([]string{part("qkv", 0, S), part("qkv", 1, S), part("qkv", 2, S)}, "separate_qkv")
	mha([]string{"q", "kv"}, "packed_kv")
	mha([]string{"q", part("kv", 0, L), part("kv", 1, L)}, "separate_kv")
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{
		"qkv": randTensor(1, B, S, N, 3, H), "kv": randTensor(2, B, L, N, 2, H), "q": randTensor(3, B, S, N*H)})
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{"packed_qkv", "separate_qkv"}, {"packed_kv", "separate_kv"}} {
		got, want := out[pair[0]], out[pair[1]]
		for i, w := range want.F32 {
			if math.Abs(float64(got.F32[i]-w)) > 1e-6 {
				t.Fatalf("%s element %d: %v, %s gives %v", pair[0], i, got.F32[i], pair[1], w)
			}
		}
	}
}
