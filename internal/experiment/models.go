package experiment

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// modelSpec says how an experiment feeds one generated model.
type modelSpec struct {
	Kind  string
	Label string
	// Thesis names the thesis's model that plays the same part.
	Thesis string
	// Sizes are the input sizes of the cold/warm experiment, smallest first.
	Sizes []inputSize
	// inputs builds a request of the given size.
	inputs func(s inputSize, rng *rand.Rand) map[string]*tensor.Tensor
}

// inputSize is a request's batch and, for text models, sequence length.
type inputSize struct{ Batch, Seq int }

func (s inputSize) String() string {
	if s.Seq > 0 {
		return fmt.Sprintf("%dx%d tokens", s.Batch, s.Seq)
	}
	if s.Batch == 1 {
		return "1 image"
	}
	return fmt.Sprintf("%d images", s.Batch)
}

var models = map[string]modelSpec{
	"mnist-cnn": {Kind: "mnist-cnn", Label: "MNIST CNN", Thesis: "CNN (name classifier)",
		Sizes: []inputSize{{Batch: 1}, {Batch: 32}, {Batch: 256}}, inputs: images(1, 28)},
	"minilm-l6": {Kind: "minilm-l6", Label: "MiniLM-L6", Thesis: "BERT (smaller)",
		Sizes: []inputSize{{1, 16}, {1, 128}, {8, 128}}, inputs: tokens},
	"bert-base": {Kind: "bert-base", Label: "BERT-base", Thesis: "BERT",
		Sizes: []inputSize{{1, 16}, {1, 128}, {8, 128}}, inputs: tokens},
	"vgg16": {Kind: "vgg16", Label: "VGG16", Thesis: "BERT (Fig 4.3's VGG16 summary)",
		Sizes: []inputSize{{Batch: 1}, {Batch: 4}}, inputs: images(3, 224)},
}

// quickKinds and fullKinds are the default model sets.
var (
	quickKinds = []string{"mnist-cnn", "minilm-l6"}
	fullKinds  = []string{"mnist-cnn", "minilm-l6", "bert-base", "vgg16"}
)

func (e *Env) defaultKinds() []string {
	if e.Quick {
		return e.kinds(quickKinds)
	}
	return e.kinds(fullKinds)
}

func spec(kind string) (modelSpec, error) {
	m, ok := models[kind]
	if !ok {
		return modelSpec{}, fmt.Errorf("model %q: experiments know mnist-cnn, minilm-l6, bert-base and vgg16", kind)
	}
	return m, nil
}

// images returns an input builder for [N, channels, side, side] images,
// uniform in [0, 1).
func images(channels, side int) func(inputSize, *rand.Rand) map[string]*tensor.Tensor {
	return func(s inputSize, rng *rand.Rand) map[string]*tensor.Tensor {
		t := tensor.New(tensor.Float32, s.Batch, channels, side, side)
		for i := range t.F32 {
			t.F32[i] = rng.Float32()
		}
		return map[string]*tensor.Tensor{"input": t}
	}
}

// tokens builds BERT inputs: ids below 100 (every generated vocabulary is
// larger), a mask of ones, token types of zeros.
func tokens(s inputSize, rng *rand.Rand) map[string]*tensor.Tensor {
	ids := tensor.New(tensor.Int64, s.Batch, s.Seq)
	mask := tensor.New(tensor.Int64, s.Batch, s.Seq)
	types := tensor.New(tensor.Int64, s.Batch, s.Seq)
	for i := range ids.I64 {
		ids.I64[i] = 1 + rng.Int64N(99)
		mask.I64[i] = 1
	}
	return map[string]*tensor.Tensor{"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
}

// ensureModel generates kind into the model cache unless it is there, and
// returns the model file's path.
func (e *Env) ensureModel(kind string) (string, error) {
	dir := filepath.Join(e.modelDir(), kind)
	path := filepath.Join(dir, "model.onnx")
	done := filepath.Join(dir, ".complete")
	if _, err := os.Stat(done); err == nil {
		return path, nil
	}
	e.logf("   generating %s into %s", kind, dir)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := modelgen.Generate(kind, dir, 1); err != nil {
		return "", err
	}
	// The marker is written last: a generation cut short is redone.
	return path, os.WriteFile(done, nil, 0o644)
}

// modelFiles lists the model file and its external data files.
func modelFiles(path string) []string {
	files := []string{path}
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return files
	}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && n != filepath.Base(path) && n[0] != '.' {
			files = append(files, filepath.Join(filepath.Dir(path), n))
		}
	}
	return files
}

// dirBytes sums the sizes of files.
func dirBytes(files []string) int64 {
	var n int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}
