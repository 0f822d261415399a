package kernels

import (
	"math"
	"math/bits"
)

// matrixLen returns (rows-1)*ld + cols, the floats a rows×cols matrix with
// row stride ld spans, for rows, cols and ld of at least 1, or math.MaxInt
// when that does not fit in an int: computed unchecked, sizes such as
// rows = 1<<62 wrap to a small or negative length that a short slice passes,
// and the assembly kernels, which do no bounds checks, read and write far
// past it.
func matrixLen(rows, cols, ld int) int {
	hi, lo := bits.Mul64(uint64(rows-1), uint64(ld))
	if hi != 0 || lo > math.MaxInt-uint64(cols) {
		return math.MaxInt
	}
	return int(lo) + cols
}
