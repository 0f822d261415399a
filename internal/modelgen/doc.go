// Package modelgen writes ONNX models with deterministic weights, so tests,
// benchmarks and demos need no model hub: the MNIST CNN of the thesis (Fig 4.4),
// BERT-style encoders shaped like MiniLM-L6 and BERT-base, and VGG16.
package modelgen
