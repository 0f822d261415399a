package kernels

// microKernel computes one tile of C from an A panel and B rows, with no
// bounds checks. For r < mr and j < width (both fixed per kernel):
//
//	var s float32 // accumulated in the kernel's own order, with FMA where it has one
//	for p := 0; p < k; p++ {
//		s += a[p*mr+r] * b[(j/PanelWidth)*bstride+p*brow+j%PanelWidth]
//	}
//	if beta == 0 {
//		c[r*ldc+j] = alpha * s // c is not read: it may hold NaN
//	} else {
//		c[r*ldc+j] = alpha*s + beta*c[r*ldc+j]
//	}
//
// a is an A panel of k rows of mr values. b holds width/PanelWidth column
// panels bstride floats apart (a kernel narrower than a panel reads its first
// width columns), each k rows of PanelWidth floats brow apart: a packed B has
// brow = PanelWidth, while a plain row-major B is read in place with brow = ldb
// and bstride = PanelWidth. c is the tile's top-left element. k is at least 1.
type microKernel func(k int, a, b *float32, bstride, brow int, c *float32, ldc int, alpha, beta float32)

// indirectKernel is a microKernel whose B rows are found through a table of
// offsets rather than a stride, with width contiguous columns each:
//
//	s += a[p*mr+r] * b[offs[p]+j]
//
// in place of the B term above. It reads B where the caller's data lies, as
// a convolution's input planes lie (SgemmIndirect).
type indirectKernel func(k int, a, b *float32, offs *int, c *float32, ldc int, alpha, beta float32)

// backend is one family of microkernels and the blocking sizes tuned for it.
type backend struct {
	name string
	// mr is the most rows a kernel handles; kernels[w][r-1] handles r rows.
	mr int
	// mc is the most rows of A packed at once: mc×kc floats should sit in L2.
	mc int
	// kc is the depth of one packed block: a kc×width B tile should sit in L1.
	kc int
	// A plain, untransposed B is read in place rather than packed when C has
	// at most directRows rows, or when B's row stride in bytes has no power
	// of two factor above directAlign. Packing costs a pass over B; reading in
	// place costs cache misses when the rows of a kc-deep slab crowd into
	// few cache sets, which strides of many KiB (n = 1024, 2048, 3072)
	// do and odd strides do not.
	directRows, directAlign int
	// widths are the kernel widths, widest first. Each is 8, 16 or 32, and one
	// of 16 or 32 columns is a multiple of every width.
	widths  []int
	kernels [][]microKernel
	// indirect[w][r-1] is the indirectKernel for r rows and width widths[w];
	// nil when the backend has none (B is then gathered into packed panels).
	indirect [][]indirectKernel
}

// backends lists the backends this build and CPU can run, fastest first.
// active is backends[0]; tests run every entry.
var backends = availableBackends()

// active is the backend Sgemm and SgemmPacked use.
var active = backends[0]

// Backend names the microkernel family in use: "avx512", "avx2" or "go".
func Backend() string { return active.name }
