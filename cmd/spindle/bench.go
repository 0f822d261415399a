package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/artifact"
	"github.com/spindleml/spindle/internal/bench"
	"github.com/spindleml/spindle/internal/difftest"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/quantize"
)

// newBenchCmd is `spindle bench`, the parent of benchmark subcommands.
func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure the engine and the platform"}
	cmd.AddCommand(newBenchEngineCmd(), newBenchSgemmCmd())
	return cmd
}

// newBenchSgemmCmd is `spindle bench sgemm`: GFLOPS of the matrix kernels on
// issue 4's BERT shapes, beside OpenBLAS's when its numbers are given.
func newBenchSgemmCmd() *cobra.Command {
	var openblas string
	var budget time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sgemm [--openblas FILE]",
		Short: "GFLOPS of the SGEMM kernels on BERT shapes (one core), beside OpenBLAS's",
		Long: `GFLOPS of kernels.Sgemm on BERT shapes (M 16 and 128; K, N 384 to 3072) on
the calling goroutine, with B plain and prepacked. --openblas reads lines
"M K N GFLOPS" (scripts/sgemm_openblas.c prints them) and adds OpenBLAS's
numbers and our share of them.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if budget <= 0 {
				return usagef("--time %v: must be positive", budget)
			}
			ref := map[bench.GemmShape]float64{}
			if openblas != "" {
				data, err := os.ReadFile(openblas)
				if err != nil {
					return usageError{err}
				}
				for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
					var s bench.GemmShape
					var g float64
					if _, err := fmt.Sscan(line, &s.M, &s.K, &s.N, &g); err != nil {
						return usagef("--openblas %s: line %d: %q: want M K N GFLOPS", openblas, i+1, line)
					}
					ref[s] = g
				}
			}
			type row struct {
				bench.GemmResult
				OpenBLAS float64 `json:"openblas_gflops,omitempty"`
			}
			var rows []row
			for _, s := range bench.BERTGemmShapes() {
				rows = append(rows, row{bench.Sgemm(s, budget), ref[s]})
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "M\tK\tN\tspindle\tspindle packed\topenblas\tspindle/openblas\tpacked/openblas\t")
			for _, r := range rows {
				ob, r1, r2 := "-", "-", "-"
				if r.OpenBLAS > 0 {
					ob = fmt.Sprintf("%.1f", r.OpenBLAS)
					r1 = fmt.Sprintf("%.0f%%", 100*r.Plain/r.OpenBLAS)
					r2 = fmt.Sprintf("%.0f%%", 100*r.Packed/r.OpenBLAS)
				}
				fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f\t%.1f\t%s\t%s\t%s\t\n", r.M, r.K, r.N, r.Plain, r.Packed, ob, r1, r2)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&openblas, "openblas", "", "`FILE` of \"M K N GFLOPS\" lines from scripts/sgemm_openblas.c")
	f.DurationVar(&budget, "time", 200*time.Millisecond, "measuring time per shape and variant")
	f.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

// newBenchEngineCmd is `spindle bench engine`: latency, load time and memory
// of one model in Spindle's engine, optionally beside ONNX Runtime.
func newBenchEngineCmd() *cobra.Command {
	var (
		model, load, script string
		cpuProfile          string
		inputs              []string
		threads             []int
		runs, batch, seq    int
		dims                []int
		asJSON, withORT     bool
		suite, noFusion     bool
		int8                bool
		noPack              bool
		minTime             time.Duration
		compiled            bool
		ortModel            string
		ops                 int
	)
	cmd := &cobra.Command{
		Use:   "engine (--model PATH | --suite) [--input NAME=FILE.npy ...] [--threads N,...] [--runs N] [--min-time D] [--ops N] [--ort] [--json]",
		Short: "Time load, first and warm inferences of a model (and ONNX Runtime's with --ort)",
		Long: `Time load, first and warm inferences of a model in Spindle's engine.

Inputs not given with --input are generated from the model's metadata: random
floats in [0, 1), token ids below the embedding table's size, masks of ones;
dynamic dimensions take --batch (the first) and --seq (the others), or --dims
(the others in order: --dims 48,192 for a 48x192 image).

With --ort, ONNX Runtime (tools/node/ort-run.mjs) runs the same inputs with the
same intra-op thread count and the table shows Spindle's median over ONNX
Runtime's. --suite runs issue 4's model set (generated into the test model
cache) at every --threads value, each measurement in a fresh process.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (model == "") == !suite {
				return usagef("give exactly one of --model and --suite")
			}
			if int8 && !suite {
				return usagef("--int8: only with --suite (quantize a --model with 'spindle model quantize')")
			}
			mode, err := onnx.ParseLoadMode(load)
			if err != nil {
				return usagef("--load: %v", err)
			}
			for _, t := range threads {
				if t < 1 {
					return usagef("--threads: %d: want a positive count", t)
				}
			}
			if runs < 1 || batch < 1 || seq < 1 {
				return usagef("--runs, --batch and --seq: want positive values")
			}
			for _, d := range dims {
				if d < 1 {
					return usagef("--dims: %d: want positive sizes", d)
				}
			}
			if ops < 0 {
				return usagef("--ops: %d: must not be negative", ops)
			}
			if minTime < 0 {
				return usagef("--min-time: %v: must not be negative", minTime)
			}
			var ort *bench.ORT
			if withORT {
				if ort, err = bench.FindORT(script); err != nil {
					return err
				}
			}
			if cpuProfile != "" {
				f, perr := os.Create(cpuProfile)
				if perr != nil {
					return perr
				}
				defer f.Close()
				if perr := pprof.StartCPUProfile(f); perr != nil {
					return perr
				}
				defer pprof.StopCPUProfile()
			}
			ctx := cmd.Context()
			var rows []bench.Comparison
			if suite {
				rows, err = runSuite(ctx, cmd, threads, runs, minTime, ops, load, withORT, script, noFusion, noPack, compiled, int8)
			} else {
				given, rerr := readInputs(inputs)
				if rerr != nil {
					return rerr
				}
				for _, t := range threads {
					opt := bench.Options{Threads: t, Runs: runs, MinTime: minTime, Ops: ops > 0, Load: mode, Inputs: given,
						Shape: bench.Shape{Batch: batch, Seq: seq, Dims: dims}, Seed: 1}
					opt.Compile.NoFusion = noFusion
					opt.Compile.KeepWeightsUnpacked = noPack
					row, cerr := compare(ctx, model, cmp.Or(ortModel, model), opt, ort)
					if cerr != nil {
						return cerr
					}
					row.Case = filepath.Base(filepath.Dir(model)) + "/" + filepath.Base(model)
					rows = append(rows, row)
				}
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			if err := bench.WriteTable(cmd.OutOrStdout(), rows); err != nil {
				return err
			}
			if ops > 0 {
				return bench.WriteOps(cmd.OutOrStdout(), rows, ops)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "ONNX model file `PATH`")
	f.BoolVar(&suite, "suite", false, "run issue 4's model suite instead of --model")
	f.BoolVar(&int8, "int8", false, "with --suite: run issue 14's int8 suite instead (MiniLM-L6 and BERT-base quantized dynamically, MiniLM-L6 and ResNet-50 statically (QDQ), each beside its float32 model, by 'spindle model quantize'; ONNX Runtime runs the same quantized files)")
	f.StringArrayVar(&inputs, "input", nil, "input tensor as `NAME=FILE.npy` (repeatable; others are generated)")
	f.IntSliceVar(&threads, "threads", []int{1}, "intra-op thread counts to measure")
	f.IntVar(&runs, "runs", 20, "fewest timed runs after the first")
	f.IntVar(&ops, "ops", 0, "also print each case's N slowest steps (per-op profile: mean ms per run, share of the median, GFLOP/s and GB/s against the peak measured in the same process); 0 prints none")
	f.BoolVar(&compiled, "compiled", false, "with --suite: measure Spindle on each model compiled with 'spindle model compile' (prepacked, shared weights); ONNX Runtime still runs the .onnx")
	f.StringVar(&ortModel, "ort-model", "", "model file `PATH` ONNX Runtime runs (default --model; give the .onnx when --model is a compiled artifact)")
	f.DurationVar(&minTime, "min-time", time.Second, "least time the timed runs take together (more runs for fast models; ONNX Runtime gets as many)")
	f.IntVar(&batch, "batch", 1, "size of a generated input's dynamic first dimension")
	f.IntVar(&seq, "seq", 16, "size of a generated input's other dynamic dimensions")
	f.IntSliceVar(&dims, "dims", nil, "sizes `D1,D2,...` of a generated input's other dynamic dimensions, in order (instead of --seq)")
	f.StringVar(&load, "load", string(onnx.Mmap), "load `MODE`: copy, single or mmap")
	f.BoolVar(&withORT, "ort", false, "also run ONNX Runtime on the same inputs")
	f.StringVar(&script, "ort-script", filepath.Join("tools", "node", "ort-run.mjs"), "ONNX Runtime runner `SCRIPT`")
	f.BoolVar(&noFusion, "no-fusion", false, "compile without fused kernels")
	f.BoolVar(&noPack, "no-pack", false, "keep weights unpacked (no private packed copy; slower multiplies)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole measurement to this `FILE`")
	f.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

// compare measures model in Spindle and, when ort is set, ortModel (the same
// model, or the .onnx a compiled artifact was made from) in ONNX Runtime on
// the same inputs.
func compare(ctx context.Context, model, ortModel string, opt bench.Options, ort *bench.ORT) (bench.Comparison, error) {
	res, ins, err := bench.Engine(ctx, model, opt)
	if err != nil {
		return bench.Comparison{}, err
	}
	row := bench.Comparison{Threads: res.Threads, Spindle: res}
	if ort != nil {
		o, err := ort.Bench(ctx, ortModel, ins, res.Threads, res.Runs) // as many runs as Spindle took
		if err != nil {
			return row, err
		}
		row.ORT = &o
	}
	return row, nil
}

// quantizedModel returns the .onnx at path quantized by `spindle model
// quantize` in mode (dynamic with default options, or static: per channel,
// calibrated on two generated input sets), kept beside it in the model
// cache and made on first use, under its final name in a scratch folder
// (the model names its data file) and moved in, data first.
func quantizedModel(path, mode string) (string, error) {
	out := strings.TrimSuffix(path, ".onnx") + ".int8.v1.onnx"
	if mode == "static" {
		out = strings.TrimSuffix(path, ".onnx") + ".qdq.v1.onnx"
	}
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), "quantize-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, filepath.Base(out))
	if mode == "static" {
		calib, err := calibrationSets(path, nil, 2, bench.Shape{Batch: 1})
		if err != nil {
			return "", err
		}
		_, err = quantize.Static(path, tmp, quantize.Options{PerChannel: true}, calib)
		if err != nil {
			return "", fmt.Errorf("quantize %s: %w", path, err)
		}
	} else if _, err := quantize.Dynamic(path, tmp, quantize.Options{}); err != nil {
		return "", fmt.Errorf("quantize %s: %w", path, err)
	}
	if err := os.Rename(tmp+".data", out+".data"); err != nil {
		return "", err
	}
	return out, os.Rename(tmp, out)
}

// compiledModel returns the compiled artifact of the .onnx at path, kept
// beside it in the model cache (named by format version, so a newer
// compiler does not reuse an older artifact) and compiled on first use.
func compiledModel(path string) (string, error) {
	out := fmt.Sprintf("%s.v%d.spindle", strings.TrimSuffix(path, ".onnx"), artifact.Version)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	// The artifact names its data file by base name, so it is compiled
	// under its final name in a scratch folder beside the cache entry and
	// moved in, data first: the model file appearing marks it complete.
	dir, err := os.MkdirTemp(filepath.Dir(path), "compile-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, filepath.Base(out))
	if _, err := artifact.Compile(path, tmp); err != nil {
		return "", fmt.Errorf("compile %s: %w", path, err)
	}
	if err := os.Rename(tmp+".data", out+".data"); err != nil {
		return "", err
	}
	return out, os.Rename(tmp, out)
}

// runSuite measures every bench.Suite case at every thread count, each in a
// child `spindle bench engine --json` process so that one model's memory and
// caches do not colour the next one's numbers.
func runSuite(ctx context.Context, cmd *cobra.Command, threads []int, runs int, minTime time.Duration, ops int, load string, withORT bool, script string, noFusion, noPack, compiled, int8 bool) ([]bench.Comparison, error) {
	cache, err := difftest.NewCache()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var rows []bench.Comparison
	cases := bench.Suite
	if int8 {
		cases = bench.Int8Suite
	}
	for _, c := range cases {
		path := c.File
		if path == "" {
			if path, err = cache.Model(c.Kind, 1); err != nil {
				return nil, err
			}
		} else if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("suite model %s: %w (run from the repository root after scripts/testdeps.sh, which installs it)", c.Name, err)
		}
		if c.Quant != "" {
			if path, err = quantizedModel(path, c.Quant); err != nil {
				return nil, err
			}
		}
		model, name := path, c.Name
		if compiled {
			if model, err = compiledModel(path); err != nil {
				return nil, err
			}
			name += " (compiled)"
		}
		for _, t := range threads {
			a := []string{"bench", "engine", "--model", model, "--ort-model", path, "--json", "--load", load,
				"--threads", strconv.Itoa(t), "--runs", strconv.Itoa(runs), "--min-time", minTime.String(), "--ops", strconv.Itoa(ops),
				"--batch", strconv.Itoa(max(1, c.Shape.Batch)), "--seq", strconv.Itoa(max(1, c.Shape.Seq))}
			for _, d := range c.Shape.Dims {
				a = append(a, "--dims", strconv.Itoa(d))
			}
			if withORT {
				a = append(a, "--ort", "--ort-script", script)
			}
			if noFusion {
				a = append(a, "--no-fusion")
			}
			if noPack {
				a = append(a, "--no-pack")
			}
			child := exec.CommandContext(ctx, self, a...)
			var out bytes.Buffer
			child.Stdout, child.Stderr = &out, cmd.ErrOrStderr()
			if err := child.Run(); err != nil {
				return nil, fmt.Errorf("bench %s at %d threads: %w", name, t, err)
			}
			var got []bench.Comparison
			if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got) != 1 {
				return nil, fmt.Errorf("bench %s at %d threads: bad child output %q: %v", name, t, out.String(), err)
			}
			got[0].Case = name
			rows = append(rows, got[0])
			fmt.Fprintf(cmd.ErrOrStderr(), "%s threads=%d: spindle %.2f ms\n", name, t, got[0].Spindle.Median)
		}
	}
	return rows, nil
}
