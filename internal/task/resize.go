package task

import (
	"image"
	"image/color"
	"math"
)

// Resampling follows Pillow's Image.resize with BILINEAR (what torchvision's
// Resize uses on PIL images): separable triangle filter whose support widens
// with the downscale factor, so shrinking a photo averages every source pixel
// instead of aliasing. Pixel centres sit at +0.5.

// coeffs holds one axis of a resampling: output i reads source pixels
// [start[i], start[i]+len(w[i])) with weights w[i] (summing to 1).
type coeffs struct {
	start []int
	w     [][]float32
}

func resampleCoeffs(in, out int) coeffs {
	scale := float64(in) / float64(out)
	fscale := max(scale, 1)
	support := fscale // the triangle filter's support is 1, widened by the scale
	c := coeffs{start: make([]int, out), w: make([][]float32, out)}
	for i := range out {
		center := (float64(i) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		ws := make([]float32, hi-lo)
		var sum float64
		raw := make([]float64, hi-lo)
		for k := range raw {
			x := (float64(lo+k) - center + 0.5) / fscale
			raw[k] = max(0, 1-math.Abs(x))
			sum += raw[k]
		}
		for k := range raw {
			if sum > 0 {
				ws[k] = float32(raw[k] / sum)
			}
		}
		if sum == 0 { // cannot happen for in, out >= 1; keep the nearest pixel
			ws[min(int(center), hi-1)-lo] = 1
		}
		c.start[i], c.w[i] = lo, ws
	}
	return c
}

// resize resamples img to h x w and returns its pixels as float32 RGB in
// [0, 255], row-major [h][w][3]. It reads each source row once, so the memory
// it needs beyond img is about one source row plus the output.
func resize(img image.Image, h, w int) []float32 {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	xc, yc := resampleCoeffs(sw, w), resampleCoeffs(sh, h)
	out := make([]float32, h*w*3)
	src := make([]float32, sw*3)
	row := make([]float32, w*3)
	first := 0 // the first output row whose window has not ended
	for sy := range sh {
		for first < h && yc.start[first]+len(yc.w[first]) <= sy {
			first++
		}
		if first == h || yc.start[first] > sy {
			continue // no output row reads this source row
		}
		readRow(img, b.Min.Y+sy, b.Min.X, src)
		for x := range w {
			var r, g, bl float32
			s := xc.start[x] * 3
			for k, wt := range xc.w[x] {
				r += wt * src[s+3*k]
				g += wt * src[s+3*k+1]
				bl += wt * src[s+3*k+2]
			}
			row[3*x], row[3*x+1], row[3*x+2] = r, g, bl
		}
		for y := first; y < h && yc.start[y] <= sy; y++ {
			k := sy - yc.start[y]
			if k >= len(yc.w[y]) {
				continue
			}
			wt := yc.w[y][k]
			dst := out[y*w*3 : (y+1)*w*3]
			for i, v := range row {
				dst[i] += wt * v
			}
		}
	}
	return out
}

// readRow writes row y of img (from column x0) as float32 RGB into dst, with
// fast paths for the types the PNG and JPEG decoders return. Alpha is dropped
// without compositing, as Pillow's convert("RGB") does.
func readRow(img image.Image, y, x0 int, dst []float32) {
	n := len(dst) / 3
	switch m := img.(type) {
	case *image.YCbCr:
		for x := range n {
			yi := m.YOffset(x0+x, y)
			ci := m.COffset(x0+x, y)
			r, g, b := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			dst[3*x], dst[3*x+1], dst[3*x+2] = float32(r), float32(g), float32(b)
		}
	case *image.NRGBA:
		p := m.Pix[m.PixOffset(x0, y):]
		for x := range n {
			dst[3*x], dst[3*x+1], dst[3*x+2] = float32(p[4*x]), float32(p[4*x+1]), float32(p[4*x+2])
		}
	case *image.Gray:
		p := m.Pix[m.PixOffset(x0, y):]
		for x := range n {
			v := float32(p[x])
			dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
		}
	default:
		for x := range n {
			c := color.NRGBAModel.Convert(img.At(x0+x, y)).(color.NRGBA)
			dst[3*x], dst[3*x+1], dst[3*x+2] = float32(c.R), float32(c.G), float32(c.B)
		}
	}
}
