package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/experiment"
	"github.com/spindleml/spindle/internal/onnx"
)

// withExperiments adds the thesis experiments to the bench command and
// returns it.
func withExperiments(bench *cobra.Command) *cobra.Command {
	addExperimentCmds(bench)
	return bench
}

// addExperimentCmds adds `bench EXPERIMENT`, `bench all` and the hidden
// `bench load-once` to bench. A second call adds nothing.
func addExperimentCmds(bench *cobra.Command) {
	for _, c := range bench.Commands() {
		if c.Name() == "all" {
			return
		}
	}
	for _, x := range experiment.All() {
		bench.AddCommand(newExperimentCmd(x.Name, x.Title+" (thesis "+x.Ref+")", []experiment.Experiment{x}))
	}
	chaos := experiment.ChaosExperiment
	bench.AddCommand(newExperimentCmd(chaos.Name, chaos.Title+" ("+chaos.Ref+"; --duration sets the soak, default 10m, 5s with --quick)", []experiment.Experiment{chaos}))
	gw := experiment.GatewayExperiment
	bench.AddCommand(newExperimentCmd(gw.Name, gw.Title+" ("+gw.Ref+"; --duration per measurement, default 10s, 3s with --quick)", []experiment.Experiment{gw}))
	bench.AddCommand(newExperimentCmd("all", "Run every thesis experiment in turn ("+strings.Join(experiment.Names(), ", ")+")", experiment.All()))
	bench.AddCommand(newLoadOnceCmd())
}

func newExperimentCmd(name, short string, xs []experiment.Experiment) *cobra.Command {
	var env experiment.Env
	var stemCells int
	var kinds, policies []string
	cmd := &cobra.Command{
		Use:   name + " [--quick] [--out DIR]",
		Short: short,
		Long: short + `.

Results go to --out DIR/EXPERIMENT/ (default: bench/ in the data directory,
$SPINDLE_HOME or ./.spindle, as for 'spindle up'): CSV data, PNG plots and
report.md with our numbers beside the thesis's. The folder is printed first. --quick uses small models and few runs
(minutes on 2 cores); --runs, --users, --vcpus and --models scale a run up on a
larger machine. Experiments start their own gateways and instances on free
loopback ports, in temporary folders.

hybrid-vs-hpa runs live: one 'spindle up --autoscale POLICY' per policy
(--policies), the thesis ramp from spindle load, the function's vCPUs,
instances and memory sampled every second. --simulated runs the old variant,
the policies in 'spindle sim' (virtual time).`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find own binary: %w", err)
			}
			env.Exe = exe
			if env.Out, err = benchOut(env.Out); err != nil {
				return err
			}
			if env.Runs < 0 || env.Users < 0 || env.VCPUs < 0 || env.Duration < 0 {
				return usagef("--runs, --users, --vcpus, --duration: must not be negative")
			}
			if cmd.Flags().Changed("stem-cells") {
				if stemCells < 0 || stemCells > 64 {
					return usagef("--stem-cells %d: must be between 0 and 64", stemCells)
				}
				env.StemCells = &stemCells
			}
			if env.SLO < 0 {
				return usagef("--slo: must not be negative")
			}
			env.Kinds = kinds
			env.Policies = policies
			env.Command = "spindle " + strings.Join(os.Args[1:], " ")
			env.Log = cmd.ErrOrStderr()
			fmt.Fprintf(env.Log, "results: %s\n", env.Out)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			var reports []*experiment.Report
			var failed []string
			for _, x := range xs {
				rep, err := experiment.RunOne(ctx, &env, x)
				if rep != nil {
					reports = append(reports, rep)
				}
				if err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", x.Name, err))
					if ctx.Err() != nil {
						break
					}
				}
			}
			if len(xs) > 1 {
				if err := experiment.WriteIndex(env.Out, env.Command, env.Quick, reports); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", filepath.Join(env.Out, "README.md"))
			}
			for _, r := range reports {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", filepath.Join(env.Out, r.Name, "report.md"))
			}
			if len(failed) > 0 {
				return fmt.Errorf("experiments failed: %s", strings.Join(failed, "; "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&env.Quick, "quick", false, "small models, few runs: minutes on 2 cores")
	f.StringVar(&env.Out, "out", "", "results folder `DIR` (default $SPINDLE_HOME/bench, else ./.spindle/bench)")
	f.StringVar(&env.Models, "model-cache", "", "`DIR` where generated models are kept between runs (default OUT/models)")
	f.IntVar(&stemCells, "stem-cells", 2, "the platforms' pre-started instances (spindle up --stem-cells)")
	f.IntVar(&env.Runs, "runs", 0, "repetitions per measurement (default 3 with --quick, 10 without)")
	f.IntVar(&env.Users, "users", 0, "cap on concurrent clients and ramp users (default: the thesis's 50 and 100; 10 with --quick)")
	f.DurationVar(&env.Duration, "duration", 0, "how long the live ramp runs, per policy in hybrid-vs-hpa (default 180s, 45s with --quick; simulated variant 120s, 20s)")
	f.Float64Var(&env.VCPUs, "vcpus", 0, "cap on the vCPU steps (default: this machine's CPUs)")
	f.BoolVar(&env.Simulated, "simulated", false, "hybrid-vs-hpa: compare the policies in the simulator instead of live")
	f.BoolVar(&env.Simulated, "sim", false, "same as --simulated")
	f.MarkHidden("sim")
	f.StringSliceVar(&policies, "policies", nil, "hybrid-vs-hpa: `POLICIES` to run live (default static, hybrid, hpa, predictive)")
	f.DurationVar(&env.SLO, "slo", 0, "hybrid-vs-hpa: p99 target of the live policies (default 2.5x a request's time on one scaling step, as the thesis's 500 ms over 200 ms)")
	f.StringSliceVar(&kinds, "models", nil, "`MODELS` to run: mnist-cnn, minilm-l6, bert-base, vgg16 (default: per experiment; small ones with --quick)")
	return cmd
}

// benchOut returns the absolute results folder for --out: the flag, else
// bench/ in the data directory (homeDir), so that a run from a source
// checkout does not write into the working tree.
func benchOut(flag string) (string, error) {
	if flag == "" {
		flag = filepath.Join(homeDir(""), "bench")
	}
	return filepath.Abs(flag)
}

// newLoadOnceCmd is the child the load-time experiment starts for each load.
func newLoadOnceCmd() *cobra.Command {
	var model, load string
	cmd := &cobra.Command{
		Use:    "load-once --model PATH --load MODE",
		Short:  "Load and compile a model once and print a JSON load sample (for bench load-time)",
		Hidden: true,
		Args:   args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode, err := onnx.ParseLoadMode(load)
			if err != nil {
				return usagef("--load: %v", err)
			}
			if model == "" {
				return usagef("--model: required")
			}
			return experiment.LoadOnce(cmd.OutOrStdout(), model, mode)
		},
	}
	cmd.Flags().StringVar(&model, "model", "", "model file `PATH`")
	cmd.Flags().StringVar(&load, "load", string(onnx.Mmap), "load `MODE`: copy, single or mmap")
	return cmd
}
