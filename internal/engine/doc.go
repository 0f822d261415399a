// Package engine executes ONNX graphs: it compiles a loaded model into a
// topologically ordered plan of kernels once, then runs that plan for any number of
// concurrent requests.
//
// A compiled Model is immutable, so one Model serves every worker goroutine of a
// function instance (the thesis's shared-model worker pool, ch. 5.1). Weights are
// never written, because they may be views into a read-only mapping.
package engine
