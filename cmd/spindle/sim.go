package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/sim"
)

// simRun is one policy's simulation, as --json prints it.
type simRun struct {
	Policy  string      `json:"policy"`
	Spec    string      `json:"spec"`
	Summary sim.Summary `json:"summary"`
	WallS   float64     `json:"wall_s"`
	Series  []sim.Point `json:"series,omitempty"`
}

// simReport is the whole --json output.
type simReport struct {
	Scenario  string   `json:"scenario"`
	Nodes     int      `json:"nodes"`
	Cores     float64  `json:"cores"`
	Functions int      `json:"functions"`
	DurationS float64  `json:"duration_s"`
	Seed      uint64   `json:"seed"`
	Service   string   `json:"service"`
	Runs      []simRun `json:"runs"`
}

func newSimCmd() *cobra.Command {
	var (
		scenario, service, csvDir string
		policies, params          []string
		nodes, functions, users   int
		cores, rate, spawn        float64
		duration                  time.Duration
		seed                      uint64
		jsonOut, series           bool
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate autoscaling policies on a cluster, in virtual time",
		Long: `Simulate functions on nodes under the autoscaling policies, with the same
policy code the platform runs, and compare them: latency percentiles, memory,
vCPU-seconds and replicas.

Scenarios:
  thesis   the thesis's experiment: one 64-core node, BERT (~200 ms at 1 vCPU,
           528 MB model), the Locust ramp (1 user, +2/s to 100, one request
           every 2-3 s), caps of 56 vCPUs / 56 replicas, SLO 500 ms, 300 s
  poisson  open-loop Poisson load, 4 functions per node at --rate x U(0.5, 1.5)
  step     --rate/4, then --rate, then --rate/2, a third of the run each
  burst    --rate/4 with 10 s bursts at 2.5 x --rate every minute

Policies: hybrid (the thesis's vertical-then-horizontal doubling), hpa
(replicas of 1 vCPU, a model copy each), static (fixed vCPUs: the thesis's
bare metal), predictive (ours: sized from rate x service time in one step).

Policy parameters: --param key=value applies to every policy that takes the
key, --param hpa.max-instances=32 to one policy. Keys: ` + strings.Join(allParamNames(), ", ") + `.`,
		Example: `  spindle sim --scenario thesis
  spindle sim --scenario thesis --policy hybrid,predictive --param slo=300ms --json
  spindle sim --scenario poisson --nodes 1000 --policy predictive --csv out/`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(sim.Scenarios, scenario) {
				return usagef("--scenario %q: must be one of %s", scenario, strings.Join(sim.Scenarios, ", "))
			}
			var pols []autoscale.Policy
			for _, p := range policies {
				pol := autoscale.Policy(strings.TrimSpace(p))
				if _, err := autoscale.DefaultSpec(pol); err != nil {
					return usageError{fmt.Errorf("--policy: %w", err)}
				}
				if slices.Contains(pols, pol) {
					return usagef("--policy %q: given twice", pol)
				}
				pols = append(pols, pol)
			}
			if len(pols) == 0 {
				return usagef("--policy: name at least one policy")
			}
			flags := cmd.Flags()
			o := sim.Options{Seed: seed, Params: params}
			for _, c := range []struct {
				name string
				bad  bool
				set  func()
			}{
				{"nodes", nodes < 1, func() { o.Nodes = nodes }},
				{"cores", !(cores >= autoscale.Quantum), func() { o.Cores = cores }},
				{"functions", functions < 1, func() { o.Functions = functions }},
				{"duration", duration <= 0, func() { o.Duration = duration }},
				{"rate", !(rate > 0), func() { o.Rate = rate }},
				{"users", users < 1, func() { o.Users = users }},
				{"spawn-rate", !(spawn > 0), func() { o.SpawnRate = spawn }},
			} {
				if !flags.Changed(c.name) {
					continue
				}
				if c.bad {
					return usagef("--%s %s: must be positive", c.name, flags.Lookup(c.name).Value)
				}
				c.set()
			}
			if service != "" {
				d, err := sim.ParseDist(service)
				if err != nil {
					return usageError{fmt.Errorf("--service: %w", err)}
				}
				o.Service = d
			}
			cfgs := make([]sim.Config, len(pols))
			for i, p := range pols {
				c, err := sim.Scenario(scenario, p, o)
				if err != nil {
					return usageError{fmt.Errorf("%s: %w", p, err)}
				}
				if err := c.Validate(); err != nil {
					return usageError{fmt.Errorf("%s: %w", p, err)}
				}
				cfgs[i] = c
			}
			runs, err := runSims(pols, cfgs)
			if err != nil {
				return err
			}
			c0 := cfgs[0]
			rep := simReport{
				Scenario: scenario, Nodes: c0.Nodes, Cores: c0.Cores, Functions: len(c0.Functions),
				DurationS: c0.Duration.Seconds(), Seed: seed, Service: c0.Functions[0].Service.String(), Runs: runs,
			}
			if csvDir != "" {
				if err := writeSimCSV(csvDir, scenario, runs); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				if !series {
					for i := range rep.Runs {
						rep.Runs[i].Series = nil
					}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printSimTable(out, rep, c0.Functions[0].Spec.SLO)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", "thesis", "`SCENARIO`: "+strings.Join(sim.Scenarios, ", "))
	f.StringSliceVar(&policies, "policy", []string{"hybrid", "hpa", "static", "predictive"}, "`POLICIES` to compare, comma-separated")
	f.IntVar(&nodes, "nodes", 0, "nodes (default: the scenario's, 1)")
	f.Float64Var(&cores, "cores", 0, "cores per node (default: the scenario's, 64)")
	f.IntVar(&functions, "functions", 0, "functions (default: thesis 1, others 4 per node)")
	f.DurationVar(&duration, "duration", 0, "how long load is offered (default: the scenario's, 5m)")
	f.Uint64Var(&seed, "seed", 1, "random seed; the same seed gives the same result")
	f.Float64Var(&rate, "rate", 0, "mean open-loop requests/s per function (default 20; thesis: none)")
	f.IntVar(&users, "users", 0, "thesis: closed-loop users (default 100)")
	f.Float64Var(&spawn, "spawn-rate", 0, "thesis: users spawned per second (default 2)")
	f.StringVar(&service, "service", "", "service time at 1 vCPU, a `DIST`: const:D, exp:MEAN, lognormal:MEAN:CV, uniform:LO:HI or file:PATH (default lognormal:200ms:0.2)")
	f.StringArrayVar(&params, "param", nil, "policy parameter `KEY=VALUE` or POLICY.KEY=VALUE (repeatable)")
	f.BoolVar(&jsonOut, "json", false, "print JSON instead of a table")
	f.BoolVar(&series, "series", false, "with --json, include the per-second time series")
	f.StringVar(&csvDir, "csv", "", "write each policy's per-second time series to `DIR`/SCENARIO-POLICY.csv")
	return cmd
}

// allParamNames lists every policy parameter, for the help text.
func allParamNames() []string {
	var out []string
	for _, p := range autoscale.Policies {
		for _, k := range autoscale.ParamNames(p) {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// runSims runs the simulations, as many at once as there are CPUs.
func runSims(pols []autoscale.Policy, cfgs []sim.Config) ([]simRun, error) {
	runs := make([]simRun, len(cfgs))
	errs := make([]error, len(cfgs))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			r, err := sim.Run(cfgs[i])
			if err != nil {
				errs[i] = fmt.Errorf("simulate %s: %w", pols[i], err)
				return
			}
			runs[i] = simRun{
				Policy: string(pols[i]), Spec: cfgs[i].Functions[0].Spec.String(),
				Summary: r.Summary, WallS: time.Since(start).Seconds(), Series: r.Series,
			}
		}()
	}
	wg.Wait()
	return runs, errors.Join(errs...)
}

func printSimTable(w io.Writer, rep simReport, slo time.Duration) {
	plural := func(n int, word string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, word)
		}
		return fmt.Sprintf("%d %ss", n, word)
	}
	fmt.Fprintf(w, "scenario %s: %s x %g cores, %s, %v of load, service %s, seed %d\n\n",
		rep.Scenario, plural(rep.Nodes, "node"), rep.Cores, plural(rep.Functions, "function"),
		time.Duration(rep.DurationS*float64(time.Second)), rep.Service, rep.Seed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-10s\tp50\tp99\tover SLO %v\tpeak mem\tmean mem\tvCPU-s\tpeak vCPUs\tpeak replicas\trequests\tdropped\tcold starts\t\n", "policy", slo)
	for _, r := range rep.Runs {
		s := r.Summary
		over := "0"
		if s.Completed > 0 {
			over = fmt.Sprintf("%.2f%%", 100*float64(s.SLOViolations)/float64(s.Completed))
		}
		fmt.Fprintf(tw, "%-10s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%g\t%d\t%d\t%d\t%d\t\n",
			r.Policy, ms(s.P50), ms(s.P99), over, gib(s.PeakMemory), gib(s.MeanMemory),
			s.VCPUSeconds, s.PeakVCPUs, s.PeakReplicas, s.Requests, s.Dropped+s.Unfinished, s.ColdStarts)
	}
	tw.Flush()
	var wall float64
	for _, r := range rep.Runs {
		wall = max(wall, r.WallS)
	}
	fmt.Fprintf(w, "\n(simulated in %v of wall time; dropped counts unfinished requests too)\n",
		time.Duration(wall*float64(time.Second)).Round(time.Millisecond))
}

func ms(s float64) string { return strconv.FormatFloat(s*1e3, 'f', 0, 64) + "ms" }

func gib(b int64) string {
	return strconv.FormatFloat(float64(b)/(1<<30), 'f', 1, 64) + " GiB"
}

func writeSimCSV(dir, scenario string, runs []simRun) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--csv: %w", err)
	}
	for _, r := range runs {
		path := filepath.Join(dir, scenario+"-"+r.Policy+".csv")
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("--csv: %w", err)
		}
		w := csv.NewWriter(f)
		w.Write([]string{"t_s", "rps", "completed", "p50_ms", "p99_ms", "vcpus", "replicas", "memory_bytes", "users", "queued"})
		for _, p := range r.Series {
			w.Write([]string{
				strconv.FormatFloat(p.T, 'f', -1, 64), strconv.FormatFloat(p.RPS, 'f', -1, 64),
				strconv.Itoa(p.Completed), strconv.FormatFloat(p.P50*1e3, 'f', 3, 64), strconv.FormatFloat(p.P99*1e3, 'f', 3, 64),
				strconv.FormatFloat(p.VCPUs, 'f', -1, 64), strconv.Itoa(p.Replicas), strconv.FormatInt(p.Memory, 10),
				strconv.Itoa(p.Users), strconv.Itoa(p.Queued),
			})
		}
		w.Flush()
		if err := errors.Join(w.Error(), f.Close()); err != nil {
			return fmt.Errorf("--csv %s: %w", path, err)
		}
	}
	return nil
}
