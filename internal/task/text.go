package task

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"mime"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/tensor"
	"github.com/spindleml/spindle/internal/tokenizer"
)

// Defaults of the text kinds.
const (
	DefaultMaxLength = 128
	DefaultMaxBatch  = 32
)

// textEncoder turns request texts into a text model's inputs.
type textEncoder struct {
	tok      *tokenizer.Tokenizer
	maxLen   int
	truncate bool
	maxBatch int
	// fixedLen is the model's sequence length when input_ids declares one
	// (every row is padded to it); 0 when dynamic (rows pad to the longest).
	fixedLen int
	// chunk is how many rows one model run takes: maxBatch, or 1 for a model
	// whose batch dimension is fixed at 1.
	chunk int
	padID int64
	// Model input names and dtypes; mask and types are "" when the model lacks them.
	ids, mask, types string
	dtype            tensor.DType
}

func newTextEncoder(kind string, cfg Config, dir string, m *engine.Model) (*textEncoder, error) {
	e := &textEncoder{
		maxBatch: orDefault(cfg.MaxBatch, DefaultMaxBatch),
		truncate: boolOr(cfg.Truncate, true),
	}
	// The model's inputs: input_ids is required; the mask and type ids are fed
	// when the model has them, and a config that names one insists on it.
	idsV, err := findInput(m, orDefault(cfg.InputIDs, "input_ids"), "input_ids")
	if err != nil {
		return nil, err
	}
	e.ids, e.dtype = idsV.Name, idsV.DType
	fed := map[string]bool{e.ids: true}
	optional := []struct {
		field, set string
		dst        *string
	}{
		{"attention_mask", cfg.AttentionMask, &e.mask},
		{"token_type_ids", cfg.TokenTypeIDs, &e.types},
	}
	for _, o := range optional {
		v, err := findInput(m, orDefault(o.set, o.field), o.field)
		if err != nil {
			if o.set != "" {
				return nil, err
			}
			continue
		}
		*o.dst = v.Name
		fed[v.Name] = true
	}
	for _, in := range m.Inputs {
		if !fed[in.Name] {
			return nil, configErrorf("model input %q: task %s feeds only %s (set input_ids, attention_mask, token_type_ids to name the model's inputs)", in.Name, kind, strings.Join(keys(fed), ", "))
		}
		if in.DType != tensor.Int64 && in.DType != tensor.Int32 {
			return nil, configErrorf("model input %q: dtype %s, the task feeds token ids as int64 or int32", in.Name, in.DType)
		}
		if in.DType != e.dtype {
			return nil, configErrorf("model input %q: dtype %s differs from %q's %s", in.Name, in.DType, e.ids, e.dtype)
		}
		if in.Shape != nil && len(in.Shape) != 2 {
			return nil, configErrorf("model input %q: shape %s has rank %d, the task feeds [batch, sequence]", in.Name, tensor.ShapeString(in.Shape), len(in.Shape))
		}
	}
	e.chunk = e.maxBatch
	if s := idsV.Shape; s != nil {
		switch {
		case s[0] == 1:
			e.chunk = 1
		case s[0] >= 0:
			return nil, configErrorf("model input %q: batch dimension fixed at %d; the task needs a dynamic batch or 1", e.ids, s[0])
		}
		e.fixedLen = max(s[1], 0)
	}
	e.maxLen = orDefault(cfg.MaxLength, DefaultMaxLength)
	if e.fixedLen > 0 {
		if cfg.MaxLength > e.fixedLen {
			return nil, configErrorf("config: max_length: %d is over the model's fixed sequence length %d", cfg.MaxLength, e.fixedLen)
		}
		e.maxLen = orDefault(cfg.MaxLength, e.fixedLen)
	}

	file := orDefault(cfg.Tokenizer, "tokenizer.json")
	tok, err := tokenizer.Load(filepath.Join(dir, file))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, configErrorf("tokenizer %q: not among the function's files (upload it beside the model)", file)
		}
		return nil, configErrorf("tokenizer %q: %v", file, trimPath(err, dir))
	}
	// Truncation and padding are the task's: tokenizer.json's own are
	// replaced per request.
	if _, err := tok.With(tokenizer.WithTruncation(tokenizer.Truncation{MaxLength: e.maxLen}), tokenizer.WithoutPadding()); err != nil {
		return nil, configErrorf("config: max_length: %v", err)
	}
	e.tok = tok
	e.padID = 0
	if p, ok := tok.Padding(); ok {
		e.padID = p.ID
	} else if id, ok := tok.TokenID("[PAD]"); ok {
		e.padID = id
	}
	return e, nil
}

func keys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

// trimPath removes the function's folder from an error message, so users see
// the file names they uploaded.
func trimPath(err error, dir string) string {
	return strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
}

// textRequest is the JSON body of the text kinds.
type textRequest struct {
	Text      *string  `json:"text"`
	Texts     []string `json:"texts"`
	TextPair  *string  `json:"text_pair"`
	TextPairs []string `json:"text_pairs"`
}

// textItems is a parsed text request: one or more texts (pairs when pair).
type textItems struct {
	texts   [][2]string
	pair    bool
	batched bool // "texts" rather than "text": answer with a list
}

// field names item i of the request for error messages.
func (t *textItems) field(i int) string {
	if t.batched {
		return fmt.Sprintf("texts[%d]", i)
	}
	return "text"
}

// parseText decodes and checks a text request. pairs says whether the kind
// accepts text_pair.
func (e *textEncoder) parseText(req Request, pairs bool) (*textItems, error) {
	if err := checkJSONType(req.ContentType); err != nil {
		return nil, err
	}
	var r textRequest
	dec := json.NewDecoder(bytes.NewReader(req.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, inputErrorf("body", `empty; want JSON like {"text": "..."}`)
		}
		return nil, inputErrorf("body", "%s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, inputErrorf("body", "want one JSON object, found more after it")
	}
	if !pairs && (r.TextPair != nil || r.TextPairs != nil) {
		return nil, inputErrorf("text_pair", "not used by this task (it embeds single texts)")
	}
	var it textItems
	switch {
	case r.Text != nil && r.Texts != nil:
		return nil, inputErrorf("text", `give "text" or "texts", not both`)
	case r.Text != nil:
		if r.TextPairs != nil {
			return nil, inputErrorf("text_pairs", `goes with "texts"; use "text_pair" with "text"`)
		}
		it.texts = [][2]string{{*r.Text}}
		if r.TextPair != nil {
			it.pair = true
			it.texts[0][1] = *r.TextPair
		}
	case r.Texts != nil:
		if r.TextPair != nil {
			return nil, inputErrorf("text_pair", `goes with "text"; use "text_pairs" with "texts"`)
		}
		it.batched = true
		if len(r.Texts) == 0 {
			return nil, inputErrorf("texts", "must not be empty")
		}
		if len(r.Texts) > e.maxBatch {
			return nil, inputErrorf("texts", "%d texts, over the limit of %d per request (max_batch)", len(r.Texts), e.maxBatch)
		}
		if r.TextPairs != nil && len(r.TextPairs) != len(r.Texts) {
			return nil, inputErrorf("text_pairs", "%d pairs for %d texts; want one per text", len(r.TextPairs), len(r.Texts))
		}
		it.pair = r.TextPairs != nil
		it.texts = make([][2]string, len(r.Texts))
		for i, s := range r.Texts {
			it.texts[i][0] = s
			if it.pair {
				it.texts[i][1] = r.TextPairs[i]
			}
		}
	default:
		return nil, inputErrorf("text", `required: want {"text": "..."} or {"texts": ["...", ...]}`)
	}
	for i, p := range it.texts {
		if strings.TrimSpace(p[0]) == "" {
			return nil, inputErrorf(it.field(i), "must not be empty")
		}
		if it.pair && strings.TrimSpace(p[1]) == "" {
			f := "text_pair"
			if it.batched {
				f = fmt.Sprintf("text_pairs[%d]", i)
			}
			return nil, inputErrorf(f, "must not be empty")
		}
	}
	return &it, nil
}

// checkJSONType accepts a JSON Content-Type, or none.
func checkJSONType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return inputErrorf("Content-Type", "%q, want application/json (curl: -H 'Content-Type: application/json')", ct)
}

// encoded is a batch of tokenized texts.
type encoded struct {
	encs []tokenizer.Encoding
}

// encode tokenizes the items, truncating each to maxLen or, with truncation
// off, rejecting one that is longer.
func (e *textEncoder) encode(it *textItems) (*encoded, error) {
	opts := []tokenizer.Option{tokenizer.WithoutPadding(), tokenizer.WithTruncation(tokenizer.Truncation{MaxLength: e.maxLen})}
	if !e.truncate {
		opts[1] = tokenizer.WithoutTruncation()
	}
	out := &encoded{encs: make([]tokenizer.Encoding, len(it.texts))}
	for i, p := range it.texts {
		var enc tokenizer.Encoding
		var err error
		if it.pair {
			enc, err = e.tok.EncodePair(p[0], p[1], opts...)
		} else {
			enc, err = e.tok.Encode(p[0], opts...)
		}
		if err != nil {
			// Truncation that cannot make room (a pair strategy that may only
			// cut one text) is the request's fault.
			if errors.Is(err, tokenizer.ErrTooLong) {
				return nil, inputErrorf(it.field(i), "too long for max_length %d: %v", e.maxLen, strings.TrimPrefix(err.Error(), tokenizer.ErrTooLong.Error()+": "))
			}
			return nil, fmt.Errorf("%s: tokenize: %w", it.field(i), err)
		}
		if n := len(enc.IDs); n > e.maxLen {
			pair := ""
			if it.pair {
				pair = " with its pair"
			}
			return nil, inputErrorf(it.field(i), "%d tokens%s, over max_length %d (this function rejects long texts rather than truncating them)", n, pair, e.maxLen)
		}
		out.encs[i] = enc
	}
	return out, nil
}

// inputs builds the model inputs for rows [lo, hi) of enc, padded to the
// longest row (or the model's fixed length).
func (e *textEncoder) inputs(enc *encoded, lo, hi int) (map[string]*tensor.Tensor, int) {
	n := e.fixedLen
	if n == 0 {
		for _, x := range enc.encs[lo:hi] {
			n = max(n, len(x.IDs))
		}
	}
	rows := hi - lo
	ids, mask, types := make([]int64, rows*n), make([]int64, rows*n), make([]int64, rows*n)
	for r, x := range enc.encs[lo:hi] {
		row := ids[r*n : (r+1)*n]
		for j := range row {
			row[j] = e.padID
		}
		copy(row, x.IDs)
		copy(mask[r*n:], x.AttentionMask)
		copy(types[r*n:], x.TypeIDs)
	}
	ins := map[string]*tensor.Tensor{e.ids: e.tensor(ids, rows, n)}
	if e.mask != "" {
		ins[e.mask] = e.tensor(mask, rows, n)
	}
	if e.types != "" {
		ins[e.types] = e.tensor(types, rows, n)
	}
	return ins, n
}

func (e *textEncoder) tensor(v []int64, rows, n int) *tensor.Tensor {
	if e.dtype == tensor.Int32 {
		t := tensor.New(tensor.Int32, rows, n)
		for i, x := range v {
			t.I32[i] = int32(x)
		}
		return t
	}
	return tensor.FromI64(v, rows, n)
}

// runChunks runs the model over enc in chunks of e.chunk rows, calling use with
// each chunk's outputs, its first row and the padded sequence length.
func (e *textEncoder) runChunks(ctx context.Context, run RunFunc, enc *encoded, use func(outs map[string]*tensor.Tensor, lo, hi, seq int) error) error {
	for lo := 0; lo < len(enc.encs); lo += e.chunk {
		hi := min(lo+e.chunk, len(enc.encs))
		ins, seq := e.inputs(enc, lo, hi)
		outs, err := run(ctx, ins)
		if err != nil {
			return err
		}
		if err := use(outs, lo, hi, seq); err != nil {
			return err
		}
	}
	return nil
}
