package modelgen

import (
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// Hostile models: small uploads built to hurt whatever loads them, as an
// attacker (or an unlucky exporter) would write them. The platform's tests
// and `spindle bench chaos` deploy them; each takes input x [4] FP32 and
// has output y, so a platform that wrongly accepted one would serve it.

// ATensor returns a tensor attribute holding t (ConstantOfShape's value, a
// Constant's; strings go in string_data).
func ATensor(name string, t *tensor.Tensor) Attr {
	typ := onnxpb.AttributeProto_TENSOR
	dt := int32(t.DType)
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = int64(d)
	}
	tp := &onnxpb.TensorProto{DataType: &dt, Dims: dims, RawData: append([]byte(nil), t.Bytes()...)}
	if t.DType == tensor.String {
		tp.RawData = nil
		for _, s := range t.S {
			tp.StringData = append(tp.StringData, []byte(s))
		}
	}
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &typ, T: tp}
}

// hostile starts a model on input x [4] FP32.
func hostile(name string, opset int64) *Builder {
	b := NewBuilder(name, opset, 1)
	b.Input("x", tensor.Float32, []int64{4})
	return b
}

// finish adds y = x + v (broadcast) and declares y.
func finish(b *Builder, v string) *Builder {
	b.Node("Add", []string{"x", v}, nil, "y")
	b.Output("y", tensor.Float32, nil)
	return b
}

// GatherNDBomb is a 415-byte model whose constant folding asks for a 4 TiB
// block: GatherND of a [1 2^20] constant by [2^20 1] indices.
func GatherNDBomb() *Builder {
	b := hostile("gathernd-bomb", 17)
	data := b.Node("ConstantOfShape", []string{b.Ints64("s1", 1, 1<<20)}, []Attr{ATensor("value", tensor.FromF32([]float32{1}, 1))})
	idx := b.Node("ConstantOfShape", []string{b.Ints64("s2", 1<<20, 1)}, []Attr{ATensor("value", tensor.FromI64([]int64{0}, 1))})
	return finish(b, b.Node("GatherND", []string{data, idx}, nil))
}

// ConcatBomb concatenates one folded constant of mib MiB with itself n
// times: a few tens of kilobytes that fold into n×mib MiB.
func ConcatBomb(mib, n int) *Builder {
	b := hostile("concat-bomb", 17)
	c := b.Node("ConstantOfShape", []string{b.Ints64("s", int64(mib)<<18)}, nil)
	ins := make([]string, n)
	for i := range ins {
		ins[i] = c
	}
	cat := b.Node("Concat", ins, []Attr{AInt("axis", 0)})
	return finish(b, b.Node("ReduceSum", []string{cat}, []Attr{AInt("keepdims", 0)}))
}

// ConstantPile has n ConstantOfShape nodes of mib MiB each, every one under
// a per-node folding limit, summed into y.
func ConstantPile(mib, n int) *Builder {
	b := hostile("constant-pile", 17)
	shape := b.Ints64("s", int64(mib)<<18)
	sum := ""
	for i := range n {
		// Each its own value, so that no compiler merges them.
		c := b.Node("ConstantOfShape", []string{shape}, []Attr{ATensor("value", tensor.FromF32([]float32{float32(i)}, 1))})
		r := b.Node("ReduceSum", []string{c}, []Attr{AInt("keepdims", 0)})
		if sum == "" {
			sum = r
		} else {
			sum = b.Node("Add", []string{sum, r}, nil)
		}
	}
	return finish(b, sum)
}

// CanOnlyFail returns models no request can succeed on: each has an
// attribute or a constant input that no input makes valid. Keys name them.
func CanOnlyFail() map[string]*Builder {
	out := map[string]*Builder{}
	add := func(name string, build func(b *Builder) string) {
		b := hostile(name, 13)
		out[name] = finish(b, build(b))
	}
	add("DepthToSpace blocksize 2^62", func(b *Builder) string {
		r := b.Node("Reshape", []string{"x", b.Ints64("s", 1, 4, 1, 1)}, nil)
		d := b.Node("DepthToSpace", []string{r}, []Attr{AInt("blocksize", 1<<62)})
		return b.Node("Reshape", []string{d, b.Ints64("f", -1)}, nil)
	})
	add("Transpose perm [5 -7]", func(b *Builder) string {
		return b.Node("Transpose", []string{b.Node("Reshape", []string{"x", b.Ints64("s", 2, 2)}, nil)}, []Attr{AInts("perm", 5, -7)})
	})
	add("Concat axis MinInt64", func(b *Builder) string {
		return b.Node("Concat", []string{"x", "x"}, []Attr{AInt("axis", math.MinInt64)})
	})
	add("Gather axis MinInt64", func(b *Builder) string {
		return b.Node("Gather", []string{"x", b.Ints64("i", 0)}, []Attr{AInt("axis", math.MinInt64)})
	})
	add("CumSum axis MinInt64", func(b *Builder) string {
		return b.Node("CumSum", []string{"x", b.InitTensor("a", tensor.FromI64([]int64{math.MinInt64}))}, nil)
	})
	add("Slice axes MinInt64", func(b *Builder) string {
		return b.Node("Slice", []string{"x", b.Ints64("st", 0), b.Ints64("en", 1), b.Ints64("ax", math.MinInt64)}, nil)
	})
	add("TopK k MaxInt64", func(b *Builder) string {
		return b.Node("TopK", []string{"x", b.Ints64("k", math.MaxInt64)}, nil, "v", "i")
	})
	add("Reshape [-1 -1 -5]", func(b *Builder) string {
		return b.Node("Reshape", []string{"x", b.Ints64("s", -1, -1, -5)}, nil)
	})
	add("Range delta 0", func(b *Builder) string {
		lo := b.InitTensor("lo", tensor.FromF32([]float32{0}))
		hi := b.InitTensor("hi", tensor.FromF32([]float32{4}))
		d := b.InitTensor("d", tensor.FromF32([]float32{0}))
		return b.Node("Range", []string{lo, hi, d}, nil)
	})
	return out
}

// WeightHog is y = x + sum(sum(x) * w) with w a float16 weight of mib/2
// MiB: an instance of it holds mib MiB of private memory (the engine widens
// a float16 weight that no matrix kernel reads to float32 when it compiles,
// and the product with the input keeps it from folding), so tests can tell
// a memory limit below what an instance uses.
func WeightHog(mib int) *Builder {
	b := hostile("weight-hog", 13)
	half := tensor.New(tensor.Float16, mib<<18)
	for i := range half.U16 {
		half.U16[i] = 0x1c00 // 2^-8
	}
	w := b.InitTensor("w", half)
	s := b.Node("ReduceSum", []string{"x"}, []Attr{AInt("keepdims", 0)})
	p := b.Node("Mul", []string{s, b.Node("Cast", []string{w}, []Attr{AInt("to", int64(tensor.Float32))})}, nil)
	return finish(b, b.Node("ReduceSum", []string{p}, []Attr{AInt("keepdims", 0)}))
}
