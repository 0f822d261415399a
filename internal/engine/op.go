package engine

import (
	"fmt"
	"sort"

	"github.com/spindleml/spindle/internal/tensor"
)

// Kernel computes a node's outputs from its inputs. An omitted optional input is
// nil. A kernel never writes to its inputs (they may be read-only mapped weights)
// and keeps no state between calls, so one kernel runs on many goroutines at once.
type Kernel func(in []*tensor.Tensor) ([]*tensor.Tensor, error)

// OpFactory validates a node's attributes at compile time and returns its kernel.
type OpFactory func(n *Node) (Kernel, error)

// ops is the registry of supported op types in the default ONNX domain. It is
// written only by init functions (register), so reads need no lock.
var ops = map[string]OpFactory{}

// register adds an op factory; called from init functions of op files.
func register(opType string, f OpFactory) {
	if _, dup := ops[opType]; dup {
		panic("engine: op registered twice: " + opType)
	}
	ops[opType] = f
}

// SupportedOps lists the op types the engine implements, sorted.
func SupportedOps() []string {
	out := make([]string, 0, len(ops))
	for k := range ops {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Supported reports whether opType is implemented.
func Supported(opType string) bool { _, ok := ops[opType]; return ok }

// checkInputs returns an error unless the kernel got between min and max inputs.
func checkInputs(in []*tensor.Tensor, min, max int) error {
	if len(in) < min || len(in) > max {
		return fmt.Errorf("got %d inputs, want %d to %d", len(in), min, max)
	}
	for i := 0; i < min; i++ {
		if in[i] == nil {
			return fmt.Errorf("input %d is required", i)
		}
	}
	return nil
}
