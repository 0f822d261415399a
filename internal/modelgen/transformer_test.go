package modelgen

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// bertParams counts a BERT encoder's parameters from its shape: embeddings and
// their LayerNorm, then per layer Q, K, V and the attention output (H×H + H
// each), two LayerNorms (2H each) and the FFN (H×F + F + F×H + H), then the
// optional pooler (H×H + H) and classifier (H×C + C).
func bertParams(layers, h, f, vocab, pos, types, classes int64) int64 {
	n := (vocab+pos+types)*h + 2*h
	n += layers * (4*(h*h+h) + 2*2*h + h*f + f + f*h + h)
	if classes > 0 {
		n += h*h + h + h*classes + classes
	}
	return n
}

func TestTransformerParams(t *testing.T) {
	tests := []struct {
		name string
		cfg  TransformerConfig
		want int64
	}{
		{"minilm-l6", MiniLML6, bertParams(6, 384, 1536, 30522, 512, 2, 0)},
		{"minilm-l6-decomposed", MiniLML6.Decomposed(), bertParams(6, 384, 1536, 30522, 512, 2, 0)},
		{"bert-base", BERTBase, bertParams(12, 768, 3072, 30522, 512, 2, 4)},
		{"bert-base-decomposed", BERTBase.Decomposed(), bertParams(12, 768, 3072, 30522, 512, 2, 4)},
	}
	// Published counts: all-MiniLM-L6-v2 is 22,713,216 with BertModel's pooler
	// (384×384 + 384), which the sentence encoder does not use; bert-base-uncased
	// is 109,482,240 with its pooler, before a classifier.
	if got := bertParams(6, 384, 1536, 30522, 512, 2, 0) + 384*384 + 384; got != 22713216 {
		t.Fatalf("bertParams formula gives %d for all-MiniLM-L6-v2, want 22713216", got)
	}
	if got := bertParams(12, 768, 3072, 30522, 512, 2, 4) - 768*4 - 4; got != 109482240 {
		t.Fatalf("bertParams formula gives %d for bert-base-uncased, want 109482240", got)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Transformer(tt.cfg, 1).NumParams(); got != tt.want {
				t.Errorf("%d parameters, want %d", got, tt.want)
			}
		})
	}
}

// TestGenerateLargeKinds writes each large kind twice with one seed and checks
// that the files are byte-identical, that the weights sit in an aligned
// external file that mmap loading views in place, and that the graph has the
// opset, ops and signature its kind promises.
func TestGenerateLargeKinds(t *testing.T) {
	tests := []struct {
		kind    string
		big     bool // over 400 MB of weights: skipped with -short
		opset   int64
		inputs  string
		outputs string
		has     []string
		hasNot  []string
	}{
		{"minilm-l6", false, 17, "input_ids attention_mask token_type_ids", "last_hidden_state sentence_embedding",
			[]string{"LayerNormalization", "Erf", "Gather", "Slice", "Shape", "Concat", "Reshape", "Transpose", "Softmax", "ReduceSum", "Clip", "Expand", "Constant"},
			[]string{"ReduceMean", "Gemm", "Tanh"}},
		{"minilm-l6-decomposed", false, 13, "input_ids attention_mask token_type_ids", "last_hidden_state sentence_embedding",
			[]string{"ReduceMean", "Pow", "Sqrt", "Erf", "ReduceSum"},
			[]string{"LayerNormalization"}},
		{"bert-base", true, 17, "input_ids attention_mask token_type_ids", "logits",
			[]string{"LayerNormalization", "Gemm", "Tanh"}, []string{"ReduceMean", "ReduceSum"}},
		{"bert-base-decomposed", true, 13, "input_ids attention_mask token_type_ids", "logits",
			[]string{"ReduceMean", "Gemm", "Tanh"}, []string{"LayerNormalization"}},
		{"vgg16", true, 13, "input", "output",
			[]string{"Conv", "Relu", "MaxPool", "Flatten", "Gemm"}, []string{"Dropout", "AveragePool"}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			if tt.big && testing.Short() {
				t.Skip("writes over 800 MB; skipped with -short")
			}
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			for _, d := range []string{a, b} {
				if err := Generate(tt.kind, d, 3); err != nil {
					t.Fatal(err)
				}
				runtime.GC() // the builders hold hundreds of MB each
			}
			for _, f := range []string{"model.onnx", "model.onnx.data"} {
				if ha, hb := fileHash(t, filepath.Join(a, f)), fileHash(t, filepath.Join(b, f)); ha != hb {
					t.Errorf("%s differs between two generations with seed 3", f)
				}
			}

			m, err := onnx.Load(filepath.Join(a, "model.onnx"), onnx.Mmap)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Opset() != tt.opset {
				t.Errorf("opset %d, want %d", m.Opset(), tt.opset)
			}
			// Everything of 4 KiB or more is external and aligned, so only the
			// small tensors kept inside model.onnx may be copied.
			var small int64
			for _, w := range m.Weights {
				if n := int64(w.Len() * w.DType.Size()); n < 4096 {
					small += n
				}
			}
			if m.Report.CopiedBytes > small {
				t.Errorf("mmap load copied %d bytes; only the %d bytes of tensors under 4 KiB may be copied", m.Report.CopiedBytes, small)
			}
			g := m.Proto.GetGraph()
			var ins, outs []string
			for _, vi := range g.GetInput() {
				if _, w := m.Weights[vi.GetName()]; !w {
					ins = append(ins, vi.GetName())
				}
			}
			for _, vi := range g.GetOutput() {
				outs = append(outs, vi.GetName())
			}
			if got := strings.Join(ins, " "); got != tt.inputs {
				t.Errorf("inputs %q, want %q", got, tt.inputs)
			}
			if got := strings.Join(outs, " "); got != tt.outputs {
				t.Errorf("outputs %q, want %q", got, tt.outputs)
			}
			ops := map[string]bool{}
			for _, n := range g.GetNode() {
				ops[n.GetOpType()] = true
			}
			for _, op := range tt.has {
				if !ops[op] {
					t.Errorf("graph has no %s node", op)
				}
			}
			for _, op := range tt.hasNot {
				if ops[op] {
					t.Errorf("graph has a %s node", op)
				}
			}
		})
	}
}

func TestTransformerInputsAreDynamic(t *testing.T) {
	b := Transformer(MiniLML6, 1)
	for _, in := range b.g.GetInput() {
		var dims []string
		for _, d := range in.GetType().GetTensorType().GetShape().GetDim() {
			dims = append(dims, d.GetDimParam())
		}
		if got := strings.Join(dims, " "); got != "batch sequence" {
			t.Errorf("input %s has dims %q, want %q", in.GetName(), got, "batch sequence")
		}
		if dt := tensor.DType(in.GetType().GetTensorType().GetElemType()); dt != tensor.Int64 {
			t.Errorf("input %s is %v, want int64", in.GetName(), dt)
		}
	}
}

func TestFastNormal(t *testing.T) {
	b := NewBuilder("x", 13, 1)
	n := 3*fillChunk + 17 // several chunks and a ragged end
	x := fastNormal(b.Rand(), 1, 0.5, n)
	var sum, sq float64
	for _, v := range x {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	mean := sum / float64(n)
	std := sq/float64(n) - mean*mean
	if mean < 0.99 || mean > 1.01 || std < 0.24 || std > 0.26 {
		t.Errorf("mean %.4f variance %.4f, want about 1 and 0.25", mean, std)
	}
	// Chunks come from distinct streams: no chunk repeats the first.
	for c := 1; c < 3; c++ {
		if slices.Equal(x[:64], x[c*fillChunk:c*fillChunk+64]) {
			t.Errorf("chunk %d repeats chunk 0", c)
		}
	}
	// The same source state gives the same values whatever GOMAXPROCS is.
	prev := runtime.GOMAXPROCS(1)
	y := fastNormal(NewBuilder("x", 13, 1).Rand(), 1, 0.5, n)
	runtime.GOMAXPROCS(prev)
	if !slices.Equal(x, y) {
		t.Error("fastNormal depends on GOMAXPROCS")
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}
