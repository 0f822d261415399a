package engine

import (
	"fmt"
	"math"

	"github.com/spindleml/spindle/internal/tensor"
)

// ONNX's experimental opset-1 ops, dropped from the standard but still run
// by ONNX Runtime's CPU provider and found in models converted from Caffe2
// (the model zoo's Tiny YOLOv2 scales its image with ImageScaler): Affine,
// ScaledTanh, ParametricSoftplus, Scale, ImageScaler, Crop, DynamicSlice
// and MaxRoiPool.

func init() {
	registerUnary("Affine", func(n *Node) (unaryTable, error) {
		alpha, beta := float64(n.Float("alpha", 1)), float64(n.Float("beta", 0))
		return floatTable(func(x float64) float64 { return alpha*x + beta }), nil
	})
	registerUnary("Scale", func(n *Node) (unaryTable, error) {
		s := float64(n.Float("scale", 1))
		return floatTable(func(x float64) float64 { return s * x }), nil
	})
	registerUnary("ScaledTanh", func(n *Node) (unaryTable, error) {
		alpha, beta, err := alphaBeta(n)
		if err != nil {
			return nil, err
		}
		return floatTable(func(x float64) float64 { return alpha * math.Tanh(beta*x) }), nil
	})
	registerUnary("ParametricSoftplus", func(n *Node) (unaryTable, error) {
		alpha, beta, err := alphaBeta(n)
		if err != nil {
			return nil, err
		}
		return floatTable(func(x float64) float64 { return alpha * softplus(beta*x) }), nil
	})
	register("ImageScaler", newImageScaler)
	register("Crop", newCrop)
	register("DynamicSlice", func(n *Node) (Kernel, error) {
		// Slice as opset 10 defines it, starts, ends and axes as inputs.
		m := *n
		m.Opset = 10
		return newSlice(&m)
	})
	register("MaxRoiPool", newMaxRoiPool)
}

// alphaBeta reads the attributes alpha and beta, both required.
func alphaBeta(n *Node) (alpha, beta float64, err error) {
	if !n.Has("alpha") || !n.Has("beta") {
		return 0, 0, fmt.Errorf("attributes alpha and beta: both are required")
	}
	return float64(n.Float("alpha", 0)), float64(n.Float("beta", 0)), nil
}

// nchwInput checks that input i is float32 [N C H W].
func nchwInput(in []*tensor.Tensor, i int, name string) (*tensor.Tensor, error) {
	x := in[i]
	if x.DType != tensor.Float32 || len(x.Shape) != 4 {
		return nil, fmt.Errorf("input %s: %s, must be float32 [N C H W]", name, x)
	}
	return x, nil
}

// newImageScaler computes scale·x + bias[c] over an image [N C H W].
func newImageScaler(n *Node) (Kernel, error) {
	scale := n.Float("scale", 1)
	bias := n.Floats("bias", nil)
	n.fresh = true
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x, err := nchwInput(in, 0, "input")
		if err != nil {
			return nil, err
		}
		C, plane := x.Shape[1], x.Shape[2]*x.Shape[3]
		if len(bias) != 0 && len(bias) != C {
			return nil, fmt.Errorf("attribute bias: %d values for %d channels", len(bias), C)
		}
		y := newF32Dirty(x.Shape...)
		for i, v := range x.F32 {
			b := float32(0)
			if len(bias) > 0 {
				b = bias[i/plane%C]
			}
			y.F32[i] = scale*v + b
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// newCrop cuts an image [N C H W] by border [left top right bottom], or,
// with scale [height width], takes that size from the top-left corner the
// border gives.
func newCrop(n *Node) (Kernel, error) {
	border := n.Ints("border", nil)
	if len(border) != 4 {
		return nil, fmt.Errorf("attribute border: %v, must be 4 values (left, top, right, bottom)", border)
	}
	scale := n.Ints("scale", nil)
	if len(scale) != 0 && len(scale) != 2 {
		return nil, fmt.Errorf("attribute scale: %v, must be 2 values (height, width)", scale)
	}
	for _, v := range append(append([]int64{}, border...), scale...) {
		if v < 0 || v > math.MaxInt32 {
			return nil, fmt.Errorf("attributes border %v and scale %v: must be non-negative", border, scale)
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x, err := nchwInput(in, 0, "input")
		if err != nil {
			return nil, err
		}
		H, W := x.Shape[2], x.Shape[3]
		left, top := int(border[0]), int(border[1])
		h, w := H-top-int(border[3]), W-left-int(border[2])
		if len(scale) == 2 {
			h, w = int(scale[0]), int(scale[1])
		}
		if h < 0 || w < 0 || top+h > H || left+w > W {
			return nil, fmt.Errorf("attributes border %v and scale %v: the crop leaves the %dx%d image", border, scale, H, W)
		}
		shape := []int{x.Shape[0], x.Shape[1], h, w}
		y := tensor.New(tensor.Float32, shape...)
		if y.Len() > 0 {
			xs := contiguousStrides(x.Shape)
			copyStrided(y, x, shape, xs, top*xs[2]+left)
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// newMaxRoiPool max-pools each region of interest (rois [R 5]: batch index,
// x1, y1, x2, y2 in input coordinates, times spatial_scale) of X [N C H W]
// into pooled_shape bins, as Caffe's RoIPool (Fast R-CNN) does: corners
// rounded to the grid, bins split by floor and ceil, an empty bin 0.
func newMaxRoiPool(n *Node) (Kernel, error) {
	pooled := n.Ints("pooled_shape", nil)
	if len(pooled) != 2 || pooled[0] < 1 || pooled[1] < 1 || pooled[0]*pooled[1] > 1<<20 {
		return nil, fmt.Errorf("attribute pooled_shape: %v, must be 2 positive sizes (it is required)", pooled)
	}
	ss := float64(n.Float("spatial_scale", 1))
	PH, PW := int(pooled[0]), int(pooled[1])
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x, err := nchwInput(in, 0, "X")
		if err != nil {
			return nil, err
		}
		rois := in[1]
		if rois.DType != tensor.Float32 || len(rois.Shape) != 2 || rois.Shape[1] != 5 {
			return nil, fmt.Errorf("input rois: %s, must be float32 [R 5]", rois)
		}
		N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		R := rois.Shape[0]
		if R*C*PH*PW > maxElements {
			return nil, fmt.Errorf("output: %d regions x %d channels x %dx%d bins, more than %d elements", R, C, PH, PW, maxElements)
		}
		y := tensor.New(tensor.Float32, R, C, PH, PW)
		for r := range R {
			roi := rois.F32[r*5 : r*5+5]
			b := int(roi[0])
			if b < 0 || b >= N {
				return nil, fmt.Errorf("input rois: region %d has batch index %v, outside [0, %d)", r, roi[0], N)
			}
			x1, y1 := int(math.Round(float64(roi[1])*ss)), int(math.Round(float64(roi[2])*ss))
			x2, y2 := int(math.Round(float64(roi[3])*ss)), int(math.Round(float64(roi[4])*ss))
			binH := float64(max(y2-y1+1, 1)) / float64(PH)
			binW := float64(max(x2-x1+1, 1)) / float64(PW)
			for c := range C {
				plane := x.F32[(b*C+c)*H*W : (b*C+c+1)*H*W]
				out := y.F32[((r*C)+c)*PH*PW:]
				for ph := range PH {
					h0 := min(max(int(math.Floor(float64(ph)*binH))+y1, 0), H)
					h1 := min(max(int(math.Ceil(float64(ph+1)*binH))+y1, 0), H)
					for pw := range PW {
						w0 := min(max(int(math.Floor(float64(pw)*binW))+x1, 0), W)
						w1 := min(max(int(math.Ceil(float64(pw+1)*binW))+x1, 0), W)
						if h1 <= h0 || w1 <= w0 {
							continue // an empty bin stays 0
						}
						m := float32(math.Inf(-1))
						for h := h0; h < h1; h++ {
							for _, v := range plane[h*W+w0 : h*W+w1] {
								if v > m {
									m = v
								}
							}
						}
						out[ph*PW+pw] = m
					}
				}
			}
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}
