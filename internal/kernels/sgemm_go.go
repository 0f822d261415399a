package kernels

import "unsafe"

// goBackend runs everywhere: portable Go kernels of up to 4 rows by one panel.
var goBackend = &backend{
	name:   "go",
	mr:     4,
	mc:     128,
	kc:     256,
	widths: []int{PanelWidth},
	kernels: [][]microKernel{{
		kernelGo1x16, kernelGo2x16, kernelGo3x16, kernelGo4x16,
	}},
}

func kernelGo1x16(k int, a, b *float32, bstride int, c *float32, ldc int, alpha, beta float32) {
	kernelGo(1, k, a, b, c, ldc, alpha, beta)
}

func kernelGo2x16(k int, a, b *float32, bstride int, c *float32, ldc int, alpha, beta float32) {
	kernelGo(2, k, a, b, c, ldc, alpha, beta)
}

func kernelGo3x16(k int, a, b *float32, bstride int, c *float32, ldc int, alpha, beta float32) {
	kernelGo(3, k, a, b, c, ldc, alpha, beta)
}

func kernelGo4x16(k int, a, b *float32, bstride int, c *float32, ldc int, alpha, beta float32) {
	kernelGo(4, k, a, b, c, ldc, alpha, beta)
}

// kernelGo is the portable microKernel for mr rows by one PanelWidth panel:
//
//	for r := 0; r < mr; r++ {
//		for j := 0; j < PanelWidth; j++ {
//			var s float32
//			for p := 0; p < k; p++ {
//				s += a[p*mr+r] * b[p*PanelWidth+j]
//			}
//			if beta == 0 {
//				c[r*ldc+j] = alpha * s
//			} else {
//				c[r*ldc+j] = alpha*s + beta*c[r*ldc+j]
//			}
//		}
//	}
//
// It keeps one row of sums in a local array and streams the B panel once per
// row; the panel is small enough to stay in L1.
func kernelGo(mr, k int, a, b *float32, c *float32, ldc int, alpha, beta float32) {
	as := unsafe.Slice(a, k*mr)
	bs := unsafe.Slice(b, k*PanelWidth)
	cs := unsafe.Slice(c, (mr-1)*ldc+PanelWidth)
	for r := 0; r < mr; r++ {
		var s [PanelWidth]float32
		for p := 0; p < k; p++ {
			av := as[p*mr+r]
			brow := (*[PanelWidth]float32)(bs[p*PanelWidth:])
			for j := range s {
				s[j] += av * brow[j]
			}
		}
		crow := (*[PanelWidth]float32)(cs[r*ldc:])
		if beta == 0 {
			for j := range s {
				crow[j] = alpha * s[j]
			}
		} else {
			for j := range s {
				crow[j] = alpha*s[j] + beta*crow[j]
			}
		}
	}
}
