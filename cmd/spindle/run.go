package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/onnx"
)

// newRunCmd is `spindle run`: one inference, files in, files out. Other tools
// drive it, so its flags and output layout are a stable contract.
func newRunCmd() *cobra.Command {
	var model, load, out string
	var inputs []string
	cmd := &cobra.Command{
		Use:   "run --model PATH [--load copy|single|mmap] --input NAME=FILE.npy ... --out DIR",
		Short: "Run one inference locally and write each output as DIR/NAME.npy",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if model == "" {
				return usagef("--model: required")
			}
			if err := regularFile("--model "+model, model); err != nil {
				return err
			}
			mode, err := onnx.ParseLoadMode(load)
			if err != nil {
				return usagef("--load: %v", err)
			}
			ins, err := readInputs(inputs)
			if err != nil {
				return err
			}
			src, err := onnx.Load(model, mode)
			if err != nil {
				return err
			}
			defer src.Close()
			m, err := engine.Compile(src)
			if err != nil {
				return err
			}
			outs, err := m.Run(context.Background(), ins)
			if err != nil {
				return err
			}
			names := make([]string, len(m.Outputs))
			for i, o := range m.Outputs {
				names[i] = o.Name
			}
			fmt.Fprintln(cmd.ErrOrStderr(), src.Report)
			return writeOutputs(cmd, out, names, outs)
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "ONNX model file `PATH`")
	f.StringVar(&load, "load", string(onnx.Mmap), "load `MODE`: copy, single or mmap")
	f.StringArrayVar(&inputs, "input", nil, "input tensor as `NAME=FILE.npy` (repeatable)")
	f.StringVar(&out, "out", "", "folder `DIR` for OUTPUT_NAME.npy files (default: print a summary)")
	return cmd
}
