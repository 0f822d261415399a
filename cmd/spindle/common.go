package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/npy"
	"github.com/spindleml/spindle/internal/tensor"
)

// gatewayFlag adds --gateway, defaulting to $SPINDLE_GATEWAY or the local
// gateway, and --key, the tenant API key newClient sends.
func gatewayFlag(cmd *cobra.Command) *string {
	// No default shown: help output must not print a secret from the environment.
	cmd.Flags().String("key", "", "API key `KEY`, sent as 'Authorization: Bearer KEY' (default $SPINDLE_KEY)")
	return gatewayURLFlag(cmd)
}

// gatewayURLFlag adds --gateway only.
func gatewayURLFlag(cmd *cobra.Command) *string {
	def := os.Getenv("SPINDLE_GATEWAY")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	return cmd.Flags().String("gateway", def, "gateway `URL` (env SPINDLE_GATEWAY)")
}

// newClient returns a client for gw that sends cmd's --key (or $SPINDLE_KEY).
func newClient(cmd *cobra.Command, gw string) (*client.Client, error) {
	key, _ := cmd.Flags().GetString("key")
	if key == "" {
		key = os.Getenv("SPINDLE_KEY")
	}
	c, err := client.New(gw, client.WithKey(key))
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// regularFile returns a usage error that starts with label (the flag and
// its value as typed, "--model m.onnx") unless path is a regular file (after symbolic links). The CLI maps models, uploads files
// and reads inputs whole; opening a FIFO blocks until something writes to
// it, so one given by mistake hung the command for ever, and a device or a
// socket has no end. A missing file keeps fs.ErrNotExist in the chain.
func regularFile(label, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return usageError{fmt.Errorf("%s: %w", label, err)}
	}
	if !st.Mode().IsRegular() {
		return usagef("%s: not a regular file (%s)", label, fileKind(st.Mode()))
	}
	return nil
}

// fileKind names what a non-regular file is, for regularFile's message.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.String()
}

// readInputs parses --input NAME=FILE.npy flags and reads the files, which
// must be regular files.
func readInputs(specs []string) (map[string]*tensor.Tensor, error) {
	return readInputsFlag("--input", specs)
}

// readInputsFlag is readInputs for a flag of another name.
func readInputsFlag(flag string, specs []string) (map[string]*tensor.Tensor, error) {
	inputs := map[string]*tensor.Tensor{}
	for _, s := range specs {
		name, path, ok := strings.Cut(s, "=")
		if !ok || name == "" || path == "" {
			return nil, usagef("%s %q: want NAME=FILE.npy", flag, s)
		}
		if _, dup := inputs[name]; dup {
			return nil, usagef("%s %q: input %q given twice", flag, s, name)
		}
		if err := regularFile(flag+" "+s, path); err != nil {
			return nil, err
		}
		t, err := npy.ReadFile(path)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s %s: %w", flag, name, err)}
		}
		inputs[name] = t
	}
	return inputs, nil
}

// writeOutputs writes each output as DIR/NAME.npy, or prints a summary when dir
// is empty.
func writeOutputs(cmd *cobra.Command, dir string, names []string, outs map[string]*tensor.Tensor) error {
	if len(names) == 0 {
		for n := range outs {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	for _, n := range names {
		t := outs[n]
		if dir == "" {
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", n, t, preview(t))
			continue
		}
		if !filepath.IsLocal(n) || strings.ContainsAny(n, `/\`) {
			return fmt.Errorf("output %q: name is not a safe file name", n)
		}
		path := filepath.Join(dir, n+".npy")
		if err := npy.WriteFile(path, t); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s -> %s\n", n, t, path)
	}
	return nil
}

// preview formats up to 10 values of t.
func preview(t *tensor.Tensor) string {
	const max = 10
	var vals []string
	n := min(t.Len(), max)
	for i := 0; i < n; i++ {
		switch t.DType {
		case tensor.Float32:
			vals = append(vals, fmt.Sprintf("%.6g", t.F32[i]))
		case tensor.Float64:
			vals = append(vals, fmt.Sprintf("%.6g", t.F64[i]))
		case tensor.Int64:
			vals = append(vals, fmt.Sprint(t.I64[i]))
		case tensor.Int32:
			vals = append(vals, fmt.Sprint(t.I32[i]))
		case tensor.Int8:
			vals = append(vals, fmt.Sprint(t.I8[i]))
		case tensor.Uint8:
			vals = append(vals, fmt.Sprint(t.U8[i]))
		case tensor.Bool:
			vals = append(vals, fmt.Sprint(t.B[i]))
		}
	}
	s := "[" + strings.Join(vals, " ")
	if t.Len() > max {
		s += " ..."
	}
	return s + "]"
}
