package task

import (
	"bytes"
	"context"
	"errors"
	"image"
	_ "image/jpeg" // registers the JPEG decoder
	_ "image/png"  // registers the PNG decoder
	"io"
	"mime"
	"mime/multipart"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/tensor"
)

// Image limits and defaults.
const (
	// MaxImagePixels bounds a decoded image: 50 megapixels, about 200 MB as
	// RGBA, checked from the header before any pixel is decoded.
	MaxImagePixels = 50_000_000
	// DefaultImageSize is the side an image is resized to when the model does
	// not fix it.
	DefaultImageSize = 224
	// DefaultTopK is how many labels an image answer lists.
	DefaultTopK = 5
)

// ImageNet's channel statistics, torchvision's defaults.
var (
	imageNetMean = [3]float32{0.485, 0.456, 0.406}
	imageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// imageClassifier is the image-classification task: a PNG or JPEG in, the
// top-k labels out. The image is resized (not cropped) to the model's size.
type imageClassifier struct {
	input     string
	nhwc, bgr bool
	h, w      int
	mean, std [3]float32
	out       string
	labels    []string
	topK      int
	soft      bool
}

var _ Task = (*imageClassifier)(nil)

func newImageClassifier(cfg Config, dir string, m *engine.Model) (*imageClassifier, error) {
	c := &imageClassifier{mean: imageNetMean, std: imageNetStd, topK: orDefault(cfg.TopK, DefaultTopK), soft: boolOr(cfg.Softmax, true)}
	switch cfg.Layout {
	case "", "NCHW":
	case "NHWC":
		c.nhwc = true
	default:
		return nil, configErrorf("config: layout: %q, want NCHW or NHWC", cfg.Layout)
	}
	switch cfg.Channels {
	case "", "RGB":
	case "BGR":
		c.bgr = true
	default:
		return nil, configErrorf("config: channels: %q, want RGB or BGR", cfg.Channels)
	}
	for _, f := range []struct {
		name string
		v    []float32
		dst  *[3]float32
	}{{"mean", cfg.Mean, &c.mean}, {"std", cfg.Std, &c.std}} {
		if f.v == nil {
			continue
		}
		if len(f.v) != 3 {
			return nil, configErrorf("config: %s: %d values, want 3 (one per channel, R G B)", f.name, len(f.v))
		}
		copy(f.dst[:], f.v)
	}
	for i, s := range c.std {
		if !(s > 0) {
			return nil, configErrorf("config: std[%d]: %v must be positive", i, s)
		}
	}

	in, err := findInput(m, cfg.Input, "input")
	if err != nil {
		return nil, err
	}
	if len(m.Inputs) != 1 {
		return nil, configErrorf("model: %d inputs (%s); the task feeds only the image %q", len(m.Inputs), valueNames(m.Inputs), in.Name)
	}
	c.input = in.Name
	if in.DType != tensor.Float32 && in.DType != tensor.Float16 {
		return nil, configErrorf("model input %q: dtype %s, the task feeds float32 pixels", in.Name, in.DType)
	}
	hAxis, wAxis, cAxis := 2, 3, 1
	if c.nhwc {
		hAxis, wAxis, cAxis = 1, 2, 3
	}
	c.h, c.w = DefaultImageSize, DefaultImageSize
	if s := in.Shape; s != nil {
		if len(s) != 4 {
			return nil, configErrorf("model input %q: shape %s has rank %d, the task feeds an image batch (rank 4, %s)", in.Name, tensor.ShapeString(s), len(s), orDefault(cfg.Layout, "NCHW"))
		}
		if s[0] >= 0 && s[0] != 1 {
			return nil, configErrorf("model input %q: batch dimension fixed at %d; the task needs a dynamic batch or 1", in.Name, s[0])
		}
		if s[cAxis] >= 0 && s[cAxis] != 3 {
			return nil, configErrorf("model input %q: shape %s has %d channels at axis %d, the task feeds 3 (RGB) in layout %s (set layout if the model is NHWC)", in.Name, tensor.ShapeString(s), s[cAxis], cAxis, orDefault(cfg.Layout, "NCHW"))
		}
		if s[hAxis] > 0 {
			c.h = s[hAxis]
		}
		if s[wAxis] > 0 {
			c.w = s[wAxis]
		}
	}
	if cfg.ImageSize != nil {
		if len(cfg.ImageSize) != 2 || cfg.ImageSize[0] < 1 || cfg.ImageSize[1] < 1 || cfg.ImageSize[0] > 8192 || cfg.ImageSize[1] > 8192 {
			return nil, configErrorf("config: image_size: %v, want [height, width] each between 1 and 8192", cfg.ImageSize)
		}
		h, w := cfg.ImageSize[0], cfg.ImageSize[1]
		if s := in.Shape; s != nil && ((s[hAxis] >= 0 && s[hAxis] != h) || (s[wAxis] >= 0 && s[wAxis] != w)) {
			return nil, configErrorf("config: image_size: %v, but model input %q has fixed shape %s", cfg.ImageSize, in.Name, tensor.ShapeString(s))
		}
		c.h, c.w = h, w
	}

	out, err := findOutput(m, cfg.Output, "logits")
	if err != nil {
		return nil, err
	}
	file := orDefault(cfg.Labels, "labels.txt")
	if c.labels, err = readLabels(dir, file); err != nil {
		return nil, err
	}
	if err := checkScores(out, c.labels, file); err != nil {
		return nil, err
	}
	c.out = out.Name
	return c, nil
}

// Handle classifies one image and answers Labels.
func (c *imageClassifier) Handle(ctx context.Context, req Request, run RunFunc) (any, error) {
	data, err := imageBytes(req)
	if err != nil {
		return nil, err
	}
	img, err := decodeImage(data)
	if err != nil {
		return nil, err
	}
	outs, err := run(ctx, map[string]*tensor.Tensor{c.input: c.tensor(img)})
	if err != nil {
		return nil, err
	}
	v, _, err := outputRows(outs, c.out, 1, len(c.labels))
	if err != nil {
		return nil, err
	}
	return Labels{Labels: rank(v, c.labels, c.topK, c.soft)}, nil
}

// imageBytes returns the image in a request: the body of an image/png or
// image/jpeg request, or the "image" field of a multipart/form-data one.
func imageBytes(req Request) ([]byte, error) {
	const want = "want image/png, image/jpeg, or multipart/form-data with the image in field \"image\""
	if req.ContentType == "" {
		return nil, inputErrorf("Content-Type", "missing; %s", want)
	}
	mt, params, err := mime.ParseMediaType(req.ContentType)
	if err != nil {
		return nil, inputErrorf("Content-Type", "%q: %v; %s", req.ContentType, err, want)
	}
	switch mt {
	case "image/png", "image/jpeg":
		if len(req.Body) == 0 {
			return nil, inputErrorf("image", "empty body")
		}
		return req.Body, nil
	case "multipart/form-data":
	default:
		return nil, inputErrorf("Content-Type", "%q, %s", mt, want)
	}
	if params["boundary"] == "" {
		return nil, inputErrorf("Content-Type", "multipart/form-data without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(req.Body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, inputErrorf("image", "the multipart body has no field \"image\"")
		}
		if err != nil {
			return nil, inputErrorf("body", "malformed multipart: %v", err)
		}
		if p.FormName() != "image" {
			continue
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, inputErrorf("image", "malformed multipart: %v", err)
		}
		if len(b) == 0 {
			return nil, inputErrorf("image", "empty")
		}
		return b, nil
	}
}

// decodeImage decodes a PNG or JPEG, checking its size from the header first.
func decodeImage(b []byte) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, inputErrorf("image", "not a PNG or JPEG (%v)", err)
	}
	if format != "png" && format != "jpeg" {
		return nil, inputErrorf("image", "not a PNG or JPEG (%s)", format)
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return nil, inputErrorf("image", "%dx%d pixels: empty", cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > MaxImagePixels {
		return nil, inputErrorf("image", "%dx%d is %.1f megapixels, over the limit of %d megapixels", cfg.Width, cfg.Height, float64(px)/1e6, MaxImagePixels/1_000_000)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, inputErrorf("image", "corrupt %s (%v)", format, err)
	}
	return img, nil
}

// tensor resizes img and lays it out as the model's input, normalised.
func (c *imageClassifier) tensor(img image.Image) *tensor.Tensor {
	px := resize(img, c.h, c.w)
	var t *tensor.Tensor
	if c.nhwc {
		t = tensor.New(tensor.Float32, 1, c.h, c.w, 3)
	} else {
		t = tensor.New(tensor.Float32, 1, 3, c.h, c.w)
	}
	plane := c.h * c.w
	for i := range plane {
		for ch := range 3 {
			src := ch
			if c.bgr {
				src = 2 - ch
			}
			v := (px[3*i+src]/255 - c.mean[src]) / c.std[src]
			if c.nhwc {
				t.F32[3*i+ch] = v
			} else {
				t.F32[ch*plane+i] = v
			}
		}
	}
	return t
}
