package engine

import (
	"fmt"
	"math"

	"github.com/spindleml/spindle/internal/tensor"
)

// GridSample (issue 13, item 5), for 4-D inputs: each output pixel samples
// X at the normalised (x, y) of its grid entry, by nearest, bilinear or
// bicubic interpolation, with zeros, border or reflection padding,
// following ONNX Runtime's CPU kernel: coordinates in float32, a tap
// outside the image padded pixel by pixel, and with border padding a
// bilinear sample's coordinates clamped to the image first.

func init() {
	register("GridSample", newGridSample)
}

const (
	gsNearest = iota
	gsLinear
	gsCubic
)

func newGridSample(n *Node) (Kernel, error) {
	mode := gsLinear
	switch m := n.String("mode", "linear"); m {
	case "linear", "bilinear":
	case "nearest":
		mode = gsNearest
	case "cubic", "bicubic":
		mode = gsCubic
	default:
		return nil, fmt.Errorf("attribute mode: %q, must be linear (bilinear), nearest or cubic (bicubic)", m)
	}
	pad := n.String("padding_mode", "zeros")
	if pad != "zeros" && pad != "border" && pad != "reflection" {
		return nil, fmt.Errorf("attribute padding_mode: %q, must be zeros, border or reflection", pad)
	}
	align := n.Int("align_corners", 0) != 0
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x, grid := in[0], in[1]
		if x.DType != tensor.Float32 || len(x.Shape) != 4 {
			return nil, fmt.Errorf("input X: %s, must be float32 [N C H W] (only 2-D sampling is supported)", x)
		}
		N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		if grid.DType != tensor.Float32 || len(grid.Shape) != 4 || grid.Shape[0] != N || grid.Shape[3] != 2 {
			return nil, fmt.Errorf("input grid: %s, must be float32 [%d H_out W_out 2]", grid, N)
		}
		Ho, Wo := grid.Shape[1], grid.Shape[2]
		out := newF32(N, C, Ho, Wo)
		// The reflection bounds.
		xmin, ymin, xmax, ymax := float32(-0.5), float32(-0.5), float32(W)-0.5, float32(H)-0.5
		if align {
			xmin, ymin, xmax, ymax = 0, 0, float32(W-1), float32(H-1)
		}
		denorm := func(v float32, size int) float32 {
			if align {
				return (v + 1) / 2 * float32(size-1)
			}
			return ((v+1)*float32(size) - 1) / 2
		}
		pixel := func(img []float32, r, c int) float32 {
			switch pad {
			case "zeros":
				if c < 0 || c >= W || r < 0 || r >= H {
					return 0
				}
			case "border":
				c, r = min(max(c, 0), W-1), min(max(r, 0), H-1)
			default:
				c = int(gsReflect(float32(c), xmin, xmax))
				r = int(gsReflect(float32(r), ymin, ymax))
				c, r = min(max(c, 0), W-1), min(max(r, 0), H-1)
			}
			return img[r*W+c]
		}
		for b := range N {
			g := grid.F32[b*Ho*Wo*2 : (b+1)*Ho*Wo*2]
			for c := range C {
				img := x.F32[(b*C+c)*H*W : (b*C+c+1)*H*W]
				dst := out.F32[(b*C+c)*Ho*Wo : (b*C+c+1)*Ho*Wo]
				for p := range Ho * Wo {
					gx, gy := denorm(g[2*p], W), denorm(g[2*p+1], H)
					if pad == "border" && mode == gsLinear {
						gx, gy = min(max(gx, 0), float32(W-1)), min(max(gy, 0), float32(H-1))
					} else if pad == "reflection" {
						gx, gy = gsReflect(gx, xmin, xmax), gsReflect(gy, ymin, ymax)
					}
					switch mode {
					case gsNearest:
						dst[p] = pixel(img, int(math.RoundToEven(float64(gy))), int(math.RoundToEven(float64(gx))))
					case gsLinear:
						x1, y1 := int(math.Floor(float64(gx))), int(math.Floor(float64(gy)))
						dx1, dy1 := gx-float32(x1), gy-float32(y1)
						dx2, dy2 := 1-dx1, 1-dy1
						dst[p] = dy2*(dx2*pixel(img, y1, x1)+dx1*pixel(img, y1, x1+1)) + dy1*(dx2*pixel(img, y1+1, x1)+dx1*pixel(img, y1+1, x1+1))
					case gsCubic:
						x0, y0 := int(math.Floor(float64(gx)))-1, int(math.Floor(float64(gy)))-1
						cx, cy := gsCubicCoeffs(gx-float32(x0)-1), gsCubicCoeffs(gy-float32(y0)-1)
						var v float32
						for i := range 4 {
							var row float32
							for j := range 4 {
								row += cx[j] * pixel(img, y0+i, x0+j)
							}
							v += cy[i] * row
						}
						dst[p] = v
					}
				}
			}
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// gsReflect folds v into [lo, hi] by reflecting at the bounds.
func gsReflect(v, lo, hi float32) float32 {
	rng := hi - lo
	switch {
	case v < lo:
		d := lo - v
		n := int(d / rng)
		r := d - float32(n)*rng
		if n%2 == 0 {
			return lo + r
		}
		return hi - r
	case v > hi:
		d := v - hi
		n := int(d / rng)
		r := d - float32(n)*rng
		if n%2 == 0 {
			return hi - r
		}
		return lo + r
	}
	return v
}

// gsCubicCoeffs are the weights of the 4 taps around a point t past the
// second (t in [0, 1)), for the cubic convolution with A = -0.75.
func gsCubicCoeffs(t float32) [4]float32 {
	const A = -0.75
	t = float32(math.Abs(float64(t)))
	return [4]float32{
		((A*(t+1)-5*A)*(t+1)+8*A)*(t+1) - 4*A,
		((A+2)*t-(A+3))*t*t + 1,
		((A+2)*(1-t)-(A+3))*(1-t)*(1-t) + 1,
		((A*(2-t)-5*A)*(2-t)+8*A)*(2-t) - 4*A,
	}
}
