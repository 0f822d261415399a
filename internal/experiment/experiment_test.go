package experiment

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"image/png"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/onnx"
)

// TestMain lets the test binary stand in for the spindle binary's hidden
// `bench load-once` child, so the experiments' child processes are real
// processes without building spindle.
func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && os.Args[1] == "bench" && os.Args[2] == "load-once" {
		var model, load string
		for i := 3; i+1 < len(os.Args); i += 2 {
			switch os.Args[i] {
			case "--model":
				model = os.Args[i+1]
			case "--load":
				load = os.Args[i+1]
			}
		}
		if err := LoadOnce(os.Stdout, model, onnx.LoadMode(load)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// readCSV parses path and checks that every row has the header's width.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll() // ReadAll rejects ragged rows
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(rows) < 2 {
		t.Fatalf("%s: %d rows, want a header and data", path, len(rows))
	}
	return rows
}

// checkPNG decodes path and checks it has a plot-sized image.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r := img.Bounds(); r.Dx() < 200 || r.Dy() < 100 {
		t.Errorf("%s: %v image, want a plot", path, r)
	}
}

func TestLoadTimeTinyRun(t *testing.T) {
	out := t.TempDir()
	env := &Env{Exe: os.Args[0], Out: out, Quick: true, Runs: 1, Kinds: []string{"mnist-cnn"}, Command: "test"}
	x, _ := Lookup("load-time")
	rep, err := RunOne(context.Background(), env, x)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "load-time")
	rows := readCSV(t, filepath.Join(dir, "load-time.csv"))
	if rows[0][0] != "model" || rows[0][4] != "load_ms" {
		t.Errorf("header %q", rows[0])
	}
	// One model, three modes, one run, warm and (where eviction works) cold.
	if n := len(rows) - 1; n != 3 && n != 6 {
		t.Errorf("%d data rows, want 3 or 6", n)
	}
	modes := map[string]bool{}
	for _, r := range rows[1:] {
		modes[r[1]] = true
		if r[0] != "mnist-cnn" {
			t.Errorf("row %q: model %q", r, r[0])
		}
	}
	if len(modes) != 3 {
		t.Errorf("modes %v, want copy, single and mmap", modes)
	}
	checkPNG(t, filepath.Join(dir, "load-time.png"))
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Model load time", "| MNIST CNN |", "Thesis Table 4.2", "| BERT | 1.83 | 0.134 | 0.06835 |", "![load-time](load-time.png)", "Command: `test`"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	if len(rep.Summary) != 1 {
		t.Errorf("summary %q, want one line for the one model", rep.Summary)
	}
}

func TestPlotsDecode(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		draw func(path string) error
	}{
		{"lines", func(p string) error {
			return saveLines(p, "t", "x", "y", []xySeries{{Name: "a", X: []float64{0, 1, 2}, Y: []float64{1, 3, 2}}, {Name: "empty"}}, false)
		}},
		{"lines-log", func(p string) error {
			return saveLines(p, "t", "x", "y", []xySeries{{Name: "a", X: []float64{0, 1}, Y: []float64{0, 100}}}, true)
		}},
		{"cdf", func(p string) error {
			return saveCDF(p, "t", "ms", []namedValues{{Name: "a", Values: []float64{3, 1, 2}}, {Name: "b", Values: []float64{5}}}, true)
		}},
		{"points", func(p string) error {
			return saveCategoryPoints(p, "t", "ms", []string{"m1", "m2"}, []namedValues{{Name: "a", Values: []float64{1, 10}}, {Name: "b", Values: []float64{0.5, 0}}}, true)
		}},
		{"stacked", func(p string) error {
			return saveStackedBars(p, "t", "ms", []string{"c1", "c2", "c3"}, []namedValues{{Name: "a", Values: []float64{1, 2, 3}}, {Name: "b", Values: []float64{3, 0, 1}}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".png")
			if err := tt.draw(path); err != nil {
				t.Fatal(err)
			}
			checkPNG(t, path)
		})
	}
}

func TestTableMarkdown(t *testing.T) {
	got := Table{Caption: "cap", Header: []string{"a", "b"}, Rows: [][]string{{"1", "x|y"}, {"2"}}}.Markdown()
	want := "cap\n\n| a | b |\n|---|---|\n| 1 | x\\|y |\n| 2 |  |\n"
	if got != want {
		t.Errorf("Markdown() =\n%q\nwant\n%q", got, want)
	}
}

// buildSpindle builds the spindle binary for the experiments that start
// gateways and instances.
func buildSpindle(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "spindle")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/spindleml/spindle/cmd/spindle")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build spindle: %v\n%s", err, out)
	}
	return bin
}

// TestPlatformExperimentsTinyRun runs every experiment that needs the real
// binary at the smallest size: a gateway, instances and spindle sim, all real.
func TestPlatformExperimentsTinyRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds spindle and starts gateways and instances")
	}
	bin := buildSpindle(t)
	out := t.TempDir()
	env := &Env{Exe: bin, Quick: true, Runs: 1, Users: 2, VCPUs: 1, Duration: 2 * time.Second, Kinds: []string{"mnist-cnn"}, Models: filepath.Join(out, "models")}
	tests := []struct {
		name   string
		exp    string
		env    func(*Env) // changes to env for this run
		csv    []string
		pngs   []string
		report []string
		check  func(t *testing.T, dir string)
	}{
		{name: "cold-warm", csv: []string{"cold-warm.csv"}, pngs: []string{"cold-warm-phases.png", "cold-warm-total.png"}, report: []string{"| MNIST CNN | cold | 1 image |", "Thesis Table 4.3"}},
		{name: "memory-timeline", csv: []string{"memory-timeline.csv"}, pngs: []string{"memory-timeline-mnist-cnn.png"}, report: []string{"| MNIST CNN | mmap (zero copy) |", "Thesis Fig 4.5"}},
		{name: "concurrency", csv: []string{"concurrency.csv"}, pngs: []string{"concurrency-memory.png"}, report: []string{"| ml | 1 | 1 |", "| burn | 1 | 1 |", "Thesis Figs 5.3 and 5.6"}},
		{name: "hybrid-vs-hpa", env: func(e *Env) {
			// An SLO no request meets: hybrid must double its vCPUs and
			// hpa its replicas at every tick, live.
			e.Policies, e.SLO, e.Duration = []string{"hybrid", "hpa"}, time.Microsecond, 3*time.Second
		}, csv: []string{"live-samples.csv", "live-load.csv", "live-requests.csv", "live-decisions.csv"},
			pngs:   []string{"live-memory.png", "live-latency-cdf.png", "live-rps.png", "live-vcpus.png", "live-instances.png"},
			report: []string{"## Live: every policy on this machine", "| hybrid | 1 instance, 0.25 -> 1 vCPUs", "| hpa | replicas of 0.25 vCPU, 1 -> 4", "spindle up --autoscale hpa", "Live memory (Fig 6.1)"},
			check:  checkLiveScaling},
		{name: "hybrid-vs-hpa (simulated)", exp: "hybrid-vs-hpa", env: func(e *Env) { e.Simulated = true },
			csv: []string{"live-ramp.csv", "simulated-series.csv"}, pngs: []string{"hybrid-memory.png", "hybrid-latency.png", "hybrid-load.png"},
			report: []string{"| hybrid |", "| hpa |", "simulated variant (`--simulated`)", "| 1 -> 2 |"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp := tt.exp
			if exp == "" {
				exp = tt.name
			}
			x, ok := Lookup(exp)
			if !ok {
				t.Fatalf("no experiment %q", exp)
			}
			e := *env
			e.Out = filepath.Join(out, strings.ReplaceAll(tt.name, " ", "-"))
			if tt.env != nil {
				tt.env(&e)
			}
			if _, err := RunOne(context.Background(), &e, x); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(e.Out, exp)
			for _, c := range tt.csv {
				readCSV(t, filepath.Join(dir, c))
			}
			for _, p := range tt.pngs {
				checkPNG(t, filepath.Join(dir, p))
			}
			md, err := os.ReadFile(filepath.Join(dir, "report.md"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range append(tt.report, "## Summary", "## The thesis's numbers") {
				if !strings.Contains(string(md), want) {
					t.Errorf("report.md lacks %q:\n%s", want, md)
				}
			}
			if tt.check != nil {
				tt.check(t, dir)
			}
			if strings.Contains(string(md), "The run failed") {
				t.Errorf("report notes a failure:\n%s", md)
			}
		})
	}
}

// checkLiveScaling checks the live hybrid-vs-hpa run under an SLO no request
// meets: hybrid grew its one instance's vCPUs, hpa added replicas of one step
// each, and every sample saw the function running with memory.
func checkLiveScaling(t *testing.T, dir string) {
	t.Helper()
	rows := readCSV(t, filepath.Join(dir, "live-samples.csv"))
	if want := []string{"policy", "t_s", "vcpus", "instances", "rss_bytes", "pss_bytes"}; !slices.Equal(rows[0], want) {
		t.Fatalf("live-samples.csv header %q, want %q", rows[0], want)
	}
	type peak struct {
		vcpus     float64
		instances int
		n         int
	}
	peaks := map[string]*peak{}
	for _, r := range rows[1:] {
		vcpus, err1 := strconv.ParseFloat(r[2], 64)
		inst, err2 := strconv.Atoi(r[3])
		rss, err3 := strconv.ParseUint(r[4], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("row %q: %v", r, err)
		}
		if inst < 1 || rss == 0 || vcpus < 0.25*float64(inst) {
			t.Errorf("row %q: want a running function (instances >= 1, RSS > 0, >= 0.25 vCPU each)", r)
		}
		p := peaks[r[0]]
		if p == nil {
			p = &peak{}
			peaks[r[0]] = p
		}
		p.vcpus, p.instances, p.n = max(p.vcpus, vcpus), max(p.instances, inst), p.n+1
	}
	h, p := peaks["hybrid"], peaks["hpa"]
	if h == nil || p == nil {
		t.Fatalf("samples for %v, want hybrid and hpa", slices.Collect(maps.Keys(peaks)))
	}
	if h.n < 3 || p.n < 3 {
		t.Errorf("%d hybrid and %d hpa samples over a 3 s ramp, want one a second", h.n, p.n)
	}
	if h.instances != 1 || h.vcpus <= 0.25 {
		t.Errorf("hybrid: peak %d instances, %v vCPUs; want 1 instance grown beyond 0.25 vCPU", h.instances, h.vcpus)
	}
	if p.instances < 2 || p.vcpus != 0.25*float64(p.instances) {
		t.Errorf("hpa: peak %d instances, %v vCPUs; want more than one replica of 0.25 vCPU", p.instances, p.vcpus)
	}
	decs := readCSV(t, filepath.Join(dir, "live-decisions.csv"))
	ups := map[string]int{}
	for _, r := range decs[1:] {
		if r[2] == "scale-up" && r[3] == "true" {
			ups[r[0]]++
		}
	}
	if ups["hybrid"] == 0 || ups["hpa"] == 0 {
		t.Errorf("applied scale-ups %v, want some for hybrid and hpa", ups)
	}
}

// TestGatewayExperimentTinyRun runs `bench gateway` for a second per
// measurement against a real spindle up: four rows (JSON and binary,
// straight and through the gateway), the gateway's CPU higher through it,
// and the summary stating both costs.
func TestGatewayExperimentTinyRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds spindle and starts a gateway and an instance")
	}
	out := t.TempDir()
	env := &Env{Exe: buildSpindle(t), Quick: true, Duration: time.Second, Models: filepath.Join(out, "models"), Out: out}
	rep, err := RunOne(context.Background(), env, GatewayExperiment)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Sections) != 1 || len(rep.Sections[0].Tables[0].Rows) != 4 {
		t.Fatalf("report sections %+v", rep.Sections)
	}
	rows := rep.Sections[0].Tables[0].Rows
	for i, row := range rows {
		if n, _ := strconv.Atoi(row[2]); n < 1000 {
			t.Errorf("row %v: want about 2,000 requests", row)
		}
		if row[1] != "gateway" {
			continue
		}
		// The gateway's CPU per request through it is more than while the
		// same load went straight to the instance (its idle chores only).
		through, err1 := time.ParseDuration(row[6])
		straight, err2 := time.ParseDuration(rows[i-1][6])
		if err1 != nil || err2 != nil || through <= straight {
			t.Errorf("gateway CPU per request %s through it, %s straight: want more through it", row[6], rows[i-1][6])
		}
	}
	if len(rep.Summary) != 2 || !strings.Contains(rep.Summary[0], "json body: the gateway adds") || !strings.Contains(rep.Summary[1], "binary body") {
		t.Errorf("summary %q", rep.Summary)
	}
}
