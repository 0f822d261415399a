package experiment

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
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
	env := &Env{Exe: bin, Out: out, Quick: true, Runs: 1, Users: 2, VCPUs: 1, Duration: 2 * time.Second, Kinds: []string{"mnist-cnn"}}
	tests := []struct {
		name   string
		csv    []string
		pngs   []string
		report []string
	}{
		{"cold-warm", []string{"cold-warm.csv"}, []string{"cold-warm-phases.png", "cold-warm-total.png"}, []string{"| MNIST CNN | cold | 1 image |", "Thesis Table 4.3"}},
		{"memory-timeline", []string{"memory-timeline.csv"}, []string{"memory-timeline-mnist-cnn.png"}, []string{"| MNIST CNN | mmap (zero copy) |", "Thesis Fig 4.5"}},
		{"concurrency", []string{"concurrency.csv"}, []string{"concurrency-memory.png"}, []string{"| ml | 1 | 1 |", "| burn | 1 | 1 |", "Thesis Figs 5.3 and 5.6"}},
		{"hybrid-vs-hpa", []string{"live-ramp.csv", "simulated-series.csv"}, []string{"hybrid-memory.png", "hybrid-latency.png", "hybrid-load.png"}, []string{"| hybrid |", "| hpa |", "simulated", "| 1 -> 2 |"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, ok := Lookup(tt.name)
			if !ok {
				t.Fatalf("no experiment %q", tt.name)
			}
			if _, err := RunOne(context.Background(), env, x); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(out, tt.name)
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
			if strings.Contains(string(md), "The run failed") {
				t.Errorf("report notes a failure:\n%s", md)
			}
		})
	}
}
