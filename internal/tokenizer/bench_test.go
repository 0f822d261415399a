package tokenizer

import (
	"strings"
	"testing"
)

// paragraph is a typical embedding request: about 120 words of English with a
// few accents and punctuation.
const paragraph = "Spindle serves machine-learning models on demand: it loads an ONNX graph, " +
	"tokenizes the request, runs the encoder and returns embeddings. Cold starts matter, " +
	"so weights are memory-mapped and kernels are chosen at start-up from the CPU's features. " +
	"A café in Zürich, a naïve question, and a résumé: every one of them is lowercased, " +
	"stripped of accents and cut into word pieces before the model sees a single number. " +
	"The autoscaler watches queue depth and latency, adds instances when requests pile up " +
	"and removes them when traffic fades, while the gateway keeps each request within its " +
	"deadline and answers 429 when the admission queue is full."

func BenchmarkEncodeParagraph(b *testing.B) {
	tok := loadBERT(b)
	b.SetBytes(int64(len(paragraph)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tok.Encode(paragraph, WithoutPadding()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeBatch32(b *testing.B) {
	tok := loadBERT(b)
	words := strings.Fields(paragraph)
	texts := make([]string, 32)
	for i := range texts {
		texts[i] = strings.Join(words[i%len(words):], " ")
	}
	n := 0
	for _, s := range texts {
		n += len(s)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tok.EncodeBatch(texts, WithPadding(Padding{})); err != nil {
			b.Fatal(err)
		}
	}
}
