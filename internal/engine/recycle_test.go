package engine

import (
	"context"
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestRecyclerRefs checks that a buffer goes back to the pool only when its
// owner and every view of it are past their last use, and that untracked
// values (not fresh, too small, views of inputs) are never handed back.
func TestRecyclerRefs(t *testing.T) {
	big := func() *tensor.Tensor { return tensor.New(tensor.Float32, recycleMin) }
	cases := []struct {
		name string
		// run produces and drops slots on r and returns the buffer id it
		// watches, and whether that buffer must be recycled by the end.
		run  func(r *recycler) (id int, recycled bool)
		want []int // r.of after run
	}{
		{"fresh dropped", func(r *recycler) (int, bool) {
			r.produced(0, big(), true, nil, nil)
			r.dropped(0)
			return 0, true
		}, []int{-1, -1, -1}},
		{"view outlives owner", func(r *recycler) (int, bool) {
			h := big()
			r.produced(0, h, true, nil, nil)
			v := &tensor.Tensor{DType: tensor.Float32, Shape: []int{recycleMin / 2}, F32: h.F32[recycleMin/2:]}
			r.produced(1, v, true, []int{0}, []*tensor.Tensor{h})
			r.dropped(0)
			return 0, false
		}, []int{-1, 0, -1}},
		{"view and owner dropped", func(r *recycler) (int, bool) {
			h := big()
			r.produced(0, h, true, nil, nil)
			r.produced(1, h, true, []int{0}, []*tensor.Tensor{h})
			r.dropped(1)
			r.dropped(0)
			r.dropped(0) // a slot read twice by its last step
			return 0, true
		}, []int{-1, -1, -1}},
		{"view of an input", func(r *recycler) (int, bool) {
			in := big()
			r.produced(0, big(), true, nil, nil)
			r.produced(1, in, true, []int{-1}, []*tensor.Tensor{in})
			r.dropped(1)
			return 0, false
		}, []int{0, -1, -1}},
		{"not fresh", func(r *recycler) (int, bool) {
			r.produced(2, big(), true, nil, nil)
			r.produced(0, big(), false, nil, nil)
			r.dropped(0)
			return 0, false
		}, []int{-1, -1, 0}},
		{"too small", func(r *recycler) (int, bool) {
			r.produced(2, big(), true, nil, nil)
			r.produced(0, tensor.New(tensor.Float32, recycleMin-1), true, nil, nil)
			r.dropped(0)
			return 0, false
		}, []int{-1, -1, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRecycler(3)
			id, recycled := c.run(r)
			if got := r.buf[id] == nil; got != recycled {
				t.Errorf("buffer %d recycled = %v, want %v (refs %v)", id, got, recycled, r.refs)
			}
			if !slices.Equal(r.of, c.want) {
				t.Errorf("slot buffers = %v, want %v", r.of, c.want)
			}
		})
	}
}

// TestRunRecyclingKeepsOutputs runs a graph whose output is a view of an
// intermediate that later steps also read, and whose other intermediates
// are recycled, several times: no Run may write into an earlier Run's
// outputs, and the same input must give the same answer bit for bit.
func TestRunRecyclingKeepsOutputs(t *testing.T) {
	const n = 64 // n*n = recycleMin elements
	b := modelgen.NewBuilder("recycle", 17, 1)
	b.Input("x", tensor.Float32, []int64{n, n})
	w := b.Normal("w", 0.1, n, n)
	flat := b.Ints64("flat", n*n)
	b.Node("MatMul", []string{"x", w}, nil, "h")
	b.Node("Reshape", []string{"h", flat}, nil, "r")
	b.Node("MatMul", []string{"h", w}, nil, "a")
	b.Node("Relu", []string{"a"}, nil, "ar")
	b.Node("MatMul", []string{"ar", w}, nil, "z")
	b.Output("r", tensor.Float32, []int64{n * n})
	b.Output("z", tensor.Float32, []int64{n, n})
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	wt := m.Source().Weights[w]
	feed := func(seed float32) map[string]*tensor.Tensor {
		x := make([]float32, n*n)
		for i := range x {
			x[i] = seed * float32(i%13-6)
		}
		return map[string]*tensor.Tensor{"x": f32(x, n, n)}
	}
	run := func(seed float32) map[string]*tensor.Tensor {
		t.Helper()
		out, err := m.Run(context.Background(), feed(seed))
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return out
	}
	first := run(1)
	kept := map[string][]float32{}
	for k, v := range first {
		kept[k] = slices.Clone(v.F32)
	}
	// r is x·w, computed here the slow way.
	x := feed(1)["x"].F32
	want := make([]float32, n*n)
	for i := range n {
		for j := range n {
			var s float32
			for k := range n {
				s += x[i*n+k] * wt.F32[k*n+j]
			}
			want[i*n+j] = s
		}
	}
	checkTensor(t, first["r"], f32(want, n*n), 1e-4)
	for _, seed := range []float32{2, -3, 1} {
		again := run(seed)
		for k, v := range first {
			if !slices.Equal(v.F32, kept[k]) {
				t.Fatalf("output %q of the first Run changed after a Run with seed %v", k, seed)
			}
		}
		if seed == 1 {
			for k, v := range again {
				if !slices.Equal(v.F32, kept[k]) {
					t.Errorf("output %q differs between two Runs of the same input", k)
				}
			}
		}
	}
}

// TestRunRecyclesConstantOfShape: a graph that makes large constants one
// after another (each reduced, then dead) reuses one buffer rather than
// leaving each to the collector, whose timing would then decide whether the
// Run fits its memory limit. 12 constants of 65 MiB (over the fold limit,
// so made at run time) allocate 780 MiB without recycling.
func TestRunRecyclesConstantOfShape(t *testing.T) {
	const mib, n = 65, 12
	m, err := compileGraph(t, modelgen.ConstantPile(mib, n), onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"x": f32(make([]float32, 4), 4)})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	runtime.ReadMemStats(&after)
	elems := float64(mib << 18)
	want := elems * n * (n - 1) / 2                                      // constant i, i = 0..n-1, each summed over elems
	if got := float64(out["y"].F32[0]); math.Abs(got-want) > 1e-3*want { // y = x + the sum, x = 0
		t.Errorf("sum %g, want %g", got, want)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Run allocated %d MiB for %d constants of %d MiB", alloc>>20, n, mib)
	if alloc > 4*mib<<20 {
		t.Errorf("Run allocated %d MiB: the constants' buffers were not reused (at most %d MiB wanted)", alloc>>20, 4*mib)
	}
}
