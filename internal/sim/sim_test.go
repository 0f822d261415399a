package sim

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/autoscale"
)

func spec(t *testing.T, p autoscale.Policy, kv ...string) autoscale.Spec {
	t.Helper()
	m, err := autoscale.ParseParams(kv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := autoscale.ParseSpec(p, m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.ApplyErrors != 0 {
		t.Errorf("%d decisions refused by the simulated platform", r.Summary.ApplyErrors)
	}
	return r
}

func thesis(t *testing.T, p autoscale.Policy, seed uint64) *Result {
	t.Helper()
	cfg, err := Scenario("thesis", p, Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return run(t, cfg)
}

// checkConservation asserts every request is accounted for exactly once.
func checkConservation(t *testing.T, s Summary) {
	t.Helper()
	if s.Requests != s.Completed+s.Dropped+s.Unfinished {
		t.Errorf("requests %d != completed %d + dropped %d + unfinished %d", s.Requests, s.Completed, s.Dropped, s.Unfinished)
	}
}

func TestDeterministic(t *testing.T) {
	a, b := thesis(t, autoscale.Predictive, 7), thesis(t, autoscale.Predictive, 7)
	if !reflect.DeepEqual(a.Summary, b.Summary) {
		t.Errorf("same seed, different summaries:\n%+v\n%+v", a.Summary, b.Summary)
	}
	if !reflect.DeepEqual(a.Series, b.Series) {
		t.Error("same seed, different time series")
	}
	if c := thesis(t, autoscale.Predictive, 8); reflect.DeepEqual(a.Summary, c.Summary) {
		t.Error("different seeds, same summary")
	}
}

func TestConservation(t *testing.T) {
	overloaded := func(maxQueue int, drain time.Duration, users int) Config {
		w := Poisson(20) // 4 vCPUs of work for 1 vCPU
		if users > 0 {
			w = Ramp(users, 10)
		}
		return Config{
			Nodes: 1, Cores: 4, Duration: 60 * time.Second, Drain: drain, Seed: 1, Warm: true,
			Functions: []Function{{
				Name: "f", Spec: spec(t, autoscale.Static, "vcpus=1"), Service: Exp(0.2),
				MaxQueue: maxQueue, Workload: w,
			}},
		}
	}
	tests := []struct {
		name                   string
		cfg                    Config
		dropped, unfinished    bool // whether some must be
		wantNoDrop, wantNoLeft bool
	}{
		{name: "queue overflows", cfg: overloaded(5, 0, 0), dropped: true, wantNoLeft: true},
		{name: "drain runs out", cfg: overloaded(10000, time.Millisecond, 0), unfinished: true, wantNoDrop: true},
		{name: "closed loop with drops", cfg: overloaded(2, 0, 50), dropped: true, wantNoLeft: true},
		{name: "thesis", cfg: func() Config { c, _ := Scenario("thesis", autoscale.Hybrid, Options{Seed: 3}); return c }(),
			wantNoDrop: true, wantNoLeft: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := run(t, tc.cfg).Summary
			checkConservation(t, s)
			if s.Requests == 0 || s.Completed == 0 {
				t.Fatalf("no traffic: %+v", s)
			}
			if tc.dropped && s.Dropped == 0 || tc.wantNoDrop && s.Dropped != 0 {
				t.Errorf("dropped %d", s.Dropped)
			}
			if tc.unfinished && s.Unfinished == 0 || tc.wantNoLeft && s.Unfinished != 0 {
				t.Errorf("unfinished %d", s.Unfinished)
			}
		})
	}
}

// TestQueueingTheory checks the server model against closed forms: M/M/1
// under FCFS (one worker) and processor sharing (many workers on one vCPU),
// whose mean response time is both 1/(mu - lambda), and M/M/2 (Erlang C).
func TestQueueingTheory(t *testing.T) {
	const lambda, s = 5.0, 0.1 // rho = 0.5 on one vCPU
	mm1Mean := s / (1 - lambda*s)
	// M/M/2 at lambda 15, mu 10: a = 1.5, rho = 0.75, C = 4.5/7.
	mm2Mean := 1/10.0 + (4.5/7)/(2*10-15)
	tests := []struct {
		name      string
		vcpus     string
		workers   float64
		rate      float64
		mean      float64
		quantiles map[float64]float64 // exponential response times for M/M/1 FCFS
	}{
		{"M/M/1 FCFS", "1", 1, lambda, mm1Mean, map[float64]float64{
			0.5: math.Ln2 * mm1Mean, 0.99: math.Log(100) * mm1Mean,
		}},
		{"M/M/1 PS", "1", 64, lambda, mm1Mean, nil},
		{"M/M/2", "2", 1, 15, mm2Mean, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{
				Nodes: 1, Cores: 4, Duration: 20000 * time.Second, Seed: 11, Warm: true,
				Functions: []Function{{
					Name: "f", Spec: spec(t, autoscale.Static, "vcpus="+tc.vcpus), Service: Exp(s),
					WorkersPerVCPU: tc.workers, Workload: Poisson(tc.rate),
				}},
			}
			sum := run(t, cfg).Summary
			checkConservation(t, sum)
			t.Logf("%d requests: mean %.4fs (theory %.4fs), p50 %.4fs, p99 %.4fs", sum.Completed, sum.Mean, tc.mean, sum.P50, sum.P99)
			if math.Abs(sum.Mean-tc.mean) > 0.04*tc.mean {
				t.Errorf("mean response %.4fs, theory %.4fs (over %d requests)", sum.Mean, tc.mean, sum.Completed)
			}
			got := map[float64]float64{0.5: sum.P50, 0.99: sum.P99}
			for q, want := range tc.quantiles {
				if math.Abs(got[q]-want) > 0.06*want {
					t.Errorf("p%g %.4fs, theory %.4fs", q*100, got[q], want)
				}
			}
		})
	}
}

// TestThesisOrdering asserts what the thesis reports (ch. 6), qualitatively:
// hybrid scaling holds far less memory than HPA's replicas, a fixed 56 vCPUs
// has the lowest latency, and hybrid's tail beats HPA's. It also asserts
// what predictive is for: fewer vCPU-seconds than hybrid within the SLO.
func TestThesisOrdering(t *testing.T) {
	r := map[autoscale.Policy]Summary{}
	for _, p := range autoscale.Policies {
		s := thesis(t, p, 1).Summary
		checkConservation(t, s)
		if s.Dropped != 0 || s.Unfinished != 0 {
			t.Errorf("%s: dropped %d, unfinished %d", p, s.Dropped, s.Unfinished)
		}
		r[p] = s
	}
	hybrid, hpa, static, pred := r[autoscale.Hybrid], r[autoscale.HPA], r[autoscale.Static], r[autoscale.Predictive]
	if !(hybrid.MeanMemory < hpa.MeanMemory/2 && hybrid.PeakMemory < hpa.PeakMemory/2) {
		t.Errorf("memory: hybrid mean %d peak %d, hpa mean %d peak %d; want hybrid under half of hpa",
			hybrid.MeanMemory, hybrid.PeakMemory, hpa.MeanMemory, hpa.PeakMemory)
	}
	for _, p := range []autoscale.Policy{autoscale.Hybrid, autoscale.HPA, autoscale.Predictive} {
		if r[p].P99 < static.P99 || r[p].P50 < static.P50*0.99 {
			t.Errorf("%s p50/p99 %.3f/%.3fs below static-56's %.3f/%.3fs", p, r[p].P50, r[p].P99, static.P50, static.P99)
		}
	}
	if !(hybrid.P99 < hpa.P99) {
		t.Errorf("p99: hybrid %.3fs, hpa %.3fs; want hybrid lower", hybrid.P99, hpa.P99)
	}
	if !(pred.VCPUSeconds < hybrid.VCPUSeconds && pred.P99 < 0.5) {
		t.Errorf("predictive: %.0f vCPU-s (hybrid %.0f), p99 %.3fs; want fewer vCPU-s within the 500 ms SLO",
			pred.VCPUSeconds, hybrid.VCPUSeconds, pred.P99)
	}
	if static.PeakVCPUs != 56 || hpa.PeakVCPUs > 56 || hybrid.PeakVCPUs > 56 {
		t.Errorf("peak vCPUs: static %g, hpa %g, hybrid %g", static.PeakVCPUs, hpa.PeakVCPUs, hybrid.PeakVCPUs)
	}
}

// TestHybridDoubles checks the thesis's steps: 1, 2, 4, 8, ... vCPUs, one
// instance.
func TestHybridDoubles(t *testing.T) {
	res := thesis(t, autoscale.Hybrid, 2)
	seen := map[float64]bool{}
	for _, p := range res.Series {
		seen[p.VCPUs] = true
		if p.Replicas != 1 {
			t.Fatalf("t=%gs: %d instances, want 1", p.T, p.Replicas)
		}
	}
	for v := range seen {
		if v != 56 && (v < 1 || math.Log2(v) != math.Floor(math.Log2(v))) {
			t.Errorf("vCPUs %g is not a doubling of 1 or the cap", v)
		}
	}
	if !seen[1] || !seen[2] || !seen[4] || !seen[8] {
		t.Errorf("vCPUs seen %v, want 1, 2, 4 and 8 on the ramp", seen)
	}
}

func TestZeroAndBack(t *testing.T) {
	cfg := Config{
		Nodes: 2, Cores: 8, Duration: 200 * time.Second, Seed: 5,
		Functions: []Function{{
			Name: "f", Spec: spec(t, autoscale.Hybrid, "idle-to-zero=30s"), Service: Const(0.05),
			Boot: time.Second, Load: ThesisLoadTimes,
			Workload: Workload{Steps: []Step{{0, 10}, {20 * time.Second, 0}, {120 * time.Second, 5}, {130 * time.Second, 0}}},
		}},
	}
	res := run(t, cfg)
	checkConservation(t, res.Summary)
	replicas := func(at float64) int {
		for _, p := range res.Series {
			if p.T >= at {
				return p.Replicas
			}
		}
		return -1
	}
	for _, c := range []struct {
		at   float64
		want int
	}{{10, 1}, {100, 0}, {125, 1}, {199, 0}} {
		if got := replicas(c.at); got != c.want {
			t.Errorf("t=%gs: %d replicas, want %d", c.at, got, c.want)
		}
	}
	if res.Summary.ColdStarts != 2 {
		t.Errorf("%d cold starts, want 2", res.Summary.ColdStarts)
	}
	// The first request of each wave waits for boot and load.
	if res.Summary.Max < 1.068 {
		t.Errorf("max latency %.3fs, want a cold start's 1.068 s at least", res.Summary.Max)
	}
}

func TestHPACopiesTheModel(t *testing.T) {
	mk := func(p autoscale.Policy, kv ...string) Config {
		return Config{
			Nodes: 1, Cores: 16, Duration: 120 * time.Second, Seed: 1, Warm: true,
			Functions: []Function{{
				Name: "f", Spec: spec(t, p, kv...), Service: Const(0.2),
				ModelBytes: 1 << 30, ActivationBytes: 1 << 20, Workload: Poisson(30),
			}},
		}
	}
	hpa := run(t, mk(autoscale.HPA, "min-instances=1")).Summary
	mmap := run(t, mk(autoscale.HPA, "min-instances=1", "load=mmap")).Summary
	if hpa.PeakReplicas < 4 {
		t.Fatalf("hpa peaked at %d replicas", hpa.PeakReplicas)
	}
	// copy: a model per replica; mmap: one per node.
	if want := int64(hpa.PeakReplicas) << 30; hpa.PeakMemory < want {
		t.Errorf("copy: peak memory %d < %d replicas x 1 GiB", hpa.PeakMemory, hpa.PeakReplicas)
	}
	if mmap.PeakMemory > 2<<30 {
		t.Errorf("mmap: peak memory %d, want about one 1 GiB model", mmap.PeakMemory)
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		return Config{Nodes: 1, Cores: 4, Duration: time.Second,
			Functions: []Function{{Name: "f", Spec: spec(t, autoscale.Hybrid), Service: Const(0.1), Workload: Poisson(1)}}}
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"nodes", func(c *Config) { c.Nodes = 0 }, "nodes: must be in [1, 1000000]"},
		{"cores", func(c *Config) { c.Cores = 0.1 }, "cores: must be in [0.25, 100000]"},
		{"no functions", func(c *Config) { c.Functions = nil }, "functions: must not be empty"},
		{"duration", func(c *Config) { c.Duration = 0 }, "duration: must be > 0"},
		{"drain", func(c *Config) { c.Drain = -1 }, "drain: must be >= 0"},
		{"name", func(c *Config) { c.Functions = append(c.Functions, c.Functions[0]) }, "functions[1].name: must be set and unique"},
		{"spec", func(c *Config) { c.Functions[0].Spec.SLO = 0 }, `function "f": bad autoscale spec: slo`},
		{"service", func(c *Config) { c.Functions[0].Service = nil }, `function "f": service: must be a distribution`},
		{"bytes", func(c *Config) { c.Functions[0].ModelBytes = -1 }, "bytes: must be >= 0"},
		{"boot", func(c *Config) { c.Functions[0].Boot = -1 }, "boot and load times: must be >= 0"},
		{"workers", func(c *Config) { c.Functions[0].WorkersPerVCPU = -1 }, "workers-per-vcpu"},
		{"queue", func(c *Config) { c.Functions[0].MaxQueue = -1 }, "max-queue: must be >= 0"},
		{"spawn", func(c *Config) { c.Functions[0].Workload = Workload{Users: 3} }, "spawn-rate: must be > 0"},
		{"think", func(c *Config) {
			c.Functions[0].Workload = Workload{Users: 3, SpawnRate: 1, ThinkMin: 2 * time.Second, ThinkMax: time.Second}
		}, "think time"},
		{"step order", func(c *Config) {
			c.Functions[0].Workload = Workload{Steps: []Step{{time.Second, 1}, {0, 1}}}
		}, "steps[1].at"},
		{"step rate", func(c *Config) { c.Functions[0].Workload = Poisson(math.NaN()) }, "steps[0].rate"},
		{"no workload", func(c *Config) { c.Functions[0].Workload = Workload{} }, "workload: must have users or steps"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.edit(&c)
			_, err := Run(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrBadConfig) && !errors.Is(err, autoscale.ErrBadSpec) {
				t.Errorf("%v wraps neither ErrBadConfig nor ErrBadSpec", err)
			}
		})
	}
	if _, err := Run(good()); err != nil {
		t.Errorf("good config: %v", err)
	}
}

func TestScenario(t *testing.T) {
	tests := []struct {
		name   string
		policy autoscale.Policy
		opts   Options
		err    string
		check  func(Config) bool
	}{
		{"thesis", autoscale.Hybrid, Options{}, "", func(c Config) bool {
			f := c.Functions[0]
			return c.Nodes == 1 && c.Cores == 64 && f.Spec.MaxVCPUs == 56 && f.Workload.Users == 100 && f.Spec.Load == autoscale.LoadMmap
		}},
		{"thesis", autoscale.HPA, Options{}, "", func(c Config) bool {
			return c.Functions[0].Spec.MaxInstances == 56 && c.Functions[0].Spec.Load == autoscale.LoadCopy
		}},
		{"thesis", autoscale.Static, Options{Params: []string{"static.vcpus=8", "slo=1s"}}, "", func(c Config) bool {
			return c.Functions[0].Spec.VCPUs == 8 && c.Functions[0].Spec.SLO == time.Second
		}},
		{"poisson", autoscale.Static, Options{Nodes: 2}, "", func(c Config) bool {
			return len(c.Functions) == 8 && c.Functions[0].Spec.VCPUs == 16
		}},
		{"burst", autoscale.Predictive, Options{Rate: 8, Duration: 130 * time.Second}, "", func(c Config) bool {
			s := c.Functions[0].Workload.Steps
			return len(s) == 5 && s[1].At == time.Minute && s[2].At == 70*time.Second && s[1].Rate == 10*s[0].Rate
		}},
		{"step", autoscale.HPA, Options{}, "", func(c Config) bool { return len(c.Functions[0].Workload.Steps) == 3 }},
		{"knative", autoscale.Hybrid, Options{}, `scenario "knative": must be one of thesis, poisson, step, burst`, nil},
		{"thesis", autoscale.Hybrid, Options{Params: []string{"bogus=1"}}, "bogus: unknown parameter", nil},
		{"thesis", autoscale.Hybrid, Options{Params: []string{"kube.slo=1s"}}, `prefix "kube" names no policy`, nil},
		{"thesis", autoscale.Hybrid, Options{Params: []string{"hybrid.panic-window=1s"}}, "panic-window: not a parameter of policy hybrid", nil},
		{"thesis", autoscale.Hybrid, Options{Params: []string{"slo"}}, "want key=value", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+string(tc.policy), func(t *testing.T) {
			c, err := Scenario(tc.name, tc.policy, tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("scenario config invalid: %v", err)
			}
			if !tc.check(c) {
				t.Errorf("config fails its check: %+v", c)
			}
		})
	}
	// A plain key only some policies take goes to those only.
	for _, p := range autoscale.Policies {
		if _, err := Scenario("thesis", p, Options{Params: []string{"panic-threshold=3"}}); err != nil {
			t.Errorf("%s with panic-threshold: %v", p, err)
		}
	}
}
