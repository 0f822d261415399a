package experiment

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/loadgen"
	"github.com/spindleml/spindle/internal/metrics"
)

// workload is one function the concurrency experiment loads.
type workload struct {
	name, label string
	url         string
	body        []byte
}

// levelResult is one (workload, vCPU, clients) run.
type levelResult struct {
	lat []time.Duration
	sum loadgen.Summary
	rss []uint64
}

// concurrencyLevels are the thesis's client counts (Fig 5.6), with one client
// first for the single-request time, capped at max.
func concurrencyLevels(max int) []int {
	var out []int
	for _, c := range []int{1, 5, 10, 30, 50} {
		if c <= max {
			out = append(out, c)
		}
	}
	return out
}

// vcpuSteps doubles from 1 up to cap (the thesis's 1, 2, 4, ... series),
// ending on cap itself.
func vcpuSteps(cap float64) []float64 {
	var out []float64
	for v := 1.0; v < cap; v *= 2 {
		out = append(out, v)
	}
	return append(out, cap)
}

// Concurrency loads one instance with 1-50 concurrent clients at each vCPU
// step, for ML inference and for the CPU-bound cpu-burn function, recording
// every latency and the instance's memory every 10 ms (Figs 5.3, 5.6).
func Concurrency(ctx context.Context, env *Env) (*Report, error) {
	rep := &Report{Thesis: []Table{thesisFig53and56}}
	maxUsers := env.Users
	kind, size, burnMS, perClient, cap := "bert-base", inputSize{1, 128}, 500, 10, 60*time.Second
	if env.Quick {
		kind, burnMS, perClient, cap = "minilm-l6", 50, 4, 10*time.Second
		if maxUsers == 0 {
			maxUsers = 10
		}
	}
	if maxUsers == 0 {
		maxUsers = 50
	}
	if len(env.Kinds) > 0 {
		kind = env.Kinds[0]
	}
	sp, err := spec(kind)
	if err != nil {
		return rep, err
	}
	if sp.Sizes[0].Seq == 0 {
		size = sp.Sizes[min(1, len(sp.Sizes)-1)]
	}
	path, err := env.ensureModel(kind)
	if err != nil {
		return rep, err
	}
	p, err := env.startPlatform(ctx, "--vcpu", "1", "--idle", "30m")
	if err != nil {
		return rep, err
	}
	defer p.stop()
	if _, err := p.client.Deploy(ctx, "ml", path); err != nil {
		return rep, fmt.Errorf("deploy ml: %w", err)
	}
	body, err := loadgen.OIPRequest(sp.inputs(size, rand.New(rand.NewPCG(1, 2))))
	if err != nil {
		return rep, err
	}
	loads := []workload{{name: "ml", label: fmt.Sprintf("ML inference (%s, %s)", sp.Label, size), url: p.inferURL("ml"), body: body}}
	if _, err := p.client.DeployWith(ctx, "burn", "", client.DeployOptions{Task: "cpu-burn"}); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("The cpu-burn function could not be deployed (%v); only ML inference ran.", err))
	} else {
		loads = append(loads, workload{name: "burn", label: fmt.Sprintf("cpu-burn (%d ms of CPU)", burnMS), url: p.URL + "/v1/tasks/burn", body: []byte(fmt.Sprintf(`{"ms": %d}`, burnMS))})
	}
	levels := concurrencyLevels(maxUsers)
	steps := vcpuSteps(env.vcpuCap())
	type key struct {
		load    string
		vcpu    float64
		clients int
	}
	results := map[key]levelResult{}
	var rows [][]string
	enforced := true
	for _, w := range loads {
		if _, err := p.post(ctx, w.url, w.body); err != nil { // start the instance
			return rep, fmt.Errorf("%s: first request: %w", w.name, err)
		}
		insts, err := p.instances(ctx, w.name)
		if err != nil || len(insts) != 1 {
			return rep, fmt.Errorf("%s: want one instance, got %v (%v)", w.name, insts, err)
		}
		pid := insts[0].Pid
		for _, v := range steps {
			sr, err := p.client.Scale(ctx, w.name, api.ScaleRequest{VCPU: &v})
			if err != nil {
				return rep, fmt.Errorf("scale %s to %v vCPU: %w", w.name, v, err)
			}
			if !sr.Enforced {
				enforced = false
			}
			for _, c := range levels {
				res, err := runLevel(ctx, w, c, c*perClient, cap, pid)
				if err != nil {
					return rep, err
				}
				results[key{w.name, v, c}] = res
				for _, r := range res.lat {
					rows = append(rows, []string{w.name, strconv.FormatFloat(v, 'g', -1, 64), strconv.Itoa(c), "latency_ms", fmtMS(r)})
				}
				for _, m := range res.rss {
					rows = append(rows, []string{w.name, strconv.FormatFloat(v, 'g', -1, 64), strconv.Itoa(c), "rss_bytes", strconv.FormatUint(m, 10)})
				}
				env.logf("   %s %g vCPU %d clients: p50 %s ms p99 %s ms, %.1f req/s, RSS max %s MiB, errors %d",
					w.name, v, c, fmtMS(res.sum.P50), fmtMS(res.sum.P99), res.sum.Throughput(), fmtMiB(slices.Max(append(res.rss, 0))), res.sum.Errors)
			}
		}
	}
	if err := writeCSV(env.Out, "concurrency.csv", []string{"workload", "vcpu", "clients", "metric", "value"}, rows); err != nil {
		return rep, err
	}
	rep.Files = append(rep.Files, "concurrency.csv")

	tbl := Table{Caption: fmt.Sprintf("One instance per workload behind a real gateway; each row is a closed loop of N clients without think time, %d requests per client (at most %v). Latency in ms; RSS of the instance sampled every 10 ms during the row, MiB.", perClient, cap),
		Header: []string{"workload", "vCPU", "clients", "requests", "errors", "p50", "p90", "p99", "max", "req/s", "RSS median", "RSS max"}}
	for _, w := range loads {
		for _, v := range steps {
			for _, c := range levels {
				r := results[key{w.name, v, c}]
				tbl.Rows = append(tbl.Rows, []string{w.name, strconv.FormatFloat(v, 'g', -1, 64), strconv.Itoa(c), strconv.Itoa(r.sum.Requests), strconv.Itoa(r.sum.Errors),
					fmtMS(r.sum.P50), fmtMS(r.sum.P90), fmtMS(r.sum.P99), fmtMS(r.sum.Max), fmt.Sprintf("%.1f", r.sum.Throughput()), fmtMiB(medianU(r.rss)), fmtMiB(slices.Max(append(r.rss, 0)))})
			}
		}
	}
	sec := Section{Heading: "Latency and memory by clients and vCPUs", Tables: []Table{tbl}}
	// Fig 5.6: one latency CDF per client count, a line per workload and vCPU.
	for _, c := range levels {
		if c == 1 {
			continue
		}
		var cdf []namedValues
		for _, w := range loads {
			for _, v := range steps {
				cdf = append(cdf, namedValues{Name: fmt.Sprintf("%s, %g vCPU", w.name, v), Values: msValues(results[key{w.name, v, c}].lat)})
			}
		}
		img := fmt.Sprintf("concurrency-latency-%d.png", c)
		if err := saveCDF(env.Out+"/"+img, fmt.Sprintf("Latency CDF, %d concurrent clients (cf. Fig 5.6)", c), "latency (ms, log)", cdf, true); err != nil {
			return rep, err
		}
		sec.Images = append(sec.Images, img)
	}
	// Fig 5.3: memory CDF of the ML instance at each client count, at the
	// largest vCPU step.
	var mem []namedValues
	top := steps[len(steps)-1]
	for _, c := range levels {
		var v []float64
		for _, b := range results[key{"ml", top, c}].rss {
			v = append(v, float64(b)/(1<<20))
		}
		mem = append(mem, namedValues{Name: fmt.Sprintf("%d clients", c), Values: v})
	}
	if err := saveCDF(env.Out+"/concurrency-memory.png", fmt.Sprintf("ML instance RSS during the load, %g vCPU (cf. Fig 5.3)", top), "RSS (MiB)", mem, false); err != nil {
		return rep, err
	}
	sec.Images = append(sec.Images, "concurrency-memory.png")
	rep.Sections = append(rep.Sections, sec)

	for _, w := range loads {
		one := results[key{w.name, 1, 1}]
		th := "thesis: about 200 ms"
		if w.name == "burn" {
			th = "thesis: about 500 ms"
		}
		rep.Summary = append(rep.Summary, fmt.Sprintf("%s: one request alone takes %s ms at 1 vCPU (%s).", w.label, fmtMS(one.sum.P50), th))
		cMax := levels[len(levels)-1]
		lo, hi := results[key{w.name, steps[0], cMax}], results[key{w.name, top, cMax}]
		if len(steps) > 1 {
			rep.Summary = append(rep.Summary, fmt.Sprintf("%s at %d clients: p50 %s ms and %.1f req/s at %g vCPU, p50 %s ms and %.1f req/s at %g vCPU (%s the throughput; thesis: 'scaling quite well').",
				w.name, cMax, fmtMS(lo.sum.P50), lo.sum.Throughput(), steps[0], fmtMS(hi.sum.P50), hi.sum.Throughput(), top, fmtRatio(hi.sum.Throughput()/max(lo.sum.Throughput(), 1e-9))))
		}
	}
	m1, mN := results[key{"ml", top, levels[0]}], results[key{"ml", top, levels[len(levels)-1]}]
	if len(m1.rss) > 0 && len(mN.rss) > 0 {
		a, b := slices.Max(m1.rss), slices.Max(mN.rss)
		rep.Summary = append(rep.Summary, fmt.Sprintf("ML instance memory at %g vCPU: max RSS %s MiB with %d client, %s MiB with %d (%+.0f%%; thesis, Fig 5.3: about constant up to 100 concurrent requests).",
			top, fmtMiB(a), levels[0], fmtMiB(b), levels[len(levels)-1], 100*(float64(b)/float64(a)-1)))
	}
	how := "cgroup CPU quota, worker count and GOMAXPROCS together (spindle scale)"
	if !enforced {
		how = "worker count and GOMAXPROCS only: this machine cannot set CPU quotas (the platform runs in degraded mode)"
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("vCPU steps %v resize the one running instance live via the gateway's scale API: %s. The machine has %d CPUs; steps above that would only add workers.", steps, how, int(env.vcpuCap())),
		"The thesis ran a C++ thread-pool server on a 64-core machine and used apache-bench for Fig 5.3; we use spindle load's closed loop against a real gateway. Fig 5.3 is drawn here as the CDF of the instance's RSS samples during each client count's run.",
		fmt.Sprintf("cpu-burn is the platform's model-less CPU-bound function (task cpu-burn, {\"ms\": %d}); the thesis's took 500 ms per request.", burnMS))
	return rep, nil
}

// runLevel runs clients closed-loop users without think time against w until
// requests are done (or cap passes), sampling pid's memory every 10 ms.
func runLevel(ctx context.Context, w workload, clients, requests int, cap time.Duration, pid int) (levelResult, error) {
	var res levelResult
	var mu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			if rss, _, err := metrics.ReadMemory(pid); err == nil {
				mu.Lock()
				res.rss = append(res.rss, rss)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	out, err := loadgen.Run(ctx, loadgen.Config{
		URL: w.url, Payload: loadgen.JSONBody(w.body),
		Closed:   &loadgen.Closed{Ramp: loadgen.Ramp{Start: clients, Max: clients}},
		Duration: cap, MaxRequests: requests, Timeout: 10 * time.Minute,
	})
	close(stop)
	<-sampled
	if err != nil {
		return res, err
	}
	res.sum = out.Summary
	for _, r := range out.Records {
		if r.OK() {
			res.lat = append(res.lat, r.Latency)
		}
	}
	return res, nil
}

func msValues(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = ms(d)
	}
	return out
}
