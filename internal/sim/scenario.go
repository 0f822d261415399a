package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/spindleml/spindle/internal/autoscale"
)

// Scenarios lists the named scenarios.
var Scenarios = []string{"thesis", "poisson", "step", "burst"}

// Options adjust a named scenario; a zero field keeps the scenario's value.
type Options struct {
	Nodes     int
	Cores     float64
	Functions int
	Duration  time.Duration
	Seed      uint64
	// Rate is the mean open-loop rate per function (poisson, step, burst).
	Rate float64
	// Users and SpawnRate shape the thesis's closed loop.
	Users     int
	SpawnRate float64
	// Service is the service time at 1 vCPU.
	Service Dist
	// Params are "key=value" or "policy.key=value" policy parameters: a plain
	// key goes to every policy that takes it, a prefixed one to that policy.
	Params []string
}

// BERT's costs as the thesis measured them: ~200 ms per request at 1 vCPU
// (§5.3.2), a 527.79 MB model (Table 4.1), its load times (Table 4.2).
const (
	bertModelBytes = 553_428_500 // 527.79 MiB
	activationMiB  = 32
	runtimeMiB     = 64
)

// BERTService is the thesis's BERT service time: 200 ms at 1 vCPU, log-normal
// with a coefficient of variation of 0.2.
var BERTService Dist = NewLogNormal(0.2, 0.2)

// Scenario builds the named scenario for one policy.
//
//   - thesis: the thesis's experiment (ch. 6): one 64-core node, one BERT
//     function, the Locust ramp (1 user, +2 users/s to 100, each one
//     request every 2-3 s), a 56-vCPU (or 56-replica) cap, SLO 500 ms, 300 s.
//   - poisson: open-loop Poisson arrivals, 4 functions per node, each at
//     Rate x U(0.5, 1.5) (Rate 20/s by default); static gives every function
//     an equal share of the cluster.
//   - step: Rate/4, then Rate, then Rate/2, a third of the run each.
//   - burst: Rate/4 with bursts at 2.5 x Rate for 10 s every 60 s.
func Scenario(name string, policy autoscale.Policy, o Options) (Config, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	if o.Duration == 0 {
		o.Duration = 300 * time.Second
	}
	if o.Service == nil {
		o.Service = BERTService
	}
	def(&o.Nodes, 1)
	deff(&o.Cores, 64)
	var scenarioParams map[autoscale.Policy][]string
	switch name {
	case "thesis":
		def(&o.Functions, 1)
		def(&o.Users, 100)
		deff(&o.SpawnRate, 2)
		scenarioParams = map[autoscale.Policy][]string{
			autoscale.Hybrid:     {"max-vcpus=56", "min-instances=1"},
			autoscale.HPA:        {"max-instances=56", "min-instances=1"},
			autoscale.Static:     {"vcpus=56"},
			autoscale.Predictive: {"max-vcpus=56", "min-instances=1"},
		}
	case "poisson", "step", "burst":
		def(&o.Functions, 4*o.Nodes)
		deff(&o.Rate, 20)
		// Static gets an equal share of the cluster: bare metal split evenly.
		share := math.Floor(o.Cores*float64(o.Nodes)/float64(o.Functions)/autoscale.Quantum) * autoscale.Quantum
		scenarioParams = map[autoscale.Policy][]string{
			autoscale.Static: {fmt.Sprintf("vcpus=%g", min(max(share, autoscale.Quantum), o.Cores))},
		}
	default:
		return Config{}, fmt.Errorf("%w: scenario %q: must be one of %s", ErrBadConfig, name, strings.Join(Scenarios, ", "))
	}
	kv, err := PolicyParams(policy, append(scenarioParams[policy], o.Params...))
	if err != nil {
		return Config{}, err
	}
	spec, err := autoscale.ParseSpec(policy, kv)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Nodes: o.Nodes, Cores: o.Cores, Duration: o.Duration, Seed: o.Seed, Warm: true}
	rates := rand.New(rand.NewPCG(o.Seed, 0))
	for i := range o.Functions {
		f := Function{
			Name:            fmt.Sprintf("f%d", i),
			Spec:            spec,
			Service:         o.Service,
			ModelBytes:      bertModelBytes,
			ActivationBytes: activationMiB << 20,
			InstanceBytes:   runtimeMiB << 20,
			Boot:            time.Second,
			Load:            ThesisLoadTimes,
		}
		r := o.Rate * (0.5 + rates.Float64())
		switch name {
		case "thesis":
			f.Name = "bert"
			if o.Functions > 1 {
				f.Name = fmt.Sprintf("bert%d", i)
			}
			f.Workload = Ramp(o.Users, o.SpawnRate)
			if o.Rate > 0 {
				f.Workload.Steps = []Step{{0, o.Rate}}
			}
		case "poisson":
			f.Workload = Poisson(r)
		case "step":
			third := o.Duration / 3
			f.Workload = Workload{Steps: []Step{{0, r / 4}, {third, r}, {2 * third, r / 2}}}
		case "burst":
			f.Workload = Burst(r/4, 2.5*r, time.Minute, 10*time.Second, o.Duration)
		}
		cfg.Functions = append(cfg.Functions, f)
	}
	return cfg, nil
}

// PolicyParams picks, from "key=value" and "policy.key=value" items, those
// for one policy: prefixed items for it, and plain keys it takes. Later items
// override earlier ones. A prefix naming no policy, or a plain key no policy
// takes, is an error wrapping autoscale.ErrBadSpec.
func PolicyParams(policy autoscale.Policy, items []string) (map[string]string, error) {
	takes := map[string]bool{}
	for _, k := range autoscale.ParamNames(policy) {
		takes[k] = true
	}
	out := map[string]string{}
	for _, item := range items {
		kv, err := autoscale.ParseParams([]string{item})
		if err != nil {
			return nil, err
		}
		for k, v := range kv {
			if p, key, ok := strings.Cut(k, "."); ok {
				if _, err := autoscale.DefaultSpec(autoscale.Policy(p)); err != nil {
					return nil, fmt.Errorf("%w: %s: prefix %q names no policy", autoscale.ErrBadSpec, k, p)
				}
				if autoscale.Policy(p) == policy {
					out[key] = v
				}
				continue
			}
			if takes[k] {
				out[k] = v
				continue
			}
			if !anyPolicyTakes(k) {
				return nil, fmt.Errorf("%w: %s: unknown parameter (known: %s)", autoscale.ErrBadSpec, k, strings.Join(allParams(), ", "))
			}
		}
	}
	return out, nil
}

func anyPolicyTakes(k string) bool {
	for _, p := range autoscale.Policies {
		for _, name := range autoscale.ParamNames(p) {
			if name == k {
				return true
			}
		}
	}
	return false
}

func allParams() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range autoscale.Policies {
		for _, name := range autoscale.ParamNames(p) {
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}
