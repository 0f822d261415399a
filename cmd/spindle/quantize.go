package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/quantize"
)

// newModelQuantizeCmd is `spindle model quantize`: dynamic int8
// quantization of a model's MatMul weights, ONNX Runtime's recipe.
func newModelQuantizeCmd() *cobra.Command {
	var (
		out  string
		opt  quantize.Options
		kind string
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
multiply. MatMuls of two activations (attention scores) stay float32.`,
		Args: args("MODEL.onnx"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if out == "" {
				return usagef("-o: required")
			}
			if kind != "dynamic" {
				return usagef("--mode %q: only dynamic is supported", kind)
			}
			for _, op := range opt.OpTypes {
				if op != "MatMul" && op != "Gather" {
					return usagef("--op-types %q: dynamic quantization covers MatMul and Gather", op)
				}
			}
			if err := regularFile(a[0], a[0]); err != nil {
				return err
			}
			rep, err := quantize.Dynamic(a[0], out, opt)
			if errors.Is(err, quantize.ErrOption) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d nodes on int8, %d weights %.1f MiB -> %.1f MiB, data in %s\n",
				out, rep.Quantized, rep.Weights, float64(rep.FloatBytes)/(1<<20), float64(rep.QuantizedBytes)/(1<<20), rep.DataFile)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "quantized model `FILE` to write")
	cmd.Flags().StringVar(&kind, "mode", "dynamic", "quantization `MODE` (dynamic)")
	cmd.Flags().BoolVar(&opt.PerChannel, "per-channel", false, "one scale per output column of each weight")
	cmd.Flags().BoolVar(&opt.ReduceRange, "reduce-range", false, "7-bit weights in [-64, 64]")
	cmd.Flags().StringSliceVar(&opt.OpTypes, "op-types", nil, "op `TYPES` to quantize: MatMul, Gather (default both)")
	cmd.Flags().StringSliceVar(&opt.Exclude, "exclude", nil, "node `NAMES` to keep in float32")
	return cmd
}
