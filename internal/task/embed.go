package task

import (
	"context"
	"fmt"
	"math"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/tensor"
)

// embedder is the embedding task: texts in, L2-normalised vectors out. It reads
// a pooled output [batch, hidden] as it is, and mean-pools a token output
// [batch, sequence, hidden] over the attention mask (sentence-transformers'
// pooling).
type embedder struct {
	enc *textEncoder
	out string
}

var _ Task = (*embedder)(nil)

func newEmbedder(cfg Config, dir string, m *engine.Model) (*embedder, error) {
	enc, err := newTextEncoder(Embedding, cfg, dir, m)
	if err != nil {
		return nil, err
	}
	out, err := findOutput(m, cfg.Output, "sentence_embedding", "last_hidden_state")
	if err != nil {
		return nil, err
	}
	if out.DType != tensor.Float32 && out.DType != tensor.Float16 && out.DType != tensor.Float64 {
		return nil, configErrorf("model output %q: dtype %s, the task needs floating point vectors", out.Name, out.DType)
	}
	if out.Shape != nil && len(out.Shape) != 2 && len(out.Shape) != 3 {
		return nil, configErrorf("model output %q: shape %s has rank %d, the task needs [batch, hidden] or [batch, sequence, hidden] to mean-pool", out.Name, tensor.ShapeString(out.Shape), len(out.Shape))
	}
	return &embedder{enc: enc, out: out.Name}, nil
}

// EmbeddingResult is the answer for {"text"}: one unit-length vector.
type EmbeddingResult struct {
	Embedding []float32 `json:"embedding"`
}

// EmbeddingsResult is the answer for {"texts"}, in request order.
type EmbeddingsResult struct {
	Embeddings [][]float32 `json:"embeddings"`
}

// Handle embeds {"text"} (answering EmbeddingResult) or {"texts"}
// (EmbeddingsResult).
func (e *embedder) Handle(ctx context.Context, req Request, run RunFunc) (any, error) {
	it, err := e.enc.parseText(req, false)
	if err != nil {
		return nil, err
	}
	enc, err := e.enc.encode(it)
	if err != nil {
		return nil, err
	}
	vecs := make([][]float32, len(it.texts))
	err = e.enc.runChunks(ctx, run, enc, func(outs map[string]*tensor.Tensor, lo, hi, seq int) error {
		t := outs[e.out]
		if t == nil {
			return fmt.Errorf("model gave no output %q", e.out)
		}
		v, ok := floats(t)
		rows := hi - lo
		switch {
		case ok && len(t.Shape) == 2 && t.Shape[0] == rows:
			h := t.Shape[1]
			for r := range rows {
				vecs[lo+r] = normalize(append([]float32(nil), v[r*h:(r+1)*h]...))
			}
		case ok && len(t.Shape) == 3 && t.Shape[0] == rows && t.Shape[1] == seq:
			h := t.Shape[2]
			for r := range rows {
				vecs[lo+r] = normalize(meanPool(v[r*seq*h:(r+1)*seq*h], enc.encs[lo+r].AttentionMask, h))
			}
		default:
			return fmt.Errorf("model output %q: %s %s, want float [%d hidden] or [%d %d hidden]", e.out, t.DType, tensor.ShapeString(t.Shape), rows, rows, seq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if it.batched {
		return EmbeddingsResult{Embeddings: vecs}, nil
	}
	return EmbeddingResult{Embedding: vecs[0]}, nil
}

// meanPool averages the rows of h ([sequence, hidden]) whose mask is 1; rows
// past the mask (padding) are skipped.
func meanPool(h []float32, mask []int64, hidden int) []float32 {
	sum := make([]float64, hidden)
	n := 0
	for i, m := range mask {
		if m == 0 {
			continue
		}
		n++
		for j, v := range h[i*hidden : (i+1)*hidden] {
			sum[j] += float64(v)
		}
	}
	out := make([]float32, hidden)
	for j, s := range sum {
		out[j] = float32(s / float64(max(n, 1)))
	}
	return out
}

// normalize scales v to unit L2 norm in place; a zero vector stays zero.
func normalize(v []float32) []float32 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		return v
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
	return v
}
