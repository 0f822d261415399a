package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// opTestChunkPanic is a test-only op whose kernel splits two items with
// parallelFor and panics in the chunk holding the last one: on a worker
// goroutine whenever the thread budget is 2 or more.
const opTestChunkPanic = "SpindleTestChunkPanic"

func init() {
	register(opTestChunkPanic, func(n *Node) (Kernel, error) {
		n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
			parallelFor(threads, 2, 1, func(lo, hi int) {
				if hi == 2 {
					panic("chunk [" + string(rune('0'+lo)) + ", 2) failed")
				}
			})
			return in[:1], nil
		}
		return withThreads(n.threaded, 1), nil
	})
}

// TestParallelForPanicIsRunError checks that a kernel panicking inside
// parallelFor, on the calling goroutine or on a worker, fails that Run with
// an error naming the node instead of ending the process, and that the
// model still runs afterwards.
func TestParallelForPanicIsRunError(t *testing.T) {
	b := modelgen.NewBuilder("chunk_panic", 13, 1)
	b.Input("x", tensor.Float32, []int64{2})
	b.Node(opTestChunkPanic, []string{"x"}, nil, "y")
	b.Output("y", tensor.Float32, nil)
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	feeds := map[string]*tensor.Tensor{"x": tensor.FromF32([]float32{1, 2}, 2)}
	tests := []struct {
		threads int
		chunk   string
	}{
		{1, "chunk [0, 2) failed"}, // the caller's own chunk
		{2, "chunk [1, 2) failed"}, // a worker goroutine's chunk
		{3, "chunk [1, 2) failed"},
	}
	for _, tt := range tests {
		_, err := m.RunWith(context.Background(), feeds, RunOptions{Threads: tt.threads})
		if err == nil || !strings.Contains(err.Error(), tt.chunk) || !strings.Contains(err.Error(), opTestChunkPanic) {
			t.Errorf("threads %d: Run error %v, want an internal error naming the node and %q", tt.threads, err, tt.chunk)
		}
	}
}

// TestParallelForPanicWaits checks that parallelFor raises a chunk's panic
// only after every chunk has finished, so no goroutine still writes to the
// output when the caller unwinds.
func TestParallelForPanicWaits(t *testing.T) {
	const n = 8
	done := make([]bool, n)
	func() {
		defer func() {
			if r := recover(); r != "first chunk failed" {
				t.Errorf("recovered %v, want the first chunk's panic", r)
			}
		}()
		parallelFor(n, n, 1, func(lo, hi int) {
			if lo == 0 {
				panic("first chunk failed")
			}
			for i := lo; i < hi; i++ {
				done[i] = true
			}
		})
	}()
	for i := 1; i < n; i++ {
		if !done[i] {
			t.Errorf("chunk %d had not finished when the panic reached the caller", i)
		}
	}
}
