package engine

import (
	"context"
	"math"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// hardSwishGraph adds x * Clip(x + 3, 0, 6) / 6, HardSwish as PyTorch and
// paddle2onnx export it.
func hardSwishGraph(b *modelgen.Builder, x string) string {
	c := b.Node("Clip", []string{b.Node("Add", []string{x, scalarConst(b, 3)}, nil), scalarConst(b, 0), scalarConst(b, 6)}, nil)
	return b.Node("Div", []string{b.Node("Mul", []string{x, c}, nil), scalarConst(b, 6)}, nil)
}

// TestElementwiseFusion checks groups of elementwise steps as exporters
// write them: each becomes one step (Stats().Fused counts the steps it
// absorbed) whose output is the unfused plan's, bit for bit, at 1 and 3
// threads; inputs the program does not read (another dtype, a broadcast it
// has no pattern for) make it run the replaced steps, with the same answer.
func TestElementwiseFusion(t *testing.T) {
	tests := []struct {
		name      string
		build     func(b *modelgen.Builder) string
		feeds     map[string]*tensor.Tensor
		wantFused int
		fast      bool // the fast kernel, not the fallback, computes the answer
	}{
		{"HardSwish", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{-1, 8, -1, -1})
			return hardSwishGraph(b, "x")
		}, map[string]*tensor.Tensor{"x": scaled(randTensor(1, 2, 8, 37, 29), 4)}, 3, true},
		{"BatchNormalization, HardSigmoid, squeeze-excitation scale", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 6, 9, 11})
			b.Input("s", tensor.Float32, []int64{1, 6, 1, 1})
			bn := b.Node("BatchNormalization", []string{"x", b.Uniform("g", 1, 6), b.Uniform("bb", 1, 6), b.Uniform("m", 1, 6), b.Fill("v", 0.5, 6)}, nil)
			hs := b.Node("HardSigmoid", []string{"s"}, []modelgen.Attr{modelgen.AFloat("alpha", 0.2), modelgen.AFloat("beta", 0.5)})
			return b.Node("Mul", []string{bn, hs}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(2, 1, 6, 9, 11), "s": scaled(randTensor(3, 1, 6, 1, 1), 5)}, 2, true},
		{"SiLU and a bias over the last axis", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{3, 5, 40})
			y := b.Node("Add", []string{"x", b.Normal("bias", 1, 40)}, nil)
			return b.Node("Mul", []string{y, b.Node("Sigmoid", []string{y}, nil)}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(4, 3, 5, 40)}, 2, true},
		{"scalar on the left, Pow 2, Sqrt, Tanh, LeakyRelu", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{7, 300})
			y := b.Node("Mul", []string{scalarConst(b, 0.5), "x"}, nil)
			y = b.Node("Sqrt", []string{b.Node("Add", []string{b.Node("Pow", []string{y, scalarConst(b, 2)}, nil), scalarConst(b, 1)}, nil)}, nil)
			return b.Node("LeakyRelu", []string{b.Node("Tanh", []string{b.Node("Neg", []string{y}, nil)}, nil)}, []modelgen.Attr{modelgen.AFloat("alpha", 0.1)})
		}, map[string]*tensor.Tensor{"x": randTensor(5, 7, 300)}, 6, true},
		{"two branches joined, a residual", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{2, 4, 33})
			b.Input("r", tensor.Float32, []int64{2, 4, 33})
			a := b.Node("Relu", []string{"x"}, nil)
			c := b.Node("Exp", []string{b.Node("Neg", []string{b.Node("Abs", []string{"r"}, nil)}, nil)}, nil)
			return b.Node("Max", []string{b.Node("Sub", []string{a, c}, nil), "r"}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(6, 2, 4, 33), "r": randTensor(7, 2, 4, 33)}, 5, true},
		{"channel constants over planes larger than a block", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 3, 48, 50})
			b.Input("s", tensor.Float32, []int64{1, 3, 1, 1})
			hs := b.Node("HardSigmoid", []string{"s"}, []modelgen.Attr{modelgen.AFloat("alpha", 0.2), modelgen.AFloat("beta", 0.5)})
			d := b.Node("Sub", []string{hs, "x"}, nil)
			m := b.Node("Max", []string{b.Node("Div", []string{hs, d}, nil), "s"}, nil)
			return b.Node("Mul", []string{b.Node("Add", []string{m, b.Normal("c", 1, 3, 1, 1)}, nil), hs}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(10, 1, 3, 48, 50), "s": scaled(randTensor(11, 1, 3, 1, 1), 4)}, 5, true},
		{"a broadcast without a pattern runs the replaced steps", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{2, 3, 4, 5})
			b.Input("y", tensor.Float32, []int64{3, 1, 5})
			return b.Node("Relu", []string{b.Node("Add", []string{"x", "y"}, nil)}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(8, 2, 3, 4, 5), "y": randTensor(9, 3, 1, 5)}, 1, false},
		{"another dtype runs the replaced steps", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Int64, []int64{6})
			return b.Node("Abs", []string{b.Node("Sub", []string{"x", b.Ints64("k", 3)}, nil)}, nil)
		}, map[string]*tensor.Tensor{"x": i64([]int64{-5, 0, 2, 3, 9, -1}, 6)}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := modelgen.NewBuilder("ewise", 13, 1)
			out := tt.build(b)
			b.Output(out, tensor.Float32, nil)
			fused, plain := compileBoth(t, b)
			if got := fused.Stats().Fused; got != tt.wantFused {
				t.Errorf("Stats().Fused = %d, want %d", got, tt.wantFused)
			}
			want, err := plain.RunWith(context.Background(), tt.feeds, RunOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, threads := range []int{1, 3} {
				got, err := fused.RunWith(context.Background(), tt.feeds, RunOptions{Threads: threads})
				if err != nil {
					t.Fatalf("threads %d: %v", threads, err)
				}
				checkTensor(t, got[out], want[out], 0)
			}
			if ok := fastRan(t, fused, tt.feeds); ok != tt.fast {
				t.Errorf("the fused step's fast kernel took the inputs: %v, want %v", ok, tt.fast)
			}
		})
	}
}

// TestConvProgram checks elementwise groups run as a convolution's
// epilogue (convProgram): pointwise, 3x3 (im2col and indirect paths) and
// depthwise convolutions with BatchNormalization then HardSwish or SiLU, a
// squeeze-excitation scale and a residual add; each plan has one step (the
// convolution with its program) and gives the unfused plan's output bit for
// bit at 1 and 3 threads, and is within float32 rounding of the unfused
// plan (which does not fold BatchNormalization into the convolution). A
// program whose output is larger than the convolution's runs after it, with
// the same answer.
func TestConvProgram(t *testing.T) {
	conv := func(b *modelgen.Builder, x string, cin, cout, k, stride, group int64) string {
		w := b.Normal(x+"w", 0.5, cout, cin/group, k, k)
		p := k / 2
		y := b.Node("Conv", []string{x, w}, []modelgen.Attr{modelgen.AInts("kernel_shape", k, k), modelgen.AInts("strides", stride, stride),
			modelgen.AInts("pads", p, p, p, p), modelgen.AInt("group", group)})
		c := cout
		return b.Node("BatchNormalization", []string{y, b.Uniform(x+"g", 1, c), b.Uniform(x+"b", 1, c), b.Uniform(x+"m", 1, c), b.Fill(x+"v", 0.5, c)}, nil)
	}
	silu := func(b *modelgen.Builder, y string) string {
		return b.Node("Mul", []string{y, b.Node("Sigmoid", []string{y}, nil)}, nil)
	}
	tests := []struct {
		name  string
		build func(b *modelgen.Builder) string
		feeds map[string]*tensor.Tensor
		steps int
	}{
		{"pointwise, HardSwish", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{-1, 16, 30, 40})
			return hardSwishGraph(b, conv(b, "x", 16, 24, 1, 1, 1))
		}, map[string]*tensor.Tensor{"x": randTensor(1, 2, 16, 30, 40)}, 1},
		{"3x3 stride 2, SiLU", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 3, 64, 64})
			return silu(b, conv(b, "x", 3, 16, 3, 2, 1))
		}, map[string]*tensor.Tensor{"x": randTensor(2, 1, 3, 64, 64)}, 1},
		{"3x3 stride 1, residual add", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 8, 20, 24})
			return b.Node("Relu", []string{b.Node("Add", []string{conv(b, "x", 8, 8, 3, 1, 1), "x"}, nil)}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(3, 1, 8, 20, 24)}, 1},
		{"depthwise 5x5, SiLU, squeeze-excitation scale", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 32, 14, 14})
			b.Input("s", tensor.Float32, []int64{1, 32, 1, 1})
			return b.Node("Mul", []string{silu(b, conv(b, "x", 32, 32, 5, 1, 32)), b.Node("Sigmoid", []string{"s"}, nil)}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(4, 1, 32, 14, 14), "s": randTensor(5, 1, 32, 1, 1)}, 1},
		{"a program larger than the convolution runs after it", func(b *modelgen.Builder) string {
			b.Input("x", tensor.Float32, []int64{1, 4, 1, 1})
			b.Input("r", tensor.Float32, []int64{1, 4, 6, 6})
			return b.Node("Add", []string{b.Node("Sigmoid", []string{conv(b, "x", 4, 4, 1, 1, 1)}, nil), "r"}, nil)
		}, map[string]*tensor.Tensor{"x": randTensor(6, 1, 4, 1, 1), "r": randTensor(7, 1, 4, 6, 6)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := modelgen.NewBuilder("convprog", 17, 1)
			out := tt.build(b)
			b.Output(out, tensor.Float32, nil)
			fused, plain := compileBoth(t, b)
			if got := fused.Stats().Steps; got != tt.steps {
				t.Errorf("Stats().Steps = %d, want %d", got, tt.steps)
			}
			noConvProgram = true
			apart, _ := compileBoth(t, b)
			noConvProgram = false
			if got := apart.Stats().Steps; got != tt.steps+1 {
				t.Errorf("without convProgram: Stats().Steps = %d, want %d", got, tt.steps+1)
			}
			want, err := apart.RunWith(context.Background(), tt.feeds, RunOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			ref, err := plain.RunWith(context.Background(), tt.feeds, RunOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			checkTensor(t, want[out], ref[out], 1e-4)
			for _, threads := range []int{1, 3} {
				got, err := fused.RunWith(context.Background(), tt.feeds, RunOptions{Threads: threads})
				if err != nil {
					t.Fatalf("threads %d: %v", threads, err)
				}
				checkTensor(t, got[out], want[out], 0)
			}
		})
	}
}

// fastRan calls the fast kernel of m's elementwise step, whose inputs must be
// graph inputs or constants, on feeds and reports whether it took them.
func fastRan(t *testing.T, m *Model, feeds map[string]*tensor.Tensor) bool {
	t.Helper()
	vals := map[int]*tensor.Tensor{}
	for _, c := range m.consts {
		vals[c.slot] = c.t
	}
	for k, in := range m.Inputs {
		vals[m.inSlot[k]] = feeds[in.Name]
	}
	for _, st := range m.steps {
		if st.node.OpType != opEwise {
			continue
		}
		args := make([]*tensor.Tensor, len(st.in))
		for j, s := range st.in {
			if args[j] = vals[s]; args[j] == nil {
				t.Fatalf("input %d of %s is computed: fastRan needs graph inputs and constants", j, st.node.Name)
			}
		}
		_, ok, err := st.fused.fast(2, args)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	t.Fatal("no elementwise step")
	return false
}

// scaled multiplies t's elements by s, in place, and returns t.
func scaled(t *tensor.Tensor, s float32) *tensor.Tensor {
	for i := range t.F32 {
		t.F32[i] *= s
	}
	return t
}

func TestPatternOf(t *testing.T) {
	tests := []struct {
		x, out []int
		want   ewPattern
		ok     bool
	}{
		{[]int{2, 3, 4}, []int{2, 3, 4}, ewPattern{24, 1}, true},
		{[]int{}, []int{2, 3, 4}, ewPattern{1, 24}, true},
		{[]int{1, 1}, []int{2, 3, 4}, ewPattern{1, 24}, true},
		{[]int{3, 1}, []int{2, 3, 4}, ewPattern{3, 4}, true},
		{[]int{1, 3, 1, 1}, []int{2, 3, 4, 5}, ewPattern{3, 20}, true},
		{[]int{4}, []int{2, 3, 4}, ewPattern{4, 1}, true},
		{[]int{3, 4}, []int{2, 3, 4}, ewPattern{12, 1}, true},
		{[]int{2, 1, 4}, []int{2, 3, 4}, ewPattern{}, false},
		{[]int{3, 1, 5}, []int{2, 3, 4, 5}, ewPattern{}, false},
		{[]int{2, 3, 4, 5}, []int{3, 4, 5}, ewPattern{}, false},
	}
	for _, tt := range tests {
		got, ok := patternOf(tt.x, tt.out)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("patternOf(%v, %v) = %+v, %v; want %+v, %v", tt.x, tt.out, got, ok, tt.want, tt.ok)
		}
	}
	// load reads the right elements at any block start.
	p := ewPattern{count: 3, inner: 4}
	src := []float32{10, 20, 30}
	dst := make([]float32, 9)
	p.load(dst, src, 10) // output elements 10..18: channels 2,2,0,0,0,0,1,1,1
	if want := []float32{30, 30, 10, 10, 10, 10, 20, 20, 20}; !equalF32(dst, want) {
		t.Errorf("load = %v, want %v", dst, want)
	}
	p = ewPattern{count: 4, inner: 1}
	p.load(dst, []float32{1, 2, 3, 4}, 6)
	if want := []float32{3, 4, 1, 2, 3, 4, 1, 2, 3}; !equalF32(dst, want) {
		t.Errorf("row load = %v, want %v", dst, want)
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(float64(a[i])) && math.IsNaN(float64(b[i]))) {
			return false
		}
	}
	return true
}

// TestConvBatchNormFold checks that a BatchNormalization after a
// convolution folds into the convolution's weights (with and without a
// bias, depthwise and grouped too), so that the Relu after it joins the
// convolution as with no normalisation, and that the answer matches the
// unfused plan's within float32 rounding.
func TestConvBatchNormFold(t *testing.T) {
	for _, tt := range []struct {
		name       string
		group      int64
		bias       bool
		wantFolded bool
	}{{"dense with bias", 1, true, true}, {"dense", 1, false, true}, {"depthwise", 8, false, true}, {"grouped", 2, true, true}} {
		t.Run(tt.name, func(t *testing.T) {
			b := modelgen.NewBuilder("convbn", 17, 1)
			b.Input("x", tensor.Float32, []int64{1, 8, 12, 12})
			in := []string{"x", b.Normal("w", 0.3, 8, 8/tt.group, 3, 3)}
			if tt.bias {
				in = append(in, b.Normal("b", 0.3, 8))
			}
			y := b.Node("Conv", in, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1), modelgen.AInt("group", tt.group)})
			bn := b.Node("BatchNormalization", []string{y, b.Uniform("g", 1, 8), b.Uniform("beta", 1, 8), b.Uniform("mean", 1, 8), b.Fill("var", 0.7, 8)}, nil)
			out := b.Node("Relu", []string{bn}, nil)
			b.Output(out, tensor.Float32, nil)
			fused, plain := compileBoth(t, b)
			if got := len(fused.steps); got != 1 && tt.wantFolded {
				t.Errorf("%d steps after fusion, want 1 (the folded convolution, applying Relu itself)", got)
			}
			feeds := map[string]*tensor.Tensor{"x": randTensor(31, 1, 8, 12, 12)}
			want, err := plain.RunWith(context.Background(), feeds, RunOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			got, err := fused.RunWith(context.Background(), feeds, RunOptions{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(want[out], got[out]); d > 1e-5 {
				t.Errorf("folded differs from unfused by %g", d)
			}
		})
	}
}

// TestConvAffineFold checks that a normalisation spelled out after a
// convolution (Mul by a per-channel constant, Add of a number, the output
// minus a [1 C 1 1] constant) folds into it, one step at a time, leaving one
// step within float32 rounding of the unfused plan; and that what is not a
// per-channel map (a constant varying along a spatial axis, a constant
// minus the output) stays a step of its own.
func TestConvAffineFold(t *testing.T) {
	build := func(tail func(b *modelgen.Builder, y string) string) *modelgen.Builder {
		b := modelgen.NewBuilder("convaffine", 17, 1)
		b.Input("x", tensor.Float32, []int64{1, 8, 12, 12})
		y := b.Node("Conv", []string{"x", b.Normal("w", 0.3, 8, 8, 3, 3)}, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1)})
		b.Output(tail(b, y), tensor.Float32, nil)
		return b
	}
	for _, tt := range []struct {
		name  string
		tail  func(b *modelgen.Builder, y string) string
		steps int
	}{
		{"Mul, Add, Sub, Relu", func(b *modelgen.Builder, y string) string {
			y = b.Node("Mul", []string{y, b.Uniform("s", 1, 8, 1, 1)}, nil)
			y = b.Node("Add", []string{scalarConst(b, 0.25), y}, nil)
			y = b.Node("Sub", []string{y, b.Normal("t", 0.5, 1, 8, 1, 1)}, nil)
			return b.Node("Relu", []string{y}, nil)
		}, 1},
		{"a constant along a spatial axis", func(b *modelgen.Builder, y string) string {
			return b.Node("Mul", []string{y, b.Uniform("s", 1, 1, 12)}, nil)
		}, 2},
		{"a constant minus the output", func(b *modelgen.Builder, y string) string {
			return b.Node("Sub", []string{b.Normal("t", 0.5, 8, 1, 1), y}, nil)
		}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := build(tt.tail)
			noConvProgram = true // else what does not fold joins the convolution as its epilogue
			fused, plain := compileBoth(t, b)
			noConvProgram = false
			if got := len(fused.steps); got != tt.steps {
				t.Errorf("%d steps after fusion, want %d", got, tt.steps)
			}
			out := fused.Outputs[0].Name
			feeds := map[string]*tensor.Tensor{"x": randTensor(32, 1, 8, 12, 12)}
			want, err := plain.RunWith(context.Background(), feeds, RunOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			got, err := fused.RunWith(context.Background(), feeds, RunOptions{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(want[out], got[out]); d > 1e-5 {
				t.Errorf("folded differs from unfused by %g", d)
			}
		})
	}
}

// TestConvClip checks that Clip after a convolution (ReLU6, and a Clip with
// one bound) joins it: one step, the unfused plan's answer.
func TestConvClip(t *testing.T) {
	for _, tt := range []struct {
		name   string
		bounds []float32 // nil entries: omitted
		group  int64
	}{{"relu6", []float32{0, 6}, 1}, {"relu6 depthwise", []float32{0, 6}, 8}, {"upper only", []float32{float32(math.NaN()), 0.5}, 1}} {
		t.Run(tt.name, func(t *testing.T) {
			b := modelgen.NewBuilder("convclip", 13, 1)
			b.Input("x", tensor.Float32, []int64{1, 8, 10, 10})
			y := b.Node("Conv", []string{"x", b.Normal("w", 0.5, 8, 8/tt.group, 3, 3), b.Normal("b", 0.5, 8)}, []modelgen.Attr{modelgen.AInts("pads", 1, 1, 1, 1), modelgen.AInt("group", tt.group)})
			in := []string{y}
			for _, v := range tt.bounds {
				if v != v {
					in = append(in, "")
					continue
				}
				in = append(in, scalarConst(b, v))
			}
			out := b.Node("Clip", in, nil)
			b.Output(out, tensor.Float32, nil)
			fused, plain := compileBoth(t, b)
			if got := len(fused.steps); got != 1 {
				t.Errorf("%d steps after fusion, want 1", got)
			}
			feeds := map[string]*tensor.Tensor{"x": randTensor(41, 1, 8, 10, 10)}
			want, err := plain.RunWith(context.Background(), feeds, RunOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			got, err := fused.RunWith(context.Background(), feeds, RunOptions{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(want[out], got[out]); d > 1e-5 {
				t.Errorf("fused differs from unfused by %g", d)
			}
		})
	}
}
