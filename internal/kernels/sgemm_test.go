package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// guardBits marks floats outside a matrix (guard bands and the gap between the
// row's end and the next row's start). They are NaNs, so a kernel that reads
// one poisons its result, and their exact bits show whether anything wrote them.
const guardBits = 0x7fc0dead

// unsetBits fills the elements of a C the kernel must overwrite without reading
// (beta == 0).
const unsetBits = 0x7fc0beef

// guard is how many floats of guard band sit on each side of a matrix.
const guard = 19

// gemmCase is one multiply for the conformance suite.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	pad            int // leading dimensions exceed the row width by pad
}

func (tc gemmCase) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	return fmt.Sprintf("%s%s/m=%d,n=%d,k=%d/alpha=%g,beta=%g/pad=%d",
		t(tc.transA), t(tc.transB), tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.pad)
}

// matrix is a rows×cols matrix with row stride ld inside a guarded buffer.
type matrix struct {
	rows, cols, ld int
	buf            []float32 // guard, the matrix, guard
}

// newMatrix returns a matrix whose elements come from fill and whose every
// other float in buf holds guardBits.
func newMatrix(rows, cols, ld int, fill func() float32) *matrix {
	size := 0
	if rows > 0 && cols > 0 {
		size = (rows-1)*ld + cols
	}
	mat := &matrix{rows: rows, cols: cols, ld: ld, buf: make([]float32, size+2*guard)}
	for i := range mat.buf {
		mat.buf[i] = math.Float32frombits(guardBits)
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			mat.buf[guard+i*ld+j] = fill()
		}
	}
	return mat
}

// data is the slice a caller passes: exactly the matrix's extent.
func (mat *matrix) data() []float32 { return mat.buf[guard : len(mat.buf)-guard] }

func (mat *matrix) at(i, j int) float32 { return mat.buf[guard+i*mat.ld+j] }

func (mat *matrix) clone() *matrix {
	c := *mat
	c.buf = append([]float32(nil), mat.buf...)
	return &c
}

// checkGuards reports the first float outside the matrix whose bits changed.
func (mat *matrix) checkGuards(name string) error {
	for i, v := range mat.buf {
		off := i - guard
		inside := off >= 0 && i < len(mat.buf)-guard && off%mat.ld < mat.cols
		if !inside && math.Float32bits(v) != guardBits {
			return fmt.Errorf("%s: float %d outside the matrix (offset %d from its start) changed to %v", name, i, off, v)
		}
	}
	return nil
}

// sameBits reports the first element of mat whose bits differ from want.
func (mat *matrix) sameBits(name string, want *matrix) error {
	for i, v := range mat.buf {
		if math.Float32bits(v) != math.Float32bits(want.buf[i]) {
			return fmt.Errorf("%s: float %d changed from %v to %v", name, i, want.buf[i], v)
		}
	}
	return nil
}

// operands builds A, B and C for tc with values uniform in [-1, 1). When beta
// is 0, C holds NaNs the multiply must not read.
func (tc gemmCase) operands(rng *rand.Rand) (a, b, c *matrix) {
	uniform := func() float32 { return 2*rng.Float32() - 1 }
	if tc.transA {
		a = newMatrix(tc.k, tc.m, max(1, tc.m+tc.pad), uniform)
	} else {
		a = newMatrix(tc.m, tc.k, max(1, tc.k+tc.pad), uniform)
	}
	if tc.transB {
		b = newMatrix(tc.n, tc.k, max(1, tc.k+tc.pad), uniform)
	} else {
		b = newMatrix(tc.k, tc.n, max(1, tc.n+tc.pad), uniform)
	}
	cfill := uniform
	if tc.beta == 0 {
		cfill = func() float32 { return math.Float32frombits(unsetBits) }
	}
	c = newMatrix(tc.m, tc.n, max(1, tc.n+tc.pad+tc.pad/2), cfill)
	return a, b, c
}

// reference is the expected C for tc: a float64 result and a tolerance per
// element. The tolerance is (k+4) float32 epsilons of the magnitude sum
// |alpha|*sum|a*b| + |beta*c|, the classic bound for a recursive float32 dot
// product (Higham, Accuracy and Stability of Numerical Algorithms, §3.1) with
// slack for the final scaling.
type reference struct {
	want, tol []float64 // row-major m×n
}

func (tc gemmCase) reference(a, b, c0 *matrix) reference {
	const eps = 1.0 / (1 << 23)
	// Dense float64 copies of op(A) and op(B)ᵀ make the inner loop a plain dot.
	opA := make([]float64, tc.m*tc.k)
	opBT := make([]float64, tc.n*tc.k)
	for p := 0; p < tc.k; p++ {
		for i := 0; i < tc.m; i++ {
			if tc.transA {
				opA[i*tc.k+p] = float64(a.at(p, i))
			} else {
				opA[i*tc.k+p] = float64(a.at(i, p))
			}
		}
		for j := 0; j < tc.n; j++ {
			if tc.transB {
				opBT[j*tc.k+p] = float64(b.at(j, p))
			} else {
				opBT[j*tc.k+p] = float64(b.at(p, j))
			}
		}
	}
	ref := reference{want: make([]float64, tc.m*tc.n), tol: make([]float64, tc.m*tc.n)}
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n; j++ {
			var sum, mag float64
			if tc.alpha != 0 {
				bj := opBT[j*tc.k : (j+1)*tc.k]
				for p, av := range opA[i*tc.k : (i+1)*tc.k] {
					x := av * bj[p]
					sum += x
					mag += math.Abs(x)
				}
			}
			want := float64(tc.alpha) * sum
			mag *= math.Abs(float64(tc.alpha))
			if tc.beta != 0 {
				bc := float64(tc.beta) * float64(c0.at(i, j))
				want += bc
				mag += math.Abs(bc)
			}
			ref.want[i*tc.n+j] = want
			ref.tol[i*tc.n+j] = float64(tc.k+4) * eps * mag
		}
	}
	return ref
}

// check compares got, C after the multiply, with the reference.
func (ref reference) check(tc gemmCase, got *matrix) error {
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n; j++ {
			g, want, tol := float64(got.at(i, j)), ref.want[i*tc.n+j], ref.tol[i*tc.n+j]
			if math.IsNaN(g) || math.Abs(g-want) > tol {
				return fmt.Errorf("c[%d][%d] = %v, want %v ± %.3g", i, j, g, want, tol)
			}
		}
	}
	return nil
}

// gemmMode is one way to reach the kernels.
type gemmMode struct {
	name string
	run  func(be *backend, tc gemmCase, a, b, c *matrix)
}

var gemmModes = []gemmMode{
	{"pack-per-call", func(be *backend, tc gemmCase, a, b, c *matrix) {
		pack := *be
		pack.directRows = 0
		pack.gemm(tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, bSource{trans: tc.transB, b: b.data(), ldb: b.ld}, tc.beta, c.data(), c.ld)
	}},
	{"direct", func(be *backend, tc gemmCase, a, b, c *matrix) {
		// Plain B read in place whatever m is (a transposed B is still packed).
		direct := *be
		direct.directRows = math.MaxInt
		direct.gemm(tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, bSource{trans: tc.transB, b: b.data(), ldb: b.ld}, tc.beta, c.data(), c.ld)
	}},
	{"packed", func(be *backend, tc gemmCase, a, b, c *matrix) {
		// Pack into a guarded buffer so a kernel reading past the packed
		// panels reads NaN.
		size := PackedBSize(tc.k, tc.n)
		buf := make([]float32, size+guard)
		for i := range buf {
			buf[i] = math.Float32frombits(guardBits)
		}
		pb := PackBInto(buf[:size], tc.transB, tc.k, tc.n, b.data(), b.ld)
		be.gemm(tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, bSource{packed: pb}, tc.beta, c.data(), c.ld)
	}},
	{"parallel", func(be *backend, tc gemmCase, a, b, c *matrix) {
		// minFlops 1 so that even small cases split, down to row blocks.
		be.gemmParallel(3, 1, tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, bSource{trans: tc.transB, b: b.data(), ldb: b.ld}, tc.beta, c.data(), c.ld)
	}},
	{"indirect", func(be *backend, tc gemmCase, a, b, c *matrix) {
		src, offs := scatterRows(tc, b)
		be.gemm(tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, bSource{b: src, offs: offs}, tc.beta, c.data(), c.ld)
	}},
	{"indirect-parallel", func(be *backend, tc gemmCase, a, b, c *matrix) {
		src, offs := scatterRows(tc, b)
		be.gemmParallel(3, 1, tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, bSource{b: src, offs: offs}, tc.beta, c.data(), c.ld)
	}},
	{"packed-parallel", func(be *backend, tc gemmCase, a, b, c *matrix) {
		pb := PackB(tc.transB, tc.k, tc.n, b.data(), b.ld)
		be.gemmParallel(2, 1, tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, bSource{packed: pb}, tc.beta, c.data(), c.ld)
	}},
	{"packed-A", func(be *backend, tc gemmCase, a, b, c *matrix) {
		pa := be.packAll(tc.transA, tc.m, tc.k, a.data(), a.ld)
		be.gemmA(pa, tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, bSource{trans: tc.transB, b: b.data(), ldb: b.ld}, tc.beta, c.data(), c.ld)
	}},
	{"packed-A-and-B-parallel", func(be *backend, tc gemmCase, a, b, c *matrix) {
		// Column blocks take A's blocks from pa; row blocks pack from its source.
		pa := be.packAll(tc.transA, tc.m, tc.k, a.data(), a.ld)
		pb := PackB(tc.transB, tc.k, tc.n, b.data(), b.ld)
		be.gemmParallelA(3, 1, pa, tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, bSource{packed: pb}, tc.beta, c.data(), c.ld)
	}},
	{"packed-A-indirect", func(be *backend, tc gemmCase, a, b, c *matrix) {
		pa := be.packAll(tc.transA, tc.m, tc.k, a.data(), a.ld)
		src, offs := scatterRows(tc, b)
		be.gemmA(pa, tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, bSource{b: src, offs: offs}, tc.beta, c.data(), c.ld)
	}},
}

// scatterRows lays the k rows of op(B) out for the indirect kernels: in
// reverse order, each followed by guard NaNs (so a kernel reading past a
// row's n columns poisons its result), and returns the buffer and each
// row's offset in it.
func scatterRows(tc gemmCase, b *matrix) ([]float32, []int) {
	gap := 5
	src := make([]float32, tc.k*(tc.n+gap)+gap)
	for i := range src {
		src[i] = math.Float32frombits(guardBits)
	}
	offs := make([]int, tc.k)
	for p := 0; p < tc.k; p++ {
		offs[p] = gap + (tc.k-1-p)*(tc.n+gap)
		for j := 0; j < tc.n; j++ {
			if tc.transB {
				src[offs[p]+j] = b.at(j, p)
			} else {
				src[offs[p]+j] = b.at(p, j)
			}
		}
	}
	return src, offs
}

// preparedCase is a case with its operands and reference answer, built
// once and run by every backend and mode.
type preparedCase struct {
	gemmCase
	a, b, c0 *matrix
	ref      reference
}

func prepare(tc gemmCase, rng *rand.Rand) *preparedCase {
	a, b, c0 := tc.operands(rng)
	return &preparedCase{gemmCase: tc, a: a, b: b, c0: c0, ref: tc.reference(a, b, c0)}
}

// run runs the case in mode on be and reports the first violation. A and B
// are passed as prepared, so a kernel writing to them fails here and taints
// later runs, which is fine: the first failure is the one to read.
func (pc *preparedCase) run(be *backend, mode gemmMode) error {
	a, b, c := pc.a.clone(), pc.b.clone(), pc.c0.clone()
	mode.run(be, pc.gemmCase, a, b, c)
	if err := a.sameBits("a", pc.a); err != nil {
		return err
	}
	if err := b.sameBits("b", pc.b); err != nil {
		return err
	}
	if err := c.checkGuards("c"); err != nil {
		return err
	}
	return pc.ref.check(pc.gemmCase, c)
}

// conformanceCases sweeps the edge sizes: every m, n, k combination of small
// and ragged sizes under a work cap, with transposes, scalars and padding
// drawn at random from a fixed seed, then the full scalar×transpose product
// on a ragged shape and a few shapes that cross every blocking boundary
// (kc, mc, ncBlock and the 8/16/32-column kernel widths).
func conformanceCases() []gemmCase {
	sizes := []int{0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 64, 100, 257}
	scalars := []float32{0, 1, -0.5, 2}
	rng := rand.New(rand.NewPCG(1, 2))
	var cases []gemmCase
	for _, m := range sizes {
		for _, n := range sizes {
			for _, k := range sizes {
				if m*n*k > 60000 {
					continue
				}
				cases = append(cases, gemmCase{
					transA: rng.IntN(2) == 1, transB: rng.IntN(2) == 1,
					m: m, n: n, k: k,
					alpha: scalars[rng.IntN(4)], beta: scalars[rng.IntN(4)],
					pad: []int{0, 0, 3, 17}[rng.IntN(4)],
				})
			}
		}
	}
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for _, alpha := range scalars {
				for _, beta := range scalars {
					cases = append(cases, gemmCase{transA: ta, transB: tb, m: 17, n: 33, k: 31, alpha: alpha, beta: beta, pad: 2})
				}
			}
			for i, s := range [][3]int{{257, 257, 257}, {30, 100, 600}, {300, 40, 520}, {3, 4100, 5}, {16, 72, 300}} {
				cases = append(cases, gemmCase{transA: ta, transB: tb, m: s[0], n: s[1], k: s[2],
					alpha: scalars[(i+1)%4], beta: scalars[(i+2)%4], pad: i % 3})
			}
		}
	}
	return cases
}

// TestSgemmConformance runs the conformance suite on every backend this build
// and CPU offer, through every entry point.
func TestSgemmConformance(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var cases []*preparedCase
	for _, tc := range conformanceCases() {
		cases = append(cases, prepare(tc, rng))
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			for _, mode := range gemmModes {
				t.Run(mode.name, func(t *testing.T) {
					failures := 0
					for _, pc := range cases {
						if err := pc.run(be, mode); err != nil {
							t.Errorf("%v: %v", pc.gemmCase, err)
							if failures++; failures == 10 {
								t.Fatal("too many failures")
							}
						}
					}
				})
			}
		})
	}
}

// TestBackends checks the backend table itself: the CPU's best family comes
// first, the portable one is always there, and every kernel slot is filled.
func TestBackends(t *testing.T) {
	if backends[0] != active || Backend() != active.name {
		t.Errorf("active backend %q is not the first of %d", Backend(), len(backends))
	}
	if last := backends[len(backends)-1]; last != goBackend {
		t.Errorf("last backend is %q, want the portable go backend", last.name)
	}
	for _, be := range backends {
		if len(be.kernels) != len(be.widths) {
			t.Errorf("%s: %d kernel rows for %d widths", be.name, len(be.kernels), len(be.widths))
		}
		for wi, w := range be.widths {
			if w != 8 && w != 16 && w != 32 || wi > 0 && w >= be.widths[wi-1] {
				t.Errorf("%s: widths %v are not descending values of 8, 16 or 32", be.name, be.widths)
			}
			if len(be.kernels[wi]) != be.mr {
				t.Errorf("%s: width %d has %d kernels, want mr=%d", be.name, w, len(be.kernels[wi]), be.mr)
			}
			for r, kern := range be.kernels[wi] {
				if kern == nil {
					t.Errorf("%s: no kernel for %d×%d", be.name, r+1, w)
				}
			}
		}
	}
}

// TestPackedBLayout pins the documented layout, which files may store.
func TestPackedBLayout(t *testing.T) {
	tests := []struct {
		name   string
		transB bool
		k, n   int
		ldb    int
	}{
		{"exact panels", false, 3, 32, 32},
		{"ragged", false, 5, 21, 23},
		{"transposed ragged", true, 4, 17, 6},
		{"one column", true, 7, 1, 7},
		{"empty", false, 0, 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, cols := tt.k, tt.n
			if tt.transB {
				rows, cols = tt.n, tt.k
			}
			b := make([]float32, max(0, (rows-1)*tt.ldb+cols))
			for i := range b {
				b[i] = float32(i + 1) // nonzero, so padding zeros stand out
			}
			// Pack into a dirty buffer: padding must be written as zeros,
			// and the floats past PackedBSize left alone.
			size := PackedBSize(tt.k, tt.n)
			dst := make([]float32, size+guard)
			for i := range dst {
				dst[i] = math.Float32frombits(guardBits)
			}
			pb := PackBInto(dst, tt.transB, tt.k, tt.n, b, tt.ldb)
			for i, v := range dst[size:] {
				if math.Float32bits(v) != guardBits {
					t.Errorf("float %d past the packed matrix changed to %v", size+i, v)
				}
			}
			if got, want := len(pb.Data()), (tt.n+15)/16*16*tt.k; got != want || PackedBSize(tt.k, tt.n) != want {
				t.Fatalf("packed size %d, PackedBSize %d, want %d", got, PackedBSize(tt.k, tt.n), want)
			}
			for p := 0; p < tt.k; p++ {
				for j := 0; j < (tt.n+15)/16*16; j++ {
					var want float32
					switch {
					case j >= tt.n:
					case tt.transB:
						want = b[j*tt.ldb+p]
					default:
						want = b[p*tt.ldb+j]
					}
					if got := pb.Data()[j/16*tt.k*16+p*16+j%16]; got != want {
						t.Errorf("op(B)[%d][%d] packed as %v, want %v", p, j, got, want)
					}
				}
			}
			view := PackedBFromSlice(tt.k, tt.n, pb.Data())
			if view.K() != tt.k || view.N() != tt.n || len(view.Data()) > 0 && &view.Data()[0] != &pb.Data()[0] {
				t.Errorf("PackedBFromSlice(%d, %d) is %d×%d or copied the data", tt.k, tt.n, view.K(), view.N())
			}
		})
	}
}

// TestPublicEntryPoints runs the exported functions, which use the active
// backend, on one shape that every entry point must agree on.
func TestPublicEntryPoints(t *testing.T) {
	tc := gemmCase{transA: true, m: 40, n: 70, k: 300, alpha: 2, beta: -0.5, pad: 1}
	rng := rand.New(rand.NewPCG(5, 6))
	calls := []struct {
		name string
		run  func(a, b, c *matrix)
	}{
		{"Sgemm", func(a, b, c *matrix) {
			Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, b.data(), b.ld, tc.beta, c.data(), c.ld)
		}},
		{"SgemmPacked", func(a, b, c *matrix) {
			SgemmPacked(tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, PackB(tc.transB, tc.k, tc.n, b.data(), b.ld), tc.beta, c.data(), c.ld)
		}},
		{"SgemmParallel", func(a, b, c *matrix) {
			SgemmParallel(2, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, b.data(), b.ld, tc.beta, c.data(), c.ld)
		}},
		{"SgemmPackedParallel", func(a, b, c *matrix) {
			SgemmPackedParallel(4, tc.transA, tc.m, tc.n, tc.k, tc.alpha, a.data(), a.ld, PackB(tc.transB, tc.k, tc.n, b.data(), b.ld), tc.beta, c.data(), c.ld)
		}},
	}
	for _, call := range calls {
		t.Run(call.name, func(t *testing.T) {
			pc := prepare(tc, rng)
			a, b, c := pc.a.clone(), pc.b.clone(), pc.c0.clone()
			call.run(a, b, c)
			if err := c.checkGuards("c"); err != nil {
				t.Error(err)
			}
			if err := pc.ref.check(tc, c); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSgemmPanics checks that programmer errors panic with the package's
// prefix instead of reading out of bounds.
func TestSgemmPanics(t *testing.T) {
	buf := make([]float32, 100)
	tests := []struct {
		name string
		call func()
		want string
	}{
		{"negative m", func() { Sgemm(false, false, -1, 2, 2, 1, buf, 2, buf, 2, 0, buf, 2) }, "negative size"},
		{"lda below k", func() { Sgemm(false, false, 2, 2, 3, 1, buf, 2, buf, 2, 0, buf, 2) }, "lda=2"},
		{"ldb below n when transposed k", func() { Sgemm(false, true, 2, 2, 3, 1, buf, 3, buf, 2, 0, buf, 2) }, "ldb=2"},
		{"short a", func() { Sgemm(false, false, 2, 2, 3, 1, buf[:5], 3, buf, 2, 0, buf, 2) }, "a has 5 floats"},
		{"short c", func() { Sgemm(false, false, 3, 4, 3, 1, buf, 3, buf, 4, 0, buf[:11], 4) }, "c has 11 floats"},
		{"ldc zero on empty", func() { Sgemm(false, false, 0, 0, 0, 1, nil, 1, nil, 1, 0, nil, 0) }, "ldc=0"},
		{"packed shape", func() { SgemmPacked(false, 2, 2, 3, 1, buf, 3, PackB(false, 3, 4, buf, 4), 0, buf, 2) }, "PackedB is 3×4"},
		{"nil packed", func() { SgemmPacked(false, 2, 2, 3, 1, buf, 3, nil, 0, buf, 2) }, "nil PackedB"},
		{"short pack dst", func() { PackBInto(buf[:10], false, 2, 17, buf, 17) }, "dst has 10 floats"},
		{"wrong slice", func() { PackedBFromSlice(2, 17, buf[:63]) }, "have 63 floats, need 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "kernels: ") || !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q, want a kernels: panic containing %q", msg, tt.want)
				}
			}()
			tt.call()
		})
	}
}

// TestSgemmNoAllocs checks that steady-state calls reuse pooled buffers.
func TestSgemmNoAllocs(t *testing.T) {
	const m, n, k = 20, 50, 300
	a, b, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
	pb := PackB(false, k, n, b, n)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			plain := testing.AllocsPerRun(20, func() {
				be.gemm(false, m, n, k, 1, a, k, bSource{b: b, ldb: n}, 0, c, n)
			})
			packed := testing.AllocsPerRun(20, func() {
				be.gemm(false, m, n, k, 1, a, k, bSource{packed: pb}, 1, c, n)
			})
			if plain != 0 || packed != 0 {
				t.Errorf("allocations per call: plain %v, packed %v, want 0", plain, packed)
			}
		})
	}
}

// TestPackARows checks packARows (the AVX-512 transposes where the CPU has
// them, the Go loops for the rest) against the reference loop for every
// panel height up to 16 and depths around the 8- and 16-column blocks, with
// a guard band after the packed panel.
func TestPackARows(t *testing.T) {
	const guard = -777
	rng := rand.New(rand.NewPCG(9, 10))
	for rows := 1; rows <= 16; rows++ {
		for _, kb := range []int{1, 7, 8, 15, 16, 17, 24, 40, 256} {
			lda := kb + 3
			a := make([]float32, rows*lda)
			for i := range a {
				a[i] = float32(rng.NormFloat64())
			}
			d := make([]float32, rows*kb+5)
			for i := range d {
				d[i] = guard
			}
			packARows(a, lda, rows, kb, d)
			for p := 0; p < kb; p++ {
				for r := 0; r < rows; r++ {
					if got, want := d[p*rows+r], a[r*lda+p]; got != want {
						t.Fatalf("rows=%d kb=%d: d[%d*%d+%d] = %v, want a[%d][%d] = %v", rows, kb, p, rows, r, got, r, p, want)
					}
				}
			}
			for i := rows * kb; i < len(d); i++ {
				if d[i] != guard {
					t.Fatalf("rows=%d kb=%d: guard element %d overwritten", rows, kb, i)
				}
			}
		}
	}
}

// TestSgemmIndirectChecksRows checks that SgemmIndirect refuses row offsets
// that would read outside b, before any kernel runs.
func TestSgemmIndirectChecksRows(t *testing.T) {
	a, c := make([]float32, 2*3), make([]float32, 2*4)
	b := make([]float32, 10)
	tests := []struct {
		name string
		offs []int
		want string
	}{
		{"negative offset", []int{0, -1, 2}, "row 1 at offset -1"},
		{"row past the end", []int{0, 7, 2}, "row 1 at offset 7"},
		{"too few offsets", []int{0, 1}, "2 row offsets for 3 rows"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.Contains(msg, tt.want) {
					t.Errorf("%s: panic %v, want one containing %q", tt.name, r, tt.want)
				}
			}()
			SgemmIndirect(2, 4, 3, 1, a, 3, b, tt.offs, 0, c, 4)
		}()
	}
	// The last row may end exactly at b's end.
	SgemmIndirect(2, 4, 3, 1, a, 3, b, []int{0, 6, 3}, 0, c, 4)
}
