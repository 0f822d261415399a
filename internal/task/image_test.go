package task

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"math"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/tensor"
)

var imageLabels = []string{"cat", "dog", "bird", "fish", "frog"}

func imageTask(t testing.TB, cfg Config) (Task, *engine.Model) {
	t.Helper()
	m := model(t, "tiny-image-cls")
	dir := funcDir(t, map[string]string{"labels.txt": strings.Join(imageLabels, "\n")})
	return newTask(t, ImageClassification, cfg, dir, m), m
}

// referenceInput normalises a 32x32 image, already at the model's size, the
// way torchvision's ToTensor + Normalize(ImageNet) does, channel order given.
func referenceInput(img image.Image, order [3]int) *tensor.Tensor {
	mean := [3]float32{0.485, 0.456, 0.406}
	std := [3]float32{0.229, 0.224, 0.225}
	t := tensor.New(tensor.Float32, 1, 3, 32, 32)
	for y := range 32 {
		for x := range 32 {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			rgb := [3]float32{float32(c.R), float32(c.G), float32(c.B)}
			for ch, src := range order {
				t.F32[ch*1024+y*32+x] = (rgb[src]/255 - mean[src]) / std[src]
			}
		}
	}
	return t
}

func multipartBody(t *testing.T, field string, data []byte) (string, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("note", "ignored")
	w, err := mw.CreateFormFile(field, "photo.png")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	mw.Close()
	return mw.FormDataContentType(), b.String()
}

func TestImageClassification(t *testing.T) {
	img := testImage(32, 32)
	pngBytes := encodePNG(t, img)
	tk, m := imageTask(t, Config{})
	outs, err := m.Run(context.Background(), map[string]*tensor.Tensor{"pixel_values": referenceInput(img, [3]int{0, 1, 2})})
	if err != nil {
		t.Fatal(err)
	}
	logits := outs["logits"].F32
	mpType, mpBody := multipartBody(t, "image", pngBytes)
	tests := []struct {
		name, ct string
		body     []byte
	}{
		{"png body", "image/png", pngBytes},
		{"multipart", mpType, []byte(mpBody)},
		{"declared jpeg, is png", "image/jpeg", pngBytes}, // the bytes decide
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := handle(t, tk, m, tc.ct, string(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			wantRanked(t, got.(Labels), logits, imageLabels, 5)
		})
	}

	t.Run("jpeg", func(t *testing.T) {
		// JPEG is lossy: compare with the decoded JPEG's own pixels.
		jpg := encodeJPEG(t, img)
		dec, _, err := image.Decode(bytes.NewReader(jpg))
		if err != nil {
			t.Fatal(err)
		}
		outs, err := m.Run(context.Background(), map[string]*tensor.Tensor{"pixel_values": referenceInput(dec, [3]int{0, 1, 2})})
		if err != nil {
			t.Fatal(err)
		}
		got, err := handle(t, tk, m, "image/jpeg", string(jpg))
		if err != nil {
			t.Fatal(err)
		}
		wantRanked(t, got.(Labels), outs["logits"].F32, imageLabels, 5)
	})

	t.Run("BGR, top 2", func(t *testing.T) {
		tk, m := imageTask(t, Config{Channels: "BGR", TopK: 2})
		outs, err := m.Run(context.Background(), map[string]*tensor.Tensor{"pixel_values": referenceInput(img, [3]int{2, 1, 0})})
		if err != nil {
			t.Fatal(err)
		}
		got, err := handle(t, tk, m, "image/png", string(pngBytes))
		if err != nil {
			t.Fatal(err)
		}
		wantRanked(t, got.(Labels), outs["logits"].F32, imageLabels, 2)
	})

	t.Run("larger image is resized", func(t *testing.T) {
		// A 96x64 image of constant colour resizes to the same colour.
		big := image.NewNRGBA(image.Rect(0, 0, 96, 64))
		small := image.NewNRGBA(image.Rect(0, 0, 32, 32))
		for _, im := range []*image.NRGBA{big, small} {
			for i := 0; i < len(im.Pix); i += 4 {
				copy(im.Pix[i:], []byte{200, 30, 120, 255})
			}
		}
		a, err := handle(t, tk, m, "image/png", string(encodePNG(t, big)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := handle(t, tk, m, "image/png", string(encodePNG(t, small)))
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range a.(Labels).Labels {
			w := b.(Labels).Labels[i]
			if l.Label != w.Label || math.Abs(l.Score-w.Score) > 1e-5 {
				t.Fatalf("96x64 image: %v; its 32x32 twin: %v", a, b)
			}
		}
	})
}

// pngHeader is a PNG signature and IHDR chunk declaring w x h RGB pixels, with
// no image data: enough for DecodeConfig.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 17)
	copy(ihdr, "IHDR")
	binary.BigEndian.PutUint32(ihdr[4:], w)
	binary.BigEndian.PutUint32(ihdr[8:], h)
	ihdr[12], ihdr[13] = 8, 2 // 8-bit RGB
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(ihdr)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(ihdr))
	return b.Bytes()
}

func TestImageBadRequests(t *testing.T) {
	tk, m := imageTask(t, Config{})
	good := encodePNG(t, testImage(8, 8))
	noImage, noImageBody := multipartBody(t, "photo", good)
	tests := []struct {
		name, ct string
		body     []byte
		want     string
	}{
		{"garbage", "image/png", []byte("definitely not an image"), "image: not a PNG or JPEG (image: unknown format)"},
		{"gif", "image/jpeg", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), "image: not a PNG or JPEG"},
		{"truncated png", "image/png", good[:len(good)/2], "image: corrupt png"},
		{"truncated header", "image/png", good[:20], "image: not a PNG or JPEG"},
		{"huge", "image/png", pngHeader(10000, 6000), "image: 10000x6000 is 60.0 megapixels, over the limit of 50 megapixels"},
		{"empty body", "image/png", nil, "image: empty body"},
		{"no content type", "", good, "Content-Type: missing; want image/png, image/jpeg, or multipart/form-data"},
		{"json", "application/json", []byte(`{"image": "..."}`), `Content-Type: "application/json", want image/png`},
		{"bad content type", "image/png; =", good, `Content-Type: "image/png; =":`},
		{"multipart without image", noImage, []byte(noImageBody), `image: the multipart body has no field "image"`},
		{"multipart without boundary", "multipart/form-data", good, "Content-Type: multipart/form-data without a boundary"},
		{"malformed multipart", "multipart/form-data; boundary=XYZ", []byte("--XYZ\r\nnot a header\r\n"), "body: malformed multipart"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := handle(t, tk, m, tc.ct, string(tc.body))
			if !IsInputError(err) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant an InputError starting %q", err, tc.want)
			}
		})
	}
	if _, err := handle(t, tk, m, "image/png", string(good)); err != nil {
		t.Fatalf("good image after bad ones: %v", err)
	}
}

// TestResampleCoeffs checks the filter weights against values worked out by
// hand from Pillow's bilinear resampling (src/libImaging/Resample.c).
func TestResampleCoeffs(t *testing.T) {
	tests := []struct {
		name    string
		in, out int
		start   []int
		w       [][]float32
	}{
		{"identity", 3, 3, []int{0, 1, 2}, [][]float32{{1, 0}, {1, 0}, {1}}},
		// Shrinking 4 -> 2: support 2 source pixels, triangle weights 3:3:1.
		{"halve", 4, 2, []int{0, 1}, [][]float32{{3. / 7, 3. / 7, 1. / 7}, {1. / 7, 3. / 7, 3. / 7}}},
		// Growing 2 -> 4: plain bilinear, edges clamped.
		{"double", 2, 4, []int{0, 0, 0, 1}, [][]float32{{1}, {0.75, 0.25}, {0.25, 0.75}, {1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := resampleCoeffs(tc.in, tc.out)
			for i := range tc.out {
				if c.start[i] != tc.start[i] || len(c.w[i]) != len(tc.w[i]) {
					t.Fatalf("output %d: start %d weights %v, want %d %v", i, c.start[i], c.w[i], tc.start[i], tc.w[i])
				}
				for k := range c.w[i] {
					if math.Abs(float64(c.w[i][k]-tc.w[i][k])) > 1e-6 {
						t.Fatalf("output %d: weights %v, want %v", i, c.w[i], tc.w[i])
					}
				}
			}
		})
	}
}

// TestResize checks whole images against the weights above: a 4x2 image
// shrunk to 2x1, and a 2x2 grown to 4x4.
func TestResize(t *testing.T) {
	gray := func(w, h int, v ...uint8) *image.Gray {
		g := image.NewGray(image.Rect(0, 0, w, h))
		copy(g.Pix, v)
		return g
	}
	tests := []struct {
		name string
		img  image.Image
		w, h int
		want []float32 // one channel; the image is gray
	}{
		// Rows 0 and 1 average (support 1 of 2 rows: weights 1/2, 1/2).
		{"shrink", gray(4, 2, 0, 70, 140, 210, 0, 70, 140, 210), 2, 1, []float32{(0*3 + 70*3 + 140) / 7., (70 + 140*3 + 210*3) / 7.}},
		{"grow", gray(2, 2, 0, 100, 100, 200), 4, 4, []float32{
			0, 25, 75, 100,
			25, 50, 100, 125,
			75, 100, 150, 175,
			100, 125, 175, 200,
		}},
		{"offset bounds", gray(2, 2, 0, 100, 100, 200).SubImage(image.Rect(1, 1, 2, 2)), 2, 2, []float32{200, 200, 200, 200}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := resize(tc.img, tc.h, tc.w)
			for i, want := range tc.want {
				for ch := range 3 {
					if math.Abs(float64(got[3*i+ch]-want)) > 1e-3 {
						t.Fatalf("pixel %d channel %d = %v, want %v (all: %v)", i, ch, got[3*i+ch], want, got)
					}
				}
			}
		})
	}
}

// TestReadRowFastPaths checks that every fast path reads the same RGB as the
// generic color conversion.
func TestReadRowFastPaths(t *testing.T) {
	src := testImage(16, 8)
	ycc := image.NewYCbCr(src.Bounds(), image.YCbCrSubsampleRatio420)
	gray := image.NewGray(src.Bounds())
	rgba := image.NewRGBA(src.Bounds())
	for y := range 8 {
		for x := range 16 {
			c := src.NRGBAAt(x, y)
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			ycc.Y[ycc.YOffset(x, y)] = yy
			ycc.Cb[ycc.COffset(x, y)], ycc.Cr[ycc.COffset(x, y)] = cb, cr
			gray.Set(x, y, c)
			rgba.Set(x, y, c)
		}
	}
	for _, img := range []image.Image{src, ycc, gray, rgba, src.SubImage(image.Rect(3, 2, 11, 7))} {
		b := img.Bounds()
		got := make([]float32, b.Dx()*3)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			readRow(img, y, b.Min.X, got)
			for x := range b.Dx() {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, y)).(color.NRGBA)
				if got[3*x] != float32(c.R) || got[3*x+1] != float32(c.G) || got[3*x+2] != float32(c.B) {
					t.Fatalf("%T (%d,%d): %v, want %v", img, x, y, got[3*x:3*x+3], c)
				}
			}
		}
	}
}
