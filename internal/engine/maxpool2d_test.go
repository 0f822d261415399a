package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMaxPool2DMatchesGeneric checks the fast 2-D MaxPool against the
// generic loop on window geometries it accepts, with NaNs in the input, and
// that windowsInside refuses what it does not handle.
func TestMaxPool2DMatchesGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	tests := []struct{ h, w, kh, kw, sh, sw int }{
		{28, 28, 2, 2, 2, 2},
		{24, 24, 2, 2, 2, 2},
		{13, 11, 3, 3, 2, 2},
		{7, 9, 3, 2, 1, 1},
		{5, 5, 5, 5, 1, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dx%d_k%dx%d_s%dx%d", tt.h, tt.w, tt.kh, tt.kw, tt.sh, tt.sw), func(t *testing.T) {
			g := geom3{in: [3]int{1, tt.h, tt.w}, k: [3]int{1, tt.kh, tt.kw}, s: [3]int{1, tt.sh, tt.sw}, d: [3]int{1, 1, 1},
				out: [3]int{1, (tt.h-tt.kh)/tt.sh + 1, (tt.w-tt.kw)/tt.sw + 1}}
			if !windowsInside(&g) {
				t.Fatal("windowsInside refused a geometry without padding")
			}
			const planes = 3
			x := make([]float32, planes*tt.h*tt.w)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
				if rng.IntN(40) == 0 {
					x[i] = float32(math.NaN())
				}
			}
			want := make([]float32, planes*g.outSize())
			got := make([]float32, len(want))
			maxPool(&g, x, want, nil, planes, false, float32(math.Inf(-1)))
			maxPool2D(&g, x, got, planes)
			for i := range want {
				if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
					t.Fatalf("output %d = %v, generic loop gives %v", i, got[i], want[i])
				}
			}
		})
	}
	padded := geom3{in: [3]int{1, 8, 8}, k: [3]int{1, 3, 3}, s: [3]int{1, 2, 2}, d: [3]int{1, 1, 1}, p: [3]int{0, 1, 1}, out: [3]int{1, 4, 4}}
	ceil := geom3{in: [3]int{1, 5, 5}, k: [3]int{1, 2, 2}, s: [3]int{1, 2, 2}, d: [3]int{1, 1, 1}, out: [3]int{1, 3, 3}}
	for name, g := range map[string]geom3{"padding": padded, "ceil mode window past the edge": ceil} {
		if windowsInside(&g) {
			t.Errorf("windowsInside accepted %s", name)
		}
	}
}

// TestMaxPoolPlanesMatchesGeneric checks the phase-plane MaxPool against
// the generic loop on geometries windowsInside refuses (padding, ceil mode,
// dilations, strides up to 3), with NaNs in the input, at 1 and 3 threads.
func TestMaxPoolPlanesMatchesGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	tests := []struct{ h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow int }{
		{112, 112, 3, 3, 2, 2, 1, 1, 1, 1, 56, 56}, // ResNet's stem pool
		{8, 8, 3, 3, 2, 2, 1, 1, 1, 1, 4, 4},
		{5, 5, 2, 2, 2, 2, 0, 0, 1, 1, 3, 3}, // ceil mode: the last windows past the edge
		{9, 11, 3, 2, 1, 3, 1, 0, 2, 1, 7, 4},
		{7, 7, 3, 3, 3, 3, 1, 1, 1, 1, 3, 3},
		{1, 20, 1, 5, 1, 1, 0, 2, 1, 1, 1, 20},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt), func(t *testing.T) {
			g := geom3{in: [3]int{1, tt.h, tt.w}, k: [3]int{1, tt.kh, tt.kw}, s: [3]int{1, tt.sh, tt.sw}, d: [3]int{1, tt.dh, tt.dw},
				p: [3]int{0, tt.ph, tt.pw}, out: [3]int{1, tt.oh, tt.ow}}
			const planes = 5
			x := make([]float32, planes*tt.h*tt.w)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
				if rng.IntN(40) == 0 {
					x[i] = float32(math.NaN())
				}
			}
			want := make([]float32, planes*g.outSize())
			maxPool(&g, x, want, nil, planes, false, float32(math.Inf(-1)))
			for _, threads := range []int{1, 3} {
				got := make([]float32, len(want))
				maxPoolPlanes(threads, &g, x, got, planes)
				for i := range want {
					if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
						t.Fatalf("%d threads: output %d = %v, generic loop gives %v", threads, i, got[i], want[i])
					}
				}
			}
		})
	}
}
