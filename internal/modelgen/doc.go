// Package modelgen writes ONNX models with deterministic weights, so tests,
// benchmarks and demos need no model hub: the MNIST CNN of the thesis (Fig 4.4)
// and, later, transformer and VGG-shaped graphs.
package modelgen
