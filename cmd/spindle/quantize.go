package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/bench"
	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/quantize"
	"github.com/spindleml/spindle/internal/tensor"
)

// calibrationSets returns the calibration inputs of `quantize --mode
// static`: the given ones as one set (inputs they lack generated), or n
// generated sets.
func calibrationSets(path string, given map[string]*tensor.Tensor, n int, shape bench.Shape) ([]quantize.Calibration, error) {
	src, err := onnx.Load(path, onnx.Mmap)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	m, err := engine.Compile(src)
	if err != nil {
		return nil, err
	}
	if len(given) > 0 {
		n = 1
	}
	var sets []quantize.Calibration
	for i := range n {
		in, err := bench.GenerateInputs(m, src, given, shape, uint64(i+1))
		if err != nil {
			return nil, usagef("--calibrate: %v", err)
		}
		sets = append(sets, in)
	}
	return sets, nil
}

// newModelQuantizeCmd is `spindle model quantize`: dynamic int8
// quantization of a model's MatMul weights, ONNX Runtime's recipe.
func newModelQuantizeCmd() *cobra.Command {
	var (
		out    string
		opt    quantize.Options
		kind   string
		calib  []string
		sets   int
		shapes bench.Shape
	)
	cmd := &cobra.Command{
		Use:   "quantize MODEL.onnx -o MODEL.int8.onnx",
		Short: "Quantize the model's MatMul weights to int8 (dynamic quantization, as ONNX Runtime's quantize_dynamic)",
		Long: `Write MODEL.int8.onnx and MODEL.int8.onnx.data beside it: every MatMul whose
weight is a constant 2-D float32 matrix runs on int8. The weight is quantized
once, symmetric (zero point 0, scale max|w|/127, per tensor or with
--per-channel per output column); the activation is quantized at run time by
DynamicQuantizeLinear (uint8, its own range). The graph is the one ONNX
Runtime's quantize_dynamic writes (DynamicQuantizeLinear, MatMulInteger, Cast,
Mul), so ONNX Runtime loads it too; Spindle runs each group as one int8
multiply. MatMuls of two activations (attention scores) stay float32.

--mode static writes the QDQ form ONNX Runtime's quantize_static writes: the
input of each Conv and MatMul quantized to uint8 over the range it takes on
calibration inputs (QuantizeLinear, DequantizeLinear), its weight int8 and a
Conv's bias int32. Give real inputs with --calibrate NAME=FILE.npy (repeat per
input; a batch in the file is one set); without them --calibration-sets sets of
generated inputs are used (uniform [0, 1) floats, as a normalised image; token
ids), which suits only a first try.`,
		Args: args("MODEL.onnx"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if out == "" {
				return usagef("-o: required")
			}
			if kind != "dynamic" && kind != "static" {
				return usagef("--mode %q: dynamic or static", kind)
			}
			if kind == "dynamic" && (len(calib) > 0 || cmd.Flags().Changed("calibration-sets")) {
				return usagef("--calibrate and --calibration-sets: only with --mode static")
			}
			if sets < 1 {
				return usagef("--calibration-sets %d: want at least 1", sets)
			}
			for _, op := range opt.OpTypes {
				if kind == "dynamic" && op != "MatMul" && op != "Gather" {
					return usagef("--op-types %q: dynamic quantization covers MatMul and Gather", op)
				}
				if kind == "static" && op != "MatMul" && op != "Conv" {
					return usagef("--op-types %q: static quantization covers Conv and MatMul", op)
				}
			}
			if err := regularFile(a[0], a[0]); err != nil {
				return err
			}
			var rep quantize.Report
			var err error
			if kind == "static" {
				given, rerr := readInputsFlag("--calibrate", calib)
				if rerr != nil {
					return rerr
				}
				sets, cerr := calibrationSets(a[0], given, sets, shapes)
				if cerr != nil {
					return cerr
				}
				rep, err = quantize.Static(a[0], out, opt, sets)
			} else {
				rep, err = quantize.Dynamic(a[0], out, opt)
			}
			if errors.Is(err, quantize.ErrOption) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s): %d nodes on int8, %d weights %.1f MiB -> %.1f MiB, data in %s\n",
				out, kind, rep.Quantized, rep.Weights, float64(rep.FloatBytes)/(1<<20), float64(rep.QuantizedBytes)/(1<<20), rep.DataFile)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "quantized model `FILE` to write")
	cmd.Flags().StringVar(&kind, "mode", "dynamic", "quantization `MODE`: dynamic or static (QDQ, calibrated)")
	cmd.Flags().StringArrayVar(&calib, "calibrate", nil, "static: calibration input as `NAME=FILE.npy` (repeatable)")
	cmd.Flags().IntVar(&sets, "calibration-sets", 8, "static: generated calibration input sets when --calibrate is not given")
	cmd.Flags().IntVar(&shapes.Batch, "batch", 1, "static: a generated input's dynamic first dimension")
	cmd.Flags().IntVar(&shapes.Seq, "seq", 16, "static: a generated input's other dynamic dimensions")
	cmd.Flags().BoolVar(&opt.PerChannel, "per-channel", false, "one scale per output column of each weight")
	cmd.Flags().BoolVar(&opt.ReduceRange, "reduce-range", false, "7-bit weights in [-64, 64]")
	cmd.Flags().StringSliceVar(&opt.OpTypes, "op-types", nil, "op `TYPES` to quantize: MatMul, Gather (default both)")
	cmd.Flags().StringSliceVar(&opt.Exclude, "exclude", nil, "node `NAMES` to keep in float32")
	return cmd
}
