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
