package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ewiseValues are inputs that tell kernels apart: NaN, infinities, signed
// zeros, subnormals, values around the clip bounds used below.
var ewiseValues = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)),
	1e-40, -1e-40, 3, -3, 6, 6.0000005, -0.5, 0.5, 1, -1, 123.456}

// ewiseInput returns n floats: the special values, then random ones.
func ewiseInput(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		if i < len(ewiseValues) && r.IntN(2) == 0 {
			x[i] = ewiseValues[r.IntN(len(ewiseValues))]
		} else {
			x[i] = float32(r.NormFloat64() * 8)
		}
	}
	return x
}

func sameBits(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// TestEwisePrimitives checks every elementwise primitive, on whichever
// backend this build selects (AVX-512 or Go; CI runs it with -tags noasm
// too), against its reference loop bit for bit, for every length up to 70
// at several alignments, with guard bands around dst that must stay as
// they were, and with dst aliasing an operand.
func TestEwisePrimitives(t *testing.T) {
	type vvCase struct {
		name string
		f    func(dst, a, b []float32)
		ref  func(x, y float32) float32
	}
	vvs := []vvCase{
		{"AddVV", AddVV, func(x, y float32) float32 { return x + y }},
		{"SubVV", SubVV, func(x, y float32) float32 { return x - y }},
		{"MulVV", MulVV, func(x, y float32) float32 { return x * y }},
		{"DivVV", DivVV, func(x, y float32) float32 { return x / y }},
	}
	type vsCase struct {
		name string
		f    func(dst, a []float32)
		ref  func(x float32) float32
	}
	clip := func(lo, hi float32) func(x float32) float32 {
		return func(x float32) float32 {
			if x < lo {
				x = lo
			}
			if x > hi {
				x = hi
			}
			return x
		}
	}
	vss := []vsCase{
		{"AddVS", func(d, a []float32) { AddVS(d, a, 3) }, func(x float32) float32 { return x + 3 }},
		{"MulVS", func(d, a []float32) { MulVS(d, a, -0.25) }, func(x float32) float32 { return x * -0.25 }},
		{"DivVS", func(d, a []float32) { DivVS(d, a, 6) }, func(x float32) float32 { return x / 6 }},
		{"Clip 0 6", func(d, a []float32) { Clip(d, a, 0, 6) }, clip(0, 6)},
		{"Clip -inf 0", func(d, a []float32) { Clip(d, a, float32(math.Inf(-1)), 0) }, clip(float32(math.Inf(-1)), 0)},
		{"Clip lo > hi", func(d, a []float32) { Clip(d, a, 2, 1) }, clip(2, 1)},
		{"HardSigmoid", func(d, a []float32) { HardSigmoid(d, a, 0.2, 0.5) }, func(x float32) float32 {
			return float32(max(0, min(1, 0.2*float64(x)+0.5)))
		}},
		{"HardSigmoid 1/6", func(d, a []float32) { HardSigmoid(d, a, float64(float32(1.0/6)), 0.5) }, func(x float32) float32 {
			return float32(max(0, min(1, float64(float32(1.0/6))*float64(x)+0.5)))
		}},
		{"HardSwish", HardSwish, func(x float32) float32 {
			v := float64(x)
			return float32(v * max(0, min(1, v/6+0.5)))
		}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	const guard = 19
	for n := 0; n <= 70; n++ {
		for _, off := range []int{0, 1, 5} {
			a := ewiseInput(r, n+off)[off:]
			b := ewiseInput(r, n+off)[off:]
			check := func(name string, got []float32, want func(i int) float32, buf []float32, sentinel float32) {
				t.Helper()
				for i := range n {
					if w := want(i); !sameBits(got[i], w) {
						t.Fatalf("%s n=%d off=%d: [%d] = %v, want %v (inputs %v, %v)", name, n, off, i, got[i], w, a[i], b[i])
					}
				}
				for i, v := range buf {
					if (i < guard || i >= guard+n) && v != sentinel {
						t.Fatalf("%s n=%d off=%d: guard element %d changed to %v", name, n, off, i, v)
					}
				}
			}
			for _, c := range vvs {
				buf := make([]float32, n+2*guard)
				for i := range buf {
					buf[i] = 7777
				}
				c.f(buf[guard:guard+n], a, b)
				check(c.name, buf[guard:], func(i int) float32 { return c.ref(a[i], b[i]) }, buf, 7777)
				alias := append([]float32(nil), a...)
				c.f(alias, alias, b)
				check(c.name+" in place", alias, func(i int) float32 { return c.ref(a[i], b[i]) }, nil, 0)
			}
			for _, c := range vss {
				buf := make([]float32, n+2*guard)
				for i := range buf {
					buf[i] = 7777
				}
				c.f(buf[guard:guard+n], a)
				check(c.name, buf[guard:], func(i int) float32 { return c.ref(a[i]) }, buf, 7777)
			}
		}
	}
}

// BenchmarkEwise measures the primitives on a block of the size the engine's
// fused programs use, next to the plain Go loop.
func BenchmarkEwise(b *testing.B) {
	const n = 1024
	x, y, d := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range x {
		x[i], y[i] = float32(i)*0.01-5, float32(i%7)+1
	}
	b.Run("AddVV", func(b *testing.B) {
		for b.Loop() {
			AddVV(d, x, y)
		}
	})
	b.Run("AddVV/go", func(b *testing.B) {
		for b.Loop() {
			for i := range d {
				d[i] = x[i] + y[i]
			}
		}
	})
	b.Run("Clip", func(b *testing.B) {
		for b.Loop() {
			Clip(d, x, 0, 6)
		}
	})
	b.Run("DivVS", func(b *testing.B) {
		for b.Loop() {
			DivVS(d, x, 6)
		}
	})
}

// TestAxpy checks Axpy on this build's backend against a float64 reference,
// within one ulp (see its doc), with guard bands.
func TestAxpy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n <= 70; n++ {
		src := ewiseInput(r, n)
		buf := make([]float32, n+8)
		for i := range buf {
			buf[i] = float32(r.NormFloat64())
		}
		before := append([]float32(nil), buf...)
		Axpy(buf[4:4+n], src, -1.25)
		for i, v := range buf {
			if i < 4 || i >= 4+n {
				if v != before[i] {
					t.Fatalf("n=%d: guard element %d changed", n, i)
				}
				continue
			}
			want := float32(math.FMA(-1.25, float64(src[i-4]), float64(before[i])))
			if !sameBits(v, want) && math.Abs(float64(v-want)) > math.Abs(float64(want))*1.2e-7 {
				t.Fatalf("n=%d: [%d] = %v, want %v", n, i-4, v, want)
			}
		}
	}
}

// TestExpSigmoid checks Exp, on this build's backend, against Exp64 bit for
// bit, and Sigmoid against the float64 formula to 3 ulp (results below the
// smallest normal float32 may be 0) and against Sigmoidf, its Go twin, to 2
// ulp, over special values, the ends of the exponentials' ranges, and a
// sweep of float32s from -120 to 120.
func TestExpSigmoid(t *testing.T) {
	xs := append([]float32(nil), ewiseValues...)
	xs = append(xs, 100, 100.00001, -110, -110.00001, 99.99999, -109.99999, 88.7, 88.8, -87.3, -103.9, 1e30, -1e30, 20, -20)
	for v := float32(-120); v <= 120; v += 0.0371 {
		xs = append(xs, v)
	}
	got := make([]float32, len(xs))
	Exp(got, xs)
	for i, x := range xs {
		if want := float32(Exp64(float64(x))); !sameBits(got[i], want) {
			t.Fatalf("Exp(%v) = %v, want %v", x, got[i], want)
		}
	}
	Sigmoid(got, xs)
	const minNormal = 0x1p-126
	for i, x := range xs {
		want := 1 / (1 + math.Exp(-float64(x)))
		switch {
		case x != x:
			if got[i] == got[i] {
				t.Fatalf("Sigmoid(NaN) = %v", got[i])
			}
			continue
		case want < minNormal:
			if float64(got[i]) > minNormal || got[i] < 0 {
				t.Fatalf("Sigmoid(%v) = %v, want below %g", x, got[i], minNormal)
			}
		case math.Abs(float64(got[i])-want) > 3*ulp32(float32(want)):
			t.Fatalf("Sigmoid(%v) = %v, want %v within 3 ulp", x, got[i], want)
		}
		if twin := Sigmoidf(x); math.Abs(float64(got[i]-twin)) > 2*ulp32(twin) {
			t.Fatalf("Sigmoid(%v) = %v, Sigmoidf gives %v: more than 2 ulp apart", x, got[i], twin)
		}
	}
	if d := math.Abs(Exp64(1)/math.E - 1); d > 1e-13 {
		t.Errorf("Exp64(1) is %g off e, relatively", d)
	}
}

// ulp32 is the spacing of float32s at |v| (the smallest subnormal at 0).
func ulp32(v float32) float64 {
	a := float32(math.Abs(float64(v)))
	return float64(math.Nextafter32(a, float32(math.Inf(1))) - a)
}

// BenchmarkSigmoid compares the AVX-512 Sigmoid with the Go loop over one
// block.
func BenchmarkSigmoid(b *testing.B) {
	const n = 1024
	x, d := make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = float32(i)*0.02 - 10
	}
	b.Run("kernel", func(b *testing.B) {
		for b.Loop() {
			Sigmoid(d, x)
		}
	})
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			for i, v := range x {
				d[i] = Sigmoidf(v)
			}
		}
	})
}

// TestDepthwiseRow checks DepthwiseRow on this build's backend against its
// Go loop (the same multiply-adds in tap order) for every length up to 300,
// so that every block path runs (128-output blocks, a rest of 65 to 127
// and of 1 to 64), with 1 to 25 taps at scattered offsets and guard bands
// around dst that must stay as they were.
func TestDepthwiseRow(t *testing.T) {
	const guard = -777
	r := rand.New(rand.NewPCG(5, 6))
	base := make([]float32, 1200)
	for i := range base {
		base[i] = float32(r.NormFloat64())
	}
	for n := 0; n <= 300; n++ {
		taps := 1 + n%25
		offs, w := make([]int, taps), make([]float32, taps)
		for i := range offs {
			offs[i] = r.IntN(len(base) - n + 1)
			w[i] = float32(r.NormFloat64())
		}
		bias := float32(r.NormFloat64())
		buf := make([]float32, n+8)
		for i := range buf {
			buf[i] = guard
		}
		DepthwiseRow(buf[4:4+n], base, offs, w, bias)
		for i, v := range buf {
			if i < 4 || i >= 4+n {
				if v != guard {
					t.Fatalf("n=%d, %d taps: guard [%d] = %v", n, taps, i-4, v)
				}
				continue
			}
			want := bias
			for k, o := range offs {
				want = float32(math.FMA(float64(w[k]), float64(base[o+i-4]), float64(want)))
			}
			if !sameBits(v, want) {
				t.Fatalf("n=%d, %d taps: [%d] = %v, want %v", n, taps, i-4, v, want)
			}
		}
	}
}

// TestCopyRows checks CopyRows against row copies for row widths around the
// 16-float vectors and strides wider than the rows, with the floats between
// and after the destination rows left as they were.
func TestCopyRows(t *testing.T) {
	const guard = -777
	for _, c := range []struct{ rows, cols, ds, ss int }{{1, 1, 1, 1}, {7, 7, 7, 11}, {14, 16, 16, 18}, {3, 17, 20, 17}, {5, 40, 40, 42}, {2, 33, 50, 33}} {
		src := make([]float32, (c.rows-1)*c.ss+c.cols)
		for i := range src {
			src[i] = float32(i)
		}
		dst := make([]float32, (c.rows-1)*c.ds+c.cols+5)
		for i := range dst {
			dst[i] = guard
		}
		CopyRows(dst, c.ds, src, c.ss, c.rows, c.cols)
		for i, v := range dst {
			r, col := i/c.ds, i%c.ds
			want := float32(guard)
			if r < c.rows && col < c.cols {
				want = src[r*c.ss+col]
			}
			if v != want {
				t.Fatalf("%+v: dst[%d] = %v, want %v", c, i, v, want)
			}
		}
	}
}
