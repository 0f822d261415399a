package engine

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestConcurrentFusedTransformers runs transformers through their fused
// kernels (attention, GELU, LayerNorm, multiply epilogues) from 8 goroutines
// at once, each with a budget of 3 threads, alternating two requests of
// different shapes, and checks every answer is bit for bit the one a lone
// Run gave: a kernel keeping state between calls, or sharing a scratch
// buffer, shows as a difference here and as a data race under -race.
func TestConcurrentFusedTransformers(t *testing.T) {
	minilm := modelgen.MiniLML6 // MiniLM's widths and heads, fewer layers and words
	minilm.Name, minilm.Layers, minilm.Vocab = "minilm_small", 2, 1000
	bert := modelgen.TinyBERTCls.Decomposed() // spelled-out LayerNorm, classifier head
	bert.Vocab = 1000
	const goroutines, rounds, threads = 8, 3, 3
	for _, cfg := range []modelgen.TransformerConfig{minilm, bert} {
		t.Run(cfg.Name, func(t *testing.T) {
			m, _ := compileBoth(t, modelgen.Transformer(cfg, 1))
			if m.Stats().Fused == 0 {
				t.Fatal("nothing fused")
			}
			requests := []map[string]*tensor.Tensor{transformerFeeds(cfg, 2, 9, 1), transformerFeeds(cfg, 1, 17, 2)}
			want := make([]map[string]*tensor.Tensor, len(requests))
			for i, r := range requests {
				out, err := m.RunWith(context.Background(), r, RunOptions{Threads: threads})
				if err != nil {
					t.Fatal(err)
				}
				want[i] = out
			}
			var wg sync.WaitGroup
			errs := make(chan error, goroutines*rounds)
			for g := range goroutines {
				wg.Go(func() {
					for r := range rounds {
						k := (g + r) % len(requests)
						got, err := m.RunWith(context.Background(), requests[k], RunOptions{Threads: threads})
						if err != nil {
							errs <- err
							return
						}
						if err := sameOutputs(want[k], got); err != nil {
							errs <- fmt.Errorf("goroutine %d, round %d, request %d: %w", g, r, k, err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// transformerFeeds returns the three inputs of a modelgen.Transformer for a
// batch of sequences of length seq, the last one padded by a third.
func transformerFeeds(cfg modelgen.TransformerConfig, batch, seq int, seed int64) map[string]*tensor.Tensor {
	ids, mask := make([]int64, batch*seq), make([]int64, batch*seq)
	for i := range ids {
		ids[i] = (int64(i)*37 + seed*11) % cfg.Vocab
		if i < (batch-1)*seq+seq*2/3 {
			mask[i] = 1
		}
	}
	return map[string]*tensor.Tensor{
		"input_ids": i64(ids, batch, seq), "attention_mask": i64(mask, batch, seq), "token_type_ids": i64(make([]int64, batch*seq), batch, seq),
	}
}

// sameOutputs returns an error unless got holds every output of want with
// the same shape and bit-identical float32 values.
func sameOutputs(want, got map[string]*tensor.Tensor) error {
	for name, w := range want {
		g := got[name]
		if g == nil || tensor.ShapeString(g.Shape) != tensor.ShapeString(w.Shape) || len(g.F32) != len(w.F32) {
			return fmt.Errorf("output %s: got %v, want %v", name, g, w)
		}
		for i := range w.F32 {
			if math.Float32bits(g.F32[i]) != math.Float32bits(w.F32[i]) {
				return fmt.Errorf("output %s[%d]: got %v, want %v", name, i, g.F32[i], w.F32[i])
			}
		}
	}
	return nil
}
