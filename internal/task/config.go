package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Config tunes a task. Its JSON form is what `spindle deploy --config` sends
// and what the registry keeps. Zero values take the defaults noted; a field a
// kind does not use is an error, so a typo or a misplaced field is caught at
// deploy time.
type Config struct {
	// Tokenizer is the tokenizer.json file in the function's folder (text
	// kinds); "" means "tokenizer.json".
	Tokenizer string `json:"tokenizer,omitempty"`
	// Labels is the labels file, one label per line in output order
	// (classification kinds); "" means "labels.txt".
	Labels string `json:"labels,omitempty"`
	// MaxLength is the most tokens a text (or text pair) may have, special
	// tokens included; 0 means 128, or the model's sequence length when its
	// input_ids has a fixed one.
	MaxLength int `json:"max_length,omitempty"`
	// Truncate says what happens to a longer text: cut to MaxLength (nil or
	// true), or rejected with 400 naming its length and the limit (false).
	Truncate *bool `json:"truncate,omitempty"`
	// MaxBatch is the most texts one request may carry; 0 means 32.
	MaxBatch int `json:"max_batch,omitempty"`
	// Output is the model output to read; "" means the only output, else
	// "logits" (classification), "sentence_embedding" then
	// "last_hidden_state" (embedding).
	Output string `json:"output,omitempty"`
	// InputIDs, AttentionMask and TokenTypeIDs name the model's text inputs;
	// "" means input_ids, attention_mask and token_type_ids. The last two are
	// fed only when the model has them.
	InputIDs      string `json:"input_ids,omitempty"`
	AttentionMask string `json:"attention_mask,omitempty"`
	TokenTypeIDs  string `json:"token_type_ids,omitempty"`
	// Input names the model's image input; "" means its only input.
	Input string `json:"input,omitempty"`
	// ImageSize is [height, width] the image is resized to; nil means the
	// model's fixed size, else 224x224.
	ImageSize []int `json:"image_size,omitempty"`
	// Mean and Std normalise each channel after scaling pixels to [0, 1]:
	// (v - mean) / std. nil means ImageNet's (0.485, 0.456, 0.406) and
	// (0.229, 0.224, 0.225).
	Mean []float32 `json:"mean,omitempty"`
	Std  []float32 `json:"std,omitempty"`
	// Layout is the image tensor's layout, "NCHW" ("" ) or "NHWC".
	Layout string `json:"layout,omitempty"`
	// Channels is the channel order, "RGB" ("") or "BGR".
	Channels string `json:"channels,omitempty"`
	// TopK is how many labels an answer lists; 0 means 5 for images and every
	// label for text.
	TopK int `json:"top_k,omitempty"`
	// Softmax turns the output into probabilities (nil or true); false when the
	// model already outputs them.
	Softmax *bool `json:"softmax,omitempty"`
	// BurnMS is cpu-burn's default work in units of about 1 ms of CPU; 0
	// means 500 (or MaxBurnMS if lower).
	BurnMS int `json:"burn_ms,omitempty"`
	// MaxBurnMS caps the units one request may ask for; 0 means 60000.
	MaxBurnMS int `json:"max_burn_ms,omitempty"`
	// ItersPerMS is the work in one unit; 0 means DefaultItersPerMS. Work is
	// fixed, not timed, so a slower or throttled CPU takes longer.
	ItersPerMS int `json:"iters_per_ms,omitempty"`
}

// fields lists the config fields each kind uses, by JSON name.
var fields = map[string][]string{
	TextClassification:  {"tokenizer", "labels", "max_length", "truncate", "max_batch", "output", "input_ids", "attention_mask", "token_type_ids", "top_k", "softmax"},
	Embedding:           {"tokenizer", "max_length", "truncate", "max_batch", "output", "input_ids", "attention_mask", "token_type_ids"},
	ImageClassification: {"labels", "output", "input", "image_size", "mean", "std", "layout", "channels", "top_k", "softmax"},
	CPUBurn:             {"burn_ms", "max_burn_ms", "iters_per_ms"},
}

// ParseConfig decodes a JSON task config; empty input or null is the zero
// Config. Unknown fields, wrong types and trailing data are errors wrapping
// ErrConfig that name the field.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return c, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, configErrorf("config: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, configErrorf("config: want one JSON object, found more after it")
	}
	return c, nil
}

// jsonProblem phrases a decoding error by the field it concerns.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fmt.Sprintf("%s: want %s, got JSON %s", te.Field, te.Type, te.Value)
	case errors.As(err, &te):
		return fmt.Sprintf("want a JSON object, got JSON %s", te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON: unexpected end"
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + f
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// set returns the JSON names of the fields c sets.
func (c Config) set() []string {
	b, _ := json.Marshal(c) // a struct of plain fields: cannot fail
	var m map[string]json.RawMessage
	json.Unmarshal(b, &m)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// check validates what can be checked without the model or files: that each
// field set is one the kind uses, and ranges.
func (c Config) check(kind string) error {
	for _, f := range c.set() {
		if !slices.Contains(fields[kind], f) {
			return configErrorf("config: %s: not used by task %s (its fields: %s)", f, kind, strings.Join(fields[kind], ", "))
		}
	}
	for _, f := range []struct {
		name string
		file string
	}{{"tokenizer", c.Tokenizer}, {"labels", c.Labels}} {
		if f.file != "" && !filepath.IsLocal(f.file) {
			return configErrorf("config: %s: %q must be a relative path inside the function's files", f.name, f.file)
		}
	}
	ints := []struct {
		name   string
		v, max int
	}{
		{"max_length", c.MaxLength, 1 << 16},
		{"max_batch", c.MaxBatch, 4096},
		{"top_k", c.TopK, 1 << 20},
		{"burn_ms", c.BurnMS, 24 * 3600 * 1000},
		{"max_burn_ms", c.MaxBurnMS, 24 * 3600 * 1000},
		{"iters_per_ms", c.ItersPerMS, 1 << 40},
	}
	for _, f := range ints {
		if f.v < 0 || f.v > f.max {
			return configErrorf("config: %s: %d must be between 1 and %d (0 or absent for the default)", f.name, f.v, f.max)
		}
	}
	if c.MaxLength == 1 {
		return configErrorf("config: max_length: 1 leaves no room for text between the special tokens")
	}
	return nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// boolOr returns *p, or def when p is nil.
func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}
