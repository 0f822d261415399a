package experiment

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Env is what an experiment runs with.
type Env struct {
	// Exe is the spindle binary whose subcommands the experiments start
	// (instances, gateways, load-once children).
	Exe string
	// Out is the folder results go to; each experiment writes Out/NAME/.
	Out string
	// Models caches generated models (modelgen is deterministic, so a model
	// generated once serves every run); empty means Out/models.
	Models string
	// Quick runs small models and few repetitions: minutes on 2 cores.
	Quick bool
	// Runs is repetitions per measurement; 0 means 3 with Quick, 10 without.
	Runs int
	// Users caps the concurrency levels and the ramp's users; 0 means the
	// thesis's (50 concurrent clients, 100 users) without Quick.
	Users int
	// Duration is how long the live ramp runs; 0 means 120 s, 20 s with
	// Quick.
	Duration time.Duration
	// VCPUs caps the vCPU steps; 0 means the machine's CPU count.
	VCPUs float64
	// StemCells is the platforms' --stem-cells; nil means spindle up's
	// default.
	StemCells *int
	// Models to run, by modelgen kind; empty means each experiment's default
	// set (small models with Quick).
	Kinds []string
	// Simulated runs hybrid-vs-hpa's simulated variant (spindle sim in
	// virtual time) instead of the live one.
	Simulated bool
	// Policies are the autoscaling policies hybrid-vs-hpa runs live; empty
	// means static, hybrid, hpa and predictive.
	Policies []string
	// SLO is the live hybrid-vs-hpa's p99 target; 0 means 2.5 times a
	// request's time on one scaling step (the thesis's 500 ms SLO over its
	// 200 ms request on a 1-vCPU pod).
	SLO time.Duration
	// Command is the command line to quote in reports.
	Command string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

func (e *Env) logf(format string, args ...any) {
	if e.Log != nil {
		fmt.Fprintf(e.Log, format+"\n", args...)
	}
}

func (e *Env) runs() int {
	switch {
	case e.Runs > 0:
		return e.Runs
	case e.Quick:
		return 3
	}
	return 10
}

func (e *Env) modelDir() string {
	if e.Models != "" {
		return e.Models
	}
	return filepath.Join(e.Out, "models")
}

func (e *Env) vcpuCap() float64 {
	if e.VCPUs > 0 {
		return e.VCPUs
	}
	return float64(runtime.NumCPU())
}

// kinds returns Env.Kinds, or def when none are set.
func (e *Env) kinds(def []string) []string {
	if len(e.Kinds) > 0 {
		return e.Kinds
	}
	return def
}

// Experiment is one reproducible measurement.
type Experiment struct {
	Name  string
	Title string
	// Ref names the thesis tables and figures it reproduces.
	Ref string
	Run func(ctx context.Context, env *Env) (*Report, error)
}

// All returns the experiments in the order `bench all` runs them.
func All() []Experiment {
	return []Experiment{
		{Name: "load-time", Title: "Model load time by copy mechanism", Ref: "Table 4.2, Fig 4.6", Run: LoadTime},
		{Name: "cold-warm", Title: "Cold and warm start, phase by phase", Ref: "Table 4.3, Figs 4.1, 4.2", Run: ColdWarm},
		{Name: "memory-timeline", Title: "Instance memory from start to inference", Ref: "Fig 4.5, Table 4.1", Run: MemoryTimeline},
		{Name: "concurrency", Title: "Latency and memory under concurrent clients", Ref: "Figs 5.3, 5.6", Run: Concurrency},
		{Name: "hybrid-vs-hpa", Title: "Hybrid autoscaling against HPA on the thesis ramp", Ref: "Figs 6.1, 6.2, 6.3", Run: HybridVsHPA},
	}
}

// Lookup returns the experiment called name.
func Lookup(name string) (Experiment, bool) {
	for _, x := range All() {
		if x.Name == name {
			return x, true
		}
	}
	return Experiment{}, false
}

// Names lists the experiments' names.
func Names() []string {
	var n []string
	for _, x := range All() {
		n = append(n, x.Name)
	}
	return n
}

// ErrNoExe is returned by an experiment that needs the spindle binary when
// Env.Exe is empty.
var ErrNoExe = errors.New("experiment: Env.Exe (the spindle binary) is required")

// RunOne runs x into env.Out/x.Name and writes its report. It returns the
// report, written even when the experiment failed part-way (with the failure
// noted), and the error.
func RunOne(ctx context.Context, env *Env, x Experiment) (*Report, error) {
	sub := *env
	sub.Out = filepath.Join(env.Out, x.Name)
	if env.Models == "" {
		sub.Models = env.modelDir()
	}
	if err := os.MkdirAll(sub.Out, 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	env.logf("== %s (%s)", x.Name, x.Ref)
	loadBefore := loadAvg()
	rep, err := x.Run(ctx, &sub)
	if rep == nil {
		rep = &Report{}
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("Machine load average (1 min) at the start and end of the run: %s and %s; other work on the machine shares its CPUs and shows in the timings.", loadBefore, loadAvg()))
	rep.Name, rep.Title, rep.Ref = x.Name, x.Title, x.Ref
	rep.Command, rep.Quick, rep.Took = env.Command, env.Quick, time.Since(start)
	if err != nil {
		rep.Notes = append(rep.Notes, "The run failed before it finished: "+err.Error())
	}
	if werr := rep.Write(sub.Out); werr != nil {
		return rep, errors.Join(err, werr)
	}
	env.logf("   %s: %s in %v", x.Name, filepath.Join(sub.Out, "report.md"), rep.Took.Round(time.Second))
	return rep, err
}

// loadAvg returns the 1-minute load average, or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// Machine describes this machine in one line: CPU model, cores, memory,
// kernel.
func Machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		mem = fmt.Sprintf(", %.1f GiB RAM", float64(si.Totalram)*float64(si.Unit)/(1<<30))
	}
	kernel := ""
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		kernel = ", Linux " + unix.ByteSliceToString(u.Release[:])
	}
	return fmt.Sprintf("%s, %d CPUs%s%s, %s", cpu, runtime.NumCPU(), mem, kernel, runtime.Version())
}
