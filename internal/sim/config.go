package sim

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/spindleml/spindle/internal/autoscale"
)

// ErrBadConfig marks a configuration that breaks a rule; the message names the
// field.
var ErrBadConfig = errors.New("bad simulation config")

// Config is one simulation run.
type Config struct {
	// Nodes machines of Cores CPUs each, named n0, n1, ...
	Nodes int
	Cores float64
	// Functions, each with its policy, costs and workload.
	Functions []Function
	// Duration is how long load is offered; the summary covers requests that
	// arrived in it, and memory and vCPUs over it.
	Duration time.Duration
	// Drain is how long, after Duration, requests still running may take to
	// finish before they are counted as unfinished; 0 means 60 s.
	Drain time.Duration
	// Seed makes the run reproducible: the same config and seed give the
	// same result.
	Seed uint64
	// Resolution is the autoscaler loop's tick; 0 means 1 s.
	Resolution time.Duration
	// Step is the time series' step; 0 means 1 s.
	Step time.Duration
	// Warm makes the instances the first tick starts ready at once, as if
	// deployed before the run; otherwise they boot like any other.
	Warm bool
	// History is how many decisions the loop keeps per function; 0 means 8.
	History int
}

// Function is one simulated function.
type Function struct {
	Name string
	// Spec is its scaling policy; Spec.Load picks the load mode.
	Spec autoscale.Spec
	// Service is the work per request, in seconds at 1 vCPU.
	Service Dist
	// ModelBytes is the model's size: held once per instance for load modes
	// copy and single, once per node (shared page cache) for mmap.
	ModelBytes int64
	// ActivationBytes is the working memory of one worker.
	ActivationBytes int64
	// InstanceBytes is the memory of an instance's runtime, model aside.
	InstanceBytes int64
	// Boot is the time from starting an instance to loading its model.
	Boot time.Duration
	// Load is the model's load time per load mode.
	Load LoadTimes
	// WorkersPerVCPU sets an instance's worker pool: ceil(vCPUs x it),
	// at least 1; 0 means 1.
	WorkersPerVCPU float64
	// MaxQueue bounds the requests waiting at the gateway; an arrival that
	// finds it full is dropped. 0 means 10,000.
	MaxQueue int
	Workload Workload
}

// LoadTimes is how long loading the model takes in each load mode.
type LoadTimes struct {
	Copy, Single, Mmap time.Duration
}

func (l LoadTimes) of(mode string) time.Duration {
	switch mode {
	case autoscale.LoadCopy:
		return l.Copy
	case autoscale.LoadSingle:
		return l.Single
	}
	return l.Mmap
}

// ThesisLoadTimes are the BERT load times of the thesis (Table 4.2): 1.83 s
// with no optimisation, 0.134 s as a single copy, 0.068 s zero-copy.
var ThesisLoadTimes = LoadTimes{Copy: 1830 * time.Millisecond, Single: 134 * time.Millisecond, Mmap: 68 * time.Millisecond}

// Workload is the load offered to one function: a closed loop of users, an
// open loop of Poisson arrivals, or both.
type Workload struct {
	// Users is the closed loop's final number of users (Locust's model):
	// the first is spawned at time 0 and SpawnRate more per second after,
	// each sending a request, waiting for the response (or its drop), then
	// thinking for a time uniform in [ThinkMin, ThinkMax].
	Users              int
	SpawnRate          float64
	ThinkMin, ThinkMax time.Duration
	// Steps make the open loop: Poisson arrivals at Steps[i].Rate per second
	// from Steps[i].At until the next step. No steps: no open loop.
	Steps []Step
}

// Step is one stretch of constant open-loop rate.
type Step struct {
	At   time.Duration
	Rate float64
}

// Ramp is the thesis's Locust load: users spawned at spawnRate per second up
// to users, each one request then a think time of 2-3 s.
func Ramp(users int, spawnRate float64) Workload {
	return Workload{Users: users, SpawnRate: spawnRate, ThinkMin: 2 * time.Second, ThinkMax: 3 * time.Second}
}

// Poisson is an open loop at a constant rate.
func Poisson(rate float64) Workload {
	return Workload{Steps: []Step{{0, rate}}}
}

// Burst is an open loop at base rate with a burst at peak rate for length
// every period, the first burst at one period, up to until.
func Burst(base, peak float64, period, length, until time.Duration) Workload {
	w := Workload{Steps: []Step{{0, base}}}
	for at := period; at < until; at += period {
		w.Steps = append(w.Steps, Step{at, peak}, Step{at + length, base})
	}
	return w
}

func (c *Config) setDefaults() {
	if c.Drain == 0 {
		c.Drain = time.Minute
	}
	if c.Resolution == 0 {
		c.Resolution = time.Second
	}
	if c.Step == 0 {
		c.Step = time.Second
	}
	if c.History == 0 {
		c.History = 8
	}
	for i := range c.Functions {
		f := &c.Functions[i]
		if f.WorkersPerVCPU == 0 {
			f.WorkersPerVCPU = 1
		}
		if f.MaxQueue == 0 {
			f.MaxQueue = 10000
		}
	}
}

// Validate checks the config; the error wraps ErrBadConfig (or the spec's
// autoscale.ErrBadSpec) and names the field.
func (c Config) Validate() error {
	bad := func(field, rule string, got any) error {
		return fmt.Errorf("%w: %s: %s, got %v", ErrBadConfig, field, rule, got)
	}
	switch {
	case c.Nodes < 1 || c.Nodes > 1_000_000:
		return bad("nodes", "must be in [1, 1000000]", c.Nodes)
	case !(c.Cores >= autoscale.Quantum) || c.Cores > 1e5:
		return bad("cores", fmt.Sprintf("must be in [%g, 100000]", autoscale.Quantum), c.Cores)
	case len(c.Functions) == 0:
		return bad("functions", "must not be empty", 0)
	case c.Duration <= 0:
		return bad("duration", "must be > 0", c.Duration)
	case c.Drain < 0:
		return bad("drain", "must be >= 0", c.Drain)
	case c.Resolution < 0:
		return bad("resolution", "must be >= 0", c.Resolution)
	case c.Step < 0:
		return bad("step", "must be >= 0", c.Step)
	case c.History < 0:
		return bad("history", "must be >= 0", c.History)
	}
	names := map[string]bool{}
	for i, f := range c.Functions {
		field := fmt.Sprintf("functions[%d]", i)
		if f.Name == "" || names[f.Name] {
			return bad(field+".name", "must be set and unique", fmt.Sprintf("%q", f.Name))
		}
		names[f.Name] = true
		field = fmt.Sprintf("function %q", f.Name)
		if err := f.Spec.Validate(); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if f.Service == nil || !(f.Service.Mean() > 0) {
			return bad(field+": service", "must be a distribution with a mean > 0", f.Service)
		}
		if f.ModelBytes < 0 || f.ActivationBytes < 0 || f.InstanceBytes < 0 {
			return bad(field+": bytes", "must be >= 0", fmt.Sprint(f.ModelBytes, f.ActivationBytes, f.InstanceBytes))
		}
		if f.Boot < 0 || f.Load.Copy < 0 || f.Load.Single < 0 || f.Load.Mmap < 0 {
			return bad(field+": boot and load times", "must be >= 0", fmt.Sprint(f.Boot, f.Load))
		}
		if f.WorkersPerVCPU < 0 || f.WorkersPerVCPU > 1024 || math.IsNaN(f.WorkersPerVCPU) {
			return bad(field+": workers-per-vcpu", "must be in [0, 1024]", f.WorkersPerVCPU)
		}
		if f.MaxQueue < 0 {
			return bad(field+": max-queue", "must be >= 0", f.MaxQueue)
		}
		w := f.Workload
		if w.Users < 0 {
			return bad(field+": users", "must be >= 0", w.Users)
		}
		if w.Users > 0 {
			if !(w.SpawnRate > 0) || math.IsInf(w.SpawnRate, 0) {
				return bad(field+": spawn-rate", "must be > 0", w.SpawnRate)
			}
			if w.ThinkMin < 0 || w.ThinkMax < w.ThinkMin {
				return bad(field+": think time", "must satisfy 0 <= min <= max", fmt.Sprint(w.ThinkMin, w.ThinkMax))
			}
		}
		for k, s := range w.Steps {
			if s.At < 0 || (k > 0 && s.At < w.Steps[k-1].At) {
				return bad(fmt.Sprintf("%s: steps[%d].at", field, k), "must be >= 0 and not before the previous step", s.At)
			}
			if !(s.Rate >= 0) || math.IsInf(s.Rate, 0) || s.Rate > 1e7 {
				return bad(fmt.Sprintf("%s: steps[%d].rate", field, k), "must be in [0, 1e7]", s.Rate)
			}
		}
		if w.Users == 0 && len(w.Steps) == 0 {
			return bad(field+": workload", "must have users or steps", "none")
		}
	}
	return nil
}
