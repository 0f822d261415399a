package engine

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestQDQMatMulRunsOnInt8 checks that MatMuls in QDQ form become fused
// int8 multiplies (no float copy of the weight, no dequantized activation)
// and compute what the float emulation (fusion off) computes, up to float32
// rounding of the sums.
func TestQDQMatMulRunsOnInt8(t *testing.T) {
	for _, signed := range []bool{false, true} {
		for _, perChannel := range []bool{false, true} {
			fused, plain := compileBoth(t, modelgen.QDQMatMul(1, signed, perChannel))
			q := 0
			for _, st := range fused.steps {
				switch st.node.OpType {
				case opQMatMul:
					q++
				case "MatMul", "DequantizeLinear":
					t.Errorf("signed=%v perChannel=%v: a %s step is left", signed, perChannel, st.node.OpType)
				}
			}
			if q != 2 {
				t.Errorf("signed=%v perChannel=%v: %d int8 multiplies, want 2", signed, perChannel, q)
			}
			x := randTensor(9, 13, 64)
			for i := range x.F32 {
				x.F32[i] *= 3
			}
			in := map[string]*tensor.Tensor{"x": x}
			want, err := plain.Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fused.Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			var worst, top float64
			for i, v := range want["y"].F32 {
				worst = max(worst, math.Abs(float64(got["y"].F32[i]-v)))
				top = max(top, math.Abs(float64(v)))
			}
			if worst > 1e-5*top {
				t.Errorf("signed=%v perChannel=%v: max |diff| %.3g against max %.3g", signed, perChannel, worst, top)
			}
		}
	}
}

// qdqConvGraph is one Conv in QDQ form on x [1 8 9 9]: 8 filters of 8x3x3
// (or 1x1 when pointwise), int32 bias, then the tail ("", "relu",
// "residual+relu" or "relu6").
func qdqConvGraph(signed, perChannel, zeroPoints, pointwise bool, attrs []modelgen.Attr, tail string, filters int) *modelgen.Builder {
	b := modelgen.NewBuilder("qdq-conv", 17, 3)
	b.Input("x", tensor.Float32, []int64{1, 8, 9, 9})
	rng := b.Rand()
	zp := &tensor.Tensor{DType: tensor.Uint8, U8: []uint8{117}}
	if signed {
		zp = &tensor.Tensor{DType: tensor.Int8, I8: []int8{-11}}
	}
	xzp := b.InitTensor("xzp", zp)
	xs := b.InitTensor("xs", tensor.FromF32([]float32{0.03}))
	xd := b.Node("DequantizeLinear", []string{b.Node("QuantizeLinear", []string{"x", xs, xzp}, nil), xs, xzp}, nil)
	k := 3
	if pointwise {
		k = 1
	}
	w := tensor.New(tensor.Int8, filters, 8, k, k)
	for i := range w.I8 {
		w.I8[i] = int8(rng.IntN(255) - 127)
	}
	ns := 1
	if perChannel {
		ns = filters
	}
	ws, wz, bs := make([]float32, ns), tensor.New(tensor.Int8, ns), make([]float32, ns)
	for i := range ws {
		ws[i] = 0.002 + 0.003*rng.Float32()
		bs[i] = 0.03 * ws[i]
		if zeroPoints {
			wz.I8[i] = int8(rng.IntN(9) - 4)
		}
	}
	shape := func(t *tensor.Tensor) *tensor.Tensor {
		if ns == 1 {
			t.Shape = nil
		}
		return t
	}
	var dqAttrs []modelgen.Attr
	if perChannel {
		dqAttrs = []modelgen.Attr{modelgen.AInt("axis", 0)}
	}
	wd := b.Node("DequantizeLinear", []string{b.InitTensor("w", w), b.InitTensor("ws", shape(tensor.FromF32(ws, ns))), b.InitTensor("wz", shape(wz))}, dqAttrs)
	bq := &tensor.Tensor{DType: tensor.Int32, Shape: []int{filters}, I32: make([]int32, filters)}
	for i := range bq.I32 {
		bq.I32[i] = int32(rng.IntN(4001) - 2000)
	}
	bz := &tensor.Tensor{DType: tensor.Int32, Shape: []int{ns}, I32: make([]int32, ns)}
	bd := b.Node("DequantizeLinear", []string{b.InitTensor("b", bq), b.InitTensor("bs", shape(tensor.FromF32(bs, ns))), b.InitTensor("bz", shape(bz))}, dqAttrs)
	y := b.Node("Conv", []string{xd, wd, bd}, attrs)
	switch tail {
	case "relu":
		y = b.Node("Relu", []string{y}, nil)
	case "residual+relu":
		y = b.Node("Relu", []string{b.Node("Add", []string{y, "x"}, nil)}, nil)
	case "relu6":
		y = b.Node("Clip", []string{y, scalarConst(b, 0), scalarConst(b, 6)}, nil)
	case "relu+quantize":
		// The next layer's input: the convolution writes it as uint8.
		ys := b.InitTensor("ys", tensor.FromF32([]float32{0.05}))
		yz := b.InitTensor("yz", &tensor.Tensor{DType: tensor.Uint8, U8: []uint8{3}})
		y = b.Node("DequantizeLinear", []string{b.Node("QuantizeLinear", []string{b.Node("Relu", []string{y}, nil), ys, yz}, nil), ys, yz}, nil)
	}
	b.Node("Identity", []string{y}, nil, "y")
	b.Output("y", tensor.Float32, nil)
	return b
}

// TestQDQConvRunsOnInt8 checks that Convs in QDQ form become fused int8
// convolutions that compute what the float emulation computes, over the
// geometries and tails the fused kernel handles itself.
func TestQDQConvRunsOnInt8(t *testing.T) {
	same := []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)}
	tests := []struct {
		name      string
		pointwise bool
		attrs     []modelgen.Attr
		tail      string
		filters   int
	}{
		{"3x3 same relu", false, same, "relu", 8},
		{"3x3 same residual relu", false, same, "residual+relu", 8},
		{"3x3 stride 2 asymmetric pads", false, []modelgen.Attr{modelgen.AInts("strides", 2, 2), modelgen.AInts("pads", 0, 1, 1, 0)}, "", 8},
		{"3x3 dilated relu6", false, []modelgen.Attr{modelgen.AInts("dilations", 2, 2), modelgen.AInts("pads", 2, 2, 2, 2)}, "relu6", 8},
		{"pointwise residual relu", true, nil, "residual+relu", 8},
		{"pointwise stride 2", true, []modelgen.Attr{modelgen.AInts("strides", 2, 2)}, "", 8},
		{"3x3 same relu quantize", false, same, "relu+quantize", 8},
		// More filters than a row block, fewer panels than threads: the
		// filters are split between threads.
		{"many filters few positions", true, nil, "relu+quantize", 150},
	}
	for _, tt := range tests {
		for _, v := range []struct{ signed, perChannel, zeroPoints bool }{{false, false, false}, {true, true, false}, {false, true, true}} {
			fused, plain := compileBoth(t, qdqConvGraph(v.signed, v.perChannel, v.zeroPoints, tt.pointwise, tt.attrs, tt.tail, tt.filters))
			convs, dq, q := 0, 0, 0
			for _, st := range fused.steps {
				switch st.node.OpType {
				case opQConv:
					convs++
				case "DequantizeLinear":
					dq++
				case "QuantizeLinear":
					q++
				case "Conv", "ConvInteger":
					t.Errorf("%s %+v: a %s step is left", tt.name, v, st.node.OpType)
				}
			}
			// Left: the input's QuantizeLinear and, with a quantized
			// output, the output's DequantizeLinear.
			wantDQ := 0
			if tt.tail == "relu+quantize" {
				wantDQ = 1
			}
			if q != 1 || dq != wantDQ {
				t.Errorf("%s %+v: %d QuantizeLinear and %d DequantizeLinear steps, want 1 and %d", tt.name, v, q, dq, wantDQ)
			}
			if convs != 1 {
				t.Errorf("%s %+v: %d int8 convolutions, want 1", tt.name, v, convs)
			}
			x := randTensor(5, 1, 8, 9, 9)
			for i := range x.F32 {
				x.F32[i] *= 4
			}
			in := map[string]*tensor.Tensor{"x": x}
			want, err := plain.Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fused.Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			// Threads split the panels, or the filters: the same sums.
			got4, err := fused.RunWith(context.Background(), in, RunOptions{Threads: 4})
			if err != nil {
				t.Fatal(err)
			}
			for i, x := range got["y"].F32 {
				if got4["y"].F32[i] != x {
					t.Fatalf("%s %+v: element %d is %v on 4 threads, %v on one", tt.name, v, i, got4["y"].F32[i], x)
				}
			}
			if len(got["y"].F32) != len(want["y"].F32) {
				t.Fatalf("%s %+v: shape %v, want %v", tt.name, v, got["y"].Shape, want["y"].Shape)
			}
			var worst, top float64
			for i, w := range want["y"].F32 {
				worst = max(worst, math.Abs(float64(got["y"].F32[i]-w)))
				top = max(top, math.Abs(float64(w)))
			}
			limit := 1e-5 * top
			if tt.tail == "relu+quantize" {
				// Requantised: a sum a last bit away from a rounding
				// boundary of the output may land one step (0.05) apart.
				limit = 0.05 * 1.001
			}
			if worst > limit {
				t.Errorf("%s %+v: max |diff| %.3g against max %.3g", tt.name, v, worst, top)
			}
		}
	}
}

// TestQLinearConvFastMatchesGeneric checks QLinearConv with constant
// weights (the QOperator form) on the int8 convolution against the op's
// generic kernel (fusion off): the same integer sums and float32 steps, so
// the same bytes, over geometries, signedness, per-channel scales, weight
// zero points and threads.
func TestQLinearConvFastMatchesGeneric(t *testing.T) {
	for _, tc := range []struct {
		name      string
		k         int
		attrs     []modelgen.Attr
		signed    bool
		perFilter bool
		zeroW     bool
		filters   int
	}{
		{"3x3 same", 3, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)}, false, false, false, 8},
		{"3x3 stride 2 signed per filter", 3, []modelgen.Attr{modelgen.AInts("strides", 2, 2), modelgen.AInts("pads", 1, 1, 1, 1)}, true, true, false, 12},
		{"1x1 weight zero points", 1, nil, false, true, true, 70},
		{"3x3 depthwise", 3, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1), modelgen.AInt("group", 8)}, false, true, false, 8},
		{"3x3 two groups stride 2 signed", 3, []modelgen.Attr{modelgen.AInts("strides", 2, 2), modelgen.AInt("group", 2)}, true, true, true, 6},
	} {
		groups := 1
		for _, a := range tc.attrs {
			if a.GetName() == "group" {
				groups = int(a.GetI())
			}
		}
		b := modelgen.NewBuilder("qlinearconv", 13, 5)
		dt := tensor.Uint8
		if tc.signed {
			dt = tensor.Int8
		}
		b.Input("x", dt, []int64{2, 8, 9, 9})
		rng := b.Rand()
		w := tensor.New(tensor.Int8, tc.filters, 8/groups, tc.k, tc.k)
		for i := range w.I8 {
			w.I8[i] = int8(rng.IntN(255) - 127)
		}
		ns := 1
		if tc.perFilter {
			ns = tc.filters
		}
		ws, wz := make([]float32, ns), tensor.New(tensor.Int8, ns)
		for i := range ws {
			ws[i] = 0.001 + 0.002*rng.Float32()
			if tc.zeroW {
				wz.I8[i] = int8(rng.IntN(7) - 3)
			}
		}
		wsT := tensor.FromF32(ws, ns)
		if ns == 1 {
			wsT.Shape, wz.Shape = nil, nil
		}
		bias := &tensor.Tensor{DType: tensor.Int32, Shape: []int{tc.filters}, I32: make([]int32, tc.filters)}
		for i := range bias.I32 {
			bias.I32[i] = int32(rng.IntN(20001) - 10000)
		}
		zx := &tensor.Tensor{DType: dt, U8: []uint8{121}}
		zy := &tensor.Tensor{DType: tensor.Uint8, U8: []uint8{9}}
		if tc.signed {
			zx = &tensor.Tensor{DType: dt, I8: []int8{-7}}
		}
		b.Node("QLinearConv", []string{"x", b.InitTensor("xs", tensor.FromF32([]float32{0.02})), b.InitTensor("xz", zx),
			b.InitTensor("w", w), b.InitTensor("ws", wsT), b.InitTensor("wz", wz),
			b.InitTensor("ys", tensor.FromF32([]float32{0.07})), b.InitTensor("yz", zy), b.InitTensor("b", bias)}, tc.attrs, "y")
		b.Output("y", tensor.Uint8, nil)
		fused, plain := compileBoth(t, b)
		x := tensor.New(dt, 2, 8, 9, 9)
		for i := range x.U8 {
			x.U8[i] = uint8(rng.IntN(256))
		}
		for i := range x.I8 {
			x.I8[i] = int8(rng.IntN(256) - 128)
		}
		checkSameBytes(t, tc.name, opQLinearConv, fused, plain, map[string]*tensor.Tensor{"x": x})
	}
}

// TestQLinearMatMulFastMatchesGeneric checks QLinearMatMul with a constant
// B on the int8 multiply against the op's generic kernel (fusion off):
// the same bytes, for uint8 and int8 operands, per-tensor and per-column
// scales, batched A and several threads.
func TestQLinearMatMulFastMatchesGeneric(t *testing.T) {
	for _, tc := range []struct {
		name         string
		signedA, u8B bool
		perCol       bool
		shape        []int64
		k, n         int
	}{
		{"uint8 per tensor", false, false, false, []int64{7, 96}, 96, 70},
		{"int8 per column batched", true, false, true, []int64{2, 5, 64}, 64, 130},
		{"uint8 B", false, true, true, []int64{9, 40}, 40, 64},
	} {
		b := modelgen.NewBuilder("qlinearmatmul", 13, 6)
		adt := tensor.Uint8
		if tc.signedA {
			adt = tensor.Int8
		}
		b.Input("a", adt, tc.shape)
		rng := b.Rand()
		bdt := tensor.Int8
		if tc.u8B {
			bdt = tensor.Uint8
		}
		w := tensor.New(bdt, tc.k, tc.n)
		for i := range w.I8 {
			w.I8[i] = int8(rng.IntN(255) - 127)
		}
		for i := range w.U8 {
			w.U8[i] = uint8(rng.IntN(256))
		}
		ns := 1
		if tc.perCol {
			ns = tc.n
		}
		sb := make([]float32, ns)
		for i := range sb {
			sb[i] = 0.002 + 0.003*rng.Float32()
		}
		sbT := tensor.FromF32(sb, ns)
		zb := &tensor.Tensor{DType: bdt, Shape: []int{ns}, I8: make([]int8, ns)}
		if tc.u8B {
			zb = &tensor.Tensor{DType: bdt, Shape: []int{ns}, U8: make([]uint8, ns)}
			for i := range zb.U8 {
				zb.U8[i] = 128
			}
		}
		if ns == 1 {
			sbT.Shape, zb.Shape = nil, nil
		}
		za := &tensor.Tensor{DType: adt, U8: []uint8{100}}
		if tc.signedA {
			za = &tensor.Tensor{DType: adt, I8: []int8{-5}}
		}
		b.Node("QLinearMatMul", []string{"a", b.InitTensor("as", tensor.FromF32([]float32{0.03})), b.InitTensor("az", za),
			b.InitTensor("b", w), b.InitTensor("bs", sbT), b.InitTensor("bz", zb),
			b.InitTensor("ys", tensor.FromF32([]float32{0.25})), b.InitTensor("yz", &tensor.Tensor{DType: tensor.Uint8, U8: []uint8{128}})}, nil, "y")
		b.Output("y", tensor.Uint8, nil)
		fused, plain := compileBoth(t, b)
		shape := make([]int, len(tc.shape))
		for i, d := range tc.shape {
			shape[i] = int(d)
		}
		a := tensor.New(adt, shape...)
		for i := range a.U8 {
			a.U8[i] = uint8(rng.IntN(256))
		}
		for i := range a.I8 {
			a.I8[i] = int8(rng.IntN(256) - 128)
		}
		checkSameBytes(t, tc.name, opQLinearMatMul, fused, plain, map[string]*tensor.Tensor{"a": a})
	}
}

// checkSameBytes checks that fused has a step of opType and gives the bytes
// of plain's (the generic kernels) for output y on in, at 1 and 3 threads.
func checkSameBytes(t *testing.T, name, opType string, fused, plain *Model, in map[string]*tensor.Tensor) {
	t.Helper()
	found := false
	for _, st := range fused.steps {
		found = found || st.node.OpType == opType
	}
	if !found {
		t.Fatalf("%s: no %s step: the fast kernel was not used", name, opType)
	}
	want, err := plain.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for _, threads := range []int{1, 3} {
		got, err := fused.RunWith(context.Background(), in, RunOptions{Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got["y"].Shape, want["y"].Shape) || string(got["y"].U8) != string(want["y"].U8) {
			t.Fatalf("%s, %d threads: the fast kernel's bytes differ from the generic kernel's", name, threads)
		}
	}
}
