package experiment

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spindleml/spindle/internal/loadgen"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/sandbox"
)

// memSample is one reading of an instance's memory.
type memSample struct {
	at       time.Duration
	rss, pss uint64
}

// timeline is one instance's life in memory samples and events.
type timeline struct {
	samples                  []memSample
	listen, ready, sent, got time.Duration
}

func (t timeline) peak() (rss uint64) {
	for _, s := range t.samples {
		rss = max(rss, s.rss)
	}
	return rss
}

// at returns the last sample taken at or before d.
func (t timeline) at(d time.Duration) memSample {
	var last memSample
	for _, s := range t.samples {
		if s.at > d {
			break
		}
		last = s
	}
	return last
}

const sampleEvery = 10 * time.Millisecond

// MemoryTimeline samples one instance's memory every 10 ms from its start
// through model load to one inference, in copy and in mmap mode (Fig 4.5).
func MemoryTimeline(ctx context.Context, env *Env) (*Report, error) {
	if env.Exe == "" {
		return nil, ErrNoExe
	}
	rep := &Report{Thesis: []Table{thesisFig45, thesisTable41}}
	kinds := env.kinds([]string{"bert-base"})
	if env.Quick {
		kinds = env.kinds([]string{"minilm-l6"})
	}
	modes := []onnx.LoadMode{onnx.Copy, onnx.Mmap}
	var rows [][]string
	tbl := Table{
		Caption: fmt.Sprintf("Median over %d instance starts per row. Memory in MiB, times in ms from the process start.", env.runs()),
		Header:  []string{"model", "mode", "ready ms", "peak RSS", "RSS at ready", "RSS after inference", "PSS after inference"},
	}
	for _, kind := range kinds {
		sp, err := spec(kind)
		if err != nil {
			return rep, err
		}
		path, err := env.ensureModel(kind)
		if err != nil {
			return rep, err
		}
		body, err := loadgen.OIPRequest(sp.inputs(sp.Sizes[0], rand.New(rand.NewPCG(1, 2))))
		if err != nil {
			return rep, err
		}
		var series []xySeries
		for _, mode := range modes {
			var ready []time.Duration
			var peak, atReady, after, pssAfter []uint64
			for run := range env.runs() {
				tl, err := env.instanceTimeline(ctx, path, mode, body)
				if err != nil {
					return rep, err
				}
				for _, s := range tl.samples {
					rows = append(rows, []string{kind, string(mode), strconv.Itoa(run + 1), fmtMS(s.at), strconv.FormatUint(s.rss, 10), strconv.FormatUint(s.pss, 10), phase(tl, s.at)})
				}
				ready = append(ready, tl.ready)
				peak = append(peak, tl.peak())
				atReady = append(atReady, tl.at(tl.ready).rss)
				end := tl.samples[len(tl.samples)-1]
				after, pssAfter = append(after, end.rss), append(pssAfter, end.pss)
				if run == 0 {
					x, yr, yp := []float64{}, []float64{}, []float64{}
					for _, s := range tl.samples {
						x, yr, yp = append(x, ms(s.at)), append(yr, float64(s.rss)/(1<<20)), append(yp, float64(s.pss)/(1<<20))
					}
					series = append(series, xySeries{Name: string(mode) + " RSS", X: x, Y: yr}, xySeries{Name: string(mode) + " PSS", X: x, Y: yp})
				}
			}
			tbl.Rows = append(tbl.Rows, []string{sp.Label, modeName(mode), fmtMS(median(ready)), fmtMiB(medianU(peak)), fmtMiB(medianU(atReady)), fmtMiB(medianU(after)), fmtMiB(medianU(pssAfter))})
			env.logf("   %s %s: ready %s ms, peak RSS %s MiB, after inference %s MiB", sp.Label, mode, fmtMS(median(ready)), fmtMiB(medianU(peak)), fmtMiB(medianU(after)))
			if mode == onnx.Copy {
				rep.Summary = append(rep.Summary, fmt.Sprintf("%s, copy: peak RSS %s MiB during load, %s MiB after inference.", sp.Label, fmtMiB(medianU(peak)), fmtMiB(medianU(after))))
			} else {
				rep.Summary = append(rep.Summary, fmt.Sprintf("%s, mmap: peak RSS %s MiB, %s MiB after inference (PSS %s MiB: the mapped weights are shared page cache). Thesis (Fig 4.5): memory spikes during the load and falls after; zero copy avoids the spike.", sp.Label, fmtMiB(medianU(peak)), fmtMiB(medianU(after)), fmtMiB(medianU(pssAfter))))
			}
		}
		img := "memory-timeline-" + kind + ".png"
		if err := saveLines(env.Out+"/"+img, sp.Label+": instance memory from start to inference (cf. Fig 4.5)", "ms since process start", "MiB", series, false); err != nil {
			return rep, err
		}
		rep.Sections = append(rep.Sections, Section{Heading: sp.Label, Images: []string{img}})
	}
	if err := writeCSV(env.Out, "memory-timeline.csv", []string{"model", "mode", "run", "t_ms", "rss", "pss", "phase"}, rows); err != nil {
		return rep, err
	}
	rep.Files = append(rep.Files, "memory-timeline.csv")
	rep.Sections = append([]Section{{Heading: "Memory from start to inference", Tables: []Table{tbl}}}, rep.Sections...)
	rep.Notes = append(rep.Notes,
		"Each run starts `spindle instance` directly (no gateway, no cgroup) and reads /proc/PID/smaps_rollup every 10 ms from the fork until 300 ms after the answer to one request; the phase column says where the instance was (starting, loading until it reports ready, idle, inferring, done).",
		"RSS counts the mapped model's pages once touched; PSS divides shared pages among the processes mapping them, so N mmap instances of one model cost one copy of the weights between them.",
		"The thesis measured a PyTorch function in a container; the figures compare shapes (spike or not, level after load), not absolute sizes.")
	return rep, nil
}

// phase names where the instance was at t.
func phase(tl timeline, t time.Duration) string {
	switch {
	case t < tl.listen:
		return "starting"
	case t < tl.ready:
		return "loading"
	case t < tl.sent:
		return "idle"
	case t < tl.got:
		return "inferring"
	}
	return "done"
}

// instanceTimeline starts one instance, samples its memory every 10 ms while
// it loads, sends it body once ready, and stops it 300 ms after the answer.
func (e *Env) instanceTimeline(ctx context.Context, path string, mode onnx.LoadMode, body []byte) (timeline, error) {
	var tl timeline
	cmd := exec.CommandContext(ctx, e.Exe, "instance", "--name", "timeline", "--model", path, "--load", string(mode), "--listen", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return tl, err
	}
	cmd.Stderr = io.Discard
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return tl, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	pid := cmd.Process.Pid

	var mu sync.Mutex
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			rss, pss, err := metrics.ReadMemory(pid)
			if err == nil {
				mu.Lock()
				tl.samples = append(tl.samples, memSample{time.Since(start), rss, pss})
				mu.Unlock()
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()
	stop := func() { close(stopSampling); <-sampled }

	addr := ""
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		if a, ok := strings.CutPrefix(line, sandbox.ListenLine); ok {
			addr, tl.listen = strings.TrimSpace(a), time.Since(start)
		}
		if line == sandbox.ReadyLine {
			tl.ready = time.Since(start)
			break
		}
	}
	if tl.ready == 0 || addr == "" {
		stop()
		return tl, fmt.Errorf("instance %s (%s): exited before ready", path, mode)
	}
	go io.Copy(io.Discard, stdout)
	tl.sent = time.Since(start)
	p := &platform{http: newHTTPClient()}
	_, err = p.post(ctx, "http://"+addr+"/v2/models/timeline/infer", body)
	tl.got = time.Since(start)
	if err != nil {
		stop()
		return tl, err
	}
	select {
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(tl.samples) == 0 {
		return tl, fmt.Errorf("instance %s: no memory samples", path)
	}
	return tl, nil
}
