package task

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/tensor"
	"github.com/spindleml/spindle/internal/tokenizer"
)

var sentimentLabels = []string{"negative", "neutral", "positive"}

func classifierTask(t testing.TB, cfg Config) (Task, *engine.Model) {
	t.Helper()
	m := model(t, "tiny-bert-cls")
	dir := funcDir(t, map[string]string{"tokenizer.json": "@bert", "labels.txt": strings.Join(sentimentLabels, "\n") + "\n"})
	return newTask(t, TextClassification, cfg, dir, m), m
}

// runEncoding runs m on one encoding, computed by the test independently of
// the task, and returns the named output.
func runEncoding(t *testing.T, m *engine.Model, enc tokenizer.Encoding, output string) *tensor.Tensor {
	t.Helper()
	n := len(enc.IDs)
	outs, err := m.Run(context.Background(), map[string]*tensor.Tensor{
		"input_ids":      tensor.FromI64(enc.IDs, 1, n),
		"attention_mask": tensor.FromI64(enc.AttentionMask, 1, n),
		"token_type_ids": tensor.FromI64(enc.TypeIDs, 1, n),
	})
	if err != nil {
		t.Fatal(err)
	}
	return outs[output]
}

// wantRanked checks that got ranks every label of the softmax of logits.
func wantRanked(t *testing.T, got Labels, logits []float32, labels []string, k int) {
	t.Helper()
	if len(got.Labels) != k {
		t.Fatalf("%d labels, want %d", len(got.Labels), k)
	}
	p := make([]float64, len(logits))
	for i, v := range logits {
		p[i] = float64(v)
	}
	softmax(p)
	var sum float64
	for i, l := range got.Labels {
		j := indexOf(labels, l.Label)
		if j < 0 {
			t.Fatalf("label %q is not a label", l.Label)
		}
		if math.Abs(l.Score-p[j]) > 1e-5 {
			t.Errorf("%s: score %v, want softmax %v", l.Label, l.Score, p[j])
		}
		if i > 0 && l.Score > got.Labels[i-1].Score {
			t.Errorf("labels not ranked: %v", got.Labels)
		}
		sum += l.Score
	}
	if k == len(labels) && math.Abs(sum-1) > 1e-6 {
		t.Errorf("scores sum to %v, want 1", sum)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestTextClassification(t *testing.T) {
	tk, m := classifierTask(t, Config{})
	tok := bertTokenizer(t)
	text := "Spindle serves models without cold starts."
	enc, err := tok.Encode(text, tokenizer.WithoutPadding())
	if err != nil {
		t.Fatal(err)
	}
	logits := runEncoding(t, m, enc, "logits").F32

	got, err := handle(t, tk, m, "application/json", `{"text": "Spindle serves models without cold starts."}`)
	if err != nil {
		t.Fatal(err)
	}
	single := got.(Labels)
	wantRanked(t, single, logits, sentimentLabels, 3)

	t.Run("batch matches single requests", func(t *testing.T) {
		texts := []string{"short", text, "a somewhat longer third text, to pad the others"}
		body, _ := json.Marshal(map[string]any{"texts": texts})
		got, err := handle(t, tk, m, "application/json; charset=utf-8", string(body))
		if err != nil {
			t.Fatal(err)
		}
		res := got.(Results).Results
		if len(res) != 3 {
			t.Fatalf("%d results, want 3", len(res))
		}
		for i, s := range texts {
			enc, _ := tok.Encode(s, tokenizer.WithoutPadding())
			wantRanked(t, res[i], runEncoding(t, m, enc, "logits").F32, sentimentLabels, 3)
		}
	})

	t.Run("text pair", func(t *testing.T) {
		enc, _ := tok.EncodePair("is it fast?", "it starts in milliseconds", tokenizer.WithoutPadding())
		got, err := handle(t, tk, m, "", `{"text": "is it fast?", "text_pair": "it starts in milliseconds"}`)
		if err != nil {
			t.Fatal(err)
		}
		wantRanked(t, got.(Labels), runEncoding(t, m, enc, "logits").F32, sentimentLabels, 3)
	})

	t.Run("top_k", func(t *testing.T) {
		tk, m := classifierTask(t, Config{TopK: 1})
		got, err := handle(t, tk, m, "", `{"text": "Spindle serves models without cold starts."}`)
		if err != nil {
			t.Fatal(err)
		}
		if l := got.(Labels).Labels; len(l) != 1 || l[0] != single.Labels[0] {
			t.Fatalf("top_k 1: %v, want %v", l, single.Labels[:1])
		}
	})

	t.Run("no softmax", func(t *testing.T) {
		tk, m := classifierTask(t, Config{Softmax: new(false)})
		got, err := handle(t, tk, m, "", `{"text": "Spindle serves models without cold starts."}`)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range got.(Labels).Labels {
			if want := float64(logits[indexOf(sentimentLabels, l.Label)]); l.Score != want {
				t.Errorf("%s: %v, want the raw logit %v", l.Label, l.Score, want)
			}
		}
	})
}

func TestTextLength(t *testing.T) {
	long := strings.Repeat("serverless inference ", 100) // 200 words, > 128 tokens
	tok := bertTokenizer(t)
	full, _ := tok.Encode(long, tokenizer.WithoutPadding(), tokenizer.WithoutTruncation())

	t.Run("truncated by default", func(t *testing.T) {
		tk, m := classifierTask(t, Config{MaxLength: 16})
		enc, _ := tok.Encode(long, tokenizer.WithoutPadding(), tokenizer.WithTruncation(tokenizer.Truncation{MaxLength: 16}))
		if len(enc.IDs) != 16 {
			t.Fatalf("reference encoding has %d tokens", len(enc.IDs))
		}
		got, err := handle(t, tk, m, "", `{"text": "`+long+`"}`)
		if err != nil {
			t.Fatal(err)
		}
		wantRanked(t, got.(Labels), runEncoding(t, m, enc, "logits").F32, sentimentLabels, 3)
	})
	t.Run("rejected when truncate is false", func(t *testing.T) {
		tk, m := classifierTask(t, Config{Truncate: new(false)})
		_, err := handle(t, tk, m, "", `{"texts": ["fine", "`+long+`"]}`)
		want := "texts[1]: " + itoa(len(full.IDs)) + " tokens, over max_length 128"
		if !IsInputError(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an InputError with %q", err, want)
		}
		if _, err := handle(t, tk, m, "", `{"text": "short enough"}`); err != nil {
			t.Fatalf("short text after a long one: %v", err)
		}
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestTextBadRequests(t *testing.T) {
	tk, m := classifierTask(t, Config{MaxBatch: 2})
	emb := newTask(t, Embedding, Config{}, funcDir(t, map[string]string{"tokenizer.json": "@bert"}), model(t, "tiny-bert"))
	tests := []struct {
		name, ct, body string
		task           Task
		want           string
	}{
		{"empty body", "", "", tk, `body: empty; want JSON like {"text": "..."}`},
		{"malformed JSON", "application/json", `{"text": "hi"`, tk, "body: invalid JSON"},
		{"not JSON", "application/json", `hello`, tk, "body: invalid JSON at byte 1"},
		{"array", "application/json", `["hi"]`, tk, "body: want a JSON object"},
		{"two objects", "application/json", `{"text": "a"} {"text": "b"}`, tk, "body: want one JSON object"},
		{"unknown field", "application/json", `{"txt": "hi"}`, tk, `body: unknown field "txt"`},
		{"wrong type", "application/json", `{"text": 42}`, tk, "body: text: want string, got JSON number"},
		{"no text", "application/json", `{}`, tk, `text: required: want {"text": "..."} or {"texts": ["...", ...]}`},
		{"empty text", "application/json", `{"text": ""}`, tk, "text: must not be empty"},
		{"blank text", "application/json", `{"text": " \n\t "}`, tk, "text: must not be empty"},
		{"text and texts", "application/json", `{"text": "a", "texts": ["b"]}`, tk, `text: give "text" or "texts", not both`},
		{"empty texts", "application/json", `{"texts": []}`, tk, "texts: must not be empty"},
		{"empty texts item", "application/json", `{"texts": ["a", ""]}`, tk, "texts[1]: must not be empty"},
		{"too many texts", "application/json", `{"texts": ["a", "b", "c"]}`, tk, "texts: 3 texts, over the limit of 2 per request (max_batch)"},
		{"pairs count", "application/json", `{"texts": ["a", "b"], "text_pairs": ["c"]}`, tk, "text_pairs: 1 pairs for 2 texts"},
		{"empty pair", "application/json", `{"text": "a", "text_pair": ""}`, tk, "text_pair: must not be empty"},
		{"pair with texts", "application/json", `{"texts": ["a"], "text_pair": "b"}`, tk, `text_pair: goes with "text"`},
		{"pairs with text", "application/json", `{"text": "a", "text_pairs": ["b"]}`, tk, `text_pairs: goes with "texts"`},
		{"form content type", "application/x-www-form-urlencoded", `{"text": "a"}`, tk, `Content-Type: "application/x-www-form-urlencoded", want application/json`},
		{"text/plain", "text/plain", `hello`, tk, `Content-Type: "text/plain", want application/json`},
		{"embedding pair", "application/json", `{"text": "a", "text_pair": "b"}`, emb, "text_pair: not used by this task"},
		{"embedding empty", "application/json", `{"texts": ["   "]}`, emb, "texts[0]: must not be empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := handle(t, tc.task, m, tc.ct, tc.body)
			if !IsInputError(err) || err.Error() != tc.want && !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant an InputError starting %q", err, tc.want)
			}
		})
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestEmbedding(t *testing.T) {
	m := model(t, "tiny-bert")
	dir := funcDir(t, map[string]string{"tokenizer.json": "@bert"})
	pooled := newTask(t, Embedding, Config{}, dir, m)
	meanPooled := newTask(t, Embedding, Config{Output: "last_hidden_state"}, dir, m)
	tok := bertTokenizer(t)
	texts := []string{"a cat sat on the mat", "Spindle", "mean pooling over the attention mask skips padding"}

	var refs [][]float32
	for _, s := range texts {
		enc, _ := tok.Encode(s, tokenizer.WithoutPadding())
		ref := append([]float32(nil), runEncoding(t, m, enc, "sentence_embedding").F32...)
		n := norm(ref)
		for i := range ref {
			ref[i] = float32(float64(ref[i]) / n)
		}
		refs = append(refs, ref)
	}
	close := func(t *testing.T, what string, got, want []float32) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
		}
		if n := norm(got); math.Abs(n-1) > 1e-5 {
			t.Errorf("%s: norm %v, want 1", what, n)
		}
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-5 {
				t.Fatalf("%s: [%d] = %v, want %v", what, i, got[i], want[i])
			}
		}
	}
	for _, tc := range []struct {
		name string
		task Task
	}{{"sentence_embedding", pooled}, {"mean of last_hidden_state", meanPooled}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := handle(t, tc.task, m, "application/json", `{"text": "a cat sat on the mat"}`)
			if err != nil {
				t.Fatal(err)
			}
			close(t, "text", got.(EmbeddingResult).Embedding, refs[0])
			body, _ := json.Marshal(map[string]any{"texts": texts})
			got, err = handle(t, tc.task, m, "application/json", string(body))
			if err != nil {
				t.Fatal(err)
			}
			vecs := got.(EmbeddingsResult).Embeddings
			if len(vecs) != len(texts) {
				t.Fatalf("%d embeddings, want %d", len(vecs), len(texts))
			}
			for i := range texts {
				close(t, "texts["+itoa(i)+"]", vecs[i], refs[i])
			}
		})
	}
}

// TestTextModelErrors checks that a model that fails, or answers with the
// wrong shape, gives an error that is not blamed on the request.
func TestTextModelErrors(t *testing.T) {
	tk, _ := classifierTask(t, Config{})
	tests := []struct {
		name string
		run  RunFunc
		want string
	}{
		{"run fails", func(context.Context, map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
			return nil, context.DeadlineExceeded
		}, "deadline exceeded"},
		{"no output", func(context.Context, map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
			return map[string]*tensor.Tensor{}, nil
		}, `model gave no output "logits"`},
		{"wrong columns", func(context.Context, map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
			return map[string]*tensor.Tensor{"logits": tensor.New(tensor.Float32, 1, 4)}, nil
		}, `model output "logits": float32 [1 4], want float [1 3]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tk.Handle(context.Background(), Request{Body: []byte(`{"text": "hi"}`)}, tc.run)
			if err == nil || IsInputError(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a non-input error with %q", err, tc.want)
			}
		})
	}
}
