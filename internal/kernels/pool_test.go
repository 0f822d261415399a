package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMaxPool2x2 checks MaxPool2x2 bit for bit against Go's max over each
// window, with NaN, ±0 and ±Inf among the inputs, row widths around the
// 16-output chunks, a row step of two rows and of three, and a guard band
// after dst.
func TestMaxPool2x2(t *testing.T) {
	const guard = -777
	nan, negZero := float32(math.NaN()), math.Float32frombits(1<<31)
	special := []float32{nan, negZero, 0, float32(math.Inf(1)), float32(math.Inf(-1))}
	rng := rand.New(rand.NewPCG(17, 18))
	for _, g := range []struct{ oh, ow, w, step int }{
		{12, 12, 24, 48}, {4, 4, 8, 16}, {1, 1, 2, 4}, {3, 16, 32, 64}, {2, 17, 35, 70}, {5, 40, 81, 243}, {3, 7, 14, 42},
		{6, 20, 40, 80}, // signed zeros only: +0 must win
	} {
		src := make([]float32, (g.oh-1)*g.step+g.w+2*g.ow)
		for i := range src {
			src[i] = float32(rng.NormFloat64())
			if rng.IntN(9) == 0 {
				src[i] = special[rng.IntN(len(special))]
			}
			if g.ow == 20 {
				src[i] = []float32{negZero, 0, -1}[rng.IntN(3)]
			}
		}
		buf := make([]float32, g.oh*g.ow+5)
		for i := range buf {
			buf[i] = guard
		}
		MaxPool2x2(buf[:g.oh*g.ow], src, g.oh, g.ow, g.w, g.step)
		for r := 0; r < g.oh; r++ {
			for c := 0; c < g.ow; c++ {
				b := r * g.step
				want := max(src[b+2*c], src[b+2*c+1], src[b+g.w+2*c], src[b+g.w+2*c+1])
				got := buf[r*g.ow+c]
				if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
					t.Fatalf("%+v: out[%d][%d] = %v (%#x), want %v (%#x)", g, r, c, got, math.Float32bits(got), want, math.Float32bits(want))
				}
			}
		}
		for i := g.oh * g.ow; i < len(buf); i++ {
			if buf[i] != guard {
				t.Fatalf("%+v: guard element %d overwritten", g, i)
			}
		}
	}
}

// TestDeinterleave2 checks Deinterleave2 against an index loop at lengths
// around the 32-float blocks, odd and even, with guard bands after both
// outputs.
func TestDeinterleave2(t *testing.T) {
	const guard = -777
	for _, n := range []int{0, 1, 2, 31, 32, 33, 64, 65, 95, 113, 224} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(i) + 0.5
		}
		even, odd := make([]float32, (n+1)/2+3), make([]float32, n/2+3)
		for i := range even {
			even[i] = guard
		}
		for i := range odd {
			odd[i] = guard
		}
		Deinterleave2(even, odd, src)
		for i, v := range even {
			if want := float32(guard); 2*i < n {
				want = src[2*i]
				if v != want {
					t.Fatalf("n=%d: even[%d] = %v, want %v", n, i, v, want)
				}
			} else if v != want {
				t.Fatalf("n=%d: even[%d] = %v past the end, want the guard", n, i, v)
			}
		}
		for i, v := range odd {
			if want := float32(guard); 2*i+1 < n {
				want = src[2*i+1]
				if v != want {
					t.Fatalf("n=%d: odd[%d] = %v, want %v", n, i, v, want)
				}
			} else if v != want {
				t.Fatalf("n=%d: odd[%d] = %v past the end, want the guard", n, i, v)
			}
		}
	}
}

// TestDeinterleave2Rows checks Deinterleave2Rows against Deinterleave2 row
// by row, for row widths around the 32-float blocks and strides wider than
// the rows, with what lies between the destination rows left as it was.
func TestDeinterleave2Rows(t *testing.T) {
	const guard = -777
	for _, c := range []struct{ rows, cols, ds, ss int }{{1, 1, 1, 1}, {3, 1, 2, 2}, {5, 14, 9, 28}, {4, 33, 20, 66}, {2, 64, 40, 70}, {6, 113, 57, 226}} {
		src := make([]float32, (c.rows-1)*c.ss+c.cols)
		for i := range src {
			src[i] = float32(i) + 0.25
		}
		size := (c.rows-1)*c.ds + (c.cols+1)/2 + 3
		even, odd := make([]float32, size), make([]float32, size)
		wantE, wantO := make([]float32, size), make([]float32, size)
		for i := range even {
			even[i], odd[i], wantE[i], wantO[i] = guard, guard, guard, guard
		}
		Deinterleave2Rows(even, odd, c.ds, src, c.ss, c.rows, c.cols)
		for r := range c.rows {
			Deinterleave2(wantE[r*c.ds:], wantO[r*c.ds:], src[r*c.ss:r*c.ss+c.cols])
		}
		for i := range even {
			if even[i] != wantE[i] || odd[i] != wantO[i] {
				t.Fatalf("%+v: [%d] even %v odd %v, want %v %v", c, i, even[i], odd[i], wantE[i], wantO[i])
			}
		}
	}
}

// TestMaxTaps checks MaxTaps against Go's max tap by tap, bit for bit, with
// NaN, ±0 and ±Inf among the inputs, for every length up to 140 (64-output
// blocks and the masked rest) and 1 to 9 taps, with guard bands around dst.
func TestMaxTaps(t *testing.T) {
	const guard = -777
	nan, negZero := float32(math.NaN()), math.Float32frombits(1<<31)
	special := []float32{nan, negZero, 0, float32(math.Inf(1)), float32(math.Inf(-1))}
	rng := rand.New(rand.NewPCG(21, 22))
	base := make([]float32, 600)
	for i := range base {
		base[i] = float32(rng.NormFloat64())
		if rng.IntN(12) == 0 {
			base[i] = special[rng.IntN(len(special))]
		}
	}
	for n := 0; n <= 140; n++ {
		offs := make([]int, 1+n%9)
		for i := range offs {
			offs[i] = rng.IntN(len(base) - n + 1)
		}
		buf := make([]float32, n+8)
		for i := range buf {
			buf[i] = guard
		}
		MaxTaps(buf[4:4+n], base, offs)
		for i, v := range buf {
			if i < 4 || i >= 4+n {
				if v != guard {
					t.Fatalf("n=%d: guard [%d] = %v", n, i-4, v)
				}
				continue
			}
			want := base[offs[0]+i-4]
			for _, o := range offs[1:] {
				want = max(want, base[o+i-4])
			}
			if math.Float32bits(v) != math.Float32bits(want) && !(v != v && want != want) {
				t.Fatalf("n=%d, %d taps: [%d] = %v, want %v", n, len(offs), i-4, v, want)
			}
		}
	}
}

// TestInterleave2 checks that Interleave2 undoes Deinterleave2 for lengths
// around the 32-float blocks, leaving what follows dst as it was.
func TestInterleave2(t *testing.T) {
	const guard = -777
	for _, n := range []int{0, 1, 2, 31, 32, 33, 64, 65, 127, 256} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(i) + 0.5
		}
		even, odd := make([]float32, (n+1)/2), make([]float32, n/2)
		Deinterleave2(even, odd, src)
		dst := make([]float32, n+3)
		for i := range dst {
			dst[i] = guard
		}
		Interleave2(dst[:n], even, odd)
		for i, v := range dst {
			want := float32(guard)
			if i < n {
				want = src[i]
			}
			if v != want {
				t.Fatalf("n=%d: dst[%d] = %v, want %v", n, i, v, want)
			}
		}
	}
}
