package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/tensor"
)

func init() {
	register("Conv", newConv)
	register("MaxPool", newMaxPool)
	register("AveragePool", newAveragePool)
	register("LpPool", newAveragePool)
	register("GlobalAveragePool", func(n *Node) (Kernel, error) { return newGlobalPool(n, false) })
	register("GlobalLpPool", func(n *Node) (Kernel, error) { return newGlobalPool(n, false) })
	register("GlobalMaxPool", func(n *Node) (Kernel, error) { return newGlobalPool(n, true) })
	register("ConvTranspose", newConvTranspose)
	register("Hardmax", newHardmax)
	register("DepthToSpace", func(n *Node) (Kernel, error) { return newDepthSpace(n, false) })
	register("SpaceToDepth", func(n *Node) (Kernel, error) { return newDepthSpace(n, true) })
	register("Gemm", newGemm)
	register("MatMul", newMatMul)
	register("Softmax", func(n *Node) (Kernel, error) { return newSoftmax(n, false) })
	register("LogSoftmax", func(n *Node) (Kernel, error) { return newSoftmax(n, true) })
}

// windowAttrs are the sliding-window attributes Conv and MaxPool share.
type windowAttrs struct {
	autoPad   string
	kernel    []int64 // empty: Conv takes it from W
	strides   []int64
	dilations []int64
	pads      []int64
	ceil      bool
}

func readWindowAttrs(n *Node) (windowAttrs, error) {
	a := windowAttrs{
		autoPad:   n.String("auto_pad", "NOTSET"),
		kernel:    n.Ints("kernel_shape", nil),
		strides:   n.Ints("strides", nil),
		dilations: n.Ints("dilations", nil),
		pads:      n.Ints("pads", nil),
		ceil:      n.Int("ceil_mode", 0) != 0,
	}
	switch a.autoPad {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		return a, fmt.Errorf("attribute auto_pad: %q, must be NOTSET, SAME_UPPER, SAME_LOWER or VALID", a.autoPad)
	}
	if a.autoPad != "NOTSET" && len(a.pads) > 0 {
		return a, fmt.Errorf("attribute pads: cannot be set together with auto_pad=%s", a.autoPad)
	}
	for _, l := range []struct {
		name string
		v    []int64
		min  int64
	}{{"kernel_shape", a.kernel, 1}, {"strides", a.strides, 1}, {"dilations", a.dilations, 1}, {"pads", a.pads, 0}} {
		for i, v := range l.v {
			if v < l.min {
				return a, fmt.Errorf("attribute %s: entry %d is %d, must be >= %d", l.name, i, v, l.min)
			}
		}
	}
	if len(a.pads)%2 != 0 {
		return a, fmt.Errorf("attribute pads: %d entries, must be 2 per spatial axis", len(a.pads))
	}
	return a, nil
}

// geometry returns the output size and leading padding of each spatial axis for
// input sizes in and kernel sizes k (ONNX Conv/MaxPool spec, auto_pad rules from
// the operator docs). With ceil_mode a last window that would start inside the
// trailing padding is dropped, as PyTorch and onnxruntime do.
func (a *windowAttrs) geometry(in []int, k []int64) (out, padBegin, padEnd []int, err error) {
	nd := len(in)
	if len(k) != nd {
		return nil, nil, nil, fmt.Errorf("kernel_shape %v: %d entries, the input has %d spatial axes", k, len(k), nd)
	}
	get := func(name string, v []int64, def int64, i int, want int) (int, error) {
		if len(v) == 0 {
			return int(def), nil
		}
		if len(v) != want {
			return 0, fmt.Errorf("attribute %s: %d entries, want %d for %d spatial axes", name, len(v), want, nd)
		}
		return int(v[i]), nil
	}
	out = make([]int, nd)
	padBegin = make([]int, nd)
	padEnd = make([]int, nd)
	for i := 0; i < nd; i++ {
		s, err := get("strides", a.strides, 1, i, nd)
		if err != nil {
			return nil, nil, nil, err
		}
		d, err := get("dilations", a.dilations, 1, i, nd)
		if err != nil {
			return nil, nil, nil, err
		}
		ek := (int(k[i])-1)*d + 1
		switch a.autoPad {
		case "NOTSET", "VALID":
			pb, pe := 0, 0
			if a.autoPad == "NOTSET" {
				if pb, err = get("pads", a.pads, 0, i, 2*nd); err != nil {
					return nil, nil, nil, err
				}
				if pe, err = get("pads", a.pads, 0, nd+i, 2*nd); err != nil {
					return nil, nil, nil, err
				}
			}
			span := in[i] + pb + pe - ek
			if span < 0 {
				return nil, nil, nil, fmt.Errorf("spatial axis %d: input size %d plus padding %d+%d is smaller than the dilated kernel %d", i, in[i], pb, pe, ek)
			}
			o := span/s + 1
			if a.ceil {
				o = (span+s-1)/s + 1
				if (o-1)*s >= in[i]+pb {
					o--
				}
			}
			out[i], padBegin[i], padEnd[i] = o, pb, pe
		default: // SAME_UPPER, SAME_LOWER
			o := (in[i] + s - 1) / s
			total := max(0, (o-1)*s+ek-in[i])
			pb := total / 2
			if a.autoPad == "SAME_LOWER" {
				pb = (total + 1) / 2
			}
			out[i], padBegin[i], padEnd[i] = o, pb, total-pb
		}
	}
	return out, padBegin, padEnd, nil
}

// geom3 is a window geometry padded to three spatial axes (D, H, W) so that one
// loop nest serves 1-D, 2-D and 3-D ops; missing leading axes have size 1,
// kernel 1, stride 1, dilation 1 and no padding.
type geom3 struct {
	in, out, k, s, d, p [3]int
}

func newGeom3(a *windowAttrs, in []int, k []int64, out, padBegin []int) geom3 {
	var g geom3
	off := 3 - len(in)
	for i := 0; i < 3; i++ {
		g.in[i], g.out[i], g.k[i], g.s[i], g.d[i] = 1, 1, 1, 1, 1
	}
	for i := range in {
		j := i + off
		g.in[j], g.out[j], g.k[j], g.p[j] = in[i], out[i], int(k[i]), padBegin[i]
		if len(a.strides) > 0 {
			g.s[j] = int(a.strides[i])
		}
		if len(a.dilations) > 0 {
			g.d[j] = int(a.dilations[i])
		}
	}
	return g
}

func (g *geom3) inSize() int  { return g.in[0] * g.in[1] * g.in[2] }
func (g *geom3) outSize() int { return g.out[0] * g.out[1] * g.out[2] }
func (g *geom3) kSize() int   { return g.k[0] * g.k[1] * g.k[2] }

// pointwise reports whether the window is a 1×1 kernel with stride 1 and no
// padding, where im2col is the identity.
func (g *geom3) pointwise() bool {
	for i := 0; i < 3; i++ {
		if g.k[i] != 1 || g.s[i] != 1 || g.p[i] != 0 || g.in[i] != g.out[i] {
			return false
		}
	}
	return true
}

// newConv implements Conv for 1-D to 3-D float32 inputs: X [N C ...], W [M C/group
// k...], optional B [M]. Each image and group is one im2col plus one gemmF32.
func newConv(n *Node) (Kernel, error) {
	a, err := readWindowAttrs(n)
	if err != nil {
		return nil, err
	}
	group := int(n.Int("group", 1))
	if group < 1 {
		return nil, fmt.Errorf("attribute group: %d, must be >= 1", group)
	}
	pw := n.packConvWeight(group)
	// conv returns ok false, and computes nothing, only when pool is set and
	// the convolution cannot pool its output itself (see convIndirect).
	conv := func(threads int, in []*tensor.Tensor, act convAct, pool bool, bind func(*tensor.Tensor) postFunc) (_ []*tensor.Tensor, ok bool, _ error) {
		if err := checkInputs(in, 2, 3); err != nil {
			return nil, false, err
		}
		x, w := in[0], in[1]
		r, err := checkConvXW(n.OpType, x, w)
		if err != nil {
			return nil, false, err
		}
		N, C, M := x.Shape[0], x.Shape[1], w.Shape[0]
		if C%group != 0 || w.Shape[1]*group != C {
			return nil, false, fmt.Errorf("input W: shape %s: channels %d × group %d must equal X's channels %d", tensor.ShapeString(w.Shape), w.Shape[1], group, C)
		}
		if M%group != 0 {
			return nil, false, fmt.Errorf("input W: %d output channels are not divisible by group %d", M, group)
		}
		k := make([]int64, r-2)
		for i := range k {
			k[i] = int64(w.Shape[2+i])
		}
		if len(a.kernel) > 0 {
			if len(a.kernel) != len(k) {
				return nil, false, fmt.Errorf("attribute kernel_shape %v: %d entries, W has %d spatial axes", a.kernel, len(a.kernel), len(k))
			}
			for i := range k {
				if a.kernel[i] != k[i] {
					return nil, false, fmt.Errorf("attribute kernel_shape %v does not match W's shape %s", a.kernel, tensor.ShapeString(w.Shape))
				}
			}
		}
		var bias []float32
		if len(in) > 2 && in[2] != nil {
			b := in[2]
			if b.DType != tensor.Float32 || len(b.Shape) != 1 || b.Shape[0] != M {
				return nil, false, fmt.Errorf("input B: %s, must be float32[%d]", b, M)
			}
			bias = b.F32
		}
		outSp, padBegin, _, err := a.geometry(x.Shape[2:], k)
		if err != nil {
			return nil, false, err
		}
		g := newGeom3(&a, x.Shape[2:], k, outSp, padBegin)
		Cg, Mg := C/group, M/group
		P, K := g.outSize(), Cg*g.kSize()
		pointwise := g.pointwise()
		indirect := !pointwise && useIndirect(&g)
		yShape := append([]int{N, M}, outSp...)
		if pool {
			if !indirect || len(outSp) != 2 || outSp[0]%2 != 0 || outSp[1]%2 != 0 {
				return nil, false, nil
			}
			yShape = []int{N, M, outSp[0] / 2, outSp[1] / 2}
			P /= 4
		}
		y := newF32Dirty(yShape...) // every path writes every output element
		if bind != nil {
			act.post = bind(y)
		}
		var ic *kernels.Im2col
		if !pointwise && !indirect && usePanels(&g) {
			ic = kernels.NewIm2col(Cg, g.in[1], g.in[2], g.k[1], g.k[2], g.d[1], g.d[2])
		}
		depthwise := group == C && M == C && len(outSp) <= 2 && !pool && g.k[0] == 1 && !noDepthwise
		pa := pw.of(w, Mg, K)
		image := func(img int, threads int) {
			if depthwise {
				xs := x.F32[img*C*g.inSize() : (img+1)*C*g.inSize()]
				convDepthwise(threads, &g, xs, C, w.F32, y.F32[img*M*P:(img+1)*M*P], bias, act)
				return
			}
			for gi := 0; gi < group; gi++ {
				xs := x.F32[(img*C+gi*Cg)*g.inSize() : (img*C+(gi+1)*Cg)*g.inSize()]
				ys := y.F32[(img*M+gi*Mg)*P : (img*M+(gi+1)*Mg)*P]
				wg := w.F32[gi*Mg*K : (gi+1)*Mg*K]
				var bg []float32
				if bias != nil {
					bg = bias[gi*Mg : (gi+1)*Mg]
				}
				if pointwise {
					// The input planes are the im2col matrix already. In
					// bands of columns, so that the epilogue runs on each
					// band of output while it is in cache; the bands are
					// shared among the threads (one barrier, not one per
					// band), or, when there are fewer bands than threads,
					// each band's multiply is.
					const band = 512
					mul := func(threads, j0, nb int) {
						if pa != nil {
							kernels.SgemmPackedAParallel(threads, pa, nb, 1, xs[j0:], P, 0, ys[j0:], P)
							return
						}
						gemmF32Par(threads, false, false, Mg, nb, K, 1, wg, K, xs[j0:], P, 0, ys[j0:], P)
					}
					if bg == nil && !act.any() {
						mul(threads, 0, P)
						continue
					}
					bands := (P + band - 1) / band
					inner := 1
					if bands < threads {
						inner = threads
					}
					parallelFor(threads/inner, bands, 1, func(lo, hi int) {
						for b := lo; b < hi; b++ {
							j0 := b * band
							nb := min(band, P-j0)
							mul(inner, j0, nb)
							biasRelu(ys, P, j0, nb, bg, act)
						}
					})
					continue
				}
				if indirect {
					convIndirect(threads, &g, xs, Cg, wg, pa, Mg, ys, bg, act, pool)
					continue
				}
				convGemm(threads, &g, ic, xs, Cg, wg, pa, Mg, ys, bg, act)
			}
		}
		if threads > 1 && N > 1 {
			// Whole images per goroutine.
			parallelFor(threads, N, 1, func(lo, hi int) {
				for img := lo; img < hi; img++ {
					image(img, 1)
				}
			})
		} else {
			for img := 0; img < N; img++ {
				image(img, threads)
			}
		}
		return []*tensor.Tensor{y}, true, nil
	}
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		outs, _, err := conv(threads, in, convAct{}, false, nil)
		return outs, err
	}
	n.reluThreaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		outs, _, err := conv(threads, in, actReluConv, false, nil)
		return outs, err
	}
	n.reluPool = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, bool, error) {
		return conv(threads, in, actReluConv, true, nil)
	}
	n.clipThreaded = func(lo, hi float32) threadedKernel {
		return func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
			outs, _, err := conv(threads, in, convAct{clip: true, lo: lo, hi: hi}, false, nil)
			return outs, err
		}
	}
	n.epiThreaded = func(threads int, in []*tensor.Tensor, bind func(*tensor.Tensor) postFunc) ([]*tensor.Tensor, error) {
		outs, _, err := conv(threads, in, convAct{}, false, bind)
		return outs, err
	}
	n.fresh = true
	return withThreads(n.threaded, 1), nil
}

// dwPhaseBufs and dwFlatBufs keep convDepthwise's buffers between calls,
// apart from convBufs' larger ones (one pool of mixed sizes drops a small
// buffer whenever a large one is asked for).
var dwPhaseBufs, dwFlatBufs sync.Pool

// poolBuf returns a buffer of n floats from p, allocating when p has none
// large enough.
func poolBuf(p *sync.Pool, n int) *[]float32 {
	if bp, ok := p.Get().(*[]float32); ok && cap(*bp) >= n {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]float32, n)
	return &b
}

// noDepthwise sends depthwise convolutions through the grouped path, for
// benchmarks that compare the two.
var noDepthwise = false

// phasePlanes is how a windowed op over one 2-D plane (a depthwise
// convolution, a max pool) reads its input: copied once into padded phase
// planes, plane (r, p) holding the padded rows r, r+SH, ... and columns p,
// p+SW, ... (one plane when the stride is 1), so that tap (kh, kw) of output
// (oh, ow) reads plane ((kh*DH)%SH, (kw*DW)%SW) at row oh + (kh*DH)/SH,
// column ow + (kw*DW)/SW. Read as one flat row, a plane Pw columns wide
// gives output (oh, ow) at oh*Pw + ow and every tap the same offset, so a
// whole plane is one pass of a kernel over the taps, whatever its size (a
// 7x7 map costs one call, not seven masked ones); the Pw-OW columns between
// output rows are computed and dropped.
type phasePlanes struct {
	g       *geom3
	Pw      int   // columns of a phase plane
	plane   int   // floats of a phase plane
	offs    []int // each tap's offset, kh-major
	flatLen int   // outputs and the dropped columns between them
}

func newPhasePlanes(g *geom3) *phasePlanes {
	H, W, OH, OW := g.in[1], g.in[2], g.out[1], g.out[2]
	KH, KW, SH, SW, DH, DW, PH, PW := g.k[1], g.k[2], g.s[1], g.s[2], g.d[1], g.d[2], g.p[1], g.p[2]
	// The padded map holds every tap of every output and every input.
	Hp := max(PH+H, (OH-1)*SH+(KH-1)*DH+1)
	Wp := max(PW+W, (OW-1)*SW+(KW-1)*DW+1)
	Hq, Pw := (Hp+SH-1)/SH, (Wp+SW-1)/SW
	pp := &phasePlanes{g: g, Pw: Pw, plane: Hq * Pw, flatLen: (OH-1)*Pw + OW}
	for kh := range KH {
		for kw := range KW {
			r, p := (kh*DH)%SH, (kw*DW)%SW
			pp.offs = append(pp.offs, (r*SW+p)*pp.plane+(kh*DH)/SH*Pw+(kw*DW)/SW)
		}
	}
	return pp
}

// buffer returns phase planes filled with pad, for fill to write planes
// into: every plane writes the same places, so the padding stays.
func (pp *phasePlanes) buffer(pad float32) []float32 {
	b := make([]float32, pp.g.s[1]*pp.g.s[2]*pp.plane)
	if pad != 0 {
		for i := range b {
			b[i] = pad
		}
	}
	return b
}

// fill copies the input plane in into phases.
func (pp *phasePlanes) fill(phases, in []float32) {
	g := pp.g
	H, W, SH, SW, PH, PW := g.in[1], g.in[2], g.s[1], g.s[2], g.p[1], g.p[2]
	Pw, plane := pp.Pw, pp.plane
	// Input rows p, p+SH, ... are padded rows PH+p, PH+p+SH, ...:
	// consecutive rows of one row phase.
	for p := 0; p < min(SH, H); p++ {
		pr := PH + p
		at := (pr%SH)*SW*plane + (pr/SH)*Pw
		rows, src := (H-p+SH-1)/SH, in[p*W:]
		switch SW {
		case 1:
			kernels.CopyRows(phases[at+PW:], Pw, src, SH*W, rows, W)
		case 2:
			// Input column iw is padded column PW+iw: phase (PW+iw)%2.
			even := phases[at+(PW%2)*plane+PW/2:]
			odd := phases[at+((PW+1)%2)*plane+(PW+1)/2:]
			kernels.Deinterleave2Rows(even, odd, Pw, src, SH*W, rows, W)
		default:
			for r := range rows {
				for iw, v := range src[r*SH*W : r*SH*W+W] {
					pc := PW + iw
					phases[at+r*Pw+(pc%SW)*plane+pc/SW] = v
				}
			}
		}
	}
}

// run computes one plane of output into out: kernel computes the flat row
// into its first argument (out itself when there are no dropped columns,
// else flat, flatLen floats, whose outputs are then copied to out).
func (pp *phasePlanes) run(out, flat []float32, kernel func(dst []float32)) {
	OH, OW := pp.g.out[1], pp.g.out[2]
	if pp.Pw == OW {
		kernel(out)
		return
	}
	kernel(flat[:pp.flatLen])
	kernels.CopyRows(out, OW, flat, pp.Pw, OH, OW)
}

// convDepthwise is a depthwise convolution (one input channel per output
// channel, as MobileNets and PP-LCNet use, 3x3 and 5x5 mostly), which as a
// matrix multiply would have a dimension of 1: each channel is one
// kernels.DepthwiseRow over its phase planes (phasePlanes), its sums kept in
// registers over all taps. Channels are split over threads.
func convDepthwise(threads int, g *geom3, x []float32, C int, w []float32, y []float32, bias []float32, act convAct) {
	pp := newPhasePlanes(g)
	inS, outS, taps := g.in[1]*g.in[2], g.out[1]*g.out[2], len(pp.offs)
	parallelFor(threads, C, 1, func(lo, hi int) {
		// Pooled buffers: fresh ones cost page faults on every call. The
		// phase planes' padding must be zero; the flat row is written
		// before it is read.
		pb, fb := poolBuf(&dwPhaseBufs, pp.g.s[1]*pp.g.s[2]*pp.plane), poolBuf(&dwFlatBufs, pp.flatLen)
		defer dwPhaseBufs.Put(pb)
		defer dwFlatBufs.Put(fb)
		phases, flat := *pb, *fb
		clear(phases)
		from := lo // the first channel post has not run on
		for c := lo; c < hi; c++ {
			pp.fill(phases, x[c*inS:(c+1)*inS])
			b := float32(0)
			if bias != nil {
				b = bias[c]
			}
			out := y[c*outS : (c+1)*outS]
			pp.run(out, flat, func(dst []float32) { kernels.DepthwiseRow(dst, phases, pp.offs, w[c*taps:(c+1)*taps], b) })
			act.apply(out)
			// post runs on runs of whole channels: a call per small map
			// would cost more than the map.
			if n := (c + 1 - from) * outS; act.post != nil && (n >= postRun || c == hi-1) {
				act.post(y[from*outS:(c+1)*outS], n, 0, n)
				from = c + 1
			}
		}
	})
}

// postRun is the fewest outputs convDepthwise hands to convAct.post at once.
const postRun = 4096

// maxPoolPlanes is a float32 max pool over 2-D planes whose windows reach
// into the padding (ResNet's 3x3 stride-2 pool after its stem): the phase
// planes are padded with -Inf, which never wins, and each plane is one
// kernels.MaxTaps. Planes are split over threads.
func maxPoolPlanes(threads int, g *geom3, x, y []float32, planes int) {
	pp := newPhasePlanes(g)
	inS, outS := g.in[1]*g.in[2], g.out[1]*g.out[2]
	parallelFor(threads, planes, max(1, elementGrain/max(1, inS)), func(lo, hi int) {
		phases, flat := pp.buffer(float32(math.Inf(-1))), make([]float32, pp.flatLen)
		for c := lo; c < hi; c++ {
			pp.fill(phases, x[c*inS:(c+1)*inS])
			pp.run(y[c*outS:(c+1)*outS], flat, func(dst []float32) { kernels.MaxTaps(dst, phases, pp.offs) })
		}
	})
}

// convAct is what a convolution applies to its output after the bias, in
// its epilogue: nothing (the zero value), Relu (NaN giving 0, as the Relu op
// computes it), or a Clip to [lo, hi] (ReLU6 is [0, 6]; NaN stays NaN, as the
// Clip op keeps it); then post, when set, on finished segments of the output
// (an elementwise program: see Node.epiThreaded).
type convAct struct {
	relu, clip bool
	lo, hi     float32
	post       postFunc
}

// postFunc runs on finished output: on y[r*ld+j0 : r*ld+j0+n] for each of
// the len(y)/ld rows r of y, a slice of the convolution's output.
type postFunc func(y []float32, ld, j0, n int)

var actReluConv = convAct{relu: true}

// any reports whether the epilogue does anything.
func (a convAct) any() bool { return a.relu || a.clip || a.post != nil }

// apply applies the activation (not post) to row.
func (a convAct) apply(row []float32) {
	switch {
	case a.relu:
		kernels.Relu(row)
	case a.clip:
		kernels.Clip(row, row, a.lo, a.hi)
	}
}

// biasRelu adds bias[r] to columns [j0, j0+n) of each row r of y (rows of
// ld floats), then applies act; a nil bias adds nothing. It is Conv's
// epilogue, run on each block of output while it is in cache.
func biasRelu(y []float32, ld, j0, n int, bias []float32, act convAct) {
	if bias == nil && !act.any() {
		return
	}
	rows := len(y) / ld
	for r := 0; r < rows; r++ {
		row := y[r*ld+j0 : r*ld+j0+n]
		switch {
		case bias == nil:
			act.apply(row)
		case act.relu:
			kernels.AddConstRelu(row, bias[r])
		default:
			kernels.AddConst(row, bias[r])
			act.apply(row)
		}
	}
	if act.post != nil {
		act.post(y, ld, j0, n)
	}
}

// poolInput checks a pooling op's X: 1 to 3 spatial axes.
func poolInput(x *tensor.Tensor) error {
	if r := len(x.Shape); r < 3 || r > 5 {
		return fmt.Errorf("input X: shape %s, must be [N C ...] with 1 to 3 spatial axes", tensor.ShapeString(x.Shape))
	}
	return nil
}

// taps returns the kernel offsets along one axis whose input index
// o*s - p + k*d lies in [lo, hi), as the half-open range [k0, k1).
func taps(o, s, p, d, k, lo, hi int) (k0, k1 int) {
	start := o*s - p
	k0 = 0
	if start < lo {
		k0 = (lo - start + d - 1) / d
	}
	k1 = k
	if last := start + (k-1)*d; last >= hi {
		k1 = (hi - start + d - 1) / d
	}
	if k1 < k0 {
		k1 = k0
	}
	return k0, k1
}

// newMaxPool implements MaxPool for 1-D to 3-D float32, float64, int8 and uint8
// inputs, with dilations and the optional Indices output (flat indices into X,
// row-major or, with storage_order=1, column-major within each plane). Padding
// never wins the max; NaN does.
func newMaxPool(n *Node) (Kernel, error) {
	a, err := readWindowAttrs(n)
	if err != nil {
		return nil, err
	}
	if len(a.kernel) == 0 {
		return nil, fmt.Errorf("attribute kernel_shape: required")
	}
	colMajor := n.Int("storage_order", 0) == 1
	wantIdx := len(n.Outputs) > 1 && n.Outputs[1] != ""
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if err := poolInput(x); err != nil {
			return nil, err
		}
		outSp, padBegin, _, err := a.geometry(x.Shape[2:], a.kernel)
		if err != nil {
			return nil, err
		}
		g := newGeom3(&a, x.Shape[2:], a.kernel, outSp, padBegin)
		shape := append([]int{x.Shape[0], x.Shape[1]}, outSp...)
		y := newTyped(x.DType, shape...)
		var idx []int64
		outs := []*tensor.Tensor{y}
		if wantIdx {
			it := tensor.New(tensor.Int64, shape...)
			idx = it.I64
			outs = append(outs, it)
		}
		planes := x.Shape[0] * x.Shape[1]
		switch x.DType {
		case tensor.Float32:
			if idx == nil && windowsInside(&g) {
				inS, outS := g.inSize(), g.outSize()
				parallelFor(threads, planes, max(1, elementGrain/inS), func(lo, hi int) {
					maxPool2D(&g, x.F32[lo*inS:hi*inS], y.F32[lo*outS:hi*outS], hi-lo)
				})
				break
			}
			if idx == nil && g.in[0] == 1 && g.k[0] == 1 && g.outSize() > 0 {
				maxPoolPlanes(threads, &g, x.F32, y.F32, planes)
				break
			}
			maxPool(&g, x.F32, y.F32, idx, planes, colMajor, float32(math.Inf(-1)))
		case tensor.Float64:
			maxPool(&g, x.F64, y.F64, idx, planes, colMajor, math.Inf(-1))
		case tensor.Int8:
			maxPool(&g, x.I8, y.I8, idx, planes, colMajor, math.MinInt8)
		case tensor.Uint8:
			maxPool(&g, x.U8, y.U8, idx, planes, colMajor, 0)
		default:
			return nil, fmt.Errorf("input X: dtype %s, MaxPool supports float32, float64, int8 and uint8", x.DType)
		}
		return outs, nil
	}
	n.fresh = true
	return withThreads(n.threaded, 1), nil
}

// maxPool computes the max over each window of each plane; lowest is what an
// all-padding window yields. idx, when not nil, receives the argmax positions.
// windowsInside reports whether g is a 2-D window geometry (a depth of 1)
// without dilation whose every window lies inside the input, padding
// included in none: maxPool2D's case.
func windowsInside(g *geom3) bool {
	if g.in[0] != 1 || g.out[0] != 1 || g.k[0] != 1 || g.d[1] != 1 || g.d[2] != 1 || g.p[1] != 0 || g.p[2] != 0 {
		return false
	}
	return g.out[1] > 0 && g.out[2] > 0 && (g.out[1]-1)*g.s[1]+g.k[1] <= g.in[1] && (g.out[2]-1)*g.s[2]+g.k[2] <= g.in[2]
}

// maxPool2D is maxPool for float32 without indices on a geometry
// windowsInside accepts: rows of windows read straight from input rows, no
// tap bounds to compute; 2×2 windows with a column stride of 2 (CNNs'
// usual pool) go to kernels.MaxPool2x2 plane by plane. The builtin max
// propagates NaN as maxPool does (it may pick +0 over -0 where maxPool keeps
// the first).
func maxPool2D(g *geom3, x, y []float32, planes int) {
	H, W, OH, OW := g.in[1], g.in[2], g.out[1], g.out[2]
	KH, KW, SH, SW := g.k[1], g.k[2], g.s[1], g.s[2]
	for pl := 0; pl < planes; pl++ {
		src := x[pl*H*W : (pl+1)*H*W]
		dst := y[pl*OH*OW : (pl+1)*OH*OW]
		if KH == 2 && KW == 2 && SW == 2 {
			kernels.MaxPool2x2(dst, src, OH, OW, W, SH*W)
			continue
		}
		for oh := 0; oh < OH; oh++ {
			drow := dst[oh*OW : (oh+1)*OW]
			for kh := 0; kh < KH; kh++ {
				srow := src[(oh*SH+kh)*W : (oh*SH+kh+1)*W]
				for ow := range drow {
					win := srow[ow*SW : ow*SW+KW]
					m := win[0]
					for _, v := range win[1:] {
						m = max(m, v)
					}
					if kh > 0 {
						m = max(m, drow[ow])
					}
					drow[ow] = m
				}
			}
		}
	}
}

func maxPool[T float32 | float64 | int8 | uint8](g *geom3, x, y []T, idx []int64, planes int, colMajor bool, lowest T) {
	inS, outS := g.inSize(), g.outSize()
	for pl := 0; pl < planes; pl++ {
		src := x[pl*inS : (pl+1)*inS]
		dst := y[pl*outS : (pl+1)*outS]
		i := 0
		for od := 0; od < g.out[0]; od++ {
			d0, d1 := taps(od, g.s[0], g.p[0], g.d[0], g.k[0], 0, g.in[0])
			for oh := 0; oh < g.out[1]; oh++ {
				h0, h1 := taps(oh, g.s[1], g.p[1], g.d[1], g.k[1], 0, g.in[1])
				for ow := 0; ow < g.out[2]; ow++ {
					w0, w1 := taps(ow, g.s[2], g.p[2], g.d[2], g.k[2], 0, g.in[2])
					m, at := lowest, -1
					for kd := d0; kd < d1; kd++ {
						id := od*g.s[0] - g.p[0] + kd*g.d[0]
						for kh := h0; kh < h1; kh++ {
							ih := oh*g.s[1] - g.p[1] + kh*g.d[1]
							base := (id*g.in[1] + ih) * g.in[2]
							for kw := w0; kw < w1; kw++ {
								iw := ow*g.s[2] - g.p[2] + kw*g.d[2]
								if v := src[base+iw]; v > m || v != v || at < 0 {
									m, at = v, base+iw
								}
							}
						}
					}
					dst[i] = m
					if idx != nil {
						if at < 0 {
							at = 0
						}
						if colMajor {
							iw := at % g.in[2]
							ih := at / g.in[2] % g.in[1]
							id := at / (g.in[2] * g.in[1])
							at = id + ih*g.in[0] + iw*g.in[0]*g.in[1]
						}
						idx[pl*outS+i] = int64(pl*inS + at)
					}
					i++
				}
			}
		}
	}
}

// newAveragePool implements AveragePool for 1-D to 3-D float32 inputs. With
// count_include_pad the divisor counts the window's positions inside the padded
// input (pads, not the extra room ceil_mode adds), as onnxruntime and PyTorch do;
// without it, only positions inside the input.
//
// LpPool shares it: (Σ|x|^p)^(1/p) over each window's taps in the input
// (padding adds zeros, so nothing), p from attribute p (default 2).
func newAveragePool(n *Node) (Kernel, error) {
	a, err := readWindowAttrs(n)
	if err != nil {
		return nil, err
	}
	if len(a.kernel) == 0 {
		return nil, fmt.Errorf("attribute kernel_shape: required")
	}
	lp, err := lpOrder(n)
	if err != nil {
		return nil, err
	}
	if len(a.dilations) > 0 && n.Opset < 19 && lp == 0 {
		a.dilations = nil // not an AveragePool attribute before opset 19
	}
	includePad := n.Int("count_include_pad", 0) != 0
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if err := poolInput(x); err != nil {
			return nil, err
		}
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input X: dtype %s, %s supports float32 only", x.DType, n.OpType)
		}
		outSp, padBegin, padEnd, err := a.geometry(x.Shape[2:], a.kernel)
		if err != nil {
			return nil, err
		}
		g := newGeom3(&a, x.Shape[2:], a.kernel, outSp, padBegin)
		var hi [3]int // upper bound of positions counted when includePad
		for i := range hi {
			hi[i] = g.in[i]
		}
		if includePad {
			off := 3 - len(padEnd)
			for i := range padEnd {
				hi[off+i] += padEnd[i]
			}
		}
		y := tensor.New(tensor.Float32, append([]int{x.Shape[0], x.Shape[1]}, outSp...)...)
		planes := x.Shape[0] * x.Shape[1]
		inS, outS := g.inSize(), g.outSize()
		// window returns the taps of output position o along axis a that
		// lie in the input, and how many the average divides by.
		window := func(a, o int) (k0, k1, count int) {
			k0, k1 = taps(o, g.s[a], g.p[a], g.d[a], g.k[a], 0, g.in[a])
			count = k1 - k0
			if includePad {
				c0, c1 := taps(o, g.s[a], g.p[a], g.d[a], g.k[a], -g.p[a], hi[a])
				count = c1 - c0
			}
			return k0, k1, count
		}
		for pl := 0; pl < planes; pl++ {
			src := x.F32[pl*inS : (pl+1)*inS]
			dst := y.F32[pl*outS : (pl+1)*outS]
			i := 0
			for od := 0; od < g.out[0]; od++ {
				d0, d1, cd := window(0, od)
				for oh := 0; oh < g.out[1]; oh++ {
					h0, h1, ch := window(1, oh)
					for ow := 0; ow < g.out[2]; ow++ {
						w0, w1, cw := window(2, ow)
						var sum float32
						for kd := d0; kd < d1; kd++ {
							id := od*g.s[0] - g.p[0] + kd*g.d[0]
							for kh := h0; kh < h1; kh++ {
								ih := oh*g.s[1] - g.p[1] + kh*g.d[1]
								base := (id*g.in[1] + ih) * g.in[2]
								for kw := w0; kw < w1; kw++ {
									v := src[base+ow*g.s[2]-g.p[2]+kw*g.d[2]]
									switch lp {
									case 0:
										sum += v
									case 1:
										sum += float32(math.Abs(float64(v)))
									case 2:
										sum += v * v
									default:
										sum += float32(math.Pow(math.Abs(float64(v)), float64(lp)))
									}
								}
							}
						}
						switch count := cd * ch * cw; {
						case lp > 0:
							dst[i] = lpRoot(sum, lp)
						case count > 0:
							dst[i] = sum / float32(count)
						}
						i++
					}
				}
			}
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// lpOrder reads an Lp op's attribute p (default 2, at least 1); 0 for any
// other op.
func lpOrder(n *Node) (int, error) {
	if !strings.HasPrefix(n.OpType, "Lp") && !strings.HasPrefix(n.OpType, "GlobalLp") {
		return 0, nil
	}
	p := n.Int("p", 2)
	if p < 1 || p > 64 {
		return 0, fmt.Errorf("attribute p: %d, must be in [1, 64]", p)
	}
	return int(p), nil
}

// lpRoot is sum^(1/p).
func lpRoot(sum float32, p int) float32 {
	switch p {
	case 1:
		return sum
	case 2:
		return float32(math.Sqrt(float64(sum)))
	}
	return float32(math.Pow(float64(sum), 1/float64(p)))
}

// newGlobalPool implements GlobalAveragePool, GlobalMaxPool and
// GlobalLpPool: X [N C ...] reduces to [N C 1 ...] over all spatial axes.
func newGlobalPool(n *Node, isMax bool) (Kernel, error) {
	lp, err := lpOrder(n)
	if err != nil {
		return nil, err
	}
	n.fresh = true
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input X: dtype %s, %s supports float32 only", x.DType, n.OpType)
		}
		if len(x.Shape) < 2 {
			return nil, fmt.Errorf("input X: shape %s, must be [N C ...]", tensor.ShapeString(x.Shape))
		}
		shape := append([]int{}, x.Shape...)
		for i := 2; i < len(shape); i++ {
			shape[i] = 1
		}
		y := newF32(shape...)
		size := tensor.NumElements(x.Shape[2:])
		parallelFor(threads, len(y.F32), max(1, (64<<10)/max(size, 1)), func(lo, hi int) {
			for pl := lo; pl < hi; pl++ {
				src := x.F32[pl*size : (pl+1)*size]
				if isMax {
					m, nan := kernels.Max(src)
					if nan {
						m = float32(math.NaN())
					}
					y.F32[pl] = m
					continue
				}
				if lp > 0 {
					var sum float64
					for _, v := range src {
						sum += math.Pow(math.Abs(float64(v)), float64(lp))
					}
					y.F32[pl] = lpRoot(float32(sum), lp)
					continue
				}
				if size > 0 {
					y.F32[pl] = float32(kernels.SumF64(src) / float64(size))
				}
			}
		})
		return []*tensor.Tensor{y}, nil
	}
	return withThreads(n.threaded, 1), nil
}

// newGemm implements Y = alpha*op(A)*op(B) + beta*C for 2-D float32 A and B, with
// C optional and broadcast unidirectionally to [M N].
func newGemm(n *Node) (Kernel, error) {
	transA := n.Int("transA", 0) != 0
	transB := n.Int("transB", 0) != 0
	alpha := n.Float("alpha", 1)
	beta := n.Float("beta", 1)
	constB := n.Const(1)
	var pb *kernels.PackedB
	if constB != nil && constB.DType == tensor.Float32 && len(constB.Shape) == 2 {
		K, N := constB.Shape[0], constB.Shape[1]
		if transB {
			K, N = N, K
		}
		pb = n.packWeight(1, transB, K, N, constB.F32, constB.Shape[1])
	}
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 3); err != nil {
			return nil, err
		}
		A, B := in[0], in[1]
		if A.DType != tensor.Float32 || B.DType != tensor.Float32 && B.DType != tensor.Float16 {
			return nil, fmt.Errorf("inputs A %s and B %s: Gemm supports float32 only", A, B)
		}
		if len(A.Shape) != 2 || len(B.Shape) != 2 {
			return nil, fmt.Errorf("inputs A %s and B %s: both must be 2-D", tensor.ShapeString(A.Shape), tensor.ShapeString(B.Shape))
		}
		M, K := A.Shape[0], A.Shape[1]
		if transA {
			M, K = K, M
		}
		K2, N := B.Shape[0], B.Shape[1]
		if transB {
			K2, N = N, K2
		}
		if K != K2 {
			return nil, fmt.Errorf("inputs A %s (transA=%v) and B %s (transB=%v): inner dimensions %d and %d must match",
				tensor.ShapeString(A.Shape), transA, tensor.ShapeString(B.Shape), transB, K, K2)
		}
		y := newF32(M, N)
		b := float32(0)
		if len(in) > 2 && in[2] != nil && beta != 0 {
			C := in[2]
			if C.DType != tensor.Float32 {
				return nil, fmt.Errorf("input C: dtype %s, must be float32", C.DType)
			}
			if err := unidirectional(C.Shape, []int{M, N}); err != nil {
				return nil, fmt.Errorf("input C: %w", err)
			}
			broadcastApply(y.F32, y.Shape, y.F32, y.Shape, C.F32, C.Shape, func(_, c float32) float32 { return c })
			b = beta
		}
		switch {
		case pb != nil && B == constB:
			gemmPackedF32Par(threads, transA, M, N, K, alpha, A.F32, A.Shape[1], pb, b, y.F32, N)
		case B.DType == tensor.Float16:
			gemmHalfBPar(threads, transA, transB, M, N, K, alpha, A.F32, A.Shape[1], B.U16, B.Shape[1], b, y.F32, N)
		default:
			gemmF32Par(threads, transA, transB, M, N, K, alpha, A.F32, A.Shape[1], B.F32, B.Shape[1], b, y.F32, N)
		}
		return []*tensor.Tensor{y}, nil
	}
	n.fresh = true
	return withThreads(n.threaded, 1), nil
}

// unidirectional checks that shape broadcasts to target without target changing
// (ONNX unidirectional broadcasting).
func unidirectional(shape, target []int) error {
	if len(shape) > len(target) {
		return fmt.Errorf("shape %s has more axes than %s", tensor.ShapeString(shape), tensor.ShapeString(target))
	}
	off := len(target) - len(shape)
	for i, d := range shape {
		if d != 1 && d != target[off+i] {
			return fmt.Errorf("shape %s does not broadcast to %s (dimension %d is %d, must be 1 or %d)",
				tensor.ShapeString(shape), tensor.ShapeString(target), i, d, target[off+i])
		}
	}
	return nil
}

// newMatMul implements numpy.matmul for float32: a 1-D A is a row vector and a
// 1-D B a column vector (the added axis is dropped from the result), and batch
// axes broadcast.
//
// A constant B whose batch axes are all 1 (a weight) is packed for the matrix
// kernels once, here, unless the model was compiled with KeepWeightsUnpacked.
func newMatMul(n *Node) (Kernel, error) {
	constB := n.Const(1)
	var pb *kernels.PackedB
	if b := constB; b != nil && b.DType == tensor.Float32 && len(b.Shape) >= 2 && tensor.NumElements(b.Shape[:len(b.Shape)-2]) == 1 {
		K, N := b.Shape[len(b.Shape)-2], b.Shape[len(b.Shape)-1]
		pb = n.packWeight(1, false, K, N, b.F32, N)
	}
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		A, B := in[0], in[1]
		if B.DType == tensor.Float16 && len(B.Shape) != 2 {
			B = widenHalf(B) // a batched float16 weight: rare enough to widen per call
		}
		if A.DType != tensor.Float32 || B.DType != tensor.Float32 && B.DType != tensor.Float16 {
			return nil, fmt.Errorf("inputs A %s and B %s: MatMul supports float32 only", A, B)
		}
		mg, err := matMulGeometry(A.Shape, B.Shape)
		if err != nil {
			return nil, err
		}
		M, K, N, ba, bb, batch := mg.M, mg.K, mg.N, mg.batchA, mg.batchB, mg.batch
		y := newF32(mg.out...)
		if len(y.F32) == 0 {
			return []*tensor.Tensor{y}, nil // however many empty batches
		}
		nb := tensor.NumElements(batch)
		if tensor.NumElements(bb) == 1 {
			// B is one matrix shared by every batch: fold A's batch axes into M.
			// A's batch axes may still broadcast against B's size-1 axes.
			rows := tensor.NumElements(ba) * M
			if nb == tensor.NumElements(ba) {
				switch {
				case pb != nil && B == constB:
					gemmPackedF32Par(threads, false, rows, N, K, 1, A.F32, K, pb, 0, y.F32, N)
				case B.DType == tensor.Float16:
					gemmHalfBPar(threads, false, false, rows, N, K, 1, A.F32, K, B.U16, N, 0, y.F32, N)
				default:
					gemmF32Par(threads, false, false, rows, N, K, 1, A.F32, K, B.F32, N, 0, y.F32, N)
				}
				return []*tensor.Tensor{y}, nil
			}
		}
		sa := broadcastStrides(ba, batch)
		sb := broadcastStrides(bb, batch)
		// Batches (attention heads, say) are independent multiplies: split
		// them over the threads, each multiply on one goroutine.
		parallelFor(threads, nb, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				offA, offB, rem := 0, 0, i
				for d := len(batch) - 1; d >= 0; d-- {
					v := rem % batch[d]
					rem /= batch[d]
					offA += v * sa[d]
					offB += v * sb[d]
				}
				gemmF32(false, false, M, N, K, 1, A.F32[offA*M*K:(offA+1)*M*K], K, B.F32[offB*K*N:(offB+1)*K*N], N, 0, y.F32[i*M*N:(i+1)*M*N], N)
			}
		})
		return []*tensor.Tensor{y}, nil
	}
	n.fresh = true
	return withThreads(n.threaded, 1), nil
}

// matMul is the geometry of numpy.matmul on operands of shapes a and b: A
// is M×K and B K×N after a 1-D operand gains its unit axis, their batch
// axes broadcast to batch, and out is the result's shape (the added axes
// dropped again).
type matMul struct {
	M, K, N               int
	batchA, batchB, batch []int
	out                   []int
}

// matMulGeometry works out a matMul, or says why the shapes do not
// multiply.
func matMulGeometry(a, b []int) (matMul, error) {
	var g matMul
	if len(a) == 0 || len(b) == 0 {
		return g, fmt.Errorf("inputs A %s and B %s: scalars are not allowed", tensor.ShapeString(a), tensor.ShapeString(b))
	}
	as, bs := a, b
	if len(as) == 1 {
		as = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int{bs[0], 1}
	}
	g.M, g.K = as[len(as)-2], as[len(as)-1]
	K2 := bs[len(bs)-2]
	g.N = bs[len(bs)-1]
	if g.K != K2 {
		return g, fmt.Errorf("inputs A %s and B %s: inner dimensions %d and %d must match", tensor.ShapeString(a), tensor.ShapeString(b), g.K, K2)
	}
	g.batchA, g.batchB = as[:len(as)-2], bs[:len(bs)-2]
	batch, err := broadcastShapes(g.batchA, g.batchB)
	if err != nil {
		return g, fmt.Errorf("batch axes of A %s and B %s: %w", tensor.ShapeString(a), tensor.ShapeString(b), err)
	}
	g.batch = batch
	g.out = append([]int{}, batch...)
	if len(a) > 1 {
		g.out = append(g.out, g.M)
	}
	if len(b) > 1 {
		g.out = append(g.out, g.N)
	}
	return g, nil
}

// newSoftmax implements Softmax and LogSoftmax. Before opset 13 the input is
// coerced to 2-D at axis (default 1) and normalised over the flattened trailing
// axes; from opset 13 it is normalised along axis alone (default -1). The max is
// subtracted first so large inputs do not overflow. Softmax over contiguous
// rows (the last axis, or legacy's flattened tail) runs softmaxRow, vectorised
// and threaded over rows; a strided axis and LogSoftmax take the float64
// loop.
func newSoftmax(n *Node, logOut bool) (Kernel, error) {
	legacy := n.Opset < 13
	def := int64(-1)
	if legacy {
		def = 1
	}
	axis := n.Int("axis", def)
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input: dtype %s, %s supports float32 only", x.DType, n.OpType)
		}
		r := len(x.Shape)
		a, err := normAxis(axis, r, legacy)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		outer := tensor.NumElements(x.Shape[:a])
		var size, inner int
		if legacy {
			size, inner = tensor.NumElements(x.Shape[a:]), 1
		} else {
			size, inner = x.Shape[a], tensor.NumElements(x.Shape[a+1:])
		}
		y := newF32Dirty(x.Shape...) // every path writes every element
		if size == 0 {
			return []*tensor.Tensor{y}, nil
		}
		if inner == 1 && !logOut {
			parallelFor(threads, outer, max(1, elementGrain/size), func(lo, hi int) {
				copy(y.F32[lo*size:hi*size], x.F32[lo*size:hi*size])
				for o := lo; o < hi; o++ {
					softmaxRow(y.F32[o*size : (o+1)*size])
				}
			})
			return []*tensor.Tensor{y}, nil
		}
		softmaxStrided(x.F32, y.F32, outer, size, inner, logOut)
		return []*tensor.Tensor{y}, nil
	}
	n.fresh = true
	return withThreads(n.threaded, 1), nil
}

// softmaxStrided is Softmax or LogSoftmax of x into y along an axis of size
// elements inner apart, for each of outer blocks, in float64.
func softmaxStrided(x, y []float32, outer, size, inner int, logOut bool) {
	for o := 0; o < outer; o++ {
		for j := 0; j < inner; j++ {
			base := o*size*inner + j
			m := float32(math.Inf(-1))
			for i := 0; i < size; i++ {
				if v := x[base+i*inner]; v > m {
					m = v
				}
			}
			var sum float64
			for i := 0; i < size; i++ {
				e := math.Exp(float64(x[base+i*inner] - m))
				sum += e
				if !logOut {
					y[base+i*inner] = float32(e)
				}
			}
			if logOut {
				ls := float32(math.Log(sum))
				for i := 0; i < size; i++ {
					y[base+i*inner] = x[base+i*inner] - m - ls
				}
			} else {
				inv := 1 / sum
				for i := 0; i < size; i++ {
					y[base+i*inner] = float32(float64(y[base+i*inner]) * inv)
				}
			}
		}
	}
}

// convTransposeGeometry returns the output size and leading padding of each
// spatial axis of a ConvTranspose (ONNX operator docs): without output_shape,
// out = s*(in-1) + output_padding + (k-1)*d + 1 - pads; with output_shape, or
// with auto_pad SAME_*, out is given (in*s for SAME) and the total padding is
// split with the odd unit at the end for SAME_UPPER, at the start otherwise
// (onnxruntime's ComputeTransposePadAndOutputShape).
func convTransposeGeometry(a *windowAttrs, outPad, outShape []int64, in []int, k []int64) (out, padBegin []int, err error) {
	nd := len(in)
	get := func(name string, v []int64, def int64, i, want int) (int, error) {
		if len(v) == 0 {
			return int(def), nil
		}
		if len(v) != want {
			return 0, fmt.Errorf("attribute %s: %d entries, want %d for %d spatial axes", name, len(v), want, nd)
		}
		return int(v[i]), nil
	}
	if len(outShape) > nd {
		outShape = outShape[len(outShape)-nd:] // [N C ...] is allowed too
	}
	out = make([]int, nd)
	padBegin = make([]int, nd)
	for i := 0; i < nd; i++ {
		s, err := get("strides", a.strides, 1, i, nd)
		if err != nil {
			return nil, nil, err
		}
		d, err := get("dilations", a.dilations, 1, i, nd)
		if err != nil {
			return nil, nil, err
		}
		op, err := get("output_padding", outPad, 0, i, nd)
		if err != nil {
			return nil, nil, err
		}
		if op < 0 || (op >= s && op >= d) {
			return nil, nil, fmt.Errorf("attribute output_padding: entry %d is %d, must be >= 0 and less than the stride %d or dilation %d", i, op, s, d)
		}
		full := s*(in[i]-1) + op + (int(k[i])-1)*d + 1
		switch {
		case len(outShape) > 0 || a.autoPad == "SAME_UPPER" || a.autoPad == "SAME_LOWER":
			o := in[i] * s
			if len(outShape) > 0 {
				o, err = get("output_shape", outShape, 0, i, nd)
				if err != nil {
					return nil, nil, err
				}
			}
			if o < 0 {
				return nil, nil, fmt.Errorf("attribute output_shape: entry %d is %d, must be >= 0", i, o)
			}
			// A larger output than the taps reach is zero-filled (plus bias)
			// at the end, as onnxruntime does.
			total := max(0, full-o)
			pb := total - total/2
			if a.autoPad == "SAME_UPPER" {
				pb = total / 2
			}
			out[i], padBegin[i] = o, pb
		default:
			pb, pe := 0, 0
			if a.autoPad == "NOTSET" {
				if pb, err = get("pads", a.pads, 0, i, 2*nd); err != nil {
					return nil, nil, err
				}
				if pe, err = get("pads", a.pads, 0, nd+i, 2*nd); err != nil {
					return nil, nil, err
				}
			}
			if full-pb-pe < 0 {
				return nil, nil, fmt.Errorf("spatial axis %d: pads %d+%d exceed the output size %d", i, pb, pe, full)
			}
			out[i], padBegin[i] = full-pb-pe, pb
		}
	}
	return out, padBegin, nil
}

// col2im is the adjoint of im2col: it adds each row of col, shaped
// [channels*kSize, inSize] with one column per input position, into the output
// planes y (channels of g.outSize()), at the position each kernel tap of each
// input position lands on. Here g.in is ConvTranspose's input and g.out its
// output; taps that land in the padding are dropped.
func col2im(g *geom3, col []float32, channels int, y []float32) {
	P := g.inSize()
	row := 0
	for c := 0; c < channels; c++ {
		plane := y[c*g.outSize() : (c+1)*g.outSize()]
		for kd := 0; kd < g.k[0]; kd++ {
			for kh := 0; kh < g.k[1]; kh++ {
				for kw := 0; kw < g.k[2]; kw++ {
					src := col[row*P : (row+1)*P]
					row++
					i := 0
					for id := 0; id < g.in[0]; id++ {
						od := id*g.s[0] - g.p[0] + kd*g.d[0]
						if od < 0 || od >= g.out[0] {
							i += g.in[1] * g.in[2]
							continue
						}
						for ih := 0; ih < g.in[1]; ih++ {
							oh := ih*g.s[1] - g.p[1] + kh*g.d[1]
							if oh < 0 || oh >= g.out[1] {
								i += g.in[2]
								continue
							}
							dst := plane[(od*g.out[1]+oh)*g.out[2] : (od*g.out[1]+oh+1)*g.out[2]]
							row := src[i : i+g.in[2]]
							i += g.in[2]
							// Input column iw lands at ow = iw*s + off, for
							// iw from iwLo to iwHi.
							off := -g.p[2] + kw*g.d[2]
							iwLo, iwHi := 0, g.in[2]
							if off < 0 {
								iwLo = (-off + g.s[2] - 1) / g.s[2]
							}
							if last := g.out[2] - 1 - off; last < 0 {
								iwHi = 0
							} else {
								iwHi = min(iwHi, last/g.s[2]+1)
							}
							if iwLo >= iwHi {
								continue
							}
							if g.s[2] == 1 {
								seg := dst[iwLo+off : iwHi+off]
								kernels.AddVV(seg, seg, row[iwLo:iwHi])
								continue
							}
							for iw, ow := iwLo, iwLo*g.s[2]+off; iw < iwHi; iw, ow = iw+1, ow+g.s[2] {
								dst[ow] += row[iw]
							}
						}
					}
				}
			}
		}
	}
}

// newConvTranspose implements ConvTranspose for 1-D to 3-D float32 inputs: X [N C
// ...], W [C M/group k...], optional B [M]. Each image and group is one gemmF32
// (W's transpose times X) and one col2im.
func newConvTranspose(n *Node) (Kernel, error) {
	a, err := readWindowAttrs(n)
	if err != nil {
		return nil, err
	}
	if a.ceil {
		return nil, fmt.Errorf("attribute ceil_mode: not a ConvTranspose attribute")
	}
	group := int(n.Int("group", 1))
	if group < 1 {
		return nil, fmt.Errorf("attribute group: %d, must be >= 1", group)
	}
	outPad := n.Ints("output_padding", nil)
	outShape := n.Ints("output_shape", nil)
	n.fresh = true
	n.threaded = func(threads int, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 3); err != nil {
			return nil, err
		}
		x, w := in[0], in[1]
		r, err := checkConvXW(n.OpType, x, w)
		if err != nil {
			return nil, err
		}
		N, C := x.Shape[0], x.Shape[1]
		if w.Shape[0] != C || C%group != 0 {
			return nil, fmt.Errorf("input W: shape %s: first dimension must equal X's %d channels, divisible by group %d", tensor.ShapeString(w.Shape), C, group)
		}
		Cg, Mg := C/group, w.Shape[1]
		M := Mg * group
		k := make([]int64, r-2)
		for i := range k {
			k[i] = int64(w.Shape[2+i])
		}
		if len(a.kernel) > 0 && !slices.Equal(a.kernel, k) {
			return nil, fmt.Errorf("attribute kernel_shape %v does not match W's shape %s", a.kernel, tensor.ShapeString(w.Shape))
		}
		var bias []float32
		if len(in) > 2 && in[2] != nil {
			b := in[2]
			if b.DType != tensor.Float32 || len(b.Shape) != 1 || b.Shape[0] != M {
				return nil, fmt.Errorf("input B: %s, must be float32[%d]", b, M)
			}
			bias = b.F32
		}
		outSp, padBegin, err := convTransposeGeometry(&a, outPad, outShape, x.Shape[2:], k)
		if err != nil {
			return nil, err
		}
		g := newGeom3(&a, x.Shape[2:], k, outSp, padBegin)
		P, K, Q := g.inSize(), Mg*g.kSize(), g.outSize()
		if patches(&g) {
			y := newF32Dirty(append([]int{N, M}, outSp...)...) // every element is one tap's
			convTransposePatches(threads, &g, x.F32, N, C, group, w.F32, Mg, bias, y.F32)
			return []*tensor.Tensor{y}, nil
		}
		y := newF32(append([]int{N, M}, outSp...)...) // zeroed: col2im accumulates
		col := newF32Dirty(K * P)                     // every element is written by the multiply
		for img := 0; img < N; img++ {
			for gi := 0; gi < group; gi++ {
				xs := x.F32[(img*C+gi*Cg)*P : (img*C+(gi+1)*Cg)*P]
				ws := w.F32[gi*Cg*K : (gi+1)*Cg*K]
				gemmF32Par(threads, true, false, K, P, Cg, 1, ws, K, xs, P, 0, col.F32, P)
				ys := y.F32[(img*M+gi*Mg)*Q : (img*M+(gi+1)*Mg)*Q]
				parallelFor(threads, Mg, 1, func(lo, hi int) {
					col2im(&g, col.F32[lo*g.kSize()*P:hi*g.kSize()*P], hi-lo, ys[lo*Q:hi*Q])
				})
			}
			if bias != nil {
				for m := 0; m < M; m++ {
					plane := y.F32[(img*M+m)*Q : (img*M+m+1)*Q]
					kernels.AddVS(plane, plane, bias[m])
				}
			}
		}
		putF32(col.F32)
		return []*tensor.Tensor{y}, nil
	}
	return withThreads(n.threaded, 1), nil
}

// patches reports whether a ConvTranspose geometry puts each input pixel's
// taps on a patch of its own: a 1-D or 2-D window as large as its stride, no
// dilation, padding or extra output (PyTorch's ConvTranspose2d(k=2, s=2) of
// U-Nets). Then every output element is one tap of one input pixel.
func patches(g *geom3) bool {
	for i := range 3 {
		if g.k[i] != g.s[i] || g.d[i] != 1 || g.p[i] != 0 || g.out[i] != g.in[i]*g.s[i] {
			return false
		}
	}
	return g.k[0] == 1
}

// convTransposePatches is ConvTranspose on a geometry patches accepts. For
// a band of input rows, one multiply gives every tap's output (row (m, kh,
// kw) of the band's col block is the value tap (kh, kw) of filter m puts at
// each input pixel of the band), and each output row is the interleaving of
// its KW taps' rows, bias added, written once: no zeroed output, no
// accumulation, and the col block stays in cache between the two. Bands
// are split over threads.
func convTransposePatches(threads int, g *geom3, x []float32, N, C, group int, w []float32, Mg int, bias, y []float32) {
	H, W, KH, KW := g.in[1], g.in[2], g.k[1], g.k[2]
	OH, OW := g.out[1], g.out[2]
	P, Cg, M := H*W, C/group, Mg*group
	K := Mg * KH * KW
	R := max(1, min(H, (1<<16)/max(1, K*W))) // input rows per band: a col block of about 256 KiB, in L2
	bands := (H + R - 1) / R
	ldc := R*W + 16 // off a power of two, so the rows of a C tile do not share cache sets
	for img := 0; img < N; img++ {
		for gi := 0; gi < group; gi++ {
			xs := x[(img*C+gi*Cg)*P : (img*C+(gi+1)*Cg)*P]
			wg := w[gi*Cg*K : (gi+1)*Cg*K]
			parallelFor(threads, bands, 1, func(lo, hi int) {
				cp := convBuf(K * ldc)
				defer convBufs.Put(cp)
				col := *cp
				for band := lo; band < hi; band++ {
					r0 := band * R
					rows := min(R, H-r0)
					gemmF32(true, false, K, rows*W, Cg, 1, wg, K, xs[r0*W:], P, 0, col, ldc)
					for m := range Mg {
						plane := y[(img*M+gi*Mg+m)*OH*OW : (img*M+gi*Mg+m+1)*OH*OW]
						b := float32(0)
						if bias != nil {
							b = bias[gi*Mg+m]
						}
						for i := range rows {
							for kh := range KH {
								row := plane[((r0+i)*KH+kh)*OW : ((r0+i)*KH+kh+1)*OW]
								tap := func(kw int) []float32 {
									r := (m*KH+kh)*KW + kw
									return col[r*ldc+i*W : r*ldc+(i+1)*W]
								}
								switch KW {
								case 1:
									copy(row, tap(0))
								case 2:
									kernels.Interleave2(row, tap(0), tap(1))
								default:
									for kw := range KW {
										for iw, v := range tap(kw) {
											row[iw*KW+kw] = v
										}
									}
								}
								if b != 0 {
									kernels.AddVS(row, row, b)
								}
							}
						}
					}
				}
			})
		}
	}
}

// newHardmax implements Hardmax: 1 at the first maximum along the axis, 0
// elsewhere, with Softmax's axis rules (coerced to 2-D before opset 13).
func newHardmax(n *Node) (Kernel, error) {
	legacy := n.Opset < 13
	def := int64(-1)
	if legacy {
		def = 1
	}
	axis := n.Int("axis", def)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("input: dtype %s, Hardmax supports float32 only", x.DType)
		}
		a, err := normAxis(axis, len(x.Shape), legacy)
		if err != nil {
			return nil, fmt.Errorf("attribute axis: %w", err)
		}
		outer := tensor.NumElements(x.Shape[:a])
		size, inner := tensor.NumElements(x.Shape[a:]), 1
		if !legacy {
			size, inner = x.Shape[a], tensor.NumElements(x.Shape[a+1:])
		}
		y := tensor.New(tensor.Float32, x.Shape...)
		if size == 0 {
			return []*tensor.Tensor{y}, nil
		}
		for o := 0; o < outer; o++ {
			for j := 0; j < inner; j++ {
				base := o*size*inner + j
				best := 0
				for i := 1; i < size; i++ {
					if x.F32[base+i*inner] > x.F32[base+best*inner] {
						best = i
					}
				}
				y.F32[base+best*inner] = 1
			}
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// newDepthSpace implements DepthToSpace (toDepth false; modes DCR and CRD) and
// SpaceToDepth on 4-D [N C H W] tensors of any dtype, as one gather.
func newDepthSpace(n *Node, toDepth bool) (Kernel, error) {
	b := int(n.Int("blocksize", 0))
	if b < 1 {
		return nil, fmt.Errorf("attribute blocksize: %d, must be >= 1 (it is required)", b)
	}
	crd := false
	if !toDepth {
		switch m := n.String("mode", "DCR"); m {
		case "DCR":
		case "CRD":
			crd = true
		default:
			return nil, fmt.Errorf("attribute mode: %q, must be DCR or CRD", m)
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if len(x.Shape) != 4 {
			return nil, fmt.Errorf("input: shape %s, must be [N C H W]", tensor.ShapeString(x.Shape))
		}
		N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		var out []int
		if toDepth {
			if H%b != 0 || W%b != 0 {
				return nil, fmt.Errorf("input: shape %s: H and W must be multiples of blocksize %d", tensor.ShapeString(x.Shape), b)
			}
			out = []int{N, C * b * b, H / b, W / b}
		} else {
			if C%(b*b) != 0 {
				return nil, fmt.Errorf("input: shape %s: C must be a multiple of blocksize² %d", tensor.ShapeString(x.Shape), b*b)
			}
			out = []int{N, C / (b * b), H * b, W * b}
		}
		idx := make([]int, tensor.NumElements(out))
		k := 0
		for img := 0; img < N; img++ {
			for c := 0; c < out[1]; c++ {
				for h := 0; h < out[2]; h++ {
					for w := 0; w < out[3]; w++ {
						var sc, sh, sw int
						if toDepth {
							// out channel c = (i*b + j)*C + ci reads x[ci, h*b+i, w*b+j].
							blk, ci := c/C, c%C
							sc, sh, sw = ci, h*b+blk/b, w*b+blk%b
						} else {
							i, j := h%b, w%b
							sh, sw = h/b, w/b
							if crd {
								sc = c*b*b + i*b + j
							} else {
								sc = (i*b+j)*out[1] + c
							}
						}
						idx[k] = ((img*C+sc)*H+sh)*W + sw
						k++
					}
				}
			}
		}
		return []*tensor.Tensor{gatherFlat(x, idx, out)}, nil
	}, nil
}

// gatherFlat returns the tensor of shape whose element i is x's flat element
// idx[i], for every dtype.
func gatherFlat(x *tensor.Tensor, idx []int, shape []int) *tensor.Tensor {
	y := tensor.New(x.DType, shape...)
	switch x.DType {
	case tensor.Float32:
		gatherInto(y.F32, x.F32, idx)
	case tensor.Float64:
		gatherInto(y.F64, x.F64, idx)
	case tensor.Int64:
		gatherInto(y.I64, x.I64, idx)
	case tensor.Int32:
		gatherInto(y.I32, x.I32, idx)
	case tensor.Int8:
		gatherInto(y.I8, x.I8, idx)
	case tensor.Uint8:
		gatherInto(y.U8, x.U8, idx)
	case tensor.Bool:
		gatherInto(y.B, x.B, idx)
	}
	return y
}

func gatherInto[T any](dst, src []T, idx []int) {
	for i, j := range idx {
		dst[i] = src[j]
	}
}

// checkConvXW checks the data and weight inputs Conv and ConvTranspose share:
// float32, X of rank 3 to 5 ([N C ...] with 1 to 3 spatial axes), W of X's
// rank. It returns that rank.
func checkConvXW(op string, x, w *tensor.Tensor) (int, error) {
	if x.DType != tensor.Float32 || w.DType != tensor.Float32 {
		return 0, fmt.Errorf("inputs X %s and W %s: %s supports float32 only", x, w, op)
	}
	r := len(x.Shape)
	if r < 3 || r > 5 {
		return 0, fmt.Errorf("input X: shape %s, must be [N C ...] with 1 to 3 spatial axes", tensor.ShapeString(x.Shape))
	}
	if len(w.Shape) != r {
		return 0, fmt.Errorf("input W: shape %s, must have the rank of X %s", tensor.ShapeString(w.Shape), tensor.ShapeString(x.Shape))
	}
	return r, nil
}
