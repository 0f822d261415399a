package modelgen

import (
	"github.com/spindleml/spindle/internal/tensor"
)

// QuantContribOps is a graph of the com.microsoft ops quantized exports
// hold (issue 14), for differential tests against ONNX Runtime: x [2 16 32]
// and x2 [2 16 32] in float32, img [1 8 5 5]; every quantized result is
// also dequantized to float32 so that one step of difference shows as its
// scale.
func QuantContribOps(seed uint64) *Builder {
	b := NewBuilder("quant-contrib", 17, seed)
	b.Input("x", tensor.Float32, []int64{2, 16, 32})
	b.Input("x2", tensor.Float32, []int64{2, 16, 32})
	b.Input("img", tensor.Float32, []int64{1, 8, 5, 5})
	ms := func(op string, inputs []string, attrs []Attr, outputs ...string) string {
		y := b.Node(op, inputs, attrs, outputs...)
		b.SetDomain(y, "com.microsoft")
		return y
	}
	out := func(name string, shape ...int64) { b.Output(name, tensor.Float32, shape) }
	rng := b.Rand()
	i8 := func(name string, n ...int) string {
		t := tensor.New(tensor.Int8, n...)
		for i := range t.I8 {
			t.I8[i] = int8(rng.IntN(255) - 127)
		}
		return b.InitTensor(name, t)
	}
	u8 := func(name string, v ...uint8) string {
		return b.InitTensor(name, &tensor.Tensor{DType: tensor.Uint8, Shape: []int{len(v)}, U8: v})
	}
	scalarU8 := func(name string, v uint8) string {
		return b.InitTensor(name, &tensor.Tensor{DType: tensor.Uint8, U8: []uint8{v}})
	}
	scalarF := func(name string, v float32) string { return b.InitTensor(name, tensor.FromF32([]float32{v})) }
	positive := func(name string, n int, lo, hi float32) string {
		v := make([]float32, n)
		for i := range v {
			v[i] = lo + (hi-lo)*rng.Float32()
		}
		return b.Init(name, []int64{int64(n)}, v)
	}

	// DynamicQuantizeMatMul, per-column scales and a bias.
	bq := i8("bq", 32, 24)
	bScale := positive("b_scale", 24, 0.002, 0.01)
	bZP := b.InitTensor("b_zp", tensor.New(tensor.Int8, 24))
	bias := b.Uniform("bias", 0.5, 24)
	ms("DynamicQuantizeMatMul", []string{"x", bq, bScale, bZP, bias}, nil, "dqmm")
	out("dqmm", 2, 16, 24)

	// MatMulIntegerToFloat on x's DynamicQuantizeLinear.
	b.Node("DynamicQuantizeLinear", []string{"x"}, nil, "xq", "xs", "xzp")
	b.Node("DynamicQuantizeLinear", []string{"x2"}, nil, "x2q", "x2s", "x2zp")
	ms("MatMulIntegerToFloat", []string{"xq", bq, "xs", bScale, "xzp", bZP, bias}, nil, "mmitf")
	out("mmitf", 2, 16, 24)

	// QLinear element-wise ops, dequantized for comparison.
	cs, czp := scalarF("c_scale", 0.03), scalarU8("c_zp", 120)
	deq := func(q string, name string, shape ...int64) {
		b.Node("DequantizeLinear", []string{q, cs, czp}, nil, name)
		out(name, shape...)
	}
	ms("QLinearAdd", []string{"xq", "xs", "xzp", "x2q", "x2s", "x2zp", cs, czp}, nil, "qadd")
	deq("qadd", "qadd_f", 2, 16, 32)
	ms("QLinearMul", []string{"xq", "xs", "xzp", "x2q", "x2s", "x2zp", cs, czp}, nil, "qmul")
	deq("qmul", "qmul_f", 2, 16, 32)
	ms("QLinearSigmoid", []string{"xq", "xs", "xzp", scalarF("sig_scale", 1.0/255), scalarU8("sig_zp", 0)}, nil, "qsig")
	b.Node("DequantizeLinear", []string{"qsig", "sig_scale", "sig_zp"}, nil, "qsig_f")
	out("qsig_f", 2, 16, 32)
	ms("QLinearConcat", []string{cs, czp, "xq", "xs", "xzp", "x2q", "x2s", "x2zp"}, []Attr{AInt("axis", 1)}, "qcat")
	deq("qcat", "qcat_f", 2, 32, 32)

	b.Node("DynamicQuantizeLinear", []string{"img"}, nil, "iq", "is", "izp")
	ms("QLinearGlobalAveragePool", []string{"iq", "is", "izp", cs, czp}, nil, "qgap")
	deq("qgap", "qgap_f", 1, 8, 1, 1)
	ms("QLinearGlobalAveragePool", []string{"iq", "is", "izp", cs, czp}, []Attr{AInt("channels_last", 1)}, "qgap_last")
	deq("qgap_last", "qgap_last_f", 1, 1, 1, 5) // img read as [N H W C]

	// QGemm: a 2-D A, transposed B, an int32 bias, float output and a
	// requantised one.
	b.Node("Reshape", []string{"xq", b.Ints64("flat", 32, 32)}, nil, "xq2d")
	gb := i8("gemm_b", 24, 32)
	gbias := b.InitTensor("gemm_bias", &tensor.Tensor{DType: tensor.Int32, Shape: []int{24}, I32: func() []int32 {
		v := make([]int32, 24)
		for i := range v {
			v[i] = int32(rng.IntN(2001) - 1000)
		}
		return v
	}()})
	gScale := scalarF("gemm_b_scale", 0.004)
	gZP := b.InitTensor("gemm_b_zp", &tensor.Tensor{DType: tensor.Int8, I8: []int8{0}})
	ms("QGemm", []string{"xq2d", "xs", "xzp", gb, gScale, gZP, gbias}, []Attr{AInt("transB", 1), AFloat("alpha", 1)}, "qgemm")
	out("qgemm", 32, 24)
	ms("QGemm", []string{"xq2d", "xs", "xzp", gb, gScale, gZP, gbias, cs, czp}, []Attr{AInt("transB", 1)}, "qgemm_q")
	deq("qgemm_q", "qgemm_q_f", 32, 24)

	// QAttention: 4 heads of 8 over x's quantized form, with and without
	// key lengths (mask_index).
	qkvW := i8("qkv_w", 32, 96)
	qkvB := b.Uniform("qkv_b", 0.2, 96)
	qkvS := scalarF("qkv_w_scale", 0.004)
	lens := b.InitTensor("key_lens", &tensor.Tensor{DType: tensor.Int32, Shape: []int{2}, I32: []int32{16, 11}})
	ms("QAttention", []string{"xq", qkvW, qkvB, "xs", qkvS, "", "xzp"}, []Attr{AInt("num_heads", 4)}, "qattn")
	out("qattn", 2, 16, 32)
	ms("QAttention", []string{"xq", qkvW, qkvB, "xs", qkvS, lens, "xzp"}, []Attr{AInt("num_heads", 4)}, "qattn_masked")
	out("qattn_masked", 2, 16, 32)

	// MatMulNBits: 4-bit weights in blocks of 16 along K=32, N=24.
	packed := tensor.New(tensor.Uint8, 24, 2, 8)
	for i := range packed.U8 {
		packed.U8[i] = uint8(rng.IntN(256))
	}
	nb := b.InitTensor("nbits_b", packed)
	nScale := positive("nbits_scale", 48, 0.01, 0.05)
	nZP := u8("nbits_zp", func() []uint8 {
		v := make([]uint8, 24)
		for i := range v {
			v[i] = uint8(rng.IntN(256))
		}
		return v
	}()...)
	ms("MatMulNBits", []string{"x", nb, nScale, nZP}, []Attr{AInt("K", 32), AInt("N", 24), AInt("bits", 4), AInt("block_size", 16)}, "nbits")
	out("nbits", 2, 16, 24)
	ms("MatMulNBits", []string{"x", nb, nScale}, []Attr{AInt("K", 32), AInt("N", 24), AInt("bits", 4), AInt("block_size", 16)}, "nbits_nozp")
	out("nbits_nozp", 2, 16, 24)
	return b
}

// QDQMatMul is a MatMul in the QDQ form static quantizers write: x [rows
// 64] quantized and dequantized (uint8, or int8 with signed), a 64x40 int8
// weight dequantized per tensor or per output column, a bias Add, then a
// second such layer on the first's output.
func QDQMatMul(seed uint64, signed, perChannel bool) *Builder {
	b := NewBuilder("qdq-matmul", 17, seed)
	b.Input("x", tensor.Float32, []int64{-1, 64}, "rows")
	rng := b.Rand()
	zp := func(name string, v int) string {
		if signed {
			return b.InitTensor(name, &tensor.Tensor{DType: tensor.Int8, I8: []int8{int8(v - 128)}})
		}
		return b.InitTensor(name, &tensor.Tensor{DType: tensor.Uint8, U8: []uint8{uint8(v)}})
	}
	layer := func(x, name string, k, n int) string {
		s := b.InitTensor(name+"_x_scale", tensor.FromF32([]float32{0.04}))
		xq := b.Node("QuantizeLinear", []string{x, s, zp(name+"_x_zp", 120)}, nil)
		xd := b.Node("DequantizeLinear", []string{xq, s, name + "_x_zp"}, nil)
		w := tensor.New(tensor.Int8, k, n)
		for i := range w.I8 {
			w.I8[i] = int8(rng.IntN(255) - 127)
		}
		wq := b.InitTensor(name+"_w", w)
		var ws, wz string
		var attrs []Attr
		if perChannel {
			sc := make([]float32, n)
			for i := range sc {
				sc[i] = 0.002 + 0.004*rng.Float32()
			}
			ws = b.InitTensor(name+"_w_scale", tensor.FromF32(sc, n))
			wz = b.InitTensor(name+"_w_zp", tensor.New(tensor.Int8, n))
			attrs = []Attr{AInt("axis", 1)}
		} else {
			ws = b.InitTensor(name+"_w_scale", tensor.FromF32([]float32{0.003}))
			wz = b.InitTensor(name+"_w_zp", &tensor.Tensor{DType: tensor.Int8, I8: []int8{0}})
		}
		wd := b.Node("DequantizeLinear", []string{wq, ws, wz}, attrs)
		y := b.Node("MatMul", []string{xd, wd}, nil)
		return b.Node("Add", []string{y, b.Uniform(name+"_bias", 0.5, int64(n))}, nil)
	}
	y := layer("x", "l1", 64, 40)
	b.Node("Relu", []string{layer(y, "l2", 40, 24)}, nil, "y")
	b.Output("y", tensor.Float32, []int64{-1, 24}, "rows")
	return b
}
