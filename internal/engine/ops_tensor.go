package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/spindleml/spindle/internal/tensor"
)

// Tensor ops that move, select or create data without arithmetic: Gather,
// GatherElements, GatherND, ScatterND, ScatterElements, Transpose, Shape,
// Size, Concat, Split, Slice, Expand, Tile, Pad, Cast, CastLike,
// ConstantOfShape, Range, NonZero, Trilu, EyeLike and OneHot (Squeeze and
// Unsqueeze live with the other views in ops_shape.go).
//
// Data movement is written once over unsigned words of the element's size
// (uint8, uint32, uint64): a move never looks at values, so every dtype,
// bool included, shares one instantiation per element size. Outputs are
// freshly allocated.

func init() {
	register("Gather", newGather)
	register("GatherElements", newGatherElements)
	register("ScatterND", newScatterND)
	register("Transpose", newTranspose)
	register("Shape", newShape)
	register("Size", newSize)
	register("Concat", newConcat)
	register("Split", newSplit)
	register("Slice", newSlice)
	register("Expand", newExpand)
	register("Tile", newTile)
	register("Pad", newPad)
	register("Cast", newCast)
	register("CastLike", newCastLike)
	register("ConstantOfShape", newConstantOfShape)
	register("Range", newRange)
	register("NonZero", newNonZero)
	register("GatherND", newGatherND)
	register("ScatterElements", newScatterElements)
	register("Scatter", newScatterElements) // deprecated opset 9-10 name, same semantics
	register("Trilu", newTrilu)
	register("EyeLike", newEyeLike)
	register("OneHot", newOneHot)
}

// maxElements bounds the size of a tensor whose shape comes from data (Expand,
// Tile, ConstantOfShape, Range, Pad, ...), so a hostile request gets an error
// instead of exhausting memory: 2^30 elements is 4 GiB of float32.
const maxElements = 1 << 30

// elem is the set of Go types a tensor.Tensor stores, num its numeric subset.
type elem interface {
	num | bool
}

type num interface {
	floating | integer
}

type floating interface{ float32 | float64 }

type integer interface {
	int64 | int32 | int16 | int8 | uint64 | uint32 | uint16 | uint8
}

// word is an unsigned integer of an element's size, used for data movement.
type word interface {
	uint8 | uint16 | uint32 | uint64
}

// dtypeOf returns the tensor dtype that stores T.
func dtypeOf[T elem]() tensor.DType {
	var z T
	switch any(z).(type) {
	case float32:
		return tensor.Float32
	case float64:
		return tensor.Float64
	case int64:
		return tensor.Int64
	case int32:
		return tensor.Int32
	case int16:
		return tensor.Int16
	case int8:
		return tensor.Int8
	case uint64:
		return tensor.Uint64
	case uint32:
		return tensor.Uint32
	case uint16:
		return tensor.Uint16
	case uint8:
		return tensor.Uint8
	}
	return tensor.Bool
}

// dataOf returns t's data slice as []T; T must match t.DType.
func dataOf[T elem](t *tensor.Tensor) []T {
	var z T
	switch any(z).(type) {
	case float32:
		return any(t.F32).([]T)
	case float64:
		return any(t.F64).([]T)
	case int64:
		return any(t.I64).([]T)
	case int32:
		return any(t.I32).([]T)
	case int16:
		return any(t.I16).([]T)
	case int8:
		return any(t.I8).([]T)
	case uint64:
		return any(t.U64).([]T)
	case uint32:
		return any(t.U32).([]T)
	case uint16:
		return any(t.U16).([]T)
	case uint8:
		return any(t.U8).([]T)
	}
	return any(t.B).([]T)
}

// newOf allocates a zeroed tensor of element type T.
func newOf[T elem](shape []int) *tensor.Tensor { return newTyped(dtypeOf[T](), shape...) }

// words returns t's data reinterpreted as words of the element's size. The
// caller picks W with unsafe.Sizeof(W) == t.DType.Size().
func words[W word](t *tensor.Tensor) []W {
	b := t.Bytes()
	if len(b) == 0 {
		return nil
	}
	var z W
	return unsafe.Slice((*W)(unsafe.Pointer(&b[0])), len(b)/int(unsafe.Sizeof(z)))
}

// contiguousStrides returns the row-major element strides of shape.
func contiguousStrides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// coalesce drops size-1 dimensions and merges neighbours that every operand
// walks contiguously (strides[k][d] == strides[k][d+1]*shape[d+1]), so strided
// loops run over as few, as long rows as possible. It returns new slices.
func coalesce(shape []int, strides [][]int) ([]int, [][]int) {
	var sh []int
	st := make([][]int, len(strides))
	for d := range shape {
		if shape[d] == 1 {
			continue
		}
		if n := len(sh); n > 0 {
			merge := true
			for k := range strides {
				if st[k][n-1] != strides[k][d]*shape[d] {
					merge = false
					break
				}
			}
			if merge {
				sh[n-1] *= shape[d]
				for k := range strides {
					st[k][n-1] = strides[k][d]
				}
				continue
			}
		}
		sh = append(sh, shape[d])
		for k := range strides {
			st[k] = append(st[k], strides[k][d])
		}
	}
	return sh, st
}

// forRows walks shape row by row (the innermost dimension after coalescing)
// for several operands, each with its own element strides over shape (0 where
// it broadcasts). For each row it calls fn with every operand's offset of the
// row's first element, the row length and every operand's stride along the
// row. It makes no calls when shape has no elements; a scalar is one row of 1.
func forRows(shape []int, strides [][]int, fn func(offs []int, n int, step []int)) {
	if tensor.NumElements(shape) == 0 {
		return
	}
	sh, st := coalesce(shape, strides)
	offs := make([]int, len(strides))
	step := make([]int, len(strides))
	r := len(sh)
	if r == 0 {
		fn(offs, 1, step)
		return
	}
	for k := range st {
		step[k] = st[k][r-1]
	}
	inner := sh[r-1]
	idx := make([]int, r-1)
	rowOffs := make([]int, len(strides))
	for {
		copy(rowOffs, offs)
		fn(rowOffs, inner, step)
		d := r - 2
		for ; d >= 0; d-- {
			idx[d]++
			for k := range st {
				offs[k] += st[k][d]
			}
			if idx[d] < sh[d] {
				break
			}
			for k := range st {
				offs[k] -= st[k][d] * sh[d]
			}
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}

// copyStrided fills dst (contiguous, of shape) from src: the element of dst at
// index idx is src's element at off + Σ idx[d]*strides[d]. Transpose, Slice,
// Expand and Tile are all this one loop with different strides.
func copyStrided(dst, src *tensor.Tensor, shape, strides []int, off int) {
	moveStrided(dst, 0, contiguousStrides(shape), src, off, strides, shape)
}

// moveStrided copies, for every index idx of shape, src's element at srcOff +
// Σ idx[d]*srcStrides[d] to dst's element at dstOff + Σ idx[d]*dstStrides[d].
func moveStrided(dst *tensor.Tensor, dstOff int, dstStrides []int, src *tensor.Tensor, srcOff int, srcStrides, shape []int) {
	st := [][]int{dstStrides, srcStrides}
	switch dst.DType.Size() {
	case 1:
		moveStridedW(words[uint8](dst), dstOff, words[uint8](src), srcOff, shape, st)
	case 2:
		moveStridedW(words[uint16](dst), dstOff, words[uint16](src), srcOff, shape, st)
	case 4:
		moveStridedW(words[uint32](dst), dstOff, words[uint32](src), srcOff, shape, st)
	case 8:
		moveStridedW(words[uint64](dst), dstOff, words[uint64](src), srcOff, shape, st)
	default:
		panic("engine: moveStrided: unsupported element size")
	}
}

func moveStridedW[W word](dst []W, dstOff int, src []W, srcOff int, shape []int, strides [][]int) {
	forRows(shape, strides, func(offs []int, n int, step []int) {
		d, s := offs[0]+dstOff, offs[1]+srcOff
		ds, ss := step[0], step[1]
		switch {
		case ds == 1 && ss == 1:
			copy(dst[d:d+n], src[s:s+n])
		case ds == 1 && ss == 0:
			v := src[s]
			row := dst[d : d+n]
			for i := range row {
				row[i] = v
			}
		default:
			for i := 0; i < n; i++ {
				dst[d] = src[s]
				d += ds
				s += ss
			}
		}
	})
}

// takeFlat sets dst[i] = src[idx[i]].
func takeFlat(dst, src *tensor.Tensor, idx []int) {
	switch dst.DType.Size() {
	case 1:
		takeFlatW(words[uint8](dst), words[uint8](src), idx)
	case 2:
		takeFlatW(words[uint16](dst), words[uint16](src), idx)
	case 4:
		takeFlatW(words[uint32](dst), words[uint32](src), idx)
	case 8:
		takeFlatW(words[uint64](dst), words[uint64](src), idx)
	default:
		panic("engine: takeFlat: unsupported element size")
	}
}

func takeFlatW[W word](dst, src []W, idx []int) {
	for i, j := range idx {
		dst[i] = src[j]
	}
}

// fillTensor sets every element of t to v's one element (same dtype).
func fillTensor(t, v *tensor.Tensor) {
	switch t.DType.Size() {
	case 1:
		fillW(words[uint8](t), fillWord[uint8](v))
	case 2:
		fillW(words[uint16](t), fillWord[uint16](v))
	case 4:
		fillW(words[uint32](t), fillWord[uint32](v))
	case 8:
		fillW(words[uint64](t), fillWord[uint64](v))
	default:
		panic("engine: fillTensor: unsupported element size")
	}
}

func fillW[W word](dst []W, v W) {
	for i := range dst {
		dst[i] = v
	}
}

func fillWord[W word](t *tensor.Tensor) W { return words[W](t)[0] }

// intList reads a 0-D or 1-D int64 or int32 tensor, named for errors.
func intList(t *tensor.Tensor, name string) ([]int64, error) {
	if len(t.Shape) > 1 {
		return nil, fmt.Errorf("input %s: shape %s, must be 1-D", name, tensor.ShapeString(t.Shape))
	}
	switch t.DType {
	case tensor.Int64:
		return t.I64, nil
	case tensor.Int32:
		out := make([]int64, len(t.I32))
		for i, v := range t.I32 {
			out[i] = int64(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("input %s: dtype %s, must be int64 or int32", name, t.DType)
}

// toShape converts requested dimensions to a shape, rejecting negative
// dimensions, dimensions or shapes of more than maxElements elements.
func toShape(dims []int64, name string) ([]int, error) {
	out := make([]int, len(dims))
	n := int64(1)
	for i, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("%s: dimension %d is %d, must be >= 0", name, i, d)
		}
		if d > maxElements {
			return nil, fmt.Errorf("%w: %s: dimension %d is %d, more than %d elements", ErrBadInput, name, i, d, maxElements)
		}
		out[i] = int(d)
		if n *= d; n > maxElements { // both factors <= 2^30: no overflow
			return nil, fmt.Errorf("%w: %s: shape %v has more than %d elements", ErrBadInput, name, dims, maxElements)
		}
	}
	return out, nil
}

// checkSize rejects an output shape of more than maxElements elements.
func checkSize(shape []int, what string) error {
	n := 1
	for _, d := range shape {
		if d == 0 {
			return nil
		}
		if n > maxElements/d {
			return fmt.Errorf("%w: %s: shape %s has more than %d elements", ErrBadInput, what, tensor.ShapeString(shape), maxElements)
		}
		n *= d
	}
	return nil
}

// normAxes normalizes axes against rank and rejects duplicates.
func normAxes(axes []int64, rank int, name string) ([]int, error) {
	out := make([]int, len(axes))
	seen := make([]bool, rank)
	for i, a := range axes {
		ax, err := normAxis(a, rank, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if seen[ax] {
			return nil, fmt.Errorf("%s: axis %d appears twice in %v", name, a, axes)
		}
		seen[ax] = true
		out[i] = ax
	}
	return out, nil
}

// newGather: output is data.shape[:axis] + indices.shape + data.shape[axis+1:].
// Indices may be negative (counting from the end of the axis).
func newGather(n *Node) (Kernel, error) {
	axis := n.Int("axis", 0)
	n.fresh = true
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x, ind := in[0], in[1]
		ax, err := normAxis(axis, len(x.Shape), false)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		dim := x.Shape[ax]
		idx, err := indexList(ind, dim, "indices")
		if err != nil {
			return nil, err
		}
		shape := append(append(append([]int{}, x.Shape[:ax]...), ind.Shape...), x.Shape[ax+1:]...)
		half := x.DType == tensor.Float16 // a float16 table: gather its rows, then widen them
		out := newTyped(x.DType, shape...)
		sz := x.DType.Size()
		outer := tensor.NumElements(x.Shape[:ax])
		block := tensor.NumElements(x.Shape[ax+1:]) * sz
		src, dst := x.Bytes(), out.Bytes()
		o := 0
		for i := 0; i < outer; i++ {
			base := i * dim * block
			for _, j := range idx {
				copy(dst[o:o+block], src[base+j*block:base+(j+1)*block])
				o += block
			}
		}
		if half {
			out = widenHalf(out)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// indexList reads int32/int64 indices into [0, dim), accepting [-dim, dim).
func indexList(ind *tensor.Tensor, dim int, name string) ([]int, error) {
	var raw []int64
	switch ind.DType {
	case tensor.Int64:
		raw = ind.I64
	case tensor.Int32:
		raw = make([]int64, len(ind.I32))
		for i, v := range ind.I32 {
			raw[i] = int64(v)
		}
	default:
		return nil, fmt.Errorf("input %s: dtype %s, must be int64 or int32", name, ind.DType)
	}
	idx := make([]int, len(raw))
	for i, v := range raw {
		if v < -int64(dim) || v >= int64(dim) {
			return nil, fmt.Errorf("input %s: element %d is %d, out of range [%d, %d]", name, i, v, -dim, dim-1)
		}
		if v < 0 {
			v += int64(dim)
		}
		idx[i] = int(v)
	}
	return idx, nil
}

// newGatherElements: out[i...] = data[i... with axis coordinate indices[i...]];
// indices has data's rank and the output has indices' shape.
func newGatherElements(n *Node) (Kernel, error) {
	axis := n.Int("axis", 0)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x, ind := in[0], in[1]
		r := len(x.Shape)
		ax, err := normAxis(axis, r, false)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		if len(ind.Shape) != r {
			return nil, fmt.Errorf("input indices: shape %s, must have data's rank %d", tensor.ShapeString(ind.Shape), r)
		}
		for d := range ind.Shape {
			if d != ax && ind.Shape[d] > x.Shape[d] {
				return nil, fmt.Errorf("input indices: shape %s exceeds data shape %s in dimension %d", tensor.ShapeString(ind.Shape), tensor.ShapeString(x.Shape), d)
			}
		}
		vals, err := indexList(ind, x.Shape[ax], "indices")
		if err != nil {
			return nil, err
		}
		out := tensor.New(x.DType, ind.Shape...)
		takeFlat(out, x, elementOffsets(x.Shape, ind.Shape, ax, vals))
		return []*tensor.Tensor{out}, nil
	}, nil
}

// elementOffsets returns, for each element i... of an indices tensor of
// shape ishape (row-major), the flat offset into data of shape xshape of the
// element i... with its axis coordinate replaced by vals[i], as GatherElements
// and ScatterElements address data.
func elementOffsets(xshape, ishape []int, axis int, vals []int) []int {
	xs := contiguousStrides(xshape)
	offs := make([]int, len(vals))
	coord := make([]int, len(ishape))
	for i, v := range vals {
		off := 0
		for d, c := range coord {
			if d == axis {
				c = v
			}
			off += c * xs[d]
		}
		offs[i] = off
		for d := len(ishape) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < ishape[d] {
				break
			}
			coord[d] = 0
		}
	}
	return offs
}

// scatterReduction reads the reduction attribute of ScatterND and
// ScatterElements: none, add, mul, max or min.
func scatterReduction(n *Node) (string, error) {
	red := n.String("reduction", "none")
	switch red {
	case "none", "add", "mul", "max", "min":
		return red, nil
	}
	return "", fmt.Errorf("attribute reduction: %q: %w (none, add, mul, max and min are)", red, ErrUnsupported)
}

// newScatterND copies data and writes updates at the positions indices name
// (ONNX ScatterND), combining with reduction none, add, mul, max or min.
func newScatterND(n *Node) (Kernel, error) {
	red, err := scatterReduction(n)
	if err != nil {
		return nil, err
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 3, 3); err != nil {
			return nil, err
		}
		x, ind, upd := in[0], in[1], in[2]
		if upd.DType != x.DType {
			return nil, fmt.Errorf("input updates: dtype %s, must match data's %s", upd.DType, x.DType)
		}
		if ind.DType != tensor.Int64 {
			return nil, fmt.Errorf("input indices: dtype %s, must be int64", ind.DType)
		}
		q := len(ind.Shape)
		if q == 0 {
			return nil, fmt.Errorf("input indices: must have rank >= 1")
		}
		k := ind.Shape[q-1]
		if k > len(x.Shape) {
			return nil, fmt.Errorf("input indices: last dimension %d exceeds data rank %d", k, len(x.Shape))
		}
		wantUpd := append(append([]int{}, ind.Shape[:q-1]...), x.Shape[k:]...)
		if tensor.ShapeString(upd.Shape) != tensor.ShapeString(wantUpd) {
			return nil, fmt.Errorf("input updates: shape %s, must be %s", tensor.ShapeString(upd.Shape), tensor.ShapeString(wantUpd))
		}
		xs := contiguousStrides(x.Shape)
		slice := tensor.NumElements(x.Shape[k:])
		nupd := tensor.NumElements(ind.Shape[:q-1])
		offs := make([]int, nupd)
		for i := range offs {
			off := 0
			for d := 0; d < k; d++ {
				v := ind.I64[i*k+d]
				dim := int64(x.Shape[d])
				if v < -dim || v >= dim {
					return nil, fmt.Errorf("input indices: index %d in dimension %d is out of range [%d, %d]", v, d, -dim, dim-1)
				}
				if v < 0 {
					v += dim
				}
				off += int(v) * xs[d]
			}
			offs[i] = off
		}
		out := tensor.New(x.DType, x.Shape...)
		copy(out.Bytes(), x.Bytes())
		if red == "none" {
			sz := x.DType.Size()
			dst, src := out.Bytes(), upd.Bytes()
			for i, off := range offs {
				copy(dst[off*sz:(off+slice)*sz], src[i*slice*sz:(i+1)*slice*sz])
			}
			return []*tensor.Tensor{out}, nil
		}
		var err error
		switch x.DType {
		case tensor.Float32:
			err = scatterReduce(out.F32, upd.F32, offs, slice, red)
		case tensor.Float64:
			err = scatterReduce(out.F64, upd.F64, offs, slice, red)
		case tensor.Int64:
			err = scatterReduce(out.I64, upd.I64, offs, slice, red)
		case tensor.Int32:
			err = scatterReduce(out.I32, upd.I32, offs, slice, red)
		default:
			err = fmt.Errorf("input data: dtype %s, reduction %s supports float32, float64, int64 and int32", x.DType, red)
		}
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

func scatterReduce[T float32 | float64 | int64 | int32](dst, upd []T, offs []int, slice int, red string) error {
	for i, off := range offs {
		d, u := dst[off:off+slice], upd[i*slice:(i+1)*slice]
		for j, v := range u {
			switch red {
			case "add":
				d[j] += v
			case "mul":
				d[j] *= v
			case "max":
				d[j] = max(d[j], v)
			case "min":
				d[j] = min(d[j], v)
			}
		}
	}
	return nil
}

// newTranspose permutes dimensions; perm defaults to reversing them.
func newTranspose(n *Node) (Kernel, error) {
	perm := n.Ints("perm", nil)
	hasPerm := n.Has("perm")
	n.fresh = true
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		r := len(x.Shape)
		p := make([]int, r)
		if !hasPerm {
			for i := range p {
				p[i] = r - 1 - i
			}
		} else {
			if len(perm) != r {
				return nil, fmt.Errorf("attribute perm: %v has %d entries, the input has rank %d", perm, len(perm), r)
			}
			seen := make([]bool, r)
			for i, v := range perm {
				if v < 0 || v >= int64(r) || seen[v] {
					return nil, fmt.Errorf("attribute perm: %v is not a permutation of 0..%d", perm, r-1)
				}
				seen[v] = true
				p[i] = int(v)
			}
		}
		xs := contiguousStrides(x.Shape)
		shape := make([]int, r)
		st := make([]int, r)
		for i, v := range p {
			shape[i] = x.Shape[v]
			st[i] = xs[v]
		}
		out := newTyped(x.DType, shape...)
		// Split the output's first axis longer than 1 over the threads
		// (attention's head transposes have a batch axis of 1).
		a := 0
		for a < r-1 && shape[a] == 1 {
			a++
		}
		if r == 0 || threads < 2 || shape[a] < 2 || out.Len() < 2*elementGrain {
			copyStrided(out, x, shape, st, 0)
			return []*tensor.Tensor{out}, nil
		}
		ds := contiguousStrides(shape)
		parallelFor(threads, shape[a], 1, func(lo, hi int) {
			part := slices.Clone(shape)
			part[a] = hi - lo
			moveStrided(out, lo*ds[a], ds, x, lo*st[a], st, part)
		})
		return []*tensor.Tensor{out}, nil
	}
	return withThreads(n.threaded, 1), nil
}

// newShape returns the input's shape as int64, sliced by start and end
// (opset 15; negative values count from the end, out-of-range values clamp).
func newShape(n *Node) (Kernel, error) {
	start := n.Int("start", 0)
	end, hasEnd := n.Int("end", 0), n.Has("end")
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		r := int64(len(in[0].Shape))
		clampDim := func(v int64) int64 {
			if v < 0 {
				v += r
			}
			return min(max(v, 0), r)
		}
		s, e := clampDim(start), r
		if hasEnd {
			e = clampDim(end)
		}
		vals := []int64{}
		for i := s; i < e; i++ {
			vals = append(vals, int64(in[0].Shape[i]))
		}
		return []*tensor.Tensor{tensor.FromI64(vals, len(vals))}, nil
	}, nil
}

// newSize returns the input's element count as an int64 scalar.
func newSize(n *Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		return []*tensor.Tensor{tensor.FromI64([]int64{int64(tensor.NumElements(in[0].Shape))})}, nil
	}, nil
}

// newConcat joins inputs of one dtype and rank along axis; the other
// dimensions must agree.
func newConcat(n *Node) (Kernel, error) {
	if !n.Has("axis") {
		return nil, fmt.Errorf("attribute axis: required")
	}
	axis := n.Int("axis", 0)
	n.fresh = true // a new tensor, from the recycled buffers for float32
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, len(in)); err != nil {
			return nil, err
		}
		out, err := concatTensors(in, axis)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// concatTensors joins in (at least one) along axis: dtypes, ranks and the
// other dimensions must match.
func concatTensors(in []*tensor.Tensor, axis int64) (*tensor.Tensor, error) {
	first := in[0]
	r := len(first.Shape)
	ax, err := normAxis(axis, r, false)
	if err != nil {
		return nil, fmt.Errorf("attribute axis: %w", err)
	}
	shape := append([]int{}, first.Shape...)
	shape[ax] = 0
	for i, t := range in {
		if t == nil {
			return nil, fmt.Errorf("input %d is required", i)
		}
		if t.DType != first.DType || t.DType.Size() == 0 {
			return nil, fmt.Errorf("input %d: dtype %s, input 0 has %s; all must match, of a fixed size", i, t.DType, first.DType)
		}
		if len(t.Shape) != r {
			return nil, fmt.Errorf("input %d: shape %s, input 0 has %s; ranks must match", i, tensor.ShapeString(t.Shape), tensor.ShapeString(first.Shape))
		}
		for d := range t.Shape {
			if d != ax && t.Shape[d] != first.Shape[d] {
				return nil, fmt.Errorf("input %d: shape %s, input 0 has %s; dimensions other than axis %d must match", i, tensor.ShapeString(t.Shape), tensor.ShapeString(first.Shape), ax)
			}
		}
		shape[ax] += t.Shape[ax]
	}
	var out *tensor.Tensor
	if first.DType == tensor.Float32 {
		out = newF32Dirty(shape...) // recycled (a fresh mapping costs a page fault per 4 KiB), and every element is written
	} else {
		out = tensor.New(first.DType, shape...)
	}
	outer := tensor.NumElements(shape[:ax])
	sz := first.DType.Size()
	dst := out.Bytes()
	o := 0
	for i := 0; i < outer; i++ {
		for _, t := range in {
			block := tensor.NumElements(t.Shape[ax:]) * sz
			copy(dst[o:o+block], t.Bytes()[i*block:(i+1)*block])
			o += block
		}
	}
	return out, nil
}

// newSplit cuts the input along axis into len(outputs) parts: by the split
// sizes (attribute before opset 13, input since), or equally; opset 18's
// num_outputs allows a smaller last part.
func newSplit(n *Node) (Kernel, error) {
	axis := n.Int("axis", 0)
	nout := len(n.Outputs)
	if nout == 0 {
		return nil, fmt.Errorf("no outputs; Split needs at least one")
	}
	splitAttr := n.Ints("split", nil)
	numOutputs := n.Int("num_outputs", 0)
	if n.Has("num_outputs") && int(numOutputs) != nout {
		return nil, fmt.Errorf("attribute num_outputs: %d, the node has %d outputs", numOutputs, nout)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 2); err != nil {
			return nil, err
		}
		x := in[0]
		ax, err := normAxis(axis, len(x.Shape), false)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		dim := x.Shape[ax]
		sizes := make([]int, nout)
		var req []int64
		switch {
		case len(in) > 1 && in[1] != nil:
			if req, err = intList(in[1], "split"); err != nil {
				return nil, err
			}
		case splitAttr != nil:
			req = splitAttr
		}
		switch {
		case req != nil:
			if len(req) != nout {
				return nil, fmt.Errorf("split %v has %d entries, the node has %d outputs", req, len(req), nout)
			}
			total := int64(0)
			for i, s := range req {
				if s < 0 {
					return nil, fmt.Errorf("split %v: entry %d is negative", req, i)
				}
				total += s
				sizes[i] = int(s)
			}
			if total != int64(dim) {
				return nil, fmt.Errorf("split %v sums to %d, axis %d has %d", req, total, ax, dim)
			}
		case n.Has("num_outputs"):
			chunk := (dim + nout - 1) / nout
			rest := dim
			for i := range sizes {
				sizes[i] = min(chunk, rest)
				rest -= sizes[i]
			}
		default:
			if dim%nout != 0 {
				return nil, fmt.Errorf("axis %d has %d elements, which do not split equally into %d outputs", ax, dim, nout)
			}
			for i := range sizes {
				sizes[i] = dim / nout
			}
		}
		return splitTensor(x, ax, sizes), nil
	}, nil
}

// splitTensor cuts x along axis ax into parts of the given sizes (which sum
// to the axis's length).
func splitTensor(x *tensor.Tensor, ax int, sizes []int) []*tensor.Tensor {
	dim := x.Shape[ax]
	outer := tensor.NumElements(x.Shape[:ax])
	inner := tensor.NumElements(x.Shape[ax+1:]) * x.DType.Size()
	src := x.Bytes()
	outs := make([]*tensor.Tensor, len(sizes))
	start := 0
	for k, s := range sizes {
		shape := append([]int{}, x.Shape...)
		shape[ax] = s
		outs[k] = tensor.New(x.DType, shape...)
		dst := outs[k].Bytes()
		block := s * inner
		for i := 0; i < outer; i++ {
			from := (i*dim + start) * inner
			copy(dst[i*block:(i+1)*block], src[from:from+block])
		}
		start += s
	}
	return outs
}

// newSlice: starts, ends, axes and steps are inputs since opset 10 (attributes
// before, without steps). Starts and ends count from the end when negative and
// clamp to the axis, so INT64_MAX means "to the end"; steps may be negative.
func newSlice(n *Node) (Kernel, error) {
	attrMode := n.Opset < 10
	aStarts, aEnds, aAxes := n.Ints("starts", nil), n.Ints("ends", nil), n.Ints("axes", nil)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		var starts, ends, axes, steps []int64
		var err error
		if attrMode {
			if err := checkInputs(in, 1, 1); err != nil {
				return nil, err
			}
			starts, ends, axes = aStarts, aEnds, aAxes
		} else {
			if err := checkInputs(in, 3, 5); err != nil {
				return nil, err
			}
			if starts, err = intList(in[1], "starts"); err != nil {
				return nil, err
			}
			if ends, err = intList(in[2], "ends"); err != nil {
				return nil, err
			}
			if len(in) > 3 && in[3] != nil {
				if axes, err = intList(in[3], "axes"); err != nil {
					return nil, err
				}
			}
			if len(in) > 4 && in[4] != nil {
				if steps, err = intList(in[4], "steps"); err != nil {
					return nil, err
				}
			}
		}
		x := in[0]
		r := len(x.Shape)
		if len(ends) != len(starts) {
			return nil, fmt.Errorf("starts has %d entries, ends %d; they must match", len(starts), len(ends))
		}
		if axes == nil {
			axes = make([]int64, len(starts))
			for i := range axes {
				axes[i] = int64(i)
			}
		}
		if len(axes) != len(starts) {
			return nil, fmt.Errorf("axes has %d entries, starts %d; they must match", len(axes), len(starts))
		}
		if steps != nil && len(steps) != len(starts) {
			return nil, fmt.Errorf("steps has %d entries, starts %d; they must match", len(steps), len(starts))
		}
		ax, err := normAxes(axes, r, "axes")
		if err != nil {
			return nil, err
		}
		xs := contiguousStrides(x.Shape)
		shape := append([]int{}, x.Shape...)
		st := append([]int{}, xs...)
		off := 0
		for i, a := range ax {
			step := int64(1)
			if steps != nil {
				step = steps[i]
			}
			if step == 0 {
				return nil, fmt.Errorf("steps: entry %d is 0", i)
			}
			dim := int64(x.Shape[a])
			step = min(max(step, -dim-1), dim+1) // see sliceRange
			s, cnt := sliceRange(starts[i], ends[i], step, dim)
			shape[a] = int(cnt)
			st[a] = xs[a] * int(step)
			if cnt > 0 {
				off += int(s) * xs[a]
			}
		}
		out := tensor.New(x.DType, shape...)
		copyStrided(out, x, shape, st, off)
		return []*tensor.Tensor{out}, nil
	}, nil
}

// sliceRange resolves one axis of a Slice (ONNX Slice-13 semantics): the first
// index and the number of elements taken.
func sliceRange(start, end, step, dim int64) (first, count int64) {
	// A step longer than the axis takes at most one element; clamping it
	// keeps the arithmetic below from overflowing.
	step = min(max(step, -dim-1), dim+1)
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	if step > 0 {
		start = min(max(start, 0), dim)
		end = min(max(end, 0), dim)
		if end <= start {
			return start, 0
		}
		return start, (end - start + step - 1) / step
	}
	start = min(max(start, -1), dim-1)
	end = min(max(end, -1), dim-1)
	if start <= end {
		return start, 0
	}
	return start, (start - end - step - 1) / -step
}

// newExpand broadcasts the input against the shape input (both ways, as
// NumPy does: the output is the broadcast of the two shapes).
func newExpand(n *Node) (Kernel, error) {
	n.fresh = true
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x := in[0]
		if in[1].DType != tensor.Int64 {
			return nil, fmt.Errorf("input shape: dtype %s, must be int64", in[1].DType)
		}
		req, err := intList(in[1], "shape")
		if err != nil {
			return nil, err
		}
		want, err := toShape(req, "input shape")
		if err != nil {
			return nil, err
		}
		shape, err := broadcastShapes(x.Shape, want)
		if err != nil {
			return nil, fmt.Errorf("input shape %v against input %s: %w", req, tensor.ShapeString(x.Shape), err)
		}
		if err := checkSize(shape, "output"); err != nil {
			return nil, err
		}
		out := newTyped(x.DType, shape...)
		copyStrided(out, x, shape, broadcastStrides(x.Shape, shape), 0)
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newTile repeats the input repeats[d] times along each dimension d.
func newTile(n *Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x := in[0]
		reps, err := intList(in[1], "repeats")
		if err != nil {
			return nil, err
		}
		r := len(x.Shape)
		if len(reps) != r {
			return nil, fmt.Errorf("input repeats: %v has %d entries, the input has rank %d", reps, len(reps), r)
		}
		rs, err := toShape(reps, "input repeats")
		if err != nil {
			return nil, err
		}
		// View the output as [reps0, dim0, reps1, dim1, ...] reading the
		// input with stride 0 along the repeat dimensions.
		xs := contiguousStrides(x.Shape)
		view := make([]int, 2*r)
		vst := make([]int, 2*r)
		shape := make([]int, r)
		for d := 0; d < r; d++ {
			view[2*d], view[2*d+1] = rs[d], x.Shape[d]
			vst[2*d+1] = xs[d]
			shape[d] = rs[d] * x.Shape[d]
		}
		if err := checkSize(view, "output"); err != nil {
			return nil, err
		}
		out := tensor.New(x.DType, shape...)
		copyStrided(out, x, view, vst, 0)
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newPad pads (or, with negative pads, crops) each dimension. Mode constant
// fills with constant_value (0 by default), edge repeats the border element,
// reflect mirrors without repeating it, wrap (opset 19) wraps around. Before
// opset 11 pads and value are attributes; opset 18 adds the axes input.
func newPad(n *Node) (Kernel, error) {
	mode := n.String("mode", "constant")
	switch mode {
	case "constant", "reflect", "edge", "wrap":
	default:
		return nil, fmt.Errorf("attribute mode: %q: %w (constant, reflect, edge and wrap are)", mode, ErrUnsupported)
	}
	attrMode := n.Opset < 11
	aPads, aValue := n.Ints("pads", nil), n.Float("value", 0)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		var pads, axes []int64
		var fill *tensor.Tensor
		var err error
		if err := checkInputs(in, 1, 4); err != nil {
			return nil, err
		}
		x := in[0]
		if attrMode {
			if err := checkInputs(in, 1, 1); err != nil {
				return nil, err
			}
			pads = aPads
			if fill, err = castTensor(tensor.FromF32([]float32{aValue}), x.DType); err != nil {
				return nil, err
			}
		} else {
			if err := checkInputs(in, 2, 4); err != nil {
				return nil, err
			}
			if pads, err = intList(in[1], "pads"); err != nil {
				return nil, err
			}
			if len(in) > 2 && in[2] != nil && in[2].Len() > 0 {
				if in[2].DType != x.DType || in[2].Len() != 1 {
					return nil, fmt.Errorf("input constant_value: %s, must be a scalar of the data's dtype %s", in[2], x.DType)
				}
				fill = in[2]
			}
			if len(in) > 3 && in[3] != nil {
				if axes, err = intList(in[3], "axes"); err != nil {
					return nil, err
				}
			}
		}
		r := len(x.Shape)
		if axes == nil {
			axes = make([]int64, r)
			for i := range axes {
				axes[i] = int64(i)
			}
		}
		ax, err := normAxes(axes, r, "axes")
		if err != nil {
			return nil, err
		}
		if len(pads) != 2*len(ax) {
			return nil, fmt.Errorf("pads: %v has %d entries, want 2 x %d axes", pads, len(pads), len(ax))
		}
		begin, end := make([]int, r), make([]int, r)
		shape := append([]int{}, x.Shape...)
		for i, a := range ax {
			b, e := pads[i], pads[i+len(ax)]
			nd := int64(x.Shape[a]) + b + e
			if nd < 0 || nd > maxElements {
				return nil, fmt.Errorf("pads: %v gives dimension %d size %d", pads, a, nd)
			}
			begin[a], end[a], shape[a] = int(b), int(e), int(nd)
			if mode != "constant" && nd > 0 && x.Shape[a] == 0 {
				return nil, fmt.Errorf("pads: mode %s cannot pad the empty dimension %d", mode, a)
			}
			if mode == "reflect" && x.Shape[a] > 0 && (b >= int64(x.Shape[a]) || e >= int64(x.Shape[a])) {
				return nil, fmt.Errorf("pads: %v: reflect padding of dimension %d must be smaller than its size %d", pads, a, x.Shape[a])
			}
		}
		if err := checkSize(shape, "output"); err != nil {
			return nil, err
		}
		if fill == nil {
			fill = tensor.New(x.DType, 1)
		}
		out := tensor.New(x.DType, shape...)
		if mode == "constant" {
			padConstant(out, x, begin, fill)
			return []*tensor.Tensor{out}, nil
		}
		// maps[d][o] is the input coordinate feeding output coordinate o of
		// dimension d (edge, reflect and wrap always find one).
		maps := make([][]int, r)
		for d := 0; d < r; d++ {
			dim := x.Shape[d]
			maps[d] = make([]int, shape[d])
			for o := range maps[d] {
				i := o - begin[d]
				if i < 0 || i >= dim {
					switch mode {
					case "edge":
						i = min(max(i, 0), dim-1)
					case "wrap":
						i = ((i % dim) + dim) % dim
					case "reflect":
						if dim == 1 {
							i = 0
							break
						}
						p := 2 * (dim - 1)
						i = ((i % p) + p) % p
						if i >= dim {
							i = p - i
						}
					}
				}
				maps[d][o] = i
			}
		}
		xs := contiguousStrides(x.Shape)
		flat := make([]int, tensor.NumElements(shape))
		coord := make([]int, r)
		for k := range flat {
			off := 0
			for d := 0; d < r; d++ {
				off += maps[d][coord[d]] * xs[d]
			}
			flat[k] = off
			for d := r - 1; d >= 0; d-- {
				coord[d]++
				if coord[d] < shape[d] {
					break
				}
				coord[d] = 0
			}
		}
		takeFlat(out, x, flat)
		return []*tensor.Tensor{out}, nil
	}, nil
}

// padConstant fills out with fill and copies into it the part of x that
// begin (negative to crop) places inside out.
func padConstant(out, x *tensor.Tensor, begin []int, fill *tensor.Tensor) {
	r := len(x.Shape)
	os, xs := contiguousStrides(out.Shape), contiguousStrides(x.Shape)
	shape := make([]int, r)
	srcOff, dstOff := 0, 0
	for d := 0; d < r; d++ {
		lo := max(0, -begin[d])
		hi := min(x.Shape[d], out.Shape[d]-begin[d])
		shape[d] = max(0, hi-lo)
		srcOff += lo * xs[d]
		dstOff += (lo + begin[d]) * os[d]
	}
	if tensor.NumElements(shape) < out.Len() {
		fillTensor(out, fill)
	}
	if tensor.NumElements(shape) > 0 {
		moveStrided(out, dstOff, os, x, srcOff, xs, shape)
	}
}

// castTypes are the numeric and bool dtypes: Cast converts between any two
// of them (and to and from strings), and ops that make a tensor of a dtype
// given by an attribute accept them.
var castTypes = map[tensor.DType]bool{
	tensor.Float32: true, tensor.Float64: true, tensor.Int64: true, tensor.Int32: true,
	tensor.Int16: true, tensor.Int8: true, tensor.Uint64: true, tensor.Uint32: true,
	tensor.Uint16: true, tensor.Uint8: true, tensor.Bool: true,
}

// castable reports whether Cast converts to or from dt.
func castable(dt tensor.DType) bool { return castTypes[dt] || dt == tensor.String }

// newCast converts to the dtype in attribute to. Float to integer truncates
// toward zero (as C casts and ONNX Runtime do); values out of the target's
// range follow the machine's conversion. Any value to bool is value != 0.
// Numbers become strings in their shortest round-trip form and strings
// parse as numbers ("inf", "NaN" included).
func newCast(n *Node) (Kernel, error) {
	if !n.Has("to") {
		return nil, fmt.Errorf("attribute to: required")
	}
	to := tensor.DType(n.Int("to", 0))
	if !castable(to) && !to.Wide() {
		return nil, fmt.Errorf("attribute to: %s: %w (float32, float16, bfloat16, float64, the integers, bool and string are)", to, ErrUnsupported)
	}
	return castKernel(1, func([]*tensor.Tensor) tensor.DType { return to }), nil
}

// newCastLike casts input 0 to input 1's dtype. A float16 or bfloat16 target
// is held as float32, so the cast is to float32 (its values unrounded).
func newCastLike(n *Node) (Kernel, error) {
	return castKernel(2, func(in []*tensor.Tensor) tensor.DType { return in[1].DType }), nil
}

// castKernel casts its first input (of nIn) to the dtype target picks. A float16 or
// bfloat16 tensor is held as float32 holding values of that type (ops of such
// graphs compute in float32): the cast rounds to them.
func castKernel(nIn int, target func(in []*tensor.Tensor) tensor.DType) Kernel {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, nIn, nIn); err != nil {
			return nil, err
		}
		to := target(in)
		if !castable(to) && !to.Wide() {
			return nil, fmt.Errorf("target dtype %s is not supported", to)
		}
		held := to
		if to.Wide() {
			held = tensor.Float32
		}
		out, err := castTensor(in[0], held)
		if err != nil {
			return nil, err
		}
		switch to {
		case tensor.Float16:
			for i, v := range out.F32 {
				out.F32[i] = tensor.RoundHalf(v)
			}
		case tensor.BFloat16:
			for i, v := range out.F32 {
				out.F32[i] = tensor.RoundBFloat(v)
			}
		}
		return []*tensor.Tensor{out}, nil
	}
}

// castTensor returns a new tensor holding x converted to dtype to.
func castTensor(x *tensor.Tensor, to tensor.DType) (*tensor.Tensor, error) {
	if !castable(x.DType) {
		return nil, fmt.Errorf("input: dtype %s cannot be cast", x.DType)
	}
	out := tensor.New(to, x.Shape...)
	var err error
	switch to {
	case tensor.Float32:
		err = castInto(out.F32, x)
	case tensor.Float64:
		err = castInto(out.F64, x)
	case tensor.Int64:
		err = castInto(out.I64, x)
	case tensor.Int32:
		err = castInto(out.I32, x)
	case tensor.Int16:
		err = castInto(out.I16, x)
	case tensor.Int8:
		err = castInto(out.I8, x)
	case tensor.Uint64:
		err = castInto(out.U64, x)
	case tensor.Uint32:
		err = castInto(out.U32, x)
	case tensor.Uint16:
		err = castInto(out.U16, x)
	case tensor.Uint8:
		err = castInto(out.U8, x)
	case tensor.Bool:
		err = castBool(out.B, x)
	case tensor.String:
		formatStrings(out.S, x)
	default:
		return nil, fmt.Errorf("cast to %s: %w", to, ErrUnsupported)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// castInto converts x's elements into dst (of x's length).
func castInto[D num](dst []D, x *tensor.Tensor) error {
	switch x.DType {
	case tensor.Float32:
		convert(dst, x.F32)
	case tensor.Float64:
		convert(dst, x.F64)
	case tensor.Int64:
		convert(dst, x.I64)
	case tensor.Int32:
		convert(dst, x.I32)
	case tensor.Int16:
		convert(dst, x.I16)
	case tensor.Int8:
		convert(dst, x.I8)
	case tensor.Uint64:
		convert(dst, x.U64)
	case tensor.Uint32:
		convert(dst, x.U32)
	case tensor.Uint16:
		convert(dst, x.U16)
	case tensor.Uint8:
		convert(dst, x.U8)
	case tensor.Bool:
		for i, v := range x.B {
			if v {
				dst[i] = 1
			}
		}
	case tensor.String:
		return parseStrings(dst, x.S)
	}
	return nil
}

// castBool sets dst[i] to x's element i != 0 (a string is parsed first).
func castBool(dst []bool, x *tensor.Tensor) error {
	switch x.DType {
	case tensor.Bool:
		copy(dst, x.B)
		return nil
	case tensor.String:
		f := make([]float64, len(x.S))
		if err := parseStrings(f, x.S); err != nil {
			return err
		}
		toBool(dst, f)
		return nil
	}
	f := tensor.New(tensor.Float64, len(dst))
	if err := castInto(f.F64, x); err != nil {
		return err
	}
	toBool(dst, f.F64)
	return nil
}

// convert applies Go's numeric conversion, which truncates floats toward zero.
func convert[S, D num](dst []D, src []S) {
	for i, v := range src {
		dst[i] = D(v)
	}
}

func toBool[S num](dst []bool, src []S) {
	for i, v := range src {
		dst[i] = v != 0
	}
}

// parseStrings parses decimal numbers into dst: integers exactly for integer
// targets (a float text like "1.5" or "1e3" is parsed as a float and
// converted), floats with "inf", "-INF" and "NaN" accepted, as ONNX's Cast
// from string does.
func parseStrings[D num](dst []D, src []string) error {
	var z D
	_, isFloat := any(z).(float32)
	if _, ok := any(z).(float64); ok {
		isFloat = true
	}
	for i, v := range src {
		v = strings.TrimSpace(v)
		if !isFloat {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				dst[i] = D(n)
				continue
			}
			if n, err := strconv.ParseUint(v, 10, 64); err == nil {
				dst[i] = D(n)
				continue
			}
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("input element %d: %q is not a number", i, v)
		}
		dst[i] = D(f)
	}
	return nil
}

// formatStrings writes x's elements as text: integers in decimal, floats in
// the shortest form that reads back to the same value of x's type (so a
// float32 prints as float32, not as its float64 widening), bools as 0/1 as
// numbers would.
func formatStrings(dst []string, x *tensor.Tensor) {
	switch x.DType {
	case tensor.Float32:
		for i, v := range x.F32 {
			dst[i] = formatFloat(float64(v), 32)
		}
	case tensor.Float64:
		for i, v := range x.F64 {
			dst[i] = formatFloat(v, 64)
		}
	case tensor.String:
		copy(dst, x.S)
	case tensor.Bool:
		for i, v := range x.B {
			dst[i] = "0"
			if v {
				dst[i] = "1"
			}
		}
	default:
		f := make([]int64, x.Len())
		if x.DType == tensor.Uint64 {
			for i, v := range x.U64 {
				dst[i] = strconv.FormatUint(v, 10)
			}
			return
		}
		castInto(f, x)
		for i, v := range f {
			dst[i] = strconv.FormatInt(v, 10)
		}
	}
}

// formatFloat is ONNX's float-to-string: "INF", "-INF", "NaN" for the
// specials, else the shortest round-trip form.
func formatFloat(v float64, bits int) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "INF"
	case math.IsInf(v, -1):
		return "-INF"
	}
	return strconv.FormatFloat(v, 'g', -1, bits)
}

// newConstantOfShape fills a shape given as an int64 input with the one
// element of attribute value (float32 0 by default).
func newConstantOfShape(n *Node) (Kernel, error) {
	val := tensor.FromF32([]float32{0}, 1)
	if n.Has("value") {
		v, err := n.Tensor("value")
		if err != nil {
			return nil, err
		}
		if v.Len() != 1 || !castTypes[v.DType] {
			return nil, fmt.Errorf("attribute value: %s, must be one element of a numeric or bool dtype", v)
		}
		val = v
	}
	// A new tensor each call, float32 from the recycled buffers: a graph
	// that makes large constants one after another reuses one buffer
	// instead of leaving each to the collector.
	n.fresh = true
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		if in[0].DType != tensor.Int64 {
			return nil, fmt.Errorf("input input: dtype %s, must be int64", in[0].DType)
		}
		req, err := intList(in[0], "input")
		if err != nil {
			return nil, err
		}
		shape, err := toShape(req, "input input")
		if err != nil {
			return nil, err
		}
		var out *tensor.Tensor
		if val.DType == tensor.Float32 {
			out = newF32Dirty(shape...) // fillTensor writes every element
		} else {
			out = tensor.New(val.DType, shape...)
		}
		fillTensor(out, val)
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newRange produces start, start+delta, ... up to (excluding) limit:
// max(ceil((limit-start)/delta), 0) elements of the inputs' dtype.
func newRange(n *Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 3, 3); err != nil {
			return nil, err
		}
		for i, name := range []string{"start", "limit", "delta"} {
			if in[i].Len() != 1 {
				return nil, fmt.Errorf("input %s: shape %s, must be a scalar", name, tensor.ShapeString(in[i].Shape))
			}
			if in[i].DType != in[0].DType {
				return nil, fmt.Errorf("input %s: dtype %s, start has %s; all must match", name, in[i].DType, in[0].DType)
			}
		}
		switch in[0].DType {
		case tensor.Float32:
			return rangeOf(in[0].F32[0], in[1].F32[0], in[2].F32[0])
		case tensor.Float64:
			return rangeOf(in[0].F64[0], in[1].F64[0], in[2].F64[0])
		case tensor.Int64:
			return rangeOf(in[0].I64[0], in[1].I64[0], in[2].I64[0])
		case tensor.Int32:
			return rangeOf(in[0].I32[0], in[1].I32[0], in[2].I32[0])
		}
		return nil, fmt.Errorf("input start: dtype %s, Range supports float32, float64, int64 and int32", in[0].DType)
	}, nil
}

func rangeOf[T float32 | float64 | int64 | int32](start, limit, delta T) ([]*tensor.Tensor, error) {
	if delta == 0 {
		return nil, fmt.Errorf("input delta: must not be 0")
	}
	var cnt float64
	switch any(delta).(type) {
	case float32, float64:
		cnt = math.Ceil((float64(limit) - float64(start)) / float64(delta))
	default:
		cnt = float64(rangeCount(int64(start), int64(limit), int64(delta)))
	}
	if math.IsNaN(cnt) || cnt < 0 {
		cnt = 0
	}
	if cnt > maxElements {
		return nil, fmt.Errorf("%w: range of %v elements exceeds %d", ErrBadInput, cnt, maxElements)
	}
	out := newOf[T]([]int{int(cnt)})
	d := dataOf[T](out)
	// Accumulate as ONNX Runtime does (value += delta), so float ranges
	// match it bit for bit rather than NumPy's start + i*delta.
	v := start
	for i := range d {
		d[i] = v
		v += delta
	}
	return []*tensor.Tensor{out}, nil
}

// rangeCount returns max(ceil((limit-start)/delta), 0) for integers, exactly:
// the distance is taken as an unsigned number, so that limit-start
// overflowing int64 (start -2^63, limit 2^63-1) cannot wrap to a negative
// count and an empty range. delta must not be 0.
func rangeCount(start, limit, delta int64) uint64 {
	var dist, step uint64
	switch {
	case delta > 0 && limit > start:
		dist, step = uint64(limit)-uint64(start), uint64(delta)
	case delta < 0 && limit < start:
		dist, step = uint64(start)-uint64(limit), -uint64(delta)
	default:
		return 0
	}
	q := dist / step
	if dist%step != 0 {
		q++
	}
	return q
}

// newNonZero returns the coordinates of the non-zero elements as int64
// [rank, count], in row-major order.
func newNonZero(n *Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if len(x.Shape) == 0 {
			x = reshaped(x, []int{1}) // a scalar counts as one element of rank 1, as in ONNX Runtime
		}
		nz, err := castTensor(x, tensor.Bool)
		if err != nil {
			return nil, err
		}
		var hits []int
		for i, v := range nz.B {
			if v {
				hits = append(hits, i)
			}
		}
		r := len(x.Shape)
		out := tensor.New(tensor.Int64, r, len(hits))
		xs := contiguousStrides(x.Shape)
		for k, flat := range hits {
			for d := 0; d < r; d++ {
				out.I64[d*len(hits)+k] = int64(flat / xs[d] % x.Shape[d])
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newGatherND gathers slices of data addressed by the last dimension of
// indices; the first batch_dims dimensions of both index each other. The
// output shape is indices.shape[:-1] + data.shape[batch_dims+k:], k being
// indices' last dimension.
func newGatherND(n *Node) (Kernel, error) {
	b := n.Int("batch_dims", 0)
	if b < 0 {
		return nil, fmt.Errorf("attribute batch_dims: %d, must be >= 0", b)
	}
	bd := int(b)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x, ind := in[0], in[1]
		if ind.DType != tensor.Int64 {
			return nil, fmt.Errorf("input indices: dtype %s, must be int64", ind.DType)
		}
		q, r := len(ind.Shape), len(x.Shape)
		if q < 1 || r < 1 || bd >= min(q, r) {
			return nil, fmt.Errorf("batch_dims %d must be less than the ranks of data %s and indices %s", bd, tensor.ShapeString(x.Shape), tensor.ShapeString(ind.Shape))
		}
		for d := 0; d < bd; d++ {
			if x.Shape[d] != ind.Shape[d] {
				return nil, fmt.Errorf("inputs data %s and indices %s: batch dimension %d differs", tensor.ShapeString(x.Shape), tensor.ShapeString(ind.Shape), d)
			}
		}
		k := ind.Shape[q-1]
		if k < 1 || bd+k > r {
			return nil, fmt.Errorf("input indices: last dimension %d must be in [1, %d]", k, r-bd)
		}
		shape := append(append([]int{}, ind.Shape[:q-1]...), x.Shape[bd+k:]...)
		out := tensor.New(x.DType, shape...)
		sz := x.DType.Size()
		xs := contiguousStrides(x.Shape)
		slice := tensor.NumElements(x.Shape[bd+k:]) * sz
		batches := tensor.NumElements(x.Shape[:bd])
		perBatch := tensor.NumElements(ind.Shape[bd : q-1])
		batchStride := 1
		if bd > 0 {
			batchStride = xs[bd-1]
		}
		src, dst := x.Bytes(), out.Bytes()
		o := 0
		for bi := 0; bi < batches; bi++ {
			for j := 0; j < perBatch; j++ {
				tuple := ind.I64[(bi*perBatch+j)*k : (bi*perBatch+j+1)*k]
				off := bi * batchStride
				for d, v := range tuple {
					dim := int64(x.Shape[bd+d])
					if v < -dim || v >= dim {
						return nil, fmt.Errorf("input indices: index %d for data dimension %d is out of range [%d, %d]", v, bd+d, -dim, dim-1)
					}
					if v < 0 {
						v += dim
					}
					off += int(v) * xs[bd+d]
				}
				copy(dst[o:o+slice], src[off*sz:off*sz+slice])
				o += slice
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newScatterElements copies data and writes updates[i...] at the position
// i... with the axis coordinate replaced by indices[i...] (negative counts
// from the end), combining with reduction none, add, mul, max or min.
func newScatterElements(n *Node) (Kernel, error) {
	axis := n.Int("axis", 0)
	red, err := scatterReduction(n)
	if err != nil {
		return nil, err
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 3, 3); err != nil {
			return nil, err
		}
		x, ind, upd := in[0], in[1], in[2]
		r := len(x.Shape)
		ax, err := normAxis(axis, r, false)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		if upd.DType != x.DType {
			return nil, fmt.Errorf("input updates: dtype %s, must match data's %s", upd.DType, x.DType)
		}
		if !equalInts(ind.Shape, upd.Shape) || len(ind.Shape) != r {
			return nil, fmt.Errorf("inputs indices %s and updates %s: must have one shape of data's rank %d", tensor.ShapeString(ind.Shape), tensor.ShapeString(upd.Shape), r)
		}
		for d := range ind.Shape {
			if d != ax && ind.Shape[d] > x.Shape[d] {
				return nil, fmt.Errorf("input indices: shape %s exceeds data shape %s in dimension %d", tensor.ShapeString(ind.Shape), tensor.ShapeString(x.Shape), d)
			}
		}
		vals, err := indexList(ind, x.Shape[ax], "indices")
		if err != nil {
			return nil, err
		}
		offs := elementOffsets(x.Shape, ind.Shape, ax, vals)
		out := tensor.New(x.DType, x.Shape...)
		copy(out.Bytes(), x.Bytes())
		if red == "none" {
			sz := x.DType.Size()
			dst, src := out.Bytes(), upd.Bytes()
			for i, off := range offs {
				copy(dst[off*sz:(off+1)*sz], src[i*sz:(i+1)*sz])
			}
			return []*tensor.Tensor{out}, nil
		}
		switch x.DType {
		case tensor.Float32:
			scatterReduce(out.F32, upd.F32, offs, 1, red)
		case tensor.Float64:
			scatterReduce(out.F64, upd.F64, offs, 1, red)
		case tensor.Int64:
			scatterReduce(out.I64, upd.I64, offs, 1, red)
		case tensor.Int32:
			scatterReduce(out.I32, upd.I32, offs, 1, red)
		default:
			return nil, fmt.Errorf("input data: dtype %s, reduction %s supports float32, float64, int64 and int32", x.DType, red)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// newTrilu keeps the upper (upper=1, the default) or lower triangle of the
// last two dimensions, counted from diagonal k (an optional scalar input),
// and zeroes the rest.
func newTrilu(n *Node) (Kernel, error) {
	upper := n.Int("upper", 1) != 0
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 2); err != nil {
			return nil, err
		}
		x := in[0]
		k := int64(0)
		if len(in) > 1 && in[1] != nil {
			ks, err := intList(in[1], "k")
			if err != nil {
				return nil, err
			}
			if len(ks) != 1 {
				return nil, fmt.Errorf("input k: %d elements, must be a scalar", len(ks))
			}
			k = ks[0]
		}
		r := len(x.Shape)
		if r < 2 {
			return nil, fmt.Errorf("input input: shape %s, must have rank >= 2", tensor.ShapeString(x.Shape))
		}
		rows, cols := x.Shape[r-2], x.Shape[r-1]
		k = min(max(k, -int64(rows)-1), int64(cols)+1) // beyond: all or nothing
		out := tensor.New(x.DType, x.Shape...)
		sz := x.DType.Size()
		src, dst := x.Bytes(), out.Bytes()
		mats := tensor.NumElements(x.Shape[:r-2])
		for m := 0; m < mats; m++ {
			for i := 0; i < rows; i++ {
				// Upper keeps j - i >= k, lower keeps j - i <= k.
				lo, hi := int64(0), int64(cols)
				if upper {
					lo = min(max(int64(i)+k, 0), int64(cols))
				} else {
					hi = min(max(int64(i)+k+1, 0), int64(cols))
				}
				row := (m*rows + i) * cols
				copy(dst[(row+int(lo))*sz:(row+int(hi))*sz], src[(row+int(lo))*sz:(row+int(hi))*sz])
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newEyeLike returns a 2-D tensor of the input's shape with ones on diagonal
// k and zeros elsewhere, of attribute dtype (the input's by default).
func newEyeLike(n *Node) (Kernel, error) {
	k := min(max(n.Int("k", 0), -maxElements), maxElements)
	var dt tensor.DType
	if n.Has("dtype") {
		dt = tensor.DType(n.Int("dtype", 0))
		if !castTypes[dt] {
			return nil, fmt.Errorf("attribute dtype: %s: %w", dt, ErrUnsupported)
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if len(x.Shape) != 2 {
			return nil, fmt.Errorf("input input: shape %s, must be 2-D", tensor.ShapeString(x.Shape))
		}
		to := dt
		if to == tensor.Invalid {
			to = x.DType
		}
		if !castTypes[to] {
			return nil, fmt.Errorf("input input: dtype %s is not supported", to)
		}
		out := tensor.New(to, x.Shape...)
		one, _ := castTensor(tensor.FromF32([]float32{1}, 1), to)
		rows, cols := x.Shape[0], x.Shape[1]
		sz := to.Size()
		dst := out.Bytes()
		for i := 0; i < rows; i++ {
			j := int64(i) + k
			if j >= 0 && j < int64(cols) {
				copy(dst[(i*cols+int(j))*sz:], one.Bytes())
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newOneHot expands indices into one-hot vectors of length depth along axis
// (-1: a new last dimension), holding values[1] at the index and values[0]
// elsewhere. Indices in [-depth, depth) are valid (negative count from the
// end); others give all-off vectors, as the spec says.
func newOneHot(n *Node) (Kernel, error) {
	axis := n.Int("axis", -1)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 3, 3); err != nil {
			return nil, err
		}
		ind, depthT, vals := in[0], in[1], in[2]
		if depthT.Len() != 1 {
			return nil, fmt.Errorf("input depth: %s, must have one element", depthT)
		}
		if vals.Len() != 2 || len(vals.Shape) != 1 {
			return nil, fmt.Errorf("input values: %s, must be [off_value, on_value]", vals)
		}
		d64, err := castTensor(depthT, tensor.Float64)
		if err != nil {
			return nil, fmt.Errorf("input depth: %w", err)
		}
		if !(d64.F64[0] >= 1 && d64.F64[0] <= maxElements) {
			return nil, fmt.Errorf("input depth: %v, must be in [1, %d]", d64.F64[0], maxElements)
		}
		depth := int(d64.F64[0])
		idx, err := castTensor(ind, tensor.Int64)
		if err != nil {
			return nil, fmt.Errorf("input indices: %w", err)
		}
		r := len(ind.Shape)
		ax, err := normAxis(axis, r+1, false)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		shape := append(append(append([]int{}, ind.Shape[:ax]...), depth), ind.Shape[ax:]...)
		if err := checkSize(shape, "output"); err != nil {
			return nil, err
		}
		sz := vals.DType.Size()
		off := tensor.New(vals.DType, 1)
		copy(off.Bytes(), vals.Bytes()[:sz])
		out := tensor.New(vals.DType, shape...)
		fillTensor(out, off)
		outer := tensor.NumElements(ind.Shape[:ax])
		inner := tensor.NumElements(ind.Shape[ax:])
		on := vals.Bytes()[sz:]
		dst := out.Bytes()
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				v := idx.I64[o*inner+i]
				if v < 0 {
					v += int64(depth)
				}
				if v < 0 || v >= int64(depth) {
					continue
				}
				p := (o*depth+int(v))*inner + i
				copy(dst[p*sz:(p+1)*sz], on)
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}
