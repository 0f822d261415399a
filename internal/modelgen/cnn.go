package modelgen

import (
	"fmt"
	"math"

	"github.com/spindleml/spindle/internal/tensor"
)

// Convolutional networks as PyTorch's and Paddle's exporters write them
// (issue 12's real-model suite): opset 17, every BatchNormalization its own
// node after its convolution (not folded into it), activations spelled out
// op by op where exporters do so (HardSwish as x * Clip(x + 3, 0, 6) / 6,
// SiLU as x * Sigmoid(x), ReLU6 as Clip(x, 0, 6)). The layer shapes are the
// published architectures'; weights are He-normal so activations keep their
// scale, and BatchNormalization statistics are drawn near identity so no
// layer collapses. Each takes input float32[N 3 S S] and has output "output".

// cnn is a Builder with the layers these networks share.
type cnn struct {
	*Builder
	n int // layers so far, for names
}

func newCNN(name string, size, classes int64, seed uint64) *cnn {
	b := NewBuilder(name, 17, seed)
	b.Input("input", tensor.Float32, []int64{-1, 3, size, size}, "N")
	if classes > 0 {
		b.Output("output", tensor.Float32, []int64{-1, classes}, "N")
	}
	return &cnn{Builder: b}
}

func (c *cnn) name(kind string) string {
	c.n++
	return fmt.Sprintf("%s%d", kind, c.n)
}

// conv adds a convolution without bias (a BatchNormalization follows).
func (c *cnn) conv(x string, cin, cout, k, stride, group int64) string {
	name := c.name("conv")
	w := c.Init(name+".weight", []int64{cout, cin / group, k, k}, fastNormal(c.Rand(), 0, math.Sqrt(2/float64(cin/group*k*k)), int(cout*(cin/group)*k*k)))
	p := k / 2
	return c.Node("Conv", []string{x, w}, []Attr{AInts("kernel_shape", k, k), AInts("strides", stride, stride),
		AInts("pads", p, p, p, p), AInt("group", group)})
}

// bn adds an inference BatchNormalization with statistics near identity.
func (c *cnn) bn(x string, ch int64) string {
	name := c.name("bn")
	r := c.Rand()
	vals := func(center, spread float64) []float32 {
		v := make([]float32, ch)
		for i := range v {
			v[i] = float32(center + spread*(r.Float64()*2-1))
		}
		return v
	}
	return c.Node("BatchNormalization", []string{x,
		c.Init(name+".weight", []int64{ch}, vals(1, 0.2)), c.Init(name+".bias", []int64{ch}, vals(0, 0.1)),
		c.Init(name+".running_mean", []int64{ch}, vals(0, 0.1)), c.Init(name+".running_var", []int64{ch}, vals(1, 0.2))}, nil)
}

// act applies an activation by its PyTorch name.
func (c *cnn) act(x, kind string) string {
	switch kind {
	case "relu":
		return c.Node("Relu", []string{x}, nil)
	case "relu6":
		return c.Node("Clip", []string{x, c.scalar(0), c.scalar(6)}, nil)
	case "hardswish":
		t := c.Node("Clip", []string{c.Node("Add", []string{x, c.scalar(3)}, nil), c.scalar(0), c.scalar(6)}, nil)
		return c.Node("Div", []string{c.Node("Mul", []string{x, t}, nil), c.scalar(6)}, nil)
	case "silu":
		return c.Node("Mul", []string{x, c.Node("Sigmoid", []string{x}, nil)}, nil)
	case "":
		return x
	}
	panic("modelgen: unknown activation " + kind)
}

// scalar adds a float32 scalar constant.
func (c *cnn) scalar(v float32) string {
	return c.InitTensor(c.name("k"), tensor.FromF32([]float32{v}))
}

// convBN is conv -> BatchNormalization -> activation.
func (c *cnn) convBN(x string, cin, cout, k, stride, group int64, act string) string {
	return c.act(c.bn(c.conv(x, cin, cout, k, stride, group), cout), act)
}

// se is squeeze-and-excitation: x * gate(conv(act(conv(GlobalAveragePool(x))))).
func (c *cnn) se(x string, ch, squeeze int64, act, gate string) string {
	s := c.Node("GlobalAveragePool", []string{x}, nil)
	convB := func(s string, cin, cout int64) string {
		name := c.name("se")
		w := c.Init(name+".weight", []int64{cout, cin, 1, 1}, fastNormal(c.Rand(), 0, math.Sqrt(2/float64(cin)), int(cout*cin)))
		b := c.Init(name+".bias", []int64{cout}, fastNormal(c.Rand(), 0, 0.1, int(cout)))
		return c.Node("Conv", []string{s, w, b}, []Attr{AInts("kernel_shape", 1, 1)})
	}
	s = c.act(convB(s, ch, squeeze), act)
	s = convB(s, squeeze, ch)
	switch gate {
	case "hardsigmoid":
		s = c.Node("HardSigmoid", []string{s}, []Attr{AFloat("alpha", 1.0/6), AFloat("beta", 0.5)})
	default:
		s = c.Node("Sigmoid", []string{s}, nil)
	}
	return c.Node("Mul", []string{x, s}, nil)
}

// head is GlobalAveragePool -> Flatten -> Gemm to the output.
func (c *cnn) head(x string, cin, classes int64) {
	x = c.Node("Flatten", []string{c.Node("GlobalAveragePool", []string{x}, nil)}, []Attr{AInt("axis", 1)})
	c.linear(x, cin, classes, "output")
}

func (c *cnn) linear(x string, in, out int64, outputs ...string) string {
	name := c.name("fc")
	w := c.Init(name+".weight", []int64{out, in}, fastNormal(c.Rand(), 0, math.Sqrt(1/float64(in)), int(out*in)))
	b := c.Init(name+".bias", []int64{out}, fastNormal(c.Rand(), 0, 0.01, int(out)))
	return c.Node("Gemm", []string{x, w, b}, []Attr{AInt("transB", 1)}, outputs...)
}

// makeDivisible rounds v to a multiple of 8, as torchvision's _make_divisible.
func makeDivisible(v float64) int64 {
	d := max(8, int64(v+4)/8*8)
	if float64(d) < 0.9*v {
		d += 8
	}
	return d
}

// MobileNetV2 is torchvision's mobilenet_v2 for 224x224 images: inverted
// residual blocks (1x1 expansion, 3x3 depthwise, 1x1 projection, ReLU6) with
// residual adds where shapes allow; 3.5 M parameters.
func MobileNetV2(seed uint64) *Builder {
	c := newCNN("mobilenet_v2", 224, 1000, seed)
	x := c.convBN("input", 3, 32, 3, 2, 1, "relu6")
	cin := int64(32)
	for _, s := range []struct{ t, ch, n, s int64 }{{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}} {
		for i := range s.n {
			stride := int64(1)
			if i == 0 {
				stride = s.s
			}
			hidden := cin * s.t
			y := x
			if s.t != 1 {
				y = c.convBN(y, cin, hidden, 1, 1, 1, "relu6")
			}
			y = c.convBN(y, hidden, hidden, 3, stride, hidden, "relu6")
			y = c.convBN(y, hidden, s.ch, 1, 1, 1, "")
			if stride == 1 && cin == s.ch {
				y = c.Node("Add", []string{x, y}, nil)
			}
			x, cin = y, s.ch
		}
	}
	x = c.convBN(x, cin, 1280, 1, 1, 1, "relu6")
	c.head(x, 1280, 1000)
	return c.Builder
}

// MobileNetV3Small is torchvision's mobilenet_v3_small for 224x224 images:
// blocks with ReLU or HardSwish, squeeze-and-excitation with HardSigmoid
// gates, 3x3 and 5x5 depthwise convolutions; 2.5 M parameters.
func MobileNetV3Small(seed uint64) *Builder {
	c := newCNN("mobilenet_v3_small", 224, 1000, seed)
	x := c.convBN("input", 3, 16, 3, 2, 1, "hardswish")
	cin := int64(16)
	for _, b := range []struct {
		k, exp, out int64
		se          bool
		act         string
		s           int64
	}{
		{3, 16, 16, true, "relu", 2}, {3, 72, 24, false, "relu", 2}, {3, 88, 24, false, "relu", 1},
		{5, 96, 40, true, "hardswish", 2}, {5, 240, 40, true, "hardswish", 1}, {5, 240, 40, true, "hardswish", 1},
		{5, 120, 48, true, "hardswish", 1}, {5, 144, 48, true, "hardswish", 1}, {5, 288, 96, true, "hardswish", 2},
		{5, 576, 96, true, "hardswish", 1}, {5, 576, 96, true, "hardswish", 1},
	} {
		y := x
		if b.exp != cin {
			y = c.convBN(y, cin, b.exp, 1, 1, 1, b.act)
		}
		y = c.convBN(y, b.exp, b.exp, b.k, b.s, b.exp, b.act)
		if b.se {
			y = c.se(y, b.exp, makeDivisible(float64(b.exp)/4), "relu", "hardsigmoid")
		}
		y = c.convBN(y, b.exp, b.out, 1, 1, 1, "")
		if b.s == 1 && cin == b.out {
			y = c.Node("Add", []string{x, y}, nil)
		}
		x, cin = y, b.out
	}
	x = c.convBN(x, cin, 576, 1, 1, 1, "hardswish")
	x = c.Node("Flatten", []string{c.Node("GlobalAveragePool", []string{x}, nil)}, []Attr{AInt("axis", 1)})
	x = c.act(c.linear(x, 576, 1024), "hardswish")
	c.linear(x, 1024, 1000, "output")
	return c.Builder
}

// ResNet50 is torchvision's resnet50 for 224x224 images: a 7x7 stem, max
// pooling, 16 bottleneck blocks (1x1, 3x3, 1x1 with a residual add, a
// strided 1x1 projection where shapes change); 25.6 M parameters.
func ResNet50(seed uint64) *Builder {
	c := newCNN("resnet50", 224, 1000, seed)
	x := c.convBN("input", 3, 64, 7, 2, 1, "relu")
	x = c.Node("MaxPool", []string{x}, []Attr{AInts("kernel_shape", 3, 3), AInts("strides", 2, 2), AInts("pads", 1, 1, 1, 1)})
	cin := int64(64)
	for stage, blocks := range []int{3, 4, 6, 3} {
		width := int64(64) << stage
		for i := range blocks {
			stride := int64(1)
			if i == 0 && stage > 0 {
				stride = 2
			}
			y := c.convBN(x, cin, width, 1, 1, 1, "relu")
			y = c.convBN(y, width, width, 3, stride, 1, "relu")
			y = c.convBN(y, width, 4*width, 1, 1, 1, "")
			short := x
			if i == 0 {
				short = c.convBN(x, cin, 4*width, 1, stride, 1, "")
			}
			x = c.Node("Relu", []string{c.Node("Add", []string{y, short}, nil)}, nil)
			cin = 4 * width
		}
	}
	c.head(x, 2048, 1000)
	return c.Builder
}

// EfficientNetB0 is torchvision's efficientnet_b0 for 224x224 images: MBConv
// blocks with SiLU, squeeze-and-excitation (SiLU, Sigmoid gate), 3x3 and 5x5
// depthwise convolutions; 5.3 M parameters.
func EfficientNetB0(seed uint64) *Builder {
	c := newCNN("efficientnet_b0", 224, 1000, seed)
	x := c.convBN("input", 3, 32, 3, 2, 1, "silu")
	cin := int64(32)
	for _, s := range []struct{ e, k, s, out, n int64 }{{1, 3, 1, 16, 1}, {6, 3, 2, 24, 2}, {6, 5, 2, 40, 2}, {6, 3, 2, 80, 3}, {6, 5, 1, 112, 3}, {6, 5, 2, 192, 4}, {6, 3, 1, 320, 1}} {
		for i := range s.n {
			stride := int64(1)
			if i == 0 {
				stride = s.s
			}
			hidden := cin * s.e
			y := x
			if s.e != 1 {
				y = c.convBN(y, cin, hidden, 1, 1, 1, "silu")
			}
			y = c.convBN(y, hidden, hidden, s.k, stride, hidden, "silu")
			y = c.se(y, hidden, max(1, cin/4), "silu", "sigmoid")
			y = c.convBN(y, hidden, s.out, 1, 1, 1, "")
			if stride == 1 && cin == s.out {
				y = c.Node("Add", []string{x, y}, nil)
			}
			x, cin = y, s.out
		}
	}
	x = c.convBN(x, cin, 1280, 1, 1, 1, "silu")
	c.head(x, 1280, 1000)
	return c.Builder
}

// UNet is a segmentation U-Net for 256x256 images: four levels of two
// 3x3 convolutions (BatchNormalization, ReLU) with max pooling down; up by
// 2x2 stride-2 transposed convolutions (the upper two levels) and nearest
// Resize followed by a 1x1 convolution (the lower two), each joined to its
// skip connection by Concat; a 1x1 convolution to 2 classes. Output
// float32[N 2 256 256].
func UNet(seed uint64) *Builder {
	c := newCNN("unet", 256, 0, seed)
	c.Output("output", tensor.Float32, []int64{-1, 2, 256, 256}, "N")
	double := func(x string, cin, cout int64) string {
		return c.convBN(c.convBN(x, cin, cout, 3, 1, 1, "relu"), cout, cout, 3, 1, 1, "relu")
	}
	widths := []int64{32, 64, 128, 256}
	var skips []string
	x, cin := "input", int64(3)
	for i, w := range widths {
		x = double(x, cin, w)
		cin = w
		if i < len(widths)-1 {
			skips = append(skips, x)
			x = c.Node("MaxPool", []string{x}, []Attr{AInts("kernel_shape", 2, 2), AInts("strides", 2, 2)})
		}
	}
	for i := len(widths) - 2; i >= 0; i-- {
		w := widths[i]
		if i >= 1 {
			x = c.Node("Resize", []string{x, "", c.InitTensor(c.name("scales"), tensor.FromF32([]float32{1, 1, 2, 2}, 4))},
				[]Attr{AString("mode", "nearest")})
			x = c.conv(x, cin, w, 1, 1, 1)
		} else {
			name := c.name("up")
			wt := c.Init(name+".weight", []int64{cin, w, 2, 2}, fastNormal(c.Rand(), 0, math.Sqrt(2/float64(cin*4)), int(cin*w*4)))
			x = c.Node("ConvTranspose", []string{x, wt}, []Attr{AInts("kernel_shape", 2, 2), AInts("strides", 2, 2)})
		}
		x = c.Node("Concat", []string{skips[i], x}, []Attr{AInt("axis", 1)})
		x = double(x, 2*w, w)
		cin = w
	}
	name := c.name("out")
	w := c.Init(name+".weight", []int64{2, cin, 1, 1}, fastNormal(c.Rand(), 0, math.Sqrt(1/float64(cin)), int(2*cin)))
	b := c.Init(name+".bias", []int64{2}, []float32{0.01, -0.01})
	c.Node("Conv", []string{x, w, b}, []Attr{AInts("kernel_shape", 1, 1)}, "output")
	return c.Builder
}

// YOLOStyle is a small one-stage detector in the style of YOLOv5/v8 for
// 320x320 images: a SiLU backbone of strided 3x3 convolutions and CSP blocks
// (two branches, bottlenecks with residual adds, Concat, a 1x1 merge), a
// neck that upsamples by nearest Resize and concatenates with the backbone,
// and 1x1 heads at strides 8, 16 and 32 with 85 channels each (boxes,
// objectness, 80 classes) through a Sigmoid. Outputs "p8", "p16", "p32".
func YOLOStyle(seed uint64) *Builder {
	c := newCNN("yolo_style", 320, 0, seed)
	conv := func(x string, cin, cout, k, s int64) string { return c.convBN(x, cin, cout, k, s, 1, "silu") }
	csp := func(x string, cin, cout int64, n int, shortcut bool) string {
		h := cout / 2
		a := conv(x, cin, h, 1, 1)
		b := conv(x, cin, h, 1, 1)
		for range n {
			y := conv(conv(a, h, h, 1, 1), h, h, 3, 1)
			if shortcut {
				y = c.Node("Add", []string{a, y}, nil)
			}
			a = y
		}
		return conv(c.Node("Concat", []string{a, b}, []Attr{AInt("axis", 1)}), 2*h, cout, 1, 1)
	}
	up := func(x string) string {
		return c.Node("Resize", []string{x, "", c.InitTensor(c.name("scales"), tensor.FromF32([]float32{1, 1, 2, 2}, 4))}, []Attr{AString("mode", "nearest")})
	}
	x := conv("input", 3, 16, 3, 2) // /2
	x = conv(x, 16, 32, 3, 2)       // /4
	x = csp(x, 32, 32, 1, true)     //
	x = conv(x, 32, 64, 3, 2)       // /8
	p3 := csp(x, 64, 64, 2, true)   //
	x = conv(p3, 64, 128, 3, 2)     // /16
	p4 := csp(x, 128, 128, 2, true) //
	x = conv(p4, 128, 256, 3, 2)    // /32
	p5 := csp(x, 256, 256, 1, true) //
	t := conv(p5, 256, 128, 1, 1)   // neck, top-down
	n4 := csp(c.Node("Concat", []string{up(t), p4}, []Attr{AInt("axis", 1)}), 256, 128, 1, false)
	u := conv(n4, 128, 64, 1, 1)
	n3 := csp(c.Node("Concat", []string{up(u), p3}, []Attr{AInt("axis", 1)}), 128, 64, 1, false)
	d := conv(n3, 64, 64, 3, 2) // bottom-up
	m4 := csp(c.Node("Concat", []string{d, u}, []Attr{AInt("axis", 1)}), 128, 128, 1, false)
	d = conv(m4, 128, 128, 3, 2)
	m5 := csp(c.Node("Concat", []string{d, t}, []Attr{AInt("axis", 1)}), 256, 256, 1, false)
	for _, h := range []struct {
		x      string
		ch     int64
		name   string
		stride int64
	}{{n3, 64, "p8", 8}, {m4, 128, "p16", 16}, {m5, 256, "p32", 32}} {
		name := c.name("head")
		w := c.Init(name+".weight", []int64{85, h.ch, 1, 1}, fastNormal(c.Rand(), 0, math.Sqrt(1/float64(h.ch)), int(85*h.ch)))
		b := c.Init(name+".bias", []int64{85}, fastNormal(c.Rand(), 0, 0.1, 85))
		y := c.Node("Conv", []string{h.x, w, b}, []Attr{AInts("kernel_shape", 1, 1)})
		c.Node("Sigmoid", []string{y}, nil, h.name)
		s := 320 / h.stride
		c.Output(h.name, tensor.Float32, []int64{-1, 85, s, s}, "N")
	}
	return c.Builder
}
