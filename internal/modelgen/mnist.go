package modelgen

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spindleml/spindle/internal/tensor"
)

// MNISTParams is the parameter count of MNISTCNN: conv1 250+10, conv2 5000+20,
// fc1 16000+50, fc2 500+10.
const MNISTParams = 21840

// MNISTCNN builds the thesis's MNIST classifier (Fig 4.4, the PyTorch examples
// network without dropout) at opset 13:
//
//	input float32[N 1 28 28]
//	-> Conv 1->10 k5 -> MaxPool 2 -> Relu
//	-> Conv 10->20 k5 -> MaxPool 2 -> Relu
//	-> Flatten -> Gemm 320->50 -> Relu -> Gemm 50->10 -> LogSoftmax(axis 1)
//	-> output float32[N 10]
//
// Weights and biases are drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's
// default initialisation, with a source seeded by seed, so equal seeds give
// byte-identical models.
func MNISTCNN(seed uint64) *Builder {
	b := NewBuilder("mnist_cnn", 13, seed)
	b.Input("input", tensor.Float32, []int64{-1, 1, 28, 28}, "N")
	b.Output("output", tensor.Float32, []int64{-1, 10}, "N")

	conv := func(name, x string, cin, cout, k int64) string {
		bound := KaimingBound(cin * k * k)
		w := b.Uniform(name+".weight", bound, cout, cin, k, k)
		bias := b.Uniform(name+".bias", bound, cout)
		return b.Node("Conv", []string{x, w, bias}, []Attr{AInts("kernel_shape", k, k)})
	}
	pool := func(x string) string {
		return b.Node("MaxPool", []string{x}, []Attr{AInts("kernel_shape", 2, 2), AInts("strides", 2, 2)})
	}
	linear := func(name, x string, in, out int64) string {
		bound := KaimingBound(in)
		w := b.Uniform(name+".weight", bound, out, in)
		bias := b.Uniform(name+".bias", bound, out)
		return b.Node("Gemm", []string{x, w, bias}, []Attr{AInt("transB", 1)})
	}

	x := b.Node("Relu", []string{pool(conv("conv1", "input", 1, 10, 5))}, nil)
	x = b.Node("Relu", []string{pool(conv("conv2", x, 10, 20, 5))}, nil)
	x = b.Node("Flatten", []string{x}, []Attr{AInt("axis", 1)})
	x = b.Node("Relu", []string{linear("fc1", x, 320, 50)}, nil)
	x = linear("fc2", x, 50, 10)
	b.Node("LogSoftmax", []string{x}, []Attr{AInt("axis", 1)}, "output")
	return b
}

// generator is one model kind that Generate can write.
type generator struct {
	build func(seed uint64) *Builder
	save  SaveOptions
}

// generators lists the model kinds by name; adding a kind is one entry.
var generators = map[string]generator{
	"mnist-cnn":            {build: MNISTCNN}, // 87 KB: weights stay inside model.onnx
	"minilm-l6":            {build: func(s uint64) *Builder { return Transformer(MiniLML6, s) }, save: external},
	"minilm-l6-decomposed": {build: func(s uint64) *Builder { return Transformer(MiniLML6.Decomposed(), s) }, save: external},
	"bert-base":            {build: func(s uint64) *Builder { return Transformer(BERTBase, s) }, save: external},
	"bert-base-decomposed": {build: func(s uint64) *Builder { return Transformer(BERTBase.Decomposed(), s) }, save: external},
	"vgg16":                {build: VGG16, save: external},
	"tiny-bert":            {build: func(s uint64) *Builder { return Transformer(TinyBERT, s) }, save: external},
	"tiny-bert-cls":        {build: func(s uint64) *Builder { return Transformer(TinyBERTCls, s) }, save: external},
	"tiny-image-cls":       {build: TinyImageCls},
	"mobilenet-v2":         {build: MobileNetV2, save: external},
	"mobilenet-v3-small":   {build: MobileNetV3Small, save: external},
	"resnet50":             {build: ResNet50, save: external},
	"efficientnet-b0":      {build: EfficientNetB0, save: external},
	"unet":                 {build: UNet, save: external},
	"yolo-style":           {build: YOLOStyle, save: external},
	// Float16 conversions (issue 13): weights and compute in float16, float32 at the edges.
	"minilm-l6-fp16":    {build: func(s uint64) *Builder { return Transformer(MiniLML6, s).Float16() }, save: external},
	"mobilenet-v2-fp16": {build: func(s uint64) *Builder { return MobileNetV2(s).Float16() }, save: external},
	// Control flow, recurrence and Einsum in the shapes models use them (issue 13).
	"streaming-gru":   {build: StreamingGRU},
	"greedy-seq2seq":  {build: GreedySeq2Seq},
	"conformer-block": {build: ConformerBlock},
}

// Kinds returns the model kinds Generate knows, sorted.
func Kinds() []string {
	out := make([]string, 0, len(generators))
	for k := range generators {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Generate writes the model of the given kind, with weights from seed, to
// dir/model.onnx (plus any external data file beside it), creating dir.
func Generate(kind, dir string, seed uint64) error {
	g, ok := generators[kind]
	if !ok {
		return fmt.Errorf("model kind %q: unknown (known kinds: %s)", kind, strings.Join(Kinds(), ", "))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("generate %s: %w", kind, err)
	}
	if err := g.build(seed).Save(filepath.Join(dir, "model.onnx"), g.save); err != nil {
		return fmt.Errorf("generate %s: %w", kind, err)
	}
	return nil
}
