package task

import (
	"context"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/tensor"
)

// classifier is the text-classification task: texts in, ranked labels out.
type classifier struct {
	enc    *textEncoder
	out    string
	labels []string
	topK   int
	soft   bool
}

var _ Task = (*classifier)(nil)

func newClassifier(cfg Config, dir string, m *engine.Model) (*classifier, error) {
	enc, err := newTextEncoder(TextClassification, cfg, dir, m)
	if err != nil {
		return nil, err
	}
	out, err := findOutput(m, cfg.Output, "logits")
	if err != nil {
		return nil, err
	}
	file := orDefault(cfg.Labels, "labels.txt")
	labels, err := readLabels(dir, file)
	if err != nil {
		return nil, err
	}
	if err := checkScores(out, labels, file); err != nil {
		return nil, err
	}
	return &classifier{enc: enc, out: out.Name, labels: labels, topK: orDefault(cfg.TopK, len(labels)), soft: boolOr(cfg.Softmax, true)}, nil
}

// Results is the answer for a batch of inputs ("texts"), in request order.
type Results struct {
	Results []Labels `json:"results"`
}

// Handle classifies {"text"} (answering Labels) or {"texts"} (Results).
func (c *classifier) Handle(ctx context.Context, req Request, run RunFunc) (any, error) {
	it, err := c.enc.parseText(req, true)
	if err != nil {
		return nil, err
	}
	enc, err := c.enc.encode(it)
	if err != nil {
		return nil, err
	}
	res := make([]Labels, len(it.texts))
	err = c.enc.runChunks(ctx, run, enc, func(outs map[string]*tensor.Tensor, lo, hi, _ int) error {
		v, n, err := outputRows(outs, c.out, hi-lo, len(c.labels))
		if err != nil {
			return err
		}
		for r := lo; r < hi; r++ {
			res[r].Labels = rank(v[(r-lo)*n:(r-lo+1)*n], c.labels, c.topK, c.soft)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if it.batched {
		return Results{Results: res}, nil
	}
	return res[0], nil
}
