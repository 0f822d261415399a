package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/modelgen"
)

func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Generate and inspect models"}
	var out string
	var seed uint64
	gen := &cobra.Command{
		Use:   "gen KIND -o DIR",
		Short: "Write DIR/model.onnx with deterministic weights (kinds: " + kindList() + ")",
		Args:  args("KIND"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if out == "" {
				return usagef("-o: required")
			}
			if err := modelgen.Generate(a[0], out, seed); err != nil {
				return usageError{err}
			}
			fmt.Fprintln(cmd.OutOrStdout(), filepath.Join(out, "model.onnx"))
			return nil
		},
	}
	gen.Flags().StringVarP(&out, "out", "o", "", "output folder `DIR`")
	gen.Flags().Uint64Var(&seed, "seed", 1, "weight seed")
	cmd.AddCommand(gen, newModelCompileCmd(), newModelQuantizeCmd())
	return cmd
}

func kindList() string {
	s := ""
	for i, k := range modelgen.Kinds() {
		if i > 0 {
			s += ", "
		}
		s += k
	}
	return s
}
