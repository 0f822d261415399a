package kernels

import "testing"

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
