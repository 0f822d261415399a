package engine

import (
	"sync"
	"unsafe"

	"github.com/spindleml/spindle/internal/tensor"
)

// recycleMin is the fewest float32 elements a buffer must hold for Run to
// hand it back for reuse; smaller ones are cheap for the allocator.
const recycleMin = 4096

// f32Pools holds spare float32 buffers by exact length (a *sync.Pool per
// length), filled by Run with intermediate tensors it no longer needs and
// drained by newF32. The garbage collector empties sync.Pools, so lengths
// that stop being asked for cost nothing for long.
var f32Pools sync.Map

// newF32 returns a zeroed float32 tensor of shape, reusing a buffer that an
// earlier Run gave back when one of the right length is spare: kernels that
// allocate their output with it save the collector the work of freeing it.
// Kernels whose nodes set fresh must allocate outputs here or with
// tensor.New, never return a tensor they keep.
func newF32(shape ...int) *tensor.Tensor {
	t := newF32Dirty(shape...)
	clear(t.F32)
	return t
}

// newF32Dirty is newF32 for a kernel that writes every element of its
// output: a recycled buffer keeps what it held (a fresh one is zero).
func newF32Dirty(shape ...int) *tensor.Tensor {
	n := tensor.NumElements(shape)
	if n >= recycleMin {
		if p, ok := f32Pools.Load(n); ok {
			if b, ok := p.(*sync.Pool).Get().(*[]float32); ok && len(*b) == n {
				return &tensor.Tensor{DType: tensor.Float32, Shape: append([]int(nil), shape...), F32: *b}
			}
		}
	}
	return tensor.New(tensor.Float32, shape...)
}

// newTyped is tensor.New, through newF32 for float32.
func newTyped(dt tensor.DType, shape ...int) *tensor.Tensor {
	if dt == tensor.Float32 {
		return newF32(shape...)
	}
	return tensor.New(dt, shape...)
}

// putF32 gives b back for newF32 to reuse; nothing else may hold it.
func putF32(b []float32) {
	n := len(b)
	if n < recycleMin {
		return
	}
	p, ok := f32Pools.Load(n)
	if !ok {
		p, _ = f32Pools.LoadOrStore(n, &sync.Pool{})
	}
	p.(*sync.Pool).Put(&b)
}

// recycler tracks, for one Run, which slots hold float32 buffers that a
// fresh kernel allocated during the Run, and how many live slots (the
// owner and views of it) use each, so that a buffer goes back to the pool
// only when no live value can read it. Inputs, constants and everything a
// kernel not marked fresh returned are never tracked, so never recycled.
type recycler struct {
	buf  [][]float32 // buffers by id
	refs []int       // live slots using each buffer
	of   []int       // buffer id of each slot, -1 for none
}

func newRecycler(nslots int) *recycler {
	r := &recycler{of: make([]int, nslots)}
	for i := range r.of {
		r.of[i] = -1
	}
	return r
}

// span returns the address range of t's data, or ok false when it has none.
func span(t *tensor.Tensor) (lo, hi uintptr, ok bool) {
	if t == nil {
		return 0, 0, false
	}
	b := t.Bytes()
	if len(b) == 0 {
		return 0, 0, false
	}
	lo = uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return lo, lo + uintptr(len(b)), true
}

// overlaps reports whether t's data shares memory with u's.
func overlaps(t, u *tensor.Tensor) bool {
	a, b, ok := span(t)
	if !ok {
		return false
	}
	c, d, ok := span(u)
	return ok && a < d && c < b
}

// produced records output t of a step into slot s: a view of an argument
// joins that argument's buffer (or stays untracked when the argument is),
// and a fresh float32 buffer big enough to recycle gets an id of its own.
func (r *recycler) produced(s int, t *tensor.Tensor, fresh bool, in []int, args []*tensor.Tensor) {
	r.of[s] = -1
	if t == nil {
		return
	}
	for k, a := range args {
		if overlaps(t, a) {
			if in[k] >= 0 {
				if id := r.of[in[k]]; id >= 0 {
					r.of[s] = id
					r.refs[id]++
				}
			}
			return
		}
	}
	if !fresh || t.DType != tensor.Float32 || len(t.F32) < recycleMin {
		return
	}
	r.of[s] = len(r.buf)
	r.buf = append(r.buf, t.F32)
	r.refs = append(r.refs, 1)
}

// dropped records that slot s is past its last use, recycling its buffer
// when no other live slot uses it.
func (r *recycler) dropped(s int) {
	id := r.of[s]
	if id < 0 {
		return
	}
	r.of[s] = -1
	r.refs[id]--
	if r.refs[id] == 0 {
		putF32(r.buf[id])
		r.buf[id] = nil
	}
}
