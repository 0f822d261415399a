package kernels

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestGemmParallelPanicReachesCaller checks that a panic inside one of
// gemmParallel's goroutines is raised again on the calling goroutine, where
// a recover (the engine's, per request) can catch it, instead of ending the
// process.
func TestGemmParallelPanicReachesCaller(t *testing.T) {
	const msg = "kernels test: microkernel failed"
	be := *active
	be.kernels = make([][]microKernel, len(active.kernels))
	for w, ks := range active.kernels {
		be.kernels[w] = make([]microKernel, len(ks))
		for r := range ks {
			be.kernels[w][r] = func(int, *float32, *float32, int, int, *float32, int, float32, float32) { panic(msg) }
		}
	}
	tests := []struct {
		name    string
		m, n, k int
		transB  bool
	}{
		{"column blocks", 64, 256, 16, false},
		{"column blocks transB", 64, 256, 16, true},
		{"row blocks", 256, 16, 16, false},
	}
	for _, tt := range tests {
		a, b, c := make([]float32, tt.m*tt.k), make([]float32, tt.k*tt.n), make([]float32, tt.m*tt.n)
		ldb := tt.n
		if tt.transB {
			ldb = tt.k
		}
		func() {
			defer func() {
				if r := recover(); r != msg {
					t.Errorf("%s: recovered %v, want %q", tt.name, r, msg)
				}
			}()
			be.gemmParallel(4, 1, false, tt.m, tt.n, tt.k, 1, a, tt.k, bSource{trans: tt.transB, b: b, ldb: ldb}, 0, c, tt.n)
		}()
	}
}

// TestParallelRunsEveryPartOnce checks that Parallel calls fn exactly once
// per part, for part counts around the worker count, from many goroutines at
// once (as concurrent requests do) and nested (a part that splits again, as
// a convolution block's multiply does).
func TestParallelRunsEveryPartOnce(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for parts := 0; parts <= 9; parts++ {
				counts := make([]atomic.Int32, parts*3)
				Parallel(parts, func(i int) {
					counts[i].Add(1)
					if g%2 == 0 { // nested
						Parallel(2, func(j int) { counts[parts+2*i+j].Add(1) })
					} else {
						counts[parts+2*i].Add(1)
						counts[parts+2*i+1].Add(1)
					}
				})
				for i := range counts {
					if got := counts[i].Load(); got != 1 {
						t.Errorf("goroutine %d, %d parts: slot %d ran %d times, want 1", g, parts, i, got)
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestParallelPanicReachesCaller checks that a panic in any part, whichever
// goroutine runs it, is raised again on the caller after every other part
// has finished, and that the workers still serve the next call.
func TestParallelPanicReachesCaller(t *testing.T) {
	const msg = "kernels test: part failed"
	for bad := range 4 {
		var finished atomic.Int32
		func() {
			defer func() {
				if r := recover(); r != msg {
					t.Errorf("part %d panicked: recovered %v, want %q", bad, r, msg)
				}
				if got := finished.Load(); got != 3 {
					t.Errorf("part %d panicked: %d other parts finished before the panic reached the caller, want 3", bad, got)
				}
			}()
			Parallel(4, func(i int) {
				if i == bad {
					panic(msg)
				}
				finished.Add(1)
			})
		}()
	}
	var ran atomic.Int32
	Parallel(4, func(int) { ran.Add(1) })
	if got := ran.Load(); got != 4 {
		t.Errorf("after panics: %d parts ran, want 4", got)
	}
}
