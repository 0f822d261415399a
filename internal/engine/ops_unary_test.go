package engine

import (
	"errors"
	"math"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

func TestUnaryOps(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	tests := []struct {
		name  string
		op    string
		attrs []modelgen.Attr
		x     *tensor.Tensor
		want  *tensor.Tensor
		tol   float64
	}{
		{"neg", "Neg", nil, f32([]float32{-2, 0, 3.5}, 3), f32([]float32{2, 0, -3.5}, 3), 0},
		{"neg int32", "Neg", nil, tens([]int32{-2, 0, 7}, 3), tens([]int32{2, 0, -7}, 3), 0},
		{"neg int8", "Neg", nil, tens([]int8{-128 + 1, 5}, 2), tens([]int8{127, -5}, 2), 0},
		{"abs", "Abs", nil, f32([]float32{-2, 0, 3.5}, 3), f32([]float32{2, 0, 3.5}, 3), 0},
		{"abs int64", "Abs", nil, i64([]int64{-9, 9}, 2), i64([]int64{9, 9}, 2), 0},
		{"abs uint8", "Abs", nil, tens([]uint8{0, 200}, 2), tens([]uint8{0, 200}, 2), 0},
		{"exp", "Exp", nil, f32([]float32{0, 1, -1, 100}, 4), f32([]float32{1, math.E, 1 / math.E, inf}, 4), 1e-6},
		{"log", "Log", nil, f32([]float32{1, math.E, 0, -1}, 4), f32([]float32{0, 1, -inf, nan}, 4), 1e-6},
		{"sqrt", "Sqrt", nil, f32([]float32{0, 4, 2}, 3), f32([]float32{0, 2, math.Sqrt2}, 3), 0},
		{"reciprocal", "Reciprocal", nil, f32([]float32{2, -0.5, 0}, 3), f32([]float32{0.5, -2, inf}, 3), 0},
		{"erf", "Erf", nil, f32([]float32{0, 0.5, -1, 3}, 4), f32([]float32{0, 0.5204998778, -0.8427007929, 0.9999779095}, 4), 1e-7},
		{"tanh", "Tanh", nil, f32([]float32{0, 0.5, -20}, 3), f32([]float32{0, 0.4621171573, -1}, 3), 1e-7},
		{"sigmoid", "Sigmoid", nil, f32([]float32{0, 2, -2}, 3), f32([]float32{0.5, 0.8807970780, 0.1192029220}, 3), 1e-7},
		// exp(1000) overflows: the stable form must still give 0 and 1, not
		// NaN. sigmoid(-80) = 1.8e-35 keeps its digits; sigmoid(-100), below
		// the smallest normal float32, may be 0 (kernels.Sigmoid).
		{"sigmoid large", "Sigmoid", nil, f32([]float32{-1000, 1000, -80, -100}, 4), f32([]float32{0, 1, 1.8048513e-35, 0}, 4), 1e-41},
		{"leakyrelu default alpha", "LeakyRelu", nil, f32([]float32{-10, 3}, 2), f32([]float32{-0.1, 3}, 2), 1e-7},
		{"leakyrelu alpha", "LeakyRelu", []modelgen.Attr{modelgen.AFloat("alpha", 0.5)}, f32([]float32{-10, 3}, 2), f32([]float32{-5, 3}, 2), 0},
		{"gelu exact", "Gelu", nil, f32([]float32{0, 1, -1, 3}, 4), f32([]float32{0, 0.8413447461, -0.1586552539, 2.9959502039}, 4), 1e-7},
		{"gelu tanh", "Gelu", []modelgen.Attr{modelgen.AString("approximate", "tanh")}, f32([]float32{0, 1, -1}, 3), f32([]float32{0, 0.8411919906, -0.1588080094}, 3), 1e-7},
		{"hardsigmoid", "HardSigmoid", nil, f32([]float32{-10, 0, 1, 10}, 4), f32([]float32{0, 0.5, 0.7, 1}, 4), 1e-7},
		{"hardsigmoid attrs", "HardSigmoid", []modelgen.Attr{modelgen.AFloat("alpha", 1), modelgen.AFloat("beta", 0)}, f32([]float32{-1, 0.25, 2}, 3), f32([]float32{0, 0.25, 1}, 3), 0},
		{"hardswish", "HardSwish", nil, f32([]float32{-4, -1, 0, 1, 4}, 5), f32([]float32{0, -1.0 / 3, 0, 2.0 / 3, 4}, 5), 1e-7},
		{"floor", "Floor", nil, f32([]float32{-1.5, 1.5, 2}, 3), f32([]float32{-2, 1, 2}, 3), 0},
		{"ceil", "Ceil", nil, f32([]float32{-1.5, 1.5, 2}, 3), f32([]float32{-1, 2, 2}, 3), 0},
		{"round half to even", "Round", nil, f32([]float32{0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6}, 7), f32([]float32{0, 2, 2, 0, -2, 2, 3}, 7), 0},
		{"sign", "Sign", nil, f32([]float32{-3, 0, 0.1}, 3), f32([]float32{-1, 0, 1}, 3), 0},
		{"sign int32", "Sign", nil, tens([]int32{-3, 0, 9}, 3), tens([]int32{-1, 0, 1}, 3), 0},
		{"softplus", "Softplus", nil, f32([]float32{0, 1, -1000, 1000}, 4), f32([]float32{math.Ln2, 1.3132616875, 0, 1000}, 4), 1e-6},
		{"elu", "Elu", nil, f32([]float32{-1, 2}, 2), f32([]float32{-0.6321205588, 2}, 2), 1e-7},
		{"elu alpha", "Elu", []modelgen.Attr{modelgen.AFloat("alpha", 2)}, f32([]float32{-1, 2}, 2), f32([]float32{-1.2642411177, 2}, 2), 1e-7},
		{"selu", "Selu", nil, f32([]float32{-1, 2}, 2), f32([]float32{-1.1113307378, 2.1014020443}, 2), 1e-6},
		{"celu", "Celu", nil, f32([]float32{-1, 2}, 2), f32([]float32{-0.6321205588, 2}, 2), 1e-7},
		{"softsign", "Softsign", nil, f32([]float32{-1, 3}, 2), f32([]float32{-0.5, 0.75}, 2), 0},
		{"thresholdedrelu", "ThresholdedRelu", nil, f32([]float32{0.5, 1, 2}, 3), f32([]float32{0, 0, 2}, 3), 0},
		{"cos", "Cos", nil, f32([]float32{0, math.Pi}, 2), f32([]float32{1, -1}, 2), 1e-7},
		{"sin", "Sin", nil, f32([]float32{0, math.Pi / 2}, 2), f32([]float32{0, 1}, 2), 1e-7},
		{"relu", "Relu", nil, f32([]float32{-2, -0.5, 0, 0.5, 3, -1e30}, 2, 3), f32([]float32{0, 0, 0, 0.5, 3, 0}, 2, 3), 0},
		{"relu NaN", "Relu", nil, f32([]float32{float32(math.NaN()), -1, 2}, 3), f32([]float32{0, 0, 2}, 3), 0},
		{"relu int64", "Relu", nil, i64([]int64{-5, 5}, 2), i64([]int64{0, 5}, 2), 0},
		{"isnan", "IsNaN", nil, f32([]float32{nan, 1, inf}, 3), tens([]bool{true, false, false}, 3), 0},
		{"isinf negative only", "IsInf", []modelgen.Attr{modelgen.AInt("detect_positive", 0)}, f32([]float32{-inf, inf, 1}, 3), tens([]bool{true, false, false}, 3), 0},
		{"float64", "Exp", nil, tens([]float64{0, 1}, 2), tens([]float64{1, math.E}, 2), 0},
		{"scalar", "Neg", nil, f32([]float32{2}), f32([]float32{-2}), 0},
		{"empty", "Exp", nil, f32(nil, 0, 2), f32(nil, 0, 2), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{opset: 17, op: tt.op, attrs: tt.attrs, inputs: []*tensor.Tensor{tt.x}})
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, got[0], tt.want, tt.tol)
		})
	}
}

// TestErfGeluDecomposition runs the Erf-based GELU subgraph BERT exporters emit
// (x * 0.5 * (1 + Erf(x / sqrt 2))) and checks it against the float64 formula.
// The graph rounds every step to float32, so besides 2 ulp of the result it may
// lose what 1 + erf loses to cancellation for negative x: |x| * 2^-24. An Erf
// accurate only to 1e-6 would fail.
func TestErfGeluDecomposition(t *testing.T) {
	b := modelgen.NewBuilder("gelu", 13, 1)
	b.Input("x", tensor.Float32, []int64{-1})
	b.Output("y", tensor.Float32, nil)
	sqrt2 := b.Init("sqrt2", nil, []float32{1.4142135381698608})
	one := b.Init("one", nil, []float32{1})
	half := b.Init("half", nil, []float32{0.5})
	d := b.Node("Div", []string{"x", sqrt2}, nil)
	e := b.Node("Erf", []string{d}, nil)
	a := b.Node("Add", []string{e, one}, nil)
	m := b.Node("Mul", []string{"x", a}, nil)
	b.Node("Mul", []string{m, half}, nil, "y")
	model, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var xs []float32
	for v := float32(-6); v <= 6; v += 0.01 {
		xs = append(xs, v)
	}
	out, err := model.Run(t.Context(), map[string]*tensor.Tensor{"x": f32(xs, len(xs))})
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range xs {
		want := float32(0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2)))
		got := out["y"].F32[i]
		ulp := math.Abs(float64(math.Nextafter32(want, float32(math.Inf(1))) - want))
		if tol := 2*ulp + math.Abs(float64(x))*0x1p-24; math.Abs(float64(got-want)) > tol {
			t.Fatalf("gelu(%v): got %v, want %v (tolerance %g)", x, got, want, tol)
		}
	}
}

func TestClip(t *testing.T) {
	x := f32([]float32{-3, -1, 0, 1, 3}, 5)
	tests := []struct {
		name   string
		opset  int64
		attrs  []modelgen.Attr
		inputs []*tensor.Tensor
		want   *tensor.Tensor
	}{
		{"attributes (opset 6)", 6, []modelgen.Attr{modelgen.AFloat("min", -1), modelgen.AFloat("max", 2)}, []*tensor.Tensor{x}, f32([]float32{-1, -1, 0, 1, 2}, 5)},
		{"attribute defaults", 6, nil, []*tensor.Tensor{x}, x},
		{"inputs", 13, nil, []*tensor.Tensor{x, f32([]float32{-2}), f32([]float32{0.5})}, f32([]float32{-2, -1, 0, 0.5, 0.5}, 5)},
		{"max only", 13, nil, []*tensor.Tensor{x, nil, f32([]float32{0})}, f32([]float32{-3, -1, 0, 0, 0}, 5)},
		{"min only", 13, nil, []*tensor.Tensor{x, f32([]float32{0})}, f32([]float32{0, 0, 0, 1, 3}, 5)},
		{"min above max gives max", 13, nil, []*tensor.Tensor{x, f32([]float32{2}), f32([]float32{1})}, f32([]float32{1, 1, 1, 1, 1}, 5)},
		{"int8", 13, nil, []*tensor.Tensor{tens([]int8{-128, 0, 127}, 3), tens([]int8{-5}), tens([]int8{5})}, tens([]int8{-5, 0, 5}, 3)},
		{"int64 no bounds", 13, nil, []*tensor.Tensor{i64([]int64{math.MinInt64, math.MaxInt64}, 2)}, i64([]int64{math.MinInt64, math.MaxInt64}, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, opCase{opset: tt.opset, op: "Clip", attrs: tt.attrs, inputs: tt.inputs})
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, got[0], tt.want, 0)
		})
	}
}

func TestUnaryErrors(t *testing.T) {
	tests := []struct {
		name   string
		op     string
		attrs  []modelgen.Attr
		inputs []*tensor.Tensor
		frag   []string
		unsup  bool
	}{
		{"int input to float op", "Exp", nil, []*tensor.Tensor{i64([]int64{1}, 1)}, []string{"int64", "Exp supports float32, float64"}, false},
		{"bool to Relu", "Relu", nil, []*tensor.Tensor{tens([]bool{true}, 1)}, []string{"bool", "Relu supports"}, false},
		{"gelu approximation", "Gelu", []modelgen.Attr{modelgen.AString("approximate", "erf")}, []*tensor.Tensor{f32([]float32{1}, 1)}, []string{"approximate", `"erf"`}, true},
		{"clip bound dtype", "Clip", nil, []*tensor.Tensor{f32([]float32{1}, 1), i64([]int64{0})}, []string{"input min", "scalar of the input's dtype float32"}, false},
		{"clip bound not scalar", "Clip", nil, []*tensor.Tensor{f32([]float32{1}, 1), nil, f32([]float32{0, 1}, 2)}, []string{"input max"}, false},
		{"clip bool", "Clip", nil, []*tensor.Tensor{tens([]bool{true}, 1)}, []string{"bool", "Clip supports"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runOp(t, opCase{opset: 17, op: tt.op, attrs: tt.attrs, inputs: tt.inputs})
			wantErr(t, err, tt.frag...)
			if errors.Is(err, ErrUnsupported) != tt.unsup {
				t.Errorf("errors.Is(err, ErrUnsupported) = %v, want %v (err %v)", !tt.unsup, tt.unsup, err)
			}
		})
	}
}

// ulpDiff is the distance between two float32 values in units in the last
// place (0 when both are NaN or equal, including +0 and -0).
func ulpDiff(a, b float32) int64 {
	if a == b || (a != a && b != b) {
		return 0
	}
	if a != a || b != b {
		return math.MaxInt64
	}
	key := func(f float32) int64 {
		u := int64(math.Float32bits(f))
		if u&(1<<31) != 0 {
			return -(u &^ (1 << 31))
		}
		return u
	}
	d := key(a) - key(b)
	return max(d, -d)
}

// checkUlp compares f with the correctly rounded float64 reference ref on
// float32 bit patterns from lo to hi (step apart, both signs) and fails if any
// differs by more than 1 ulp.
func checkUlp(t *testing.T, name string, f func(float32) float32, ref func(float64) float64, lo, hi float32, step uint32) {
	t.Helper()
	off := 0
	for _, sign := range []float32{1, -1} {
		for u := math.Float32bits(lo); u <= math.Float32bits(hi); u += step {
			x := sign * math.Float32frombits(u)
			want := float32(ref(float64(x)))
			got := f(x)
			if d := ulpDiff(got, want); d > 1 {
				t.Fatalf("%s(%v) = %v, want %v (%d ulp)", name, x, got, want, d)
			} else if d == 1 {
				off++
			}
		}
	}
	t.Logf("%s: %d values 1 ulp from the correctly rounded result", name, off)
}

func TestErf32(t *testing.T) {
	checkUlp(t, "erf", erf32, math.Erf, 0, 6, 1021)
	for _, x := range []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-40, erfSplit, erfLimit} {
		if got, want := erf32(x), float32(math.Erf(float64(x))); ulpDiff(got, want) != 0 || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("erf32(%v) = %v, want %v", x, got, want)
		}
	}
}

func TestExp32(t *testing.T) {
	checkUlp(t, "exp", exp32, math.Exp, 0, 120, 1021)
	for _, x := range []float32{0, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 88.72283, 88.72284, -103.97, -87.33655} {
		if got, want := exp32(x), float32(math.Exp(float64(x))); ulpDiff(got, want) != 0 {
			t.Errorf("exp32(%v) = %v, want %v", x, got, want)
		}
	}
}

func TestTanh32(t *testing.T) {
	tanh32 := func(x float32) float32 { return float32(tanh64f(float64(x))) }
	checkUlp(t, "tanh", tanh32, math.Tanh, 0, 12, 1021)
	for _, x := range []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-30, 0.125} {
		if got, want := tanh32(x), float32(math.Tanh(float64(x))); ulpDiff(got, want) != 0 || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("tanh(%v) = %v, want %v", x, got, want)
		}
	}
}
