// Package bench measures how fast the engine runs a model and how much memory
// it holds, side by side with ONNX Runtime on the same inputs: load time,
// first-inference time, the warm latency distribution over repeated runs, and
// resident memory after load (issue 4's targets).
//
// Measurements are wall-clock and belong in benchmark reports, never in test
// assertions.
package bench
