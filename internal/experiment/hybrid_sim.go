package experiment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/loadgen"
	"github.com/spindleml/spindle/internal/metrics"
)

// simOutput is the part of `spindle sim --json --series` this experiment
// reads.
type simOutput struct {
	Scenario string `json:"scenario"`
	Service  string `json:"service"`
	Runs     []struct {
		Policy  string `json:"policy"`
		Spec    string `json:"spec"`
		Summary struct {
			Requests      int64   `json:"requests"`
			Completed     int64   `json:"completed"`
			Dropped       int64   `json:"dropped"`
			P50           float64 `json:"p50_s"`
			P95           float64 `json:"p95_s"`
			P99           float64 `json:"p99_s"`
			Max           float64 `json:"max_s"`
			SLOViolations int64   `json:"slo_violations"`
			PeakMemory    int64   `json:"peak_memory_bytes"`
			MeanMemory    int64   `json:"mean_memory_bytes"`
			VCPUSeconds   float64 `json:"vcpu_seconds"`
			PeakVCPUs     float64 `json:"peak_vcpus"`
			PeakReplicas  int     `json:"peak_replicas"`
			ColdStarts    int64   `json:"cold_starts"`
		} `json:"summary"`
		Series []struct {
			T        float64 `json:"t_s"`
			RPS      float64 `json:"rps"`
			P99      float64 `json:"p99_s"`
			VCPUs    float64 `json:"vcpus"`
			Replicas int     `json:"replicas"`
			Memory   int64   `json:"memory_bytes"`
			Users    int     `json:"users"`
		} `json:"series"`
	} `json:"runs"`
}

// runSim runs `spindle sim --scenario thesis --json --series` with extra
// flags.
func (e *Env) runSim(ctx context.Context, extra ...string) (*simOutput, error) {
	args := append([]string{"sim", "--scenario", "thesis", "--json", "--series"}, extra...)
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, e.Exe, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("spindle %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	var s simOutput
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		return nil, fmt.Errorf("spindle sim output: %w", err)
	}
	return &s, nil
}

// hybridSimulated is the simulated variant of hybrid-vs-hpa (`--simulated`):
// the policy comparison runs in the simulator (`spindle sim --scenario
// thesis`, virtual time), once with the thesis's service time and once with
// the service time measured here; the load side runs live: the thesis ramp
// from spindle load against one real instance at a fixed vCPU allotment.
func hybridSimulated(ctx context.Context, env *Env) (*Report, error) {
	rep := &Report{Thesis: []Table{thesisCh6}}
	rep.Notes = append(rep.Notes, "This is the simulated variant (`--simulated`): `spindle sim --scenario thesis` drives the platform's own autoscale policy code in virtual time, and tables and plots from it say 'simulated'. Without --simulated the experiment runs every policy live, on this machine.")

	// Live: the thesis ramp against one real instance.
	users, dur, kind, size := 100, 120*time.Second, "bert-base", inputSize{1, 128}
	if env.Quick {
		users, dur, kind, size = 20, 20*time.Second, "minilm-l6", inputSize{1, 16}
	}
	if env.Users > 0 {
		users = env.Users
	}
	if env.Duration > 0 {
		dur = env.Duration
	}
	if len(env.Kinds) > 0 {
		kind = env.Kinds[0]
	}
	sp, err := spec(kind)
	if err != nil {
		return rep, err
	}
	if sp.Sizes[0].Seq == 0 {
		size = sp.Sizes[0]
	}
	path, err := env.ensureModel(kind)
	if err != nil {
		return rep, err
	}
	live, service, err := env.liveRamp(ctx, path, sp, size, users, dur)
	if err != nil {
		return rep, err
	}
	serviceFile := filepath.Join(env.Out, "service-times.txt")
	if err := writeServiceTimes(serviceFile, fmt.Sprintf("%s, %s, one client, 1 vCPU, through the gateway", sp.Label, size), service); err != nil {
		return rep, err
	}
	rep.Files = append(rep.Files, "live-ramp.csv", "service-times.txt")

	// Simulated: the thesis's service time, and ours.
	thesisSim, err := env.runSim(ctx)
	if err != nil {
		return rep, err
	}
	oursSim, err := env.runSim(ctx, "--service", "file:"+serviceFile)
	if err != nil {
		return rep, err
	}
	var rows [][]string
	for _, s := range []struct {
		name string
		out  *simOutput
	}{{"thesis-service", thesisSim}, {"measured-service", oursSim}} {
		for _, r := range s.out.Runs {
			for _, pt := range r.Series {
				rows = append(rows, []string{s.name, r.Policy, strconv.FormatFloat(pt.T, 'f', -1, 64), fmt.Sprintf("%.3f", pt.RPS), fmt.Sprintf("%.6f", pt.P99),
					strconv.FormatFloat(pt.VCPUs, 'f', -1, 64), strconv.Itoa(pt.Replicas), strconv.FormatInt(pt.Memory, 10), strconv.Itoa(pt.Users)})
			}
		}
	}
	if err := writeCSV(env.Out, "simulated-series.csv", []string{"service", "policy", "t_s", "rps", "p99_s", "vcpus", "replicas", "memory_bytes", "users"}, rows); err != nil {
		return rep, err
	}
	rep.Files = append(rep.Files, "simulated-series.csv")

	simTable := func(out *simOutput, caption string) Table {
		t := Table{Caption: caption, Header: []string{"policy", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "SLO misses", "peak memory GiB", "mean memory GiB", "peak vCPUs", "peak replicas", "cold starts", "vCPU-s"}}
		for _, r := range out.Runs {
			s := r.Summary
			t.Rows = append(t.Rows, []string{r.Policy, strconv.FormatInt(s.Requests, 10), fmtSec(s.P50), fmtSec(s.P95), fmtSec(s.P99), fmtSec(s.Max), strconv.FormatInt(s.SLOViolations, 10),
				fmt.Sprintf("%.2f", float64(s.PeakMemory)/(1<<30)), fmt.Sprintf("%.2f", float64(s.MeanMemory)/(1<<30)), strconv.FormatFloat(s.PeakVCPUs, 'g', 4, 64), strconv.Itoa(s.PeakReplicas), strconv.FormatInt(s.ColdStarts, 10), fmt.Sprintf("%.0f", s.VCPUSeconds)})
		}
		return t
	}
	// Fig 6.1: memory over time; Fig 6.2: latency percentiles; capacity.
	var memSeries, capSeries []xySeries
	pcts := []string{"p50", "p95", "p99", "max"}
	var latSeries []namedValues
	for _, r := range thesisSim.Runs {
		var x, m, c []float64
		for _, pt := range r.Series {
			x, m, c = append(x, pt.T), append(m, float64(pt.Memory)/(1<<30)), append(c, pt.VCPUs)
		}
		memSeries = append(memSeries, xySeries{Name: r.Policy, X: x, Y: m})
		capSeries = append(capSeries, xySeries{Name: r.Policy, X: x, Y: c})
		s := r.Summary
		latSeries = append(latSeries, namedValues{Name: r.Policy, Values: []float64{s.P50 * 1e3, s.P95 * 1e3, s.P99 * 1e3, s.Max * 1e3}})
	}
	if err := saveLines(env.Out+"/hybrid-memory.png", "Simulated: memory of the function, thesis ramp (cf. Fig 6.1)", "s", "GiB", memSeries, false); err != nil {
		return rep, err
	}
	if err := saveCategoryPoints(env.Out+"/hybrid-latency.png", "Simulated: latency percentiles, thesis ramp (cf. Fig 6.2)", "ms (log)", pcts, latSeries, true); err != nil {
		return rep, err
	}
	if err := saveLines(env.Out+"/hybrid-vcpus.png", "Simulated: vCPUs allocated, thesis ramp", "s", "vCPUs", capSeries, false); err != nil {
		return rep, err
	}
	rep.Sections = append(rep.Sections, Section{
		Heading: "Simulated policy comparison (thesis scenario)",
		Text:    fmt.Sprintf("`spindle sim --scenario thesis`: one 64-core node, the ramp of Fig 6.3, service time %s at 1 vCPU, SLO 500 ms, caps of 56 vCPUs / 56 replicas, 300 s.", thesisSim.Service),
		Tables: []Table{
			simTable(thesisSim, "Simulated, with the thesis's service time (BERT, about 200 ms)."),
			simTable(oursSim, fmt.Sprintf("Simulated, with the service time measured here (%s, %s, median %s ms at 1 vCPU; %d samples).", sp.Label, size, fmtMS(median(service)), len(service))),
		},
		Images: []string{"hybrid-memory.png", "hybrid-latency.png", "hybrid-vcpus.png"},
	})

	// Live ramp: Fig 6.3.
	sum := loadgen.Summarize(live.records)
	perSec := map[int]int{}
	usersAt := map[int]int{}
	last := 0
	for _, r := range live.records {
		s := int(r.Start / time.Second)
		perSec[s]++
		usersAt[s] = max(usersAt[s], r.Users)
		last = max(last, s)
	}
	var x, rps, us []float64
	for s := 0; s <= last; s++ {
		x, rps, us = append(x, float64(s+1)), append(rps, float64(perSec[s])), append(us, float64(usersAt[s]))
	}
	var simX, simRPS []float64
	for _, r := range thesisSim.Runs {
		if r.Policy == "static" {
			for _, pt := range r.Series {
				if pt.T <= float64(last+1) {
					simX, simRPS = append(simX, pt.T), append(simRPS, pt.RPS)
				}
			}
		}
	}
	if err := saveLines(env.Out+"/hybrid-load.png", "Load generator: requests per second on the thesis ramp (cf. Fig 6.3)", "s", "requests/s, users", []xySeries{
		{Name: "live req/s (spindle load)", X: x, Y: rps}, {Name: "live users", X: x, Y: us}, {Name: "simulated req/s (100 users)", X: simX, Y: simRPS},
	}, false); err != nil {
		return rep, err
	}
	if err := saveCDF(env.Out+"/hybrid-live-latency.png", "Live: latency on the ramp, one instance at a fixed allotment", "latency (ms, log)", []namedValues{{Name: "live, static", Values: msValues(okLatencies(live.records))}}, true); err != nil {
		return rep, err
	}
	liveTbl := Table{Caption: "Live ramp: spindle load's closed loop against a real gateway and one instance (no autoscaler).",
		Header: []string{"users", "spawn", "think", "duration", "vCPUs", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "RSS max MiB"}}
	liveTbl.Rows = append(liveTbl.Rows, []string{fmt.Sprintf("1 -> %d", users), "+2/s", "2-3 s", dur.String(), strconv.Itoa(runtime.NumCPU()), strconv.Itoa(sum.Requests), strconv.Itoa(sum.Errors),
		fmt.Sprintf("%.1f", sum.Throughput()), fmtMS(sum.P50), fmtMS(sum.P90), fmtMS(sum.P99), fmtMS(sum.Max), fmtMiB(live.rssMax)})
	rep.Sections = append(rep.Sections, Section{Heading: "Live: the thesis ramp from spindle load", Tables: []Table{liveTbl}, Images: []string{"hybrid-load.png", "hybrid-live-latency.png"}})

	// Summary.
	byPolicy := map[string]int{}
	for i, r := range thesisSim.Runs {
		byPolicy[r.Policy] = i
	}
	hi, okH := byPolicy["hybrid"]
	pi, okP := byPolicy["hpa"]
	if okH && okP {
		h, p := thesisSim.Runs[hi].Summary, thesisSim.Runs[pi].Summary
		rep.Summary = append(rep.Summary,
			fmt.Sprintf("Simulated, thesis scenario: peak memory hybrid %.2f GiB (%d instance) vs HPA %.2f GiB (%d replicas), %s; thesis (Fig 6.1): HPA ends with 56 pods, each with a model copy, hybrid with one instance.",
				float64(h.PeakMemory)/(1<<30), h.PeakReplicas, float64(p.PeakMemory)/(1<<30), p.PeakReplicas, fmtRatio(float64(p.PeakMemory)/float64(max(h.PeakMemory, 1)))),
			fmt.Sprintf("Simulated latency: hybrid p95 %s / p99 %s / max %s ms vs HPA %s / %s / %s ms (thesis, Fig 6.2: hybrid better from p80 to p100).",
				fmtSec(h.P95), fmtSec(h.P99), fmtSec(h.Max), fmtSec(p.P95), fmtSec(p.P99), fmtSec(p.Max)))
	}
	rep.Summary = append(rep.Summary, fmt.Sprintf("Live ramp (1 -> %d users, +2/s, 2-3 s think, %v, %s): %d requests, %.1f req/s, p99 %s ms, %d errors; thesis (Fig 6.3): 1 -> 100 users at +2/s.",
		users, dur, sp.Label, sum.Requests, sum.Throughput(), fmtMS(sum.P99), sum.Errors))
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("The live ramp runs against one instance of %s (%s per request) with all %d CPUs of this machine; without a live autoscaler it stands for the 'static' (bare metal) line, and it checks the load generator itself against Fig 6.3.", sp.Label, size, runtime.NumCPU()),
		"Service times for the measured-service simulation: one client, one request at a time through the gateway, after scaling the function to 1 vCPU (service-times.txt).")
	return rep, nil
}

// liveResult is the live ramp's outcome.
type liveResult struct {
	records []loadgen.Record
	rssMax  uint64
}

// liveRamp measures the function's service time at 1 vCPU, then runs the
// thesis ramp against it with all CPUs, writing every request to
// live-ramp.csv.
func (e *Env) liveRamp(ctx context.Context, path string, sp modelSpec, size inputSize, users int, dur time.Duration) (liveResult, []time.Duration, error) {
	var res liveResult
	p, err := e.startPlatform(ctx, "--vcpu", "1", "--idle", "30m")
	if err != nil {
		return res, nil, err
	}
	defer p.stop()
	if _, err := p.client.Deploy(ctx, "ramp", path); err != nil {
		return res, nil, fmt.Errorf("deploy: %w", err)
	}
	body, err := loadgen.OIPRequest(sp.inputs(size, rand.New(rand.NewPCG(1, 2))))
	if err != nil {
		return res, nil, err
	}
	url := p.inferURL("ramp")
	if _, err := p.post(ctx, url, body); err != nil { // cold start, not a sample
		return res, nil, err
	}
	n := 20
	if !e.Quick {
		n = 100
	}
	var service []time.Duration
	for range n {
		d, err := p.post(ctx, url, body)
		if err != nil {
			return res, nil, err
		}
		service = append(service, d)
	}
	all := float64(runtime.NumCPU())
	if _, err := p.client.Scale(ctx, "ramp", api.ScaleRequest{VCPU: &all}); err != nil {
		return res, nil, fmt.Errorf("scale: %w", err)
	}
	insts, err := p.instances(ctx, "ramp")
	if err != nil || len(insts) != 1 {
		return res, nil, fmt.Errorf("ramp: want one instance, got %v (%v)", insts, err)
	}
	f, err := os.Create(filepath.Join(e.Out, "live-ramp.csv"))
	if err != nil {
		return res, nil, err
	}
	defer f.Close()
	csvw, err := loadgen.NewCSVWriter(f)
	if err != nil {
		return res, nil, err
	}
	var mu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := metrics.ReadMemory(insts[0].Pid); err == nil {
				mu.Lock()
				res.rssMax = max(res.rssMax, rss)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	e.logf("   live ramp: 1 -> %d users, +2/s, think 2-3 s, %v", users, dur)
	out, err := loadgen.Run(ctx, loadgen.Config{
		URL: url, Payload: loadgen.JSONBody(body),
		Closed:   &loadgen.Closed{Ramp: loadgen.Ramp{Start: 1, Max: users, SpawnRate: 2}, Think: loadgen.ThesisThink},
		Duration: dur, Timeout: time.Minute, Seed: 1, OnRecord: csvw.Add,
	})
	close(stop)
	<-sampled
	if err != nil {
		return res, nil, err
	}
	if err := csvw.Flush(); err != nil {
		return res, nil, err
	}
	res.records = out.Records
	return res, service, nil
}

func okLatencies(recs []loadgen.Record) []time.Duration {
	var out []time.Duration
	for _, r := range recs {
		if r.OK() {
			out = append(out, r.Latency)
		}
	}
	return out
}

// fmtSec formats seconds as milliseconds.
func fmtSec(s float64) string { return fmtMS(time.Duration(s * float64(time.Second))) }
