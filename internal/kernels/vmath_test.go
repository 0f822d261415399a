package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// vmathPaths are the implementations of ExpSubSum and Gelu this build and CPU
// can run: the Go loops always, the AVX-512 loops where present (lengths past
// the last whole block of 16 go to the Go loop in both).
func vmathPaths() []string {
	if vmathAVX512 {
		return []string{"go", "avx512"}
	}
	return []string{"go"}
}

func expSubSumPath(path string, x []float32, m float32) float32 {
	if path == "avx512" {
		return ExpSubSum(x, m)
	}
	var sum float32
	for i, v := range x {
		x[i] = Expf(v - m)
		sum += x[i]
	}
	return sum
}

func geluPath(path string, dst, src []float32) {
	if path == "avx512" {
		Gelu(dst, src)
		return
	}
	for i := range dst {
		dst[i] = gelu1(src[i])
	}
}

// ulp returns the spacing of float32 values at v.
func ulp(v float32) float64 {
	v = float32(math.Abs(float64(v)))
	return float64(math.Nextafter32(v, float32(math.Inf(1))) - v)
}

// TestExpf checks Expf against math.Exp within 2 ulp over its range, and its
// edges: 0 below expMin (no subnormals), normal just above it, clamping above
// 88, NaN.
func TestExpf(t *testing.T) {
	for x := float32(expMin); x <= 88; x += 0.0137 {
		want := math.Exp(float64(x))
		if got := Expf(x); math.Abs(float64(got)-want) > 2*ulp(float32(want)) {
			t.Fatalf("Expf(%v) = %v, want %v", x, got, want)
		}
	}
	for _, x := range []float32{math.Nextafter32(expMin, -100), -88, -100, -3e38, float32(math.Inf(-1))} {
		if got := Expf(x); got != 0 {
			t.Errorf("Expf(%v) = %v, want 0 (e^x is subnormal)", x, got)
		}
	}
	if got := Expf(expMin); got < 0x1p-126 {
		t.Errorf("Expf(expMin) = %v, want a normal float32", got)
	}
	if got := Expf(float32(math.Inf(1))); got != float32(math.Exp(88)) && math.Abs(float64(got)-math.Exp(88)) > 2*ulp(float32(math.Exp(88))) {
		t.Errorf("Expf(+Inf) = %v, want e^88", got)
	}
	if got := Expf(float32(math.NaN())); got == got {
		t.Errorf("Expf(NaN) = %v, want NaN", got)
	}
}

// TestExpSubSum checks every path and length (whole blocks, tails, both)
// against float64, that the sum matches, and that a guard band after the
// slice is untouched.
func TestExpSubSum(t *testing.T) {
	const guard = 777
	rng := rand.New(rand.NewPCG(3, 4))
	for _, path := range vmathPaths() {
		for _, n := range []int{0, 1, 15, 16, 17, 33, 128, 1000} {
			buf := make([]float32, n+8)
			for i := range buf {
				buf[i] = guard
			}
			x := buf[:n]
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 20)
			}
			if n > 2 {
				x[1] = -3e38 // a masked score
			}
			orig := append([]float32(nil), x...)
			m := float32(5)
			sum := expSubSumPath(path, x, m)
			var want float64
			for i, v := range orig {
				e := 0.0
				if v-m >= expMin {
					e = math.Exp(float64(v - m))
				}
				want += e
				if math.Abs(float64(x[i])-e) > 3*ulp(float32(e)) {
					t.Fatalf("%s n=%d: e^(%v-%v) = %v, want %v", path, n, v, m, x[i], e)
				}
			}
			if math.Abs(float64(sum)-want) > 1e-5*want {
				t.Errorf("%s n=%d: sum %v, want %v", path, n, sum, want)
			}
			for i := n; i < len(buf); i++ {
				if buf[i] != guard {
					t.Fatalf("%s n=%d: guard element %d overwritten with %v", path, n, i, buf[i])
				}
			}
		}
	}
}

// TestGelu checks every path against the float64 formula with the tolerance
// of the spelled-out float32 graph (2 ulp plus |x| * 2^-24, what 1+erf loses
// to rounding), in place and out of place, with a guard band, and NaN.
func TestGelu(t *testing.T) {
	const guard = 777
	var xs []float32
	for v := float32(-12); v <= 12; v += 0.003 {
		xs = append(xs, v)
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1e4, -1e4, float32(math.Inf(1)), float32(math.Inf(-1)))
	for _, path := range vmathPaths() {
		for _, inPlace := range []bool{false, true} {
			src := append([]float32(nil), xs...)
			buf := make([]float32, len(xs)+5)
			for i := range buf {
				buf[i] = guard
			}
			dst := buf[:len(xs)]
			if inPlace {
				copy(dst, src)
				geluPath(path, dst, dst)
			} else {
				geluPath(path, dst, src)
			}
			for i, x := range xs {
				want := float32(0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2)))
				got := dst[i]
				if math.IsInf(float64(x), 0) {
					if got != want && !(got != got && want != want) {
						t.Errorf("%s: gelu(%v) = %v, want %v", path, x, got, want)
					}
					continue
				}
				if tol := 2*ulp(want) + math.Abs(float64(x))*0x1p-24; math.Abs(float64(got-want)) > tol {
					t.Fatalf("%s in place %v: gelu(%v) = %v, want %v (tolerance %g)", path, inPlace, x, got, want, tol)
				}
			}
			for i := len(xs); i < len(buf); i++ {
				if buf[i] != guard {
					t.Fatalf("%s: guard element %d overwritten", path, i)
				}
			}
		}
		nan := make([]float32, 20)
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		geluPath(path, nan, nan)
		for i, v := range nan {
			if v == v {
				t.Fatalf("%s: gelu(NaN) = %v at %d, want NaN", path, v, i)
			}
		}
	}
}

func BenchmarkGelu(b *testing.B) {
	src := make([]float32, 128*1536)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	dst := make([]float32, len(src))
	for _, path := range vmathPaths() {
		b.Run(path, func(b *testing.B) {
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				geluPath(path, dst, src)
			}
		})
	}
}

func BenchmarkExpSubSum(b *testing.B) {
	x := make([]float32, 128*128)
	for _, path := range vmathPaths() {
		b.Run(path, func(b *testing.B) {
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				expSubSumPath(path, x, 0)
			}
		})
	}
}

// TestAddScaleMax checks AddTo, Scale and Max against plain loops at lengths
// around the 16-lane blocks, with a guard band after dst, and Max's NaN flag
// wherever the NaN sits.
func TestAddScaleMax(t *testing.T) {
	const guard = 777
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 15, 16, 17, 40, 300} {
		src := make([]float32, n)
		buf := make([]float32, n+4)
		for i := range buf {
			buf[i] = guard
		}
		dst := buf[:n]
		for i := range dst {
			dst[i] = float32(rng.NormFloat64())
			src[i] = float32(rng.NormFloat64())
		}
		want := make([]float32, n)
		for i := range want {
			want[i] = (dst[i] + src[i]) * 0.25
		}
		wantMax := float32(math.Inf(-1))
		for _, v := range want {
			wantMax = max(wantMax, v)
		}
		AddTo(dst, src)
		Scale(dst, 0.25)
		for i := range dst {
			if dst[i] != want[i] {
				t.Fatalf("n=%d: (dst+src)*0.25 at %d = %v, want %v", n, i, dst[i], want[i])
			}
		}
		for i := n; i < len(buf); i++ {
			if buf[i] != guard {
				t.Fatalf("n=%d: guard element %d overwritten", n, i)
			}
		}
		if m, nan := Max(dst); m != wantMax || nan {
			t.Errorf("n=%d: Max = %v, %v; want %v, false", n, m, nan, wantMax)
		}
		for i := 0; i < n; i += 7 {
			x := append([]float32(nil), dst...)
			x[i] = float32(math.NaN())
			if _, nan := Max(x); !nan {
				t.Errorf("n=%d: Max missed a NaN at %d", n, i)
			}
		}
	}
}

// TestAddConstRelu checks AddConst, AddConstRelu, Relu and MaxZero bit for
// bit against plain loops at lengths around the 16-lane blocks, on values that
// include NaN, ±0 and ±Inf (Relu keeps NaN and -0, MaxZero makes them 0),
// with a guard band after x.
func TestAddConstRelu(t *testing.T) {
	const guard = 777
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	negZero := math.Float32frombits(1 << 31)
	special := []float32{nan, -nan, negZero, 0, inf, -inf, -1, 1}
	relu := func(v float32) float32 {
		if v < 0 {
			return 0
		}
		return v
	}
	tests := []struct {
		name string
		b    float32
		run  func(x []float32, b float32)
		want func(v, b float32) float32
	}{
		{"AddConst", 0.5, AddConst, func(v, b float32) float32 { return v + b }},
		{"AddConstRelu", -0.25, AddConstRelu, func(v, b float32) float32 { return relu(v + b) }},
		{"Relu", 0, func(x []float32, _ float32) { Relu(x) }, func(v, _ float32) float32 { return relu(v) }},
		{"MaxZero", 0, func(x []float32, _ float32) { MaxZero(x, append([]float32(nil), x...)) }, func(v, _ float32) float32 {
			if v > 0 {
				return v
			}
			return 0
		}},
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tt := range tests {
		for _, n := range []int{0, 1, 15, 16, 17, 40, 300} {
			buf := make([]float32, n+4)
			for i := range buf {
				buf[i] = guard
			}
			x := buf[:n]
			for i := range x {
				x[i] = float32(rng.NormFloat64())
				if i%5 == 0 {
					x[i] = special[i/5%len(special)]
				}
			}
			want := make([]float32, n)
			for i, v := range x {
				want[i] = tt.want(v, tt.b)
			}
			tt.run(x, tt.b)
			for i := range x {
				if math.Float32bits(x[i]) != math.Float32bits(want[i]) && !(x[i] != x[i] && want[i] != want[i]) {
					t.Fatalf("%s n=%d: element %d = %v (%#x), want %v (%#x)", tt.name, n, i, x[i], math.Float32bits(x[i]), want[i], math.Float32bits(want[i]))
				}
			}
			for i := n; i < len(buf); i++ {
				if buf[i] != guard {
					t.Fatalf("%s n=%d: guard element %d overwritten", tt.name, n, i)
				}
			}
		}
	}
}

func TestGeluRowsMatchesGelu(t *testing.T) {
	for _, cols := range []int{16, 48, 64, 7, 21} {
		rows, ld := 5, 70
		x := make([]float32, rows*ld)
		for i := range x {
			x[i] = float32(i%97)/9 - 5
		}
		want := append([]float32(nil), x...)
		for r := 0; r < rows; r++ {
			Gelu(want[r*ld:r*ld+cols], want[r*ld:r*ld+cols])
		}
		GeluRows(x, ld, rows, cols)
		for i := range x {
			if x[i] != want[i] {
				t.Fatalf("cols=%d: element %d = %v, Gelu row by row gives %v", cols, i, x[i], want[i])
			}
		}
	}
}
