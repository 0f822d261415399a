package tensor

import (
	"fmt"
	"math"
	"math/bits"
)

// Bounds on the shape of a tensor that comes from outside Spindle's own code
// (a request's input, see CheckShape).
const (
	// MaxDim is the largest dimension CheckShape accepts.
	MaxDim = 1 << 31
	// MaxElements is the largest product of a shape's non-zero dimensions
	// CheckShape accepts: the element count of a non-empty tensor, and what
	// an empty tensor ([N 0]) would hold were its zero dimension 1, since
	// kernels loop over the other dimensions and some (a reduction over the
	// empty axis, a matrix product with an empty inner dimension) produce
	// outputs of that size.
	MaxElements = 1 << 31
	// MaxRank is the most dimensions CheckShape accepts (NumPy's limit):
	// Compile checks an axis against it where it does not know the rank.
	MaxRank = 64
)

// Count returns the number of elements of shape (1 for a scalar, 0 when a
// dimension is 0), or an error when a dimension is negative or the product of
// the non-zero dimensions does not fit in an int. Every partial product of
// the dimensions of a shape Count accepts fits in an int, so later index
// arithmetic cannot wrap, where NumElements silently wraps ([1<<32 1<<32] has
// "0" elements).
func Count(shape []int) (int, error) {
	n, zero := uint64(1), false
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %s: dimension %d is negative", ShapeString(shape), i)
		}
		if d == 0 {
			zero = true
			continue
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt {
			return 0, fmt.Errorf("shape %s: the product of its dimensions overflows", ShapeString(shape))
		}
		n = lo
	}
	if zero {
		return 0, nil
	}
	return int(n), nil
}

// CheckShape returns an error unless shape is fit for a request's tensor:
// at most MaxRank dimensions, every dimension non-negative and at most MaxDim, and the product of the
// non-zero dimensions at most MaxElements (so [1<<30 0] passes, as an empty
// tensor, but [1<<40 0] and [1<<20 1<<20 0] do not). The error names the
// rule; callers add which tensor it was.
func CheckShape(shape []int) error {
	if len(shape) > MaxRank {
		return fmt.Errorf("shape has %d dimensions, more than %d", len(shape), MaxRank)
	}
	for i, d := range shape {
		if d < 0 {
			return fmt.Errorf("shape %s: dimension %d is negative", ShapeString(shape), i)
		}
		if d > MaxDim {
			return fmt.Errorf("shape %s: dimension %d is %d, more than %d", ShapeString(shape), i, d, MaxDim)
		}
	}
	n := uint64(1)
	for _, d := range shape {
		if d == 0 {
			continue
		}
		// Both factors are at most 2^31 here, so the product cannot wrap.
		if n *= uint64(d); n > MaxElements {
			return fmt.Errorf("shape %s: the product of its non-zero dimensions is more than %d", ShapeString(shape), MaxElements)
		}
	}
	return nil
}

// byteCount returns shape's element count n and the bytes n elements of dt
// take, or an error when either does not fit in an int.
func byteCount(shape []int, dt DType) (n, bytes int, err error) {
	if n, err = Count(shape); err != nil {
		return 0, 0, err
	}
	sz := dt.Size()
	if sz > 0 && n > math.MaxInt/sz {
		return 0, 0, fmt.Errorf("shape %s of %s: more bytes than an int holds", ShapeString(shape), dt)
	}
	return n, n * sz, nil
}
