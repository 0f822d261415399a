package difftest

import (
	"context"
	"testing"

	"github.com/spindleml/spindle/internal/tensor"
)

// TestGeneratedPaddingInvariance checks the generated transformers against
// BERT's semantics in the reference runtime: padding a sequence with masked
// tokens must leave its pooled outputs unchanged. This fails if the attention
// mask, the position ids or the masked mean pooling is wired wrongly.
func TestGeneratedPaddingInvariance(t *testing.T) {
	ort := reference(t)
	tests := []struct {
		kind, output string
	}{
		{"minilm-l6", "sentence_embedding"},
		{"minilm-l6-decomposed", "sentence_embedding"},
		{"bert-base", "logits"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			path := generated(t, tt.kind)
			padded := tokens(2, 12, 5) // the second sequence has 8 real tokens
			const real = 8
			short := map[string]*tensor.Tensor{}
			for name, p := range padded {
				if p.I64[12+real-1] == 0 && name == "attention_mask" {
					t.Fatalf("tokens gave the second sequence fewer than %d real tokens", real)
				}
				if name == "attention_mask" && p.I64[12+real] != 0 {
					t.Fatalf("tokens gave the second sequence more than %d real tokens", real)
				}
				short[name] = tensor.FromI64(append([]int64(nil), p.I64[12:12+real]...), 1, real)
			}
			ctx := context.Background()
			a, err := ort.Run(ctx, path, padded, []string{tt.output})
			if err != nil {
				t.Fatal(err)
			}
			b, err := ort.Run(ctx, path, short, []string{tt.output})
			if err != nil {
				t.Fatal(err)
			}
			pa, pb := a[tt.output], b[tt.output]
			n := pb.Len()
			second := tensor.FromF32(pa.F32[n:2*n], pb.Shape...)
			d, err := Compare(pb, second, tolerance)
			if err != nil {
				t.Fatalf("%s of a padded sequence differs from the unpadded one: %v", tt.output, err)
			}
			first := tensor.FromF32(pa.F32[:n], pb.Shape...)
			if _, err := Compare(pb, first, 0.01); err == nil {
				t.Errorf("%s is the same for two different sequences: the model ignores its input", tt.output)
			}
			t.Logf("%s: %v; values %v", tt.output, d, pb.F32[:min(4, n)])
		})
	}
}
