// Command spindle is the Spindle serverless ML inference platform: one binary
// whose subcommands run the platform, its function instances, and its clients.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/npy"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/task"
)

// Exit codes: 1 for failures, 2 for bad input (flags, files, requests).
const (
	exitFailure  = 1
	exitBadInput = 2
)

// usageError marks an error caused by what the user typed or supplied.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue),
		errors.Is(err, fs.ErrNotExist),
		errors.Is(err, onnx.ErrBadModel),
		errors.Is(err, engine.ErrBadInput),
		errors.Is(err, engine.ErrUnsupported),
		errors.Is(err, npy.ErrFormat),
		errors.Is(err, task.ErrConfig),
		client.IsClientError(err),
		strings.HasPrefix(err.Error(), "unknown command"): // cobra's own usage error

		return exitBadInput
	}
	return exitFailure
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "spindle",
		Short:         "Serverless ML inference without cold starts or model copies",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// --version prints what `spindle version` does.
	root.Version = versionText(debug.ReadBuildInfo())
	root.SetVersionTemplate("{{.Version}}")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(
		newUpCmd(), newDeployCmd(), newInvokeCmd(), newLsCmd(), newDescribeCmd(), newRmCmd(), newLogsCmd(), newScaleCmd(),
		newRunCmd(), newInstanceCmd(), newModelCmd(), withExperiments(newBenchCmd()), newTenantCmd(), newLoadCmd(),
		newSimCmd(), newKubeCmd(), newOperatorCmd(), newGatewayCmd(), newNodeAgentCmd(), newVersionCmd(),
	)
	return root
}

func main() {
	err := newRoot().Execute()
	if err != nil {
		fmt.Fprintln(os.Stderr, "spindle:", err)
	}
	os.Exit(exitCode(err))
}

// args returns a cobra.PositionalArgs that requires exactly n arguments, as a
// usage error naming them.
func args(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if len(a) != len(names) {
			return usagef("%s: want %d argument(s) %v, got %d", cmd.CommandPath(), len(names), names, len(a))
		}
		return nil
	}
}
