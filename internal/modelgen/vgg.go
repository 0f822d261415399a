package modelgen

import (
	"fmt"
	"math"

	"github.com/spindleml/spindle/internal/tensor"
)

// VGG16Params is the parameter count of torchvision's vgg16: 14,714,688 in the
// 13 convolutions and 123,642,856 in the three linear layers.
const VGG16Params = 138357544

// vgg16Layers is torchvision's configuration "D": output channels of each 3x3
// convolution, 0 for a 2x2 max pool.
var vgg16Layers = []int64{64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0}

// VGG16 builds torchvision's VGG16 for 224x224 images at opset 13:
//
//	input float32[N 3 224 224]
//	-> 13 x (Conv 3x3 pad 1 -> Relu), MaxPool 2x2 after blocks 2, 4, 7, 10, 13
//	-> Flatten -> Gemm 25088->4096 -> Relu -> Gemm 4096->4096 -> Relu
//	-> Gemm 4096->1000 -> output float32[N 1000]
//
// AdaptiveAvgPool2d((7, 7)) is the identity on the 7x7 maps a 224x224 image
// gives, and Dropout is the identity at inference, so neither has a node; the
// input's height and width are therefore fixed.
//
// Convolution and hidden linear weights are He-normal (std sqrt(2/fan_in)), so
// activations keep their scale through 15 ReLU layers; the last layer's
// weights are N(0, 0.01²) as in torchvision; biases are N(0, 0.01²) rather than
// zero so that a kernel that drops them shows.
func VGG16(seed uint64) *Builder {
	b := NewBuilder("vgg16", 13, seed)
	b.Input("input", tensor.Float32, []int64{-1, 3, 224, 224}, "N")
	b.Output("output", tensor.Float32, []int64{-1, 1000}, "N")
	normal := func(name string, std float64, shape ...int64) string {
		return b.Init(name, shape, fastNormal(b.Rand(), 0, std, numel(shape)))
	}

	x, cin := "input", int64(3)
	conv, pool := 0, 0
	for _, cout := range vgg16Layers {
		if cout == 0 {
			x = b.Node("MaxPool", []string{x}, []Attr{AInts("kernel_shape", 2, 2), AInts("strides", 2, 2)})
			pool++
			continue
		}
		name := fmt.Sprintf("features.%d", 2*conv+pool) // torchvision's index: conv, relu and pool each take one
		w := normal(name+".weight", math.Sqrt(2/float64(cin*9)), cout, cin, 3, 3)
		bias := normal(name+".bias", 0.01, cout)
		x = b.Node("Conv", []string{x, w, bias}, []Attr{AInts("kernel_shape", 3, 3), AInts("pads", 1, 1, 1, 1)})
		x = b.Node("Relu", []string{x}, nil)
		conv++
		cin = cout
	}
	x = b.Node("Flatten", []string{x}, []Attr{AInt("axis", 1)})
	linear := func(name, x string, in, out int64, std float64, outputs ...string) string {
		w := normal(name+".weight", std, out, in)
		bias := normal(name+".bias", 0.01, out)
		return b.Node("Gemm", []string{x, w, bias}, []Attr{AInt("transB", 1)}, outputs...)
	}
	x = b.Node("Relu", []string{linear("classifier.0", x, 512*7*7, 4096, math.Sqrt(2.0/(512*7*7)))}, nil)
	x = b.Node("Relu", []string{linear("classifier.3", x, 4096, 4096, math.Sqrt(2.0/4096))}, nil)
	linear("classifier.6", x, 4096, 1000, 0.01, "output")
	return b
}

// external is how Generate saves the large kinds: every tensor of 4 KiB or more
// in model.onnx.data at a 4096-byte aligned offset, so mmap loading uses the
// weights in place; shape constants and small vectors stay in model.onnx.
var external = SaveOptions{ExternalData: "model.onnx.data", ExternalMin: 4096, Align: 4096}
