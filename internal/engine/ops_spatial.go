package engine

import (
	"fmt"
	"slices"

	"github.com/spindleml/spindle/internal/tensor"
)

// Newer spatial ops (issue 13, item 5): CenterCropPad and Col2Im (opset
// 18) and AffineGrid (opset 20).

func init() {
	register("CenterCropPad", newCenterCropPad)
	register("Col2Im", newCol2Im)
	register("AffineGrid", newAffineGrid)
}

// newCenterCropPad crops or zero-pads each of axes (all by default) to the
// size shape gives, centred: a crop starts at (dim-size)/2, a pad puts
// (size-dim)/2 zeros before (the odd one after).
func newCenterCropPad(n *Node) (Kernel, error) {
	axesAttr := n.Ints("axes", nil)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType.Size() == 0 {
			return nil, fmt.Errorf("input input_data: dtype %s is not supported", x.DType)
		}
		sizes, err := intList(in[1], "shape")
		if err != nil {
			return nil, err
		}
		axes := make([]int, 0, len(x.Shape))
		if axesAttr == nil {
			for a := range x.Shape {
				axes = append(axes, a)
			}
		} else {
			for _, a := range axesAttr {
				na, err := normAxis(a, len(x.Shape), false)
				if err != nil || slices.Contains(axes, na) {
					return nil, fmt.Errorf("attribute axes: %v: each must be a distinct axis of rank %d", axesAttr, len(x.Shape))
				}
				axes = append(axes, na)
			}
		}
		if len(sizes) != len(axes) {
			return nil, fmt.Errorf("input shape: %d sizes for %d axes", len(sizes), len(axes))
		}
		outShape := slices.Clone(x.Shape)
		srcOff := make([]int, len(x.Shape)) // where output index 0 reads, per axis (negative: padding)
		for i, a := range axes {
			s := sizes[i]
			if s < 0 || s > maxElements {
				return nil, fmt.Errorf("input shape: size %d for axis %d out of range", s, a)
			}
			outShape[a] = int(s)
			srcOff[a] = (x.Shape[a] - int(s)) / 2
			if int(s) > x.Shape[a] {
				srcOff[a] = -((int(s) - x.Shape[a]) / 2)
			}
		}
		if c, err := tensor.Count(outShape); err != nil || c > maxElements {
			return nil, fmt.Errorf("output shape %s: too large", tensor.ShapeString(outShape))
		}
		out := newTyped(x.DType, outShape...)
		dst, src := out.Bytes(), x.Bytes()
		clear(dst)
		sz := x.DType.Size()
		xs, os := contiguousStrides(x.Shape), contiguousStrides(outShape)
		idx := make([]int, len(outShape))
		for o := 0; o < out.Len(); o++ {
			rem, at, inside := o, 0, true
			for a := range outShape {
				idx[a] = rem / os[a]
				rem %= os[a]
				j := idx[a] + srcOff[a]
				if j < 0 || j >= x.Shape[a] {
					inside = false
					break
				}
				at += j * xs[a]
			}
			if inside {
				copy(dst[o*sz:(o+1)*sz], src[at*sz:(at+1)*sz])
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newCol2Im rearranges columns [N C·k1·k2 L] of sliding 2-D blocks into an
// image [N C H W], summing where blocks overlap (ConvTranspose's col2im).
func newCol2Im(n *Node) (Kernel, error) {
	dil, pads, strides := n.Ints("dilations", nil), n.Ints("pads", nil), n.Ints("strides", nil)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 3, 3); err != nil {
			return nil, err
		}
		x := in[0]
		img, err := intList(in[1], "image_shape")
		if err != nil {
			return nil, err
		}
		blk, err := intList(in[2], "block_shape")
		if err != nil {
			return nil, err
		}
		if len(img) != 2 || len(blk) != 2 {
			return nil, fmt.Errorf("inputs image_shape %v and block_shape %v: only 2 spatial axes are supported", img, blk)
		}
		get := func(v []int64, i int, def int64) int64 {
			if v == nil {
				return def
			}
			return v[i]
		}
		if dil != nil && len(dil) != 2 || strides != nil && len(strides) != 2 || pads != nil && len(pads) != 4 {
			return nil, fmt.Errorf("attributes dilations %v, strides %v, pads %v: need 2, 2 and 4 entries", dil, strides, pads)
		}
		if x.DType != tensor.Float32 || len(x.Shape) != 3 {
			return nil, fmt.Errorf("input input: %s, must be float32 [N C·block L]", x)
		}
		H, W, kh, kw := img[0], img[1], blk[0], blk[1]
		if H < 1 || W < 1 || kh < 1 || kw < 1 || H > maxElements || W > maxElements || x.Shape[1]%int(kh*kw) != 0 {
			return nil, fmt.Errorf("inputs image_shape %v, block_shape %v: must be positive, the block dividing the input's %d rows", img, blk, x.Shape[1])
		}
		dh, dw, sh, sw := get(dil, 0, 1), get(dil, 1, 1), get(strides, 0, 1), get(strides, 1, 1)
		pt, pl, pb, pr := get(pads, 0, 0), get(pads, 1, 0), get(pads, 2, 0), get(pads, 3, 0)
		if dh < 1 || dw < 1 || sh < 1 || sw < 1 || pt < 0 || pl < 0 || pb < 0 || pr < 0 {
			return nil, fmt.Errorf("attributes: dilations and strides must be positive, pads not negative")
		}
		oh := (H+pt+pb-(dh*(kh-1)+1))/sh + 1
		ow := (W+pl+pr-(dw*(kw-1)+1))/sw + 1
		if oh < 1 || ow < 1 || int64(x.Shape[2]) != oh*ow {
			return nil, fmt.Errorf("input input: %d blocks, the geometry gives %d×%d", x.Shape[2], oh, ow)
		}
		N, C := x.Shape[0], x.Shape[1]/int(kh*kw)
		if c, err := tensor.Count([]int{N, C, int(H), int(W)}); err != nil || c > maxElements {
			return nil, fmt.Errorf("output: too large")
		}
		out := newF32(N, C, int(H), int(W))
		L := int(oh * ow)
		for b := range N {
			for c := range C {
				dst := out.F32[(b*C+c)*int(H*W) : (b*C+c+1)*int(H*W)]
				for i := range int(kh) {
					for j := range int(kw) {
						row := x.F32[((b*x.Shape[1])+(c*int(kh)+i)*int(kw)+j)*L:][:L]
						for y := range int(oh) {
							iy := int64(y)*sh - pt + int64(i)*dh
							if iy < 0 || iy >= H {
								continue
							}
							for xx := range int(ow) {
								ix := int64(xx)*sw - pl + int64(j)*dw
								if ix >= 0 && ix < W {
									dst[iy*W+ix] += row[y*int(ow)+xx]
								}
							}
						}
					}
				}
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newAffineGrid returns the sampling grid GridSample takes for affine
// matrices theta [N 2 3] (or [N 3 4] in 3-D) over an output of size [N C
// H W] (or [N C D H W]): each output pixel's normalised coordinates,
// pixel centres (or corners with align_corners) spanning [-1, 1],
// multiplied by theta.
func newAffineGrid(n *Node) (Kernel, error) {
	align := n.Int("align_corners", 0) != 0
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		theta := in[0]
		size, err := intList(in[1], "size")
		if err != nil {
			return nil, err
		}
		if len(size) != 4 && len(size) != 5 {
			return nil, fmt.Errorf("input size: %v, must be [N C H W] or [N C D H W]", size)
		}
		sp := len(size) - 2
		if theta.DType != tensor.Float32 || len(theta.Shape) != 3 || int64(theta.Shape[0]) != size[0] || theta.Shape[1] != sp || theta.Shape[2] != sp+1 {
			return nil, fmt.Errorf("input theta: %s, must be float32 [%d %d %d]", theta, size[0], sp, sp+1)
		}
		dims := make([]int, sp) // W, H (, D): the coordinate order x, y, z
		count := 1
		for a := range sp {
			d := size[len(size)-1-a]
			if d < 1 || d > maxElements {
				return nil, fmt.Errorf("input size: %v: spatial sizes must be positive", size)
			}
			dims[a] = int(d)
			count *= int(d)
		}
		N := int(size[0])
		if count > maxElements/(sp*max(N, 1)) {
			return nil, fmt.Errorf("input size: %v: the grid is too large", size)
		}
		coord := func(i, n int) float32 {
			if align {
				if n == 1 {
					return 0
				}
				return -1 + 2*float32(i)/float32(n-1)
			}
			return (2*float32(i)+1)/float32(n) - 1
		}
		outShape := []int{N}
		for a := sp - 1; a >= 0; a-- {
			outShape = append(outShape, dims[a])
		}
		out := newF32(append(outShape, sp)...)
		p := make([]float32, sp+1)
		p[sp] = 1
		for b := range N {
			th := theta.F32[b*sp*(sp+1) : (b+1)*sp*(sp+1)]
			for o := range count {
				rem := o
				for a := range sp { // x varies fastest
					p[a] = coord(rem%dims[a], dims[a])
					rem /= dims[a]
				}
				dst := out.F32[(b*count+o)*sp : (b*count+o+1)*sp]
				for r := range sp {
					var v float32
					for c := range sp + 1 {
						v += th[r*(sp+1)+c] * p[c]
					}
					dst[r] = v
				}
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}
