package modelgen

import "github.com/spindleml/spindle/internal/tensor"

// Small models for the task endpoints' tests (package task, the end-to-end
// tests): shaped like the real thing, with BERT's vocabulary so the real
// tokenizer.json drives them, but small enough that a test runs them in
// milliseconds.

// TinyBERT is a 2-layer BERT-style encoder (hidden 64, 4 heads, FFN 128) with
// BERT's uncased vocabulary and mean pooling: outputs last_hidden_state and
// sentence_embedding, like MiniLML6.
var TinyBERT = TransformerConfig{
	Name: "tiny_bert", Layers: 2, Hidden: 64, Heads: 4, FFN: 128,
	Vocab: 30522, MaxPos: 512, TypeVocab: 2, Eps: 1e-12, FusedLayerNorm: true,
}

// TinyBERTCls is TinyBERT with BERT's pooler and a 3-class classifier (output
// logits [batch 3]).
var TinyBERTCls = func() TransformerConfig {
	c := TinyBERT
	c.Name, c.Classes = "tiny_bert_cls", 3
	return c
}()

// TinyImageClasses is the number of classes TinyImageCls predicts.
const TinyImageClasses = 5

// TinyImageCls builds a small image classifier at opset 13:
//
//	input float32[N 3 32 32]
//	-> Conv 3->8 k3 pad 1 -> Relu -> MaxPool 2
//	-> Conv 8->16 k3 pad 1 -> Relu -> GlobalAveragePool -> Flatten
//	-> Gemm 16->5 -> logits float32[N 5]
//
// with PyTorch's default initialisation from seed, as MNISTCNN.
func TinyImageCls(seed uint64) *Builder {
	b := NewBuilder("tiny_image_cls", 13, seed)
	b.Input("pixel_values", tensor.Float32, []int64{-1, 3, 32, 32}, "N")
	b.Output("logits", tensor.Float32, []int64{-1, TinyImageClasses}, "N")
	conv := func(name, x string, cin, cout int64) string {
		bound := KaimingBound(cin * 9)
		w := b.Uniform(name+".weight", bound, cout, cin, 3, 3)
		bias := b.Uniform(name+".bias", bound, cout)
		return b.Node("Conv", []string{x, w, bias}, []Attr{AInts("kernel_shape", 3, 3), AInts("pads", 1, 1, 1, 1)})
	}
	x := b.Node("Relu", []string{conv("conv1", "pixel_values", 3, 8)}, nil)
	x = b.Node("MaxPool", []string{x}, []Attr{AInts("kernel_shape", 2, 2), AInts("strides", 2, 2)})
	x = b.Node("Relu", []string{conv("conv2", x, 8, 16)}, nil)
	x = b.Node("GlobalAveragePool", []string{x}, nil)
	x = b.Node("Flatten", []string{x}, []Attr{AInt("axis", 1)})
	bound := KaimingBound(16)
	w := b.Uniform("fc.weight", bound, TinyImageClasses, 16)
	bias := b.Uniform("fc.bias", bound, TinyImageClasses)
	b.Node("Gemm", []string{x, w, bias}, []Attr{AInt("transB", 1)}, "logits")
	return b
}
