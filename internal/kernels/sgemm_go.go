package kernels

import (
	"math"
	"unsafe"
)

// goBackend runs everywhere: portable Go kernels of up to 4 rows by one panel.
var goBackend = &backend{
	name:       "go",
	mr:         4,
	mc:         128,
	kc:         256,
	directRows: math.MaxInt, // the Go kernel is too slow for B's layout to matter
	widths:     []int{PanelWidth},
	kernels: [][]microKernel{{
		kernelGo1x16, kernelGo2x16, kernelGo3x16, kernelGo4x16,
	}},
}

func kernelGo1x16(k int, a, b *float32, bstride, brow int, c *float32, ldc int, alpha, beta float32) {
	kernelGo(1, k, a, b, brow, c, ldc, alpha, beta)
}

func kernelGo2x16(k int, a, b *float32, bstride, brow int, c *float32, ldc int, alpha, beta float32) {
	kernelGo(2, k, a, b, brow, c, ldc, alpha, beta)
}

func kernelGo3x16(k int, a, b *float32, bstride, brow int, c *float32, ldc int, alpha, beta float32) {
	kernelGo(3, k, a, b, brow, c, ldc, alpha, beta)
}

func kernelGo4x16(k int, a, b *float32, bstride, brow int, c *float32, ldc int, alpha, beta float32) {
	kernelGo(4, k, a, b, brow, c, ldc, alpha, beta)
}

// kernelGo is the portable microKernel for mr rows by one PanelWidth panel:
//
//	for r := 0; r < mr; r++ {
//		for j := 0; j < PanelWidth; j++ {
//			var s float32
//			for p := 0; p < k; p++ {
//				s += a[p*mr+r] * b[p*brow+j]
//			}
//			if beta == 0 {
//				c[r*ldc+j] = alpha * s
//			} else {
//				c[r*ldc+j] = alpha*s + beta*c[r*ldc+j]
//			}
//		}
//	}
//
// Go does not vectorise, so the loop is blocked for scalar registers: two
// rows by four columns of sums, six loads for eight multiply-adds.
func kernelGo(mr, k int, a, b *float32, brow int, c *float32, ldc int, alpha, beta float32) {
	as := unsafe.Slice(a, k*mr)
	bs := unsafe.Slice(b, (k-1)*brow+PanelWidth)
	cs := unsafe.Slice(c, (mr-1)*ldc+PanelWidth)
	store := func(r, j int, s [4]float32) {
		crow := (*[4]float32)(cs[r*ldc+j:])
		if beta == 0 {
			for x, v := range s {
				crow[x] = alpha * v
			}
		} else {
			for x, v := range s {
				crow[x] = alpha*v + beta*crow[x]
			}
		}
	}
	r := 0
	for ; r+2 <= mr; r += 2 {
		for j := 0; j < PanelWidth; j += 4 {
			var s00, s01, s02, s03, s10, s11, s12, s13 float32
			for p := 0; p < k; p++ {
				ap := as[p*mr+r:][:2]
				bp := (*[4]float32)(bs[p*brow+j:])
				a0, a1 := ap[0], ap[1]
				b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
				s00 += a0 * b0
				s01 += a0 * b1
				s02 += a0 * b2
				s03 += a0 * b3
				s10 += a1 * b0
				s11 += a1 * b1
				s12 += a1 * b2
				s13 += a1 * b3
			}
			store(r, j, [4]float32{s00, s01, s02, s03})
			store(r+1, j, [4]float32{s10, s11, s12, s13})
		}
	}
	if r < mr {
		for j := 0; j < PanelWidth; j += 4 {
			var s0, s1, s2, s3 float32
			for p := 0; p < k; p++ {
				a0 := as[p*mr+r]
				bp := (*[4]float32)(bs[p*brow+j:])
				s0 += a0 * bp[0]
				s1 += a0 * bp[1]
				s2 += a0 * bp[2]
				s3 += a0 * bp[3]
			}
			store(r, j, [4]float32{s0, s1, s2, s3})
		}
	}
}
