package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/artifact"
)

// newModelCompileCmd is `spindle model compile`: write a model's artifact
// with its matrix weights prepacked and page-aligned, for mapping in place.
func newModelCompileCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "compile MODEL.onnx -o MODEL.spindle",
		Short: "Write the model with its MatMul/Gemm weights prepacked and page-aligned (mmap, no packing, shared)",
		Long: `Write MODEL.spindle (an ONNX model) and MODEL.spindle.data beside it: every
initializer page-aligned in the data file, plus each MatMul and Gemm weight
already in the matrix kernels' packed layout. Loaded memory-mapped (the
default), the engine multiplies with those pages in place: no packing at load,
no private copy, one copy in memory for every process serving the model.`,
		Args: args("MODEL.onnx"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if out == "" {
				return usagef("-o: required")
			}
			if err := regularFile(a[0], a[0]); err != nil {
				return err
			}
			rep, err := artifact.Compile(a[0], out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d prepacked weights (%.1f MiB), %s %.1f MiB\n",
				out, rep.Packed, float64(rep.PackedBytes)/(1<<20), rep.DataFile, float64(rep.DataBytes)/(1<<20))
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "artifact `FILE` to write")
	return cmd
}
