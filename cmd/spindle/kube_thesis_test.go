package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
	"github.com/spindleml/spindle/internal/kube/devcluster"
	"github.com/spindleml/spindle/internal/kube/kubesim"
	"github.com/spindleml/spindle/internal/kube/operator"
	"github.com/spindleml/spindle/internal/sim"
)

// BenchmarkKubeThesis is the thesis's experiment (ch. 6, as `spindle sim
// --scenario thesis` runs it) on the real API server: one 64-CPU node, one
// BERT function (200 ms a request at 1 vCPU, a 527.79 MiB model), the Locust
// ramp (1 user, +2 a second to 100, one request every 2.5 s each), SLO 500 ms,
// 56 vCPUs or 56 replicas at most, for hybrid (pods grown in place, the model
// mapped once per node) and hpa (1-vCPU replicas, each with its own copy).
// The pods, their placement and their granted CPU are the API server's; the
// latency comes from the simulated traffic's queueing model over that CPU,
// and memory from the simulator's model (64 MiB runtime + 32 MiB a worker per
// pod, plus the model per pod when copied or per node when mapped). Each
// second it samples rate, pods, vCPUs, p99 and memory. Run:
//
//	go test -run '^$' -bench KubeThesis -benchtime 1x -timeout 30m ./cmd/spindle
//
// SPINDLE_KUBE_THESIS_DURATION shortens the 300 s of each policy.
func BenchmarkKubeThesis(b *testing.B) {
	duration := envDuration(b, "SPINDLE_KUBE_THESIS_DURATION", 300*time.Second)
	ctrl.SetLogger(logr.Discard())
	for range b.N {
		var rows []string
		for _, policy := range []string{"hybrid", "hpa"} {
			// The simulator's run of the same scenario, beside.
			_, row := simRow(b, "thesis", policy, sim.Options{Duration: duration, Seed: 1})
			rows = append(rows, row)
			s := runThesis(b, policy, duration)
			rows = append(rows, s.row())
			b.ReportMetric(s.p99.Seconds(), policy+"-p99-s")
			b.ReportMetric(float64(s.peakMem)/(1<<30), policy+"-peak-GiB")
		}
		b.Logf("\n%s%s", tableHead, strings.Join(rows, "\n"))
	}
}

// tableHead heads the table of the Kubernetes benchmarks' rows (simRow's and
// thesisSummary.row's).
const tableHead = "| policy | requests | p99 | SLO-violating share | peak memory | mean memory | vCPU-s | peak pods | decisions (changes) | API requests/s |\n|---|---|---|---|---|---|---|---|---|---|\n"

// envDuration is the duration in environment variable name, or def.
func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return d
}

// simRow runs scenario under policy in the simulator and returns its
// configuration and its table row.
func simRow(b *testing.B, scenario, policy string, o sim.Options) (sim.Config, string) {
	cfg, err := sim.Scenario(scenario, autoscale.Policy(policy), o)
	if err != nil {
		b.Fatal(err)
	}
	res, err := sim.Run(cfg)
	if err != nil {
		b.Fatal(err)
	}
	m := res.Summary
	return cfg, fmt.Sprintf("| %s (spindle sim) | %d | %v | %.1f%% | %.2f GiB | %.2f GiB | %.0f | %d | %d | - |", policy, m.Requests,
		time.Duration(m.P99*float64(time.Second)).Round(time.Millisecond), 100*float64(m.SLOViolations)/float64(max(m.Completed, 1)),
		float64(m.PeakMemory)/(1<<30), float64(m.MeanMemory)/(1<<30), m.VCPUSeconds, m.PeakReplicas, m.Changes)
}

type thesisSummary struct {
	policy              string
	requests            float64
	p99                 time.Duration
	violating           float64
	peakMem, meanMem    int64
	vcpuSeconds         float64
	peakPods, decisions int
	apiPerSecond        float64
}

func (s thesisSummary) row() string {
	return fmt.Sprintf("| %s | %.0f | %v | %.1f%% | %.2f GiB | %.2f GiB | %.0f | %d | %d | %.1f |", s.policy, s.requests,
		s.p99.Round(time.Millisecond), 100*s.violating, float64(s.peakMem)/(1<<30), float64(s.meanMem)/(1<<30), s.vcpuSeconds, s.peakPods, s.decisions, s.apiPerSecond)
}

// countingTransport counts the operator's requests to the API server.
type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

// countingHandler counts the operator's applied decisions (its "decision"
// log lines).
type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "decision" {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// kubeFunction is one function of a scenario run on the real API server:
// its name and the rate offered to it at each second.
type kubeFunction struct {
	name string
	rate func(t time.Duration) float64
}

func runThesis(b *testing.B, policy string, duration time.Duration) thesisSummary {
	params := map[string]string{"slo": "500ms", "min-instances": "1"}
	if policy == "hybrid" {
		params["max-vcpus"] = "56"
	} else {
		params["max-instances"] = "56"
	}
	// The Locust ramp: 1 user, +2 a second, to 100; one request every 2.5 s
	// each.
	ramp := func(t time.Duration) float64 { return min(100, 1+2*t.Seconds()) / 2.5 }
	return runKube(b, policy, params, 1, []kubeFunction{{"bert", ramp}}, duration)
}

// runKube runs functions under policy with params on nodes simulated nodes
// of 64 CPUs for duration, the operator in this process with the simulated
// traffic (200 ms a request at 1 vCPU), and samples every second.
func runKube(b *testing.B, policy string, params map[string]string, nodes int, fns []kubeFunction, duration time.Duration) thesisSummary {
	b.Helper()
	// Generous: at 100 nodes the sampling falls behind (see elapsed below).
	ctx, cancel := context.WithTimeout(context.Background(), 4*duration+10*time.Minute)
	defer cancel()
	dir := b.TempDir()
	cl, err := devcluster.Start(ctx, devcluster.Config{Dir: filepath.Join(dir, "cluster"), Nodes: nodes, NodeCPUs: 64, NodeMemory: "512Gi"})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Stop()
	traffic := &kubesim.Traffic{Client: cl.Client, Label: operator.LabelFunction}
	var calls, decisions atomic.Int64
	rc := rest.CopyConfig(cl.Rest)
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &calls} }
	rc.QPS, rc.Burst = 1000, 2000 // the benchmark's own reads share the client
	mgr, err := ctrl.NewManager(rc, ctrl.Options{Scheme: devcluster.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := (&kubesim.Kubelet{NodeAnnotation: devcluster.NodeAnnotation}).SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	op, err := operator.New(operator.Config{Image: "spindle:bench", Stats: traffic, Log: slog.New(countingHandler{&decisions})})
	if err != nil {
		b.Fatal(err)
	}
	if err := op.SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() { mcancel(); <-done }()

	for _, fn := range fns {
		f := &v1alpha1.InferenceFunction{
			ObjectMeta: metav1.ObjectMeta{Name: fn.name, Namespace: "default"},
			Spec: v1alpha1.InferenceFunctionSpec{
				Model:   v1alpha1.ModelSource{Path: "/var/lib/spindle/models/bert-base.onnx"},
				Scaling: v1alpha1.Scaling{Policy: policy, Params: params},
			},
		}
		if err := cl.Client.Create(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
	spec, err := autoscale.ParseSpec(autoscale.Policy(policy), params)
	if err != nil {
		b.Fatal(err)
	}
	const (
		service    = 200 * time.Millisecond
		modelBytes = 553_428_500
		runtimeB   = 64 << 20
		activation = 32 << 20
	)
	began := time.Now()
	calls0, decisions0 := calls.Load(), decisions.Load()
	var s thesisSummary
	s.policy = policy
	type sample struct {
		rate float64
		p99  time.Duration
	}
	var samples []sample
	var memSum float64
	podEvery := int64(1)
	if len(fns) > 10 {
		podEvery = 5
	}
	for t := time.Duration(0); t < duration; t += time.Second {
		for _, fn := range fns {
			traffic.Set("default/"+fn.name, fn.rate(t), service)
		}
		time.Sleep(time.Until(began.Add(t + time.Second)))
		for _, fn := range fns {
			rate := fn.rate(t)
			st, err := traffic.Stats("default/"+fn.name, autoscale.Query{Now: time.Now(), Window: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			samples = append(samples, sample{rate, max(st.P99, st.QueueAge)})
			s.requests += rate
		}
		// Pods and memory every podEvery seconds (a list of thousands of
		// pods each second slows what it measures), each sample standing
		// for the seconds since the last.
		if int64(t/time.Second)%podEvery != 0 {
			continue
		}
		var pods corev1.PodList
		if err := cl.Client.List(ctx, &pods, client.InNamespace("default"), client.HasLabels{operator.LabelFunction}); err != nil {
			b.Fatal(err)
		}
		var mem int64
		mapped := map[string]bool{} // function/node: one mapped copy each
		live := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			live++
			cpu := p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
			s.vcpuSeconds += float64(podEvery*cpu) / 1000
			workers := int64(math.Ceil(float64(cpu) / 1000))
			mem += runtimeB + workers*activation
			if spec.Load == autoscale.LoadMmap {
				mapped[p.Labels[operator.LabelFunction]+"/"+p.Spec.NodeName] = true
			} else {
				mem += modelBytes
			}
		}
		mem += int64(len(mapped)) * modelBytes
		s.peakMem = max(s.peakMem, mem)
		memSum += float64(podEvery * mem)
		s.peakPods = max(s.peakPods, live)
	}
	s.meanMem = int64(memSum / duration.Seconds())
	// Per second of wall time: the sampling loop falls behind when the
	// machine is busy (it then takes its samples late, not fewer).
	elapsed := time.Since(began)
	if elapsed > duration+duration/10 {
		b.Logf("%s: %v of samples took %v of wall time", policy, duration, elapsed.Round(time.Second))
	}
	s.apiPerSecond = float64(calls.Load()-calls0) / elapsed.Seconds()
	s.decisions = int(decisions.Load() - decisions0)
	// The requests' p99: the 99th percentile of the per-second p99s,
	// weighted by each second's requests; the violating share likewise.
	sort.Slice(samples, func(i, j int) bool { return samples[i].p99 < samples[j].p99 })
	var acc, bad float64
	for _, x := range samples {
		acc += x.rate
		if s.p99 == 0 && acc >= 0.99*s.requests {
			s.p99 = x.p99
		}
		if x.p99 > spec.SLO {
			bad += x.rate
		}
	}
	s.violating = bad / s.requests
	return s
}

// BenchmarkKubePoisson is `spindle sim --scenario poisson --nodes 100` on the
// real API server: 100 simulated nodes of 64 CPUs, 400 BERT functions, each
// offered a constant Poisson rate drawn as the simulator draws it (20 x
// U(0.5, 1.5) a second), under hybrid and hpa with their default
// parameters; the simulator's run of the same configuration beside. Latency
// comes from the simulated traffic's queueing model over each function's
// granted CPU, memory from the simulator's model. Run:
//
//	go test -run '^$' -bench KubePoisson -benchtime 1x -timeout 60m ./cmd/spindle
//
// SPINDLE_KUBE_POISSON_DURATION (default 120s) is each policy's run.
func BenchmarkKubePoisson(b *testing.B) {
	duration := envDuration(b, "SPINDLE_KUBE_POISSON_DURATION", 120*time.Second)
	ctrl.SetLogger(logr.Discard())
	const nodes = 100
	for range b.N {
		var rows []string
		for _, policy := range []string{"hybrid", "hpa"} {
			cfg, row := simRow(b, "poisson", policy, sim.Options{Nodes: nodes, Duration: duration, Seed: 1})
			rows = append(rows, row)
			var fns []kubeFunction
			for _, f := range cfg.Functions {
				r := f.Workload.Steps[0].Rate
				fns = append(fns, kubeFunction{f.Name, func(time.Duration) float64 { return r }})
			}
			s := runKube(b, policy, map[string]string{}, nodes, fns, duration)
			rows = append(rows, s.row())
			b.ReportMetric(s.p99.Seconds(), policy+"-p99-s")
			b.ReportMetric(float64(s.peakMem)/(1<<30), policy+"-peak-GiB")
			b.ReportMetric(s.apiPerSecond, policy+"-api-req/s")
		}
		b.Logf("\n%s%s", tableHead, strings.Join(rows, "\n"))
	}
}
