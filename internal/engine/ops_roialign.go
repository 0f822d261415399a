package engine

import (
	"fmt"
	"math"

	"github.com/spindleml/spindle/internal/tensor"
)

func init() {
	register("RoiAlign", newRoiAlign)
}

// newRoiAlign pools each region of interest of X into an output_height ×
// output_width grid, each bin the average (or max) of bilinear samples, as
// ONNX Runtime's CPU kernel (after Detectron) computes it: sampling_ratio
// samples per bin side (0: enough to cover the bin), samples outside the
// map count as zero, max mode takes the largest weighted corner.
func newRoiAlign(n *Node) (Kernel, error) {
	mode := n.String("mode", "avg")
	if mode != "avg" && mode != "max" {
		return nil, fmt.Errorf("attribute mode: %q, must be avg or max", mode)
	}
	ctm := n.String("coordinate_transformation_mode", "half_pixel")
	if ctm != "half_pixel" && ctm != "output_half_pixel" {
		return nil, fmt.Errorf("attribute coordinate_transformation_mode: %q, must be half_pixel or output_half_pixel", ctm)
	}
	oh, ow := int(n.Int("output_height", 1)), int(n.Int("output_width", 1))
	ratio := int(n.Int("sampling_ratio", 0))
	scale := n.Float("spatial_scale", 1)
	if oh < 1 || ow < 1 || oh > 1<<16 || ow > 1<<16 || ratio < 0 || ratio > 1<<10 {
		return nil, fmt.Errorf("attributes output_height %d, output_width %d, sampling_ratio %d: sizes must be positive, the ratio not negative", oh, ow, ratio)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 3, 3); err != nil {
			return nil, err
		}
		x, rois := in[0], in[1]
		if x.DType != tensor.Float32 || len(x.Shape) != 4 {
			return nil, fmt.Errorf("input X: %s, must be float32 [N C H W]", x)
		}
		N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		if rois.DType != tensor.Float32 || len(rois.Shape) != 2 || rois.Shape[1] != 4 {
			return nil, fmt.Errorf("input rois: %s, must be float32 [num_rois 4]", rois)
		}
		R := rois.Shape[0]
		bi, err := castTensor(in[2], tensor.Int64)
		if err != nil || len(in[2].Shape) != 1 || in[2].Shape[0] != R {
			return nil, fmt.Errorf("input batch_indices: %s, must be [%d] integers", in[2], R)
		}
		out := newF32(R, C, oh, ow)
		offset := float32(0.5)
		if ctm == "output_half_pixel" {
			offset = 0
		}
		for r := range R {
			b := bi.I64[r]
			if b < 0 || b >= int64(N) {
				return nil, fmt.Errorf("input batch_indices: entry %d is %d, not an image of the batch of %d", r, b, N)
			}
			roi := rois.F32[4*r : 4*r+4]
			x0, y0 := roi[0]*scale-offset, roi[1]*scale-offset
			rw, rh := roi[2]*scale-offset-x0, roi[3]*scale-offset-y0
			if ctm == "output_half_pixel" {
				rw, rh = max(rw, 1), max(rh, 1)
			}
			bh, bw := rh/float32(oh), rw/float32(ow)
			gh, gw := ratio, ratio
			if ratio == 0 {
				gh, gw = int(math.Ceil(float64(rh/float32(oh)))), int(math.Ceil(float64(rw/float32(ow))))
			}
			count := float32(max(gh*gw, 1))
			samples := make([]roiSample, 0, oh*ow*gh*gw)
			for ph := range oh {
				for pw := range ow {
					for iy := range gh {
						yy := y0 + float32(ph)*bh + (float32(iy)+0.5)*bh/float32(gh)
						for ix := range gw {
							xx := x0 + float32(pw)*bw + (float32(ix)+0.5)*bw/float32(gw)
							samples = append(samples, bilinearSample(yy, xx, H, W))
						}
					}
				}
			}
			per := gh * gw
			for c := range C {
				img := x.F32[(int(b)*C+c)*H*W : (int(b)*C+c+1)*H*W]
				dst := out.F32[(r*C+c)*oh*ow : (r*C+c+1)*oh*ow]
				for p := range oh * ow {
					var v float32
					for k, s := range samples[p*per : (p+1)*per] {
						if mode == "avg" {
							v += s.w[0]*img[s.pos[0]] + s.w[1]*img[s.pos[1]] + s.w[2]*img[s.pos[2]] + s.w[3]*img[s.pos[3]]
							continue
						}
						m := max(s.w[0]*img[s.pos[0]], s.w[1]*img[s.pos[1]], s.w[2]*img[s.pos[2]], s.w[3]*img[s.pos[3]])
						if k == 0 || m > v {
							v = m
						}
					}
					if mode == "avg" {
						v /= count
					}
					dst[p] = v
				}
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// roiSample is a bilinear sample: four positions of the map and their
// weights.
type roiSample struct {
	pos [4]int
	w   [4]float32
}

// bilinearSample is the four corners of the H×W map around (y, x) and
// their weights; a point more than one pixel outside the map samples
// nothing (zero weights).
func bilinearSample(y, x float32, H, W int) (s roiSample) {
	if y < -1 || y > float32(H) || x < -1 || x > float32(W) {
		return s
	}
	y, x = max(y, 0), max(x, 0)
	yl, xl := int(y), int(x)
	yh, xh := yl+1, xl+1
	if yl >= H-1 {
		yl, yh, y = H-1, H-1, float32(H-1)
	}
	if xl >= W-1 {
		xl, xh, x = W-1, W-1, float32(W-1)
	}
	ly, lx := y-float32(yl), x-float32(xl)
	hy, hx := 1-ly, 1-lx
	s.pos = [4]int{yl*W + xl, yl*W + xh, yh*W + xl, yh*W + xh}
	s.w = [4]float32{hy * hx, hy * lx, ly * hx, ly * lx}
	return s
}
