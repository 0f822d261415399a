package experiment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/onnx"
)

// LoadSample is what one load in a fresh process measured; LoadOnce prints it
// as one JSON line.
type LoadSample struct {
	Mode        string `json:"mode"`
	LoadNS      int64  `json:"load_ns"`
	CompileNS   int64  `json:"compile_ns"`
	FileBytes   int64  `json:"file_bytes"`
	WeightBytes int64  `json:"weight_bytes"`
	CopiedBytes int64  `json:"copied_bytes"`
	PackedBytes int64  `json:"packed_bytes"`
	// RSS before the load, after it, and after compiling; PeakRSS is the
	// process's high-water mark (VmHWM) at the end.
	RSSBefore  uint64 `json:"rss_before"`
	RSSLoaded  uint64 `json:"rss_loaded"`
	PSSLoaded  uint64 `json:"pss_loaded"`
	RSSCompile uint64 `json:"rss_compiled"`
	PeakRSS    uint64 `json:"peak_rss"`
}

// LoadOnce loads the model at path in mode, compiles it, and writes a
// LoadSample as JSON to w. It is the body of the hidden `spindle bench
// load-once` command: the experiment runs it in a fresh process per load, so
// the heap and the memory figures start clean.
func LoadOnce(w io.Writer, path string, mode onnx.LoadMode) error {
	var s LoadSample
	pid := os.Getpid()
	s.RSSBefore, _, _ = metrics.ReadMemory(pid)
	m, err := onnx.Load(path, mode)
	if err != nil {
		return err
	}
	defer m.Close()
	r := m.Report
	s.Mode, s.LoadNS = string(r.Mode), int64(r.Elapsed)
	s.FileBytes, s.WeightBytes, s.CopiedBytes = r.FileBytes, r.WeightBytes, r.CopiedBytes
	s.RSSLoaded, s.PSSLoaded, _ = metrics.ReadMemory(pid)
	start := time.Now()
	cm, err := engine.Compile(m)
	if err != nil {
		return err
	}
	s.CompileNS = int64(time.Since(start))
	s.PackedBytes = cm.Stats().PackedBytes
	s.RSSCompile, _, _ = metrics.ReadMemory(pid)
	s.PeakRSS = peakRSS()
	return json.NewEncoder(w).Encode(s)
}

// peakRSS reads VmHWM from /proc/self/status, in bytes (0 when unknown).
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// loadChild runs one LoadOnce in a fresh process.
func (e *Env) loadChild(ctx context.Context, path string, mode onnx.LoadMode) (LoadSample, error) {
	var s LoadSample
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, e.Exe, "bench", "load-once", "--model", path, "--load", string(mode))
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return s, fmt.Errorf("load-once %s (%s): %w: %s", path, mode, err, strings.TrimSpace(errb.String()))
	}
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		return s, fmt.Errorf("load-once %s: output %q: %w", path, out.String(), err)
	}
	return s, nil
}

var loadModes = []onnx.LoadMode{onnx.Copy, onnx.Single, onnx.Mmap}

// modeName is the thesis's name for each load mode (Table 4.2's columns).
func modeName(m onnx.LoadMode) string {
	switch m {
	case onnx.Copy:
		return "copy (no optimization)"
	case onnx.Single:
		return "single copy"
	}
	return "mmap (zero copy)"
}

// LoadTime measures model load time in each load mode, with the page cache
// warm and cold, each load in a fresh child process (Table 4.2, Fig 4.6).
func LoadTime(ctx context.Context, env *Env) (*Report, error) {
	if env.Exe == "" {
		return nil, ErrNoExe
	}
	rep := &Report{Thesis: []Table{thesisTable42}}
	kinds := env.defaultKinds()
	type key struct {
		kind  string
		mode  onnx.LoadMode
		cache string
	}
	samples := map[key][]LoadSample{}
	var rows [][]string
	coldOK := true
	var coldNote string
	for _, kind := range kinds {
		sp, err := spec(kind)
		if err != nil {
			return rep, err
		}
		path, err := env.ensureModel(kind)
		if err != nil {
			return rep, err
		}
		files := modelFiles(path)
		// One unrecorded load warms the page cache and the binary.
		if _, err := env.loadChild(ctx, path, onnx.Copy); err != nil {
			return rep, err
		}
		for _, cache := range []string{"warm", "cold"} {
			if cache == "cold" && !coldOK {
				continue
			}
			for _, mode := range loadModes {
				for run := range env.runs() {
					if cache == "cold" && !coldOK {
						break
					}
					resident := 1.0
					if cache == "cold" {
						method, res, err := evict(files)
						if err != nil || res > 0.05 {
							coldOK = false
							coldNote = fmt.Sprintf("Cold-cache runs skipped: evicting the model files left %.0f%% of their pages cached (%s, err %v).", res*100, method, err)
							break
						}
						resident = res
						coldNote = fmt.Sprintf("Cold cache: each cold load follows %s on the model files; mincore then finds %.1f%% or less of their pages cached.", method, 100*math.Max(res, 0))
					} else if r, err := residentFraction(files); err == nil {
						resident = r
					}
					s, err := env.loadChild(ctx, path, mode)
					if err != nil {
						return rep, err
					}
					k := key{kind, mode, cache}
					samples[k] = append(samples[k], s)
					rows = append(rows, []string{kind, string(mode), cache, strconv.Itoa(run + 1),
						fmtMS(time.Duration(s.LoadNS)), fmtMS(time.Duration(s.CompileNS)),
						strconv.FormatInt(s.WeightBytes, 10), strconv.FormatInt(s.CopiedBytes, 10), strconv.FormatInt(s.PackedBytes, 10),
						strconv.FormatUint(s.RSSBefore, 10), strconv.FormatUint(s.RSSLoaded, 10), strconv.FormatUint(s.PSSLoaded, 10),
						strconv.FormatUint(s.RSSCompile, 10), strconv.FormatUint(s.PeakRSS, 10), fmt.Sprintf("%.3f", resident)})
				}
				env.logf("   %s %s %s: median load %s ms", sp.Label, mode, cache, fmtMS(medianLoad(samples[key{kind, mode, cache}])))
			}
		}
	}
	if err := writeCSV(env.Out, "load-time.csv", []string{"model", "mode", "cache", "run", "load_ms", "compile_ms",
		"weight_bytes", "copied_bytes", "packed_bytes", "rss_before", "rss_loaded", "pss_loaded", "rss_compiled", "peak_rss", "resident_fraction"}, rows); err != nil {
		return rep, err
	}
	rep.Files = append(rep.Files, "load-time.csv")

	caches := []string{"warm"}
	if coldOK {
		caches = append(caches, "cold")
	}
	tbl := Table{Caption: fmt.Sprintf("Median of %d loads per cell, each in a fresh process. Load = onnx.Load (what Table 4.2 times); compile = engine.Compile after it. Memory in MiB.", env.runs()),
		Header: []string{"model", "weights MiB", "mode", "warm load ms", "cold load ms", "vs copy (warm)", "copied MiB", "RSS after load", "peak RSS", "compile ms"}}
	var labels []string
	series := map[string][]float64{}
	var order []string
	for _, kind := range kinds {
		sp, _ := spec(kind)
		labels = append(labels, sp.Label)
		copyWarm := medianLoad(samples[key{kind, onnx.Copy, "warm"}])
		for _, mode := range loadModes {
			w := samples[key{kind, mode, "warm"}]
			if len(w) == 0 {
				continue
			}
			warm := medianLoad(w)
			cold := "-"
			if c := samples[key{kind, mode, "cold"}]; len(c) > 0 {
				cold = fmtMS(medianLoad(c))
			}
			var copied, rssL, peak []uint64
			var comp []time.Duration
			for _, s := range w {
				copied = append(copied, uint64(s.CopiedBytes))
				rssL = append(rssL, s.RSSLoaded)
				peak = append(peak, s.PeakRSS)
				comp = append(comp, time.Duration(s.CompileNS))
			}
			tbl.Rows = append(tbl.Rows, []string{sp.Label, fmtMiB(uint64(w[0].WeightBytes)), modeName(mode), fmtMS(warm), cold,
				fmtRatio(float64(copyWarm) / float64(max(warm, 1))), fmtMiB(medianU(copied)), fmtMiB(medianU(rssL)), fmtMiB(medianU(peak)), fmtMS(median(comp))})
			for _, cache := range caches {
				name := string(mode) + " " + cache
				if _, ok := series[name]; !ok {
					order = append(order, name)
				}
				v := math.NaN()
				if c := samples[key{kind, mode, cache}]; len(c) > 0 {
					v = float64(medianLoad(c)) / float64(time.Millisecond)
				}
				series[name] = append(series[name], v)
			}
		}
	}
	var ns []namedValues
	for _, name := range order {
		ns = append(ns, namedValues{Name: name, Values: series[name]})
	}
	if err := saveCategoryPoints(env.Out+"/load-time.png", "Model load time by copy mechanism (cf. Fig 4.6)", "median load time (ms, log)", labels, ns, true); err != nil {
		return rep, err
	}
	rep.Sections = append(rep.Sections, Section{Heading: "Load time by mode", Tables: []Table{tbl}, Images: []string{"load-time.png"}})
	if coldNote != "" {
		rep.Notes = append(rep.Notes, coldNote)
	}
	rep.Notes = append(rep.Notes,
		"Modes: copy reads the file into memory and copies every tensor out of it (the thesis's 'no optimization'); single reads the file once and points tensors into that buffer; mmap maps the file and points tensors into the mapping, copying nothing (the thesis's 'zero copy').",
		"The thesis timed PyTorch/Ray loads of BERT, BigBird and GPT2 (Table 4.2, seconds); we time Spindle's loader on generated models of comparable shape. Compare ratios between modes, not absolute times.",
		"MNIST CNN keeps its 85 KB of weights inside model.onnx, so its modes differ little; the modes part ways on models with external, aligned weight files (MiniLM-L6, BERT-base, VGG16).",
		"mmap defers reading: its load only maps the file, and with a cold cache the weights' pages are read when the first inference touches them (see cold-warm).",
		"Compile packs constant MatMul/Gemm weights for the matrix kernels (a second copy of those weights, engine Stats.PackedBytes) whatever the load mode; RSS after load is the figure the load mode decides.")
	for _, kind := range kinds {
		sp, _ := spec(kind)
		c, s, m := medianLoad(samples[key{kind, onnx.Copy, "warm"}]), medianLoad(samples[key{kind, onnx.Single, "warm"}]), medianLoad(samples[key{kind, onnx.Mmap, "warm"}])
		if c == 0 || m == 0 {
			continue
		}
		rep.Summary = append(rep.Summary, fmt.Sprintf("%s (warm cache): copy %s ms, single %s ms, mmap %s ms; copy/mmap %s (thesis, BERT: 1.83 s, 0.134 s, 0.068 s; 27x).",
			sp.Label, fmtMS(c), fmtMS(s), fmtMS(m), fmtRatio(float64(c)/float64(m))))
	}
	return rep, nil
}

func medianLoad(s []LoadSample) time.Duration {
	var d []time.Duration
	for _, x := range s {
		d = append(d, time.Duration(x.LoadNS))
	}
	return median(d)
}
