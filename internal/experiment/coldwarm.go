package experiment

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"time"

	"github.com/spindleml/spindle/internal/loadgen"
)

// coldWarmSample is one request's time and its parts.
type coldWarmSample struct {
	total, start, load, inference time.Duration
}

// ColdWarm times requests through a real gateway, cold (the function's first
// request: the gateway starts an instance, which loads the model) and warm,
// for each model and input size, and splits each into instance start, model
// load and inference (Table 4.3, Figs 4.1 and 4.2).
func ColdWarm(ctx context.Context, env *Env) (*Report, error) {
	rep := &Report{Thesis: []Table{thesisTable43}}
	vcpu := strconv.Itoa(runtime.NumCPU())
	p, err := env.startPlatform(ctx, "--vcpu", vcpu, "--idle", "30m")
	if err != nil {
		return rep, err
	}
	defer p.stop()
	kinds := env.defaultKinds()
	type key struct {
		kind string
		size int
		cold bool
	}
	samples := map[key][]coldWarmSample{}
	bodyBytes := map[key]int{}
	var rows [][]string
	rng := rand.New(rand.NewPCG(1, 2))
	for _, kind := range kinds {
		sp, err := spec(kind)
		if err != nil {
			return rep, err
		}
		path, err := env.ensureModel(kind)
		if err != nil {
			return rep, err
		}
		for si, size := range sp.Sizes {
			body, err := loadgen.OIPRequest(sp.inputs(size, rng))
			if err != nil {
				return rep, err
			}
			for run := range env.runs() {
				name := fmt.Sprintf("cw-%s-%d-%d", kind, si, run)
				if _, err := p.client.Deploy(ctx, name, path); err != nil {
					return rep, fmt.Errorf("deploy %s: %w", name, err)
				}
				cold, warm, direct, err := coldThenWarm(ctx, p, name, body, env.runs())
				if err != nil {
					return rep, err
				}
				if err := p.client.Remove(ctx, name); err != nil {
					return rep, fmt.Errorf("remove %s: %w", name, err)
				}
				kc, kw := key{kind, si, true}, key{kind, si, false}
				bodyBytes[kc], bodyBytes[kw] = len(body), len(body)
				samples[kc] = append(samples[kc], cold)
				row := func(s coldWarmSample, start string, i int) []string {
					return []string{kind, size.String(), strconv.Itoa(len(body)), start, strconv.Itoa(run + 1), strconv.Itoa(i),
						fmtMS(s.total), fmtMS(s.start), fmtMS(s.load), fmtMS(s.inference)}
				}
				rows = append(rows, row(cold, "cold", 0))
				for i, w := range warm {
					s := coldWarmSample{total: w, inference: direct[i]}
					samples[kw] = append(samples[kw], s)
					rows = append(rows, row(s, "warm", i+1))
				}
			}
			c, w := summarize(samples[key{kind, si, true}]), summarize(samples[key{kind, si, false}])
			env.logf("   %s %s: cold %s ms (start %s, load %s, inference %s), warm %s ms", sp.Label, size, fmtMS(c.total), fmtMS(c.start), fmtMS(c.load), fmtMS(c.inference), fmtMS(w.total))
		}
	}
	if err := writeCSV(env.Out, "cold-warm.csv", []string{"model", "input", "body_bytes", "start", "run", "request", "total_ms", "instance_start_ms", "model_load_ms", "inference_ms"}, rows); err != nil {
		return rep, err
	}
	rep.Files = append(rep.Files, "cold-warm.csv")

	tbl := Table{
		Caption: fmt.Sprintf("Medians over %d cold starts (a fresh function each) and %d warm requests per row; ms. Cold: start = the gateway's instance start (process start to ready) minus the model load the instance logged; inference = the rest of the request (inference, JSON and proxying). Warm: total through the gateway; inference = the same request sent straight to the instance.", env.runs(), env.runs()*env.runs()),
		Header:  []string{"model", "start", "input", "body", "total ms", "instance start ms", "model load ms", "inference ms"},
	}
	var phaseCats []string
	phases := make([]namedValues, 3)
	phases[0].Name, phases[1].Name, phases[2].Name = "instance start", "model load", "inference"
	for _, kind := range kinds {
		sp, _ := spec(kind)
		for si, size := range sp.Sizes {
			for _, cold := range []bool{true, false} {
				s := summarize(samples[key{kind, si, cold}])
				start, st, ld := "warm", "-", "-"
				if cold {
					start, st, ld = "cold", fmtMS(s.start), fmtMS(s.load)
				}
				tbl.Rows = append(tbl.Rows, []string{sp.Label, start, size.String(), humanSize(bodyBytes[key{kind, si, cold}]), fmtMS(s.total), st, ld, fmtMS(s.inference)})
				if si == 0 {
					phaseCats = append(phaseCats, sp.Label+" "+start)
					for i, v := range []time.Duration{s.start, s.load, s.inference} {
						phases[i].Values = append(phases[i].Values, ms(v))
					}
				}
			}
		}
	}
	if err := saveStackedBars(env.Out+"/cold-warm-phases.png", "Cold and warm start, phase by phase, smallest input (cf. Fig 4.2)", "median time (ms)", phaseCats, phases); err != nil {
		return rep, err
	}
	// Fig 4.1: total time of the biggest model, cold against warm, by input.
	big := kinds[len(kinds)-1]
	bsp, _ := spec(big)
	var sizeCats []string
	totals := []namedValues{{Name: "cold"}, {Name: "warm"}}
	for si, size := range bsp.Sizes {
		sizeCats = append(sizeCats, size.String())
		totals[0].Values = append(totals[0].Values, ms(summarize(samples[key{big, si, true}]).total))
		totals[1].Values = append(totals[1].Values, ms(summarize(samples[key{big, si, false}]).total))
	}
	if err := saveCategoryPoints(env.Out+"/cold-warm-total.png", bsp.Label+": total request time, cold and warm (cf. Fig 4.1)", "median total (ms, log)", sizeCats, totals, true); err != nil {
		return rep, err
	}
	rep.Sections = append(rep.Sections, Section{Heading: "Cold and warm requests", Tables: []Table{tbl}, Images: []string{"cold-warm-phases.png", "cold-warm-total.png"}})
	for _, kind := range kinds {
		sp, _ := spec(kind)
		c, w := summarize(samples[key{kind, 0, true}]), summarize(samples[key{kind, 0, false}])
		th := "thesis CNN: cold 3500 ms (boot ~3.5 s, load 2 ms, inference 4 ms), warm 14 ms"
		if kind != "mnist-cnn" {
			th = "thesis BERT: cold 8140 ms (boot ~7 s, load 2690 ms, inference 1547 ms), warm 2636 ms"
		}
		rep.Summary = append(rep.Summary, fmt.Sprintf("%s, %s: cold %s ms (instance start %s, model load %s, inference %s), warm %s ms: cold/warm %s (%s).",
			sp.Label, sp.Sizes[0], fmtMS(c.total), fmtMS(c.start), fmtMS(c.load), fmtMS(c.inference), fmtMS(w.total), fmtRatio(float64(c.total)/float64(max(w.total, 1))), th))
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("Platform: a real `spindle up` on a loopback port with --vcpu %s (every instance gets this machine's CPUs), instances loading in mmap mode (the default). Each cold start deploys a fresh function, so the request scales it from zero; the model files are in the page cache (just uploaded).", vcpu),
		"Instance start includes process start, Go runtime start, cgroup placement and compiling the graph (engine.Compile, which packs MatMul weights); model load is onnx.Load alone. The thesis's boot is an OpenFaaS container start (3.5-7 s); ours is a process start.",
		"Input sizes: images per request for the CNNs, batch x sequence tokens for the transformers (the thesis used text paragraphs: 10 B to 3.2 MB requests).")
	return rep, nil
}

// coldThenWarm sends function's first request (cold) and then warm ones,
// through the gateway and straight to the instance.
func coldThenWarm(ctx context.Context, p *platform, name string, body []byte, warmRuns int) (cold coldWarmSample, warm, direct []time.Duration, err error) {
	cold.total, err = p.post(ctx, p.inferURL(name), body)
	if err != nil {
		return cold, nil, nil, fmt.Errorf("cold request: %w", err)
	}
	insts, err := p.instances(ctx, name)
	if err != nil || len(insts) != 1 {
		return cold, nil, nil, fmt.Errorf("%s: want one running instance, got %v (%v)", name, insts, err)
	}
	ready, ok := p.instanceStart(name, insts[0].Pid)
	if !ok {
		return cold, nil, nil, fmt.Errorf("%s: no \"instance started\" line for pid %d in the gateway log", name, insts[0].Pid)
	}
	if cold.load, err = p.modelLoad(ctx, name); err != nil {
		return cold, nil, nil, err
	}
	cold.start = max(ready-cold.load, 0)
	cold.inference = max(cold.total-ready, 0)
	directURL := "http://" + insts[0].Addr + "/v2/models/" + name + "/infer"
	for range warmRuns {
		w, err := p.post(ctx, p.inferURL(name), body)
		if err != nil {
			return cold, nil, nil, fmt.Errorf("warm request: %w", err)
		}
		d, err := p.post(ctx, directURL, body)
		if err != nil {
			return cold, nil, nil, fmt.Errorf("warm request to the instance: %w", err)
		}
		warm, direct = append(warm, w), append(direct, d)
	}
	return cold, warm, direct, nil
}

// summarize returns the field-wise medians of samples.
func summarize(s []coldWarmSample) coldWarmSample {
	var t, st, l, i []time.Duration
	for _, x := range s {
		t, st, l, i = append(t, x.total), append(st, x.start), append(l, x.load), append(i, x.inference)
	}
	return coldWarmSample{median(t), median(st), median(l), median(i)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// humanSize formats a byte count as B, KB or MB (decimal, as the thesis).
func humanSize(n int) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
