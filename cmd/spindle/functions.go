package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newDeployCmd() *cobra.Command {
	var model string
	cmd := &cobra.Command{
		Use:   "deploy NAME --model PATH",
		Short: "Deploy a model (and its external data) as function NAME",
		Args:  args("NAME"),
	}
	gw := gatewayFlag(cmd)
	cmd.Flags().StringVar(&model, "model", "", "ONNX model file")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if model == "" {
			return usagef("--model: required")
		}
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		f, err := c.Deploy(context.Background(), a[0], model)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "deployed %s (model %s, %d bytes, digest %.12s)\n", f.Name, f.ModelFile, f.ModelBytes, f.ModelDigest)
		return nil
	}
	return cmd
}

func newInvokeCmd() *cobra.Command {
	var inputs []string
	var out string
	cmd := &cobra.Command{
		Use:   "invoke NAME --input NAME=FILE.npy ... [--out DIR]",
		Short: "Invoke function NAME through the gateway",
		Args:  args("NAME"),
	}
	gw := gatewayFlag(cmd)
	cmd.Flags().StringArrayVar(&inputs, "input", nil, "input tensor as NAME=FILE.npy (repeatable)")
	cmd.Flags().StringVar(&out, "out", "", "folder for OUTPUT_NAME.npy files (default: print a summary)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		ins, err := readInputs(inputs)
		if err != nil {
			return err
		}
		names, outs, err := c.Infer(context.Background(), a[0], ins)
		if err != nil {
			return err
		}
		return writeOutputs(cmd, out, names, outs)
	}
	return cmd
}

func newLsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ls", Short: "List deployed functions", Args: args()}
	gw := gatewayFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		fs, err := c.List(context.Background())
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTASK\tMODEL BYTES\tDIGEST\tCREATED")
		for _, f := range fs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.12s\t%s\n", f.Name, f.Task, f.ModelBytes, f.ModelDigest, f.Created.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	}
	return cmd
}

func newDescribeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "describe NAME", Short: "Show a function and its instances", Args: args("NAME")}
	gw := gatewayFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		raw, err := c.Describe(context.Background(), a[0])
		if err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return cmd
}

func newRmCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rm NAME", Short: "Remove a function and stop its instances", Args: args("NAME")}
	gw := gatewayFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		if err := c.Remove(context.Background(), a[0]); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "removed", a[0])
		return nil
	}
	return cmd
}

func newLogsCmd() *cobra.Command {
	var n int64
	cmd := &cobra.Command{Use: "logs NAME", Short: "Print the end of a function's instance log", Args: args("NAME")}
	gw := gatewayFlag(cmd)
	cmd.Flags().Int64Var(&n, "bytes", 64<<10, "how many bytes from the end")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if n <= 0 {
			return usagef("--bytes: %d must be positive", n)
		}
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		b, err := c.Logs(context.Background(), a[0], n)
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(b)
		return err
	}
	return cmd
}

func newScaleCmd() *cobra.Command {
	var vcpu float64
	var memory string
	cmd := &cobra.Command{
		Use:   "scale NAME --vcpu X [--memory SIZE]",
		Short: "Set a function's CPU allotment per instance (live, no restart) and optionally its memory limit",
		Args:  args("NAME"),
	}
	gw := gatewayFlag(cmd)
	cmd.Flags().Float64Var(&vcpu, "vcpu", 0, "vCPUs per instance, a multiple of 0.25")
	cmd.Flags().StringVar(&memory, "memory", "", "memory limit per instance, e.g. 512MiB or 2GiB (0: none)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if vcpu <= 0 {
			return usagef("--vcpu: %v must be a positive multiple of 0.25", vcpu)
		}
		var mem *int64
		if memory != "" {
			n, err := parseBytes(memory)
			if err != nil {
				return usagef("--memory: %v", err)
			}
			mem = &n
		}
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		out, err := c.Scale(context.Background(), a[0], vcpu, mem)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s\n", out)
		return nil
	}
	return cmd
}
