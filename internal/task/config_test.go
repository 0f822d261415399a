package task

import (
	"errors"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/engine"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, raw string
		want      Config
		err       string
	}{
		{name: "empty", raw: ""},
		{name: "null", raw: " null "},
		{name: "fields", raw: `{"max_length": 64, "truncate": false, "top_k": 2}`, want: Config{MaxLength: 64, Truncate: new(false), TopK: 2}},
		{name: "unknown field", raw: `{"max_len": 64}`, err: `config: unknown field "max_len"`},
		{name: "wrong type", raw: `{"max_length": "64"}`, err: "config: max_length: want int, got JSON string"},
		{name: "wrong element type", raw: `{"mean": [1, "a", 3]}`, err: "config: mean"},
		{name: "not an object", raw: `[1]`, err: "want a JSON object"},
		{name: "trailing data", raw: `{} {}`, err: "found more after it"},
		{name: "syntax", raw: `{"top_k": }`, err: "config: invalid JSON"},
		{name: "truncated", raw: `{"top_k": 3`, err: "config: invalid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.raw))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrConfig) {
					t.Fatalf("got %v, want an ErrConfig containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.MaxLength != tc.want.MaxLength || got.TopK != tc.want.TopK || (got.Truncate == nil) != (tc.want.Truncate == nil) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.Truncate != nil && *got.Truncate != *tc.want.Truncate {
				t.Fatalf("truncate %v, want %v", *got.Truncate, *tc.want.Truncate)
			}
		})
	}
}

// TestNewRejects checks that New names the rule when a config, an extra file
// or the model does not fit the task.
func TestNewRejects(t *testing.T) {
	cls := model(t, "tiny-bert-cls")
	emb := model(t, "tiny-bert")
	img := model(t, "tiny-image-cls")
	textFiles := map[string]string{"tokenizer.json": "@bert", "labels.txt": "neg\nneu\npos\n"}
	imgFiles := map[string]string{"labels.txt": "a\nb\nc\nd\ne"}
	tests := []struct {
		name  string
		kind  string
		cfg   Config
		files map[string]string
		model *engine.Model
		want  string
	}{
		{"unknown kind", "translate", Config{}, nil, cls, `kind "translate": unknown (want one of cpu-burn, embedding, image-classification, text-classification)`},
		{"field of another kind", Embedding, Config{TopK: 3}, textFiles, emb, "config: top_k: not used by task embedding"},
		{"negative", TextClassification, Config{MaxLength: -1}, textFiles, cls, "config: max_length: -1 must be between 1 and 65536"},
		{"max_length 1", TextClassification, Config{MaxLength: 1}, textFiles, cls, "max_length: 1 leaves no room"},
		{"escaping file", TextClassification, Config{Labels: "../labels.txt"}, textFiles, cls, `config: labels: "../labels.txt" must be a relative path`},
		{"no model", TextClassification, Config{}, textFiles, nil, "text-classification: needs a model"},
		{"burn with model", CPUBurn, Config{}, nil, cls, "cpu-burn: takes no model"},
		{"burn default over max", CPUBurn, Config{BurnMS: 20, MaxBurnMS: 10}, nil, nil, "burn_ms: 20 is over max_burn_ms 10"},
		{"no tokenizer", TextClassification, Config{}, map[string]string{"labels.txt": "a\nb\nc"}, cls, `tokenizer "tokenizer.json": not among the function's files`},
		{"bad tokenizer", TextClassification, Config{}, map[string]string{"tokenizer.json": "{", "labels.txt": "a\nb\nc"}, cls, `tokenizer "tokenizer.json":`},
		{"no labels", TextClassification, Config{}, map[string]string{"tokenizer.json": "@bert"}, cls, `labels "labels.txt": not among the function's files`},
		{"labels count", TextClassification, Config{}, map[string]string{"tokenizer.json": "@bert", "labels.txt": "a\nb\nc\nd"}, cls, `labels "labels.txt": 4 labels, but model output "logits" has 3 classes`},
		{"empty label", TextClassification, Config{}, map[string]string{"tokenizer.json": "@bert", "labels.txt": "a\n\nc"}, cls, `labels "labels.txt" line 2: empty label`},
		{"repeated label", TextClassification, Config{}, map[string]string{"tokenizer.json": "@bert", "labels.txt": "a\nb\na"}, cls, `line 3: label "a" repeats line 1`},
		{"empty labels", TextClassification, Config{}, map[string]string{"tokenizer.json": "@bert", "labels.txt": "\n\n"}, cls, `labels "labels.txt": empty`},
		{"no such output", TextClassification, Config{Output: "probs"}, textFiles, cls, `config: output: the model has no output "probs" (outputs: logits)`},
		{"no such input", TextClassification, Config{InputIDs: "ids"}, textFiles, cls, `config: input_ids: the model has no input "ids"`},
		{"named mask missing", Embedding, Config{AttentionMask: "mask"}, textFiles, emb, `config: attention_mask: the model has no input "mask"`},
		{"classifier on an encoder", TextClassification, Config{}, textFiles, emb, "config: output: the model has outputs last_hidden_state, sentence_embedding and none is called logits"},
		{"classifier on rank 3", TextClassification, Config{Output: "last_hidden_state"}, textFiles, emb, `model output "last_hidden_state": shape [-1 -1 64] has rank 3, the task needs scores [batch, classes]`},
		{"text task on an image model", TextClassification, Config{}, textFiles, img, `config: input_ids: the model has no input "input_ids" (inputs: pixel_values)`},
		{"text inputs named wrong", TextClassification, Config{InputIDs: "pixel_values"}, textFiles, img, `model input "pixel_values": dtype float32, the task feeds token ids as int64 or int32`},
		{"image task on a text model", ImageClassification, Config{}, imgFiles, cls, "config: input: the model has 3 inputs"},
		{"image input of a text model", ImageClassification, Config{Input: "input_ids"}, imgFiles, cls, `model: 3 inputs (input_ids, attention_mask, token_type_ids); the task feeds only the image "input_ids"`},
		{"image size vs fixed shape", ImageClassification, Config{ImageSize: []int{64, 64}}, imgFiles, img, `config: image_size: [64 64], but model input "pixel_values" has fixed shape [-1 3 32 32]`},
		{"image size shape", ImageClassification, Config{ImageSize: []int{32}}, imgFiles, img, "config: image_size: [32], want [height, width]"},
		{"NHWC on an NCHW model", ImageClassification, Config{Layout: "NHWC"}, imgFiles, img, "has 32 channels at axis 3"},
		{"layout", ImageClassification, Config{Layout: "CHW"}, imgFiles, img, `config: layout: "CHW", want NCHW or NHWC`},
		{"channels", ImageClassification, Config{Channels: "RGBA"}, imgFiles, img, `config: channels: "RGBA", want RGB or BGR`},
		{"mean length", ImageClassification, Config{Mean: []float32{0.5, 0.5}}, imgFiles, img, "config: mean: 2 values, want 3"},
		{"zero std", ImageClassification, Config{Std: []float32{0.5, 0, 0.5}}, imgFiles, img, "config: std[1]: 0 must be positive"},
		{"image labels count", ImageClassification, Config{}, map[string]string{"labels.txt": "a\nb"}, img, `2 labels, but model output "logits" has 5 classes`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.kind, tc.cfg, funcDir(t, tc.files), tc.model)
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant an ErrConfig containing %q", err, tc.want)
			}
		})
	}
}
