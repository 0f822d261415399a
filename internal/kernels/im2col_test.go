package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIm2colPanel checks Panel (where the CPU has AVX-512: masked loads for
// panels made of runs of consecutive columns, gathers for others) and its Go
// loop against the defining formula, on windows that start in the padding,
// past the edges and inside, with dilation, ragged panels and a guard band
// after dst.
func TestIm2colPanel(t *testing.T) {
	const guard = -777
	tests := []struct {
		name                           string
		channels, h, w, kh, kw, dh, dw int
	}{
		{"mnist conv1", 1, 28, 28, 5, 5, 1, 1},
		{"mnist conv2", 10, 12, 12, 5, 5, 1, 1},
		{"3x3 dilated", 3, 9, 7, 3, 3, 2, 1},
		{"1x1", 4, 5, 6, 1, 1, 1, 1},
		{"empty plane", 2, 0, 4, 2, 2, 1, 1},
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ic := NewIm2col(tt.channels, tt.h, tt.w, tt.kh, tt.kw, tt.dh, tt.dw)
			rows := tt.channels * tt.kh * tt.kw
			if ic.Rows() != rows {
				t.Fatalf("Rows() = %d, want %d", ic.Rows(), rows)
			}
			x := make([]float32, tt.channels*tt.h*tt.w)
			for i := range x {
				x[i] = float32(i + 1)
			}
			// Window origins: random ones (gathers), then those of 16
			// consecutive pixels of outputs ow0 wide with padding pad,
			// starting at pixel j0 (runs of columns: masked loads).
			type origins struct {
				name   string
				ih, iw [PanelWidth]int32
				runs   bool
			}
			var cases []origins
			for range 3 {
				var o origins
				o.name = "random"
				for i := range o.ih {
					o.ih[i] = int32(rng.IntN(tt.h+2*tt.kh+1) - tt.kh*tt.dh)
					o.iw[i] = int32(rng.IntN(tt.w+2*tt.kw+1) - tt.kw*tt.dw)
				}
				cases = append(cases, o)
			}
			for _, g := range []struct{ ow0, pad, j0 int }{{24, 0, 16}, {8, 0, 0}, {8, 2, 20}, {5, 1, 3}, {14, 1, 30}, {40, 3, 35}} {
				o := origins{name: fmt.Sprintf("runs ow0=%d pad=%d j0=%d", g.ow0, g.pad, g.j0), runs: g.ow0 >= 5}
				for i := range o.ih {
					j := g.j0 + i
					o.ih[i], o.iw[i] = int32(j/g.ow0-g.pad), int32(j%g.ow0-g.pad)
				}
				cases = append(cases, o)
			}
			for _, o := range cases {
				for _, valid := range []int{16, 11, 0} {
					ih, iw := o.ih, o.iw
					var segs panelSegs
					if got := segs.split(&ih, &iw, tt.w, valid); o.runs && valid > 0 && !got {
						t.Fatalf("%s valid=%d: not split into runs", o.name, valid)
					}
					want := make([]float32, rows*PanelWidth)
					p := 0
					for c := 0; c < tt.channels; c++ {
						for i := 0; i < tt.kh; i++ {
							for j := 0; j < tt.kw; j++ {
								for l := 0; l < PanelWidth; l++ {
									r, col := int(ih[l])+i*tt.dh, int(iw[l])+j*tt.dw
									if l < valid && r >= 0 && r < tt.h && col >= 0 && col < tt.w {
										want[p*PanelWidth+l] = x[(c*tt.h+r)*tt.w+col]
									}
								}
								p++
							}
						}
					}
					paths := map[string]func(dst []float32){
						"Panel": func(dst []float32) { ic.Panel(dst, x, &ih, &iw, valid) },
						"go":    func(dst []float32) { im2colPanelGo(ic, dst, x, &ih, &iw, valid) },
					}
					for name, fill := range paths {
						dst := make([]float32, rows*PanelWidth+7)
						for i := range dst {
							dst[i] = guard
						}
						fill(dst)
						for i, v := range want {
							if dst[i] != v {
								t.Fatalf("%s, %s valid=%d: dst[%d] (row %d lane %d) = %v, want %v", o.name, name, valid, i, i/PanelWidth, i%PanelWidth, dst[i], v)
							}
						}
						for i := len(want); i < len(dst); i++ {
							if dst[i] != guard {
								t.Fatalf("%s, %s valid=%d: guard element %d overwritten", o.name, name, valid, i)
							}
						}
					}
				}
			}
		})
	}
}
