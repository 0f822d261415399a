package engine

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// Benchmarks of the non-NN ops at BERT-base sizes (sequence 128, hidden 768,
// 12 heads), calling kernels directly so graph overhead is not measured.

func benchKernel(b *testing.B, op string, opset int64, attrs []modelgen.Attr, in ...*tensor.Tensor) {
	b.Helper()
	n := &Node{Name: op, OpType: op, Opset: opset, Outputs: []string{"y"}, attrs: map[string]*onnxpb.AttributeProto{},
		Const: func(int) *tensor.Tensor { return nil }}
	for _, a := range attrs {
		n.attrs[a.GetName()] = a
	}
	k, err := ops[op](n)
	if err != nil {
		b.Fatal(err)
	}
	bytes := 0
	for _, t := range in {
		bytes += len(t.Bytes())
	}
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	for b.Loop() {
		if _, err := k(in); err != nil {
			b.Fatal(err)
		}
	}
}

func randF32(n int, shape ...int) *tensor.Tensor {
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return f32(v, shape...)
}

func BenchmarkTransposeHeads(b *testing.B) {
	x := randF32(128*12*64, 1, 128, 12, 64)
	b.Run("0213", func(b *testing.B) {
		benchKernel(b, "Transpose", 13, []modelgen.Attr{modelgen.AInts("perm", 0, 2, 1, 3)}, x)
	})
	b.Run("0231", func(b *testing.B) {
		benchKernel(b, "Transpose", 13, []modelgen.Attr{modelgen.AInts("perm", 0, 2, 3, 1)}, x)
	})
}

func BenchmarkGatherEmbedding(b *testing.B) {
	table := randF32(30522*768, 30522, 768)
	idx := make([]int64, 128)
	for i := range idx {
		idx[i] = int64(i * 97 % 30522)
	}
	benchKernel(b, "Gather", 13, nil, table, i64(idx, 1, 128))
}

func BenchmarkReduceMeanLastAxis(b *testing.B) {
	benchKernel(b, "ReduceMean", 13, []modelgen.Attr{modelgen.AInts("axes", -1)}, randF32(128*768, 1, 128, 768))
}

func BenchmarkErf(b *testing.B) {
	benchKernel(b, "Erf", 13, nil, randF32(128*3072, 1, 128, 3072))
}

func BenchmarkAddBias(b *testing.B) {
	benchKernel(b, "Add", 13, nil, randF32(128*768, 1, 128, 768), randF32(768, 768))
}

func BenchmarkPowSquare(b *testing.B) {
	benchKernel(b, "Pow", 13, nil, randF32(128*768, 1, 128, 768), f32([]float32{2}))
}

func BenchmarkWhereMask(b *testing.B) {
	c := tens(make([]bool, 12*128*128), 1, 12, 128, 128)
	benchKernel(b, "Where", 13, nil, c, randF32(12*128*128, 1, 12, 128, 128), f32([]float32{-1e4}))
}

func BenchmarkSliceLastAxis(b *testing.B) {
	benchKernel(b, "Slice", 13, nil, randF32(128*2304, 1, 128, 2304), i64([]int64{768}, 1), i64([]int64{1536}, 1), i64([]int64{-1}, 1))
}

// BenchmarkConv times Conv + bias on one image at VGG16's and the MNIST CNN's
// layer shapes, one thread, and reports GFLOP/s of the multiply.
func BenchmarkConv(b *testing.B) {
	tests := []struct {
		name         string
		n, cin, cout int
		hw, k, pad   int
	}{
		{"vgg1_1", 1, 3, 64, 224, 3, 1},
		{"vgg1_2", 1, 64, 64, 224, 3, 1},
		{"vgg2_2", 1, 128, 128, 112, 3, 1},
		{"vgg3_2", 1, 256, 256, 56, 3, 1},
		{"vgg4_2", 1, 512, 512, 28, 3, 1},
		{"vgg5_2", 1, 512, 512, 14, 3, 1},
		{"mnist1_b1", 1, 1, 10, 28, 5, 0},
		{"mnist2_b1", 1, 10, 20, 12, 5, 0},
		{"mnist1_b64", 64, 1, 10, 28, 5, 0},
		{"mnist2_b64", 64, 10, 20, 12, 5, 0},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			x := randF32(tt.n*tt.cin*tt.hw*tt.hw, tt.n, tt.cin, tt.hw, tt.hw)
			w := randF32(tt.cout*tt.cin*tt.k*tt.k, tt.cout, tt.cin, tt.k, tt.k)
			bias := randF32(tt.cout, tt.cout)
			n := &Node{Name: "conv", OpType: "Conv", Opset: 13, Outputs: []string{"y"}, attrs: map[string]*onnxpb.AttributeProto{},
				Const: func(int) *tensor.Tensor { return nil }}
			p := int64(tt.pad)
			a := modelgen.AInts("pads", p, p, p, p)
			n.attrs[a.GetName()] = a
			k, err := ops["Conv"](n)
			if err != nil {
				b.Fatal(err)
			}
			in := []*tensor.Tensor{x, w, bias}
			out := tt.hw + 2*tt.pad - tt.k + 1
			flops := 2 * float64(tt.n*tt.cout*out*out*tt.cin*tt.k*tt.k)
			for b.Loop() {
				if _, err := k(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkLayerNorm(b *testing.B) {
	benchKernel(b, "LayerNormalization", 17, []modelgen.Attr{modelgen.AInt("axis", -1)},
		randF32(128*384, 1, 128, 384), randF32(384, 384), randF32(384, 384))
}

// BenchmarkConvDepthwise compares the depthwise path with the grouped one
// (one matrix multiply per channel) on MobileNet-sized layers, one thread.
func BenchmarkConvDepthwise(b *testing.B) {
	for _, tc := range []struct {
		name        string
		c, hw, k, s int
	}{{"c96_80_k3_s1", 96, 80, 3, 1}, {"c48_160_k3_s2", 48, 160, 3, 2}, {"c192_40_k5_s1", 192, 40, 5, 1}, {"c384_20_k5_s2", 384, 20, 5, 2},
		{"c16_112_k3_s2", 16, 112, 3, 2}, {"c88_28_k3_s1", 88, 28, 3, 1}, {"c576_7_k5_s1", 576, 7, 5, 1}, {"c1152_7_k5_s1", 1152, 7, 5, 1}, {"c240_14_k5_s1", 240, 14, 5, 1}, {"c576_14_k3_s1", 576, 14, 3, 1}} {
		x := randTensor(1, 1, tc.c, tc.hw, tc.hw)
		w := randTensor(2, tc.c, 1, tc.k, tc.k)
		n := &Node{Name: "dw", OpType: "Conv", Opset: 13, attrs: map[string]*onnxpb.AttributeProto{}}
		p := int64(tc.k / 2)
		for _, a := range []modelgen.Attr{modelgen.AInt("group", int64(tc.c)), modelgen.AInts("strides", int64(tc.s), int64(tc.s)), modelgen.AInts("pads", p, p, p, p)} {
			n.attrs[a.GetName()] = a
		}
		if _, err := newConv(n); err != nil {
			b.Fatal(err)
		}
		for _, grouped := range []bool{false, true} {
			name := tc.name + "/depthwise"
			if grouped {
				name = tc.name + "/grouped"
			}
			b.Run(name, func(b *testing.B) {
				noDepthwise = grouped
				defer func() { noDepthwise = false }()
				for b.Loop() {
					out, err := n.threaded(1, []*tensor.Tensor{x, w})
					if err != nil {
						b.Fatal(err)
					}
					putF32(out[0].F32)
				}
			})
		}
	}
}

// BenchmarkElementwiseSE runs a squeeze-excitation scale with a residual
// (x * HardSigmoid(s) + r) over a 96x80x80 map, fused and not, one thread.
func BenchmarkElementwiseSE(b *testing.B) {
	build := func() *modelgen.Builder {
		m := modelgen.NewBuilder("se", 13, 1)
		m.Input("x", tensor.Float32, []int64{1, 96, 80, 80})
		m.Input("s", tensor.Float32, []int64{1, 96, 1, 1})
		m.Input("r", tensor.Float32, []int64{1, 96, 80, 80})
		hs := m.Node("HardSigmoid", []string{"s"}, nil)
		m.Node("Add", []string{m.Node("Mul", []string{"x", hs}, nil), "r"}, nil, "y")
		m.Output("y", tensor.Float32, nil)
		return m
	}
	feeds := map[string]*tensor.Tensor{"x": randTensor(1, 1, 96, 80, 80), "s": randTensor(2, 1, 96, 1, 1), "r": randTensor(3, 1, 96, 80, 80)}
	fused, plain := compileBothB(b, build())
	for _, c := range []struct {
		name string
		m    *Model
	}{{"fused", fused}, {"unfused", plain}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				out, err := c.m.RunWith(context.Background(), feeds, RunOptions{Threads: 1})
				if err != nil {
					b.Fatal(err)
				}
				putF32(out["y"].F32)
			}
		})
	}
}

// compileBothB is compileBoth for benchmarks.
func compileBothB(b *testing.B, m *modelgen.Builder) (fused, plain *Model) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "model.onnx")
	if err := m.Save(path, modelgen.SaveOptions{}); err != nil {
		b.Fatal(err)
	}
	src, err := onnx.Load(path, onnx.Copy)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	if fused, err = CompileWith(src, Options{}); err != nil {
		b.Fatal(err)
	}
	if plain, err = CompileWith(src, Options{NoFusion: true}); err != nil {
		b.Fatal(err)
	}
	return fused, plain
}

// BenchmarkConvTranspose times U-Net's 2x2 stride-2 up-convolution (64 to
// 32 channels, 128x128 to 256x256), one thread.
func BenchmarkConvTranspose(b *testing.B) {
	x := randTensor(1, 1, 64, 128, 128)
	w := randTensor(2, 64, 32, 2, 2)
	n := &Node{Name: "ct", OpType: "ConvTranspose", Opset: 13, attrs: map[string]*onnxpb.AttributeProto{}}
	for _, a := range []modelgen.Attr{modelgen.AInts("strides", 2, 2), modelgen.AInts("kernel_shape", 2, 2)} {
		n.attrs[a.GetName()] = a
	}
	if _, err := newConvTranspose(n); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		out, err := n.threaded(1, []*tensor.Tensor{x, w})
		if err != nil {
			b.Fatal(err)
		}
		putF32(out[0].F32)
	}
}
