//go:build !noasm

package kernels

// packAAVX512 packs blocks*16 columns of a rows×(16*blocks) matrix a (rows
// lda floats apart, 1 <= rows <= 16) into d, column after column, as packA
// lays out an untransposed A panel:
//
//	for p := 0; p < 16*blocks; p++ {
//		for r := 0; r < rows; r++ {
//			d[p*rows+r] = a[r*lda+p]
//		}
//	}
//
// Each 16×16 block is loaded row by row, transposed in registers and stored
// as 16 masked runs of rows floats. Call it only when vmathAVX512 is set.
//
//go:noescape
func packAAVX512(a *float32, lda, rows, blocks int, d *float32)

// im2colPanelAVX512 is Im2col.Panel on checked arguments: per row, one
// masked gather of PanelWidth floats from x at ih*w + iw + tap offset, the
// mask holding the lanes below valid whose positions fall inside the plane
// (unsigned compares, so negative rows and columns fail too).
//
//go:noescape
func im2colPanelAVX512(x *float32, ih, iw *[PanelWidth]int32, taps *int32, rows, h, w, valid int, dst *float32)

// im2colSegsAVX512 is im2colPanelAVX512 for panels whose lanes form segs'
// runs of consecutive columns: one masked load per run and row instead of
// a gather.
//
//go:noescape
func im2colSegsAVX512(x *float32, ih, iw *[PanelWidth]int32, segs *panelSegs, taps *int32, rows, h, w, valid int, dst *float32)
