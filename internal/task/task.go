package task

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/tensor"
)

// Task kinds, the values of a function's task.
const (
	TextClassification  = "text-classification"
	Embedding           = "embedding"
	ImageClassification = "image-classification"
	CPUBurn             = "cpu-burn"
	// Infer is the kind of a function without a task endpoint: raw OIP v2
	// inference only. New does not build it.
	Infer = "infer"
)

var kinds = []string{CPUBurn, Embedding, ImageClassification, TextClassification}

// Kinds returns the task kinds New builds, sorted.
func Kinds() []string { return slices.Clone(kinds) }

// IsKind reports whether kind is a task kind New builds.
func IsKind(kind string) bool { return slices.Contains(kinds, kind) }

// NeedsModel reports whether a task kind runs a model; only cpu-burn does not.
func NeedsModel(kind string) bool { return kind != CPUBurn }

// ErrConfig marks a task that cannot be built: an unknown kind, a bad config
// field, a missing or malformed extra file, or a model whose inputs and outputs
// do not fit the task. Errors wrapping it name the field or file and the rule.
var ErrConfig = errors.New("task")

// RunFunc runs the function's model on named inputs and returns its outputs.
// The instance passes the compiled model's Run.
type RunFunc func(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error)

// Request is one task request: the body and its Content-Type header ("" when
// the client sent none).
type Request struct {
	ContentType string
	Body        []byte
}

// Task serves one kind of task request for one function.
type Task interface {
	// Handle answers a request with a value to encode as JSON. A request at
	// fault gives an *InputError; model errors are returned as they are.
	Handle(ctx context.Context, req Request, run RunFunc) (any, error)
}

// InputError is a bad request: Field names the part of the request at fault
// ("text", "texts[2]", "image", "Content-Type", "body") and Rule what it broke.
type InputError struct {
	Field string
	Rule  string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Rule }

func inputErrorf(field, format string, args ...any) error {
	return &InputError{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// IsInputError reports whether err is (or wraps) an *InputError.
func IsInputError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

func configErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
}

// New builds the task of the given kind. dir is the function's folder, where
// the extra files the config names (tokenizer.json, labels.txt) were uploaded;
// model is the compiled model, nil for cpu-burn. Errors wrap ErrConfig.
func New(kind string, cfg Config, dir string, model *engine.Model) (Task, error) {
	if !IsKind(kind) {
		return nil, configErrorf("kind %q: unknown (want one of %s)", kind, strings.Join(kinds, ", "))
	}
	if err := cfg.check(kind); err != nil {
		return nil, err
	}
	if NeedsModel(kind) && model == nil {
		return nil, configErrorf("%s: needs a model", kind)
	}
	if !NeedsModel(kind) && model != nil {
		return nil, configErrorf("%s: takes no model", kind)
	}
	switch kind {
	case TextClassification:
		return newClassifier(cfg, dir, model)
	case Embedding:
		return newEmbedder(cfg, dir, model)
	case ImageClassification:
		return newImageClassifier(cfg, dir, model)
	default:
		return newBurner(cfg)
	}
}
