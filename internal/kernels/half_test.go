package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spindleml/spindle/internal/tensor"
)

// TestHalfToFloat32 widens every binary16 value, in every position of a
// vector (so each of the vector loops and the scalar tail sees it), and
// compares with the reference conversion.
func TestHalfToFloat32(t *testing.T) {
	src := make([]uint16, 1<<16+5)
	for i := range src {
		src[i] = uint16(i)
	}
	for _, off := range []int{0, 3} {
		dst := make([]float32, len(src)-off)
		HalfToFloat32(dst, src[off:])
		for i, got := range dst {
			want := tensor.HalfToFloat(src[off+i])
			if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
				t.Fatalf("half %#04x: got %v (%#08x), want %v", src[off+i], got, math.Float32bits(got), want)
			}
		}
	}
}

// TestHalfToFloatF16C checks the 8-wide F16C loop, which CPUs without
// AVX-512 take, on every half value.
func TestHalfToFloatF16C(t *testing.T) {
	if !halfF16C {
		t.Skip("no F16C on this CPU or build")
	}
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	dst := make([]float32, len(src))
	halfToFloatF16C(&dst[0], &src[0], len(src)/8)
	for i, got := range dst {
		if want := tensor.HalfToFloat(src[i]); math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Fatalf("half %#04x: got %v, want %v", src[i], got, want)
		}
	}
}

// TestSgemmHalfB runs the conformance cases with B held as binary16 values
// (rounded from the case's B, the reference recomputed for them), on every
// backend, split over threads down to row blocks: the widening packer must
// give what the float32 kernels give on the widened B.
func TestSgemmHalfB(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			failures := 0
			for _, tc := range conformanceCases() {
				pc := prepare(tc, rng)
				// The guards become NaN halves: a kernel reading past B reads NaN.
				halves := make([]uint16, len(pc.b.buf))
				for i, v := range pc.b.buf {
					halves[i] = tensor.FloatToHalf(v)
					if off := i - guard; off >= 0 && i < len(pc.b.buf)-guard && off%pc.b.ld < pc.b.cols {
						pc.b.buf[i] = tensor.HalfToFloat(halves[i])
					}
				}
				pc.ref = tc.reference(pc.a, pc.b, pc.c0)
				mode := gemmMode{"half-B", func(be *backend, tc gemmCase, a, b, c *matrix) {
					be.gemmParallel(3, 1, tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld,
						bSource{trans: tc.transB, h: halves[guard : len(halves)-guard], ldb: b.ld}, tc.beta, c.data(), c.ld)
				}}
				if err := pc.run(be, mode); err != nil {
					t.Errorf("%v: %v", tc, err)
					if failures++; failures == 10 {
						t.Fatal("too many failures")
					}
				}
			}
		})
	}
}
