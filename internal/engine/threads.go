package engine

import (
	"runtime"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

// RunOptions tunes one Run. The zero value is the default.
type RunOptions struct {
	// Threads is how many goroutines one request's kernels may keep busy at
	// once (intra-op parallelism); 0 means runtime.GOMAXPROCS(0) and 1 runs
	// every kernel on the calling goroutine. An instance serving few requests
	// at a time gives each its share of the CPU allotment; one serving as many
	// requests as it has cores gives each 1, so requests, not kernels, fill
	// the cores (issue 4, item 4).
	Threads int
	// MaxBytes bounds the memory of the intermediate tensors the Run holds
	// at once, outputs included and inputs not; a request that would need
	// more fails with an error wrapping ErrBadInput before the allocation
	// (see budget.go). 0 means DefaultMaxBytes; a negative value means no
	// limit.
	MaxBytes int64
	// OnStep, when not nil, is called on the Run's goroutine after each step,
	// a failed step included, with its name, op type, time and work: a
	// per-op profile (spindle bench engine --ops).
	OnStep func(StepTiming)
}

func (ro RunOptions) maxBytes() int64 {
	if ro.MaxBytes == 0 {
		return DefaultMaxBytes
	}
	return ro.MaxBytes
}

func (ro RunOptions) threads() int {
	if ro.Threads > 0 {
		return ro.Threads
	}
	return runtime.GOMAXPROCS(0)
}

// threadedKernel is a Kernel that may split its work over up to threads
// goroutines (threads >= 1). An op factory that has one stores it in
// Node.threaded and returns it with threads 1 as the Kernel.
type threadedKernel func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error)

// parallelFor calls fn on contiguous chunks [lo, hi) covering [0, n), on up to
// threads goroutines at once (the caller's among them), each chunk at least
// grain items so that tiny loops do not pay for goroutines. It returns when
// every chunk is done. A panic in any chunk is raised again on the caller's
// goroutine once every chunk has stopped, where runStep turns it into an
// error: a panic left on a worker goroutine would end the process.
func parallelFor(threads, n, grain int, fn func(lo, hi int)) {
	parts := min(threads, n/max(1, grain))
	if parts < 2 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	kernels.Parallel(parts, func(p int) { fn(n*p/parts, n*(p+1)/parts) })
}

// withThreads returns k as a Kernel that always runs with the given thread
// count (compile-time folding and callers without a budget use 1).
func withThreads(k threadedKernel, threads int) Kernel {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) { return k(threads, in) }
}
