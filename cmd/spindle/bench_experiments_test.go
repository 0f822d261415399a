package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchResultsDefault runs the quickest experiment from a working
// directory with no --out: results go to bench/ in the data directory
// ($SPINDLE_HOME), the run says so first, and the working directory stays
// clean (it used to get bench-results/, inside a source checkout).
func TestBenchResultsDefault(t *testing.T) {
	cwd, home := t.TempDir(), t.TempDir()
	cmd := exec.Command(bin, "bench", "load-time", "--quick", "--runs", "1", "--models", "mnist-cnn")
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "SPINDLE_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("spindle bench load-time: %v\nstderr: %s", err, stderr.String())
	}
	out := filepath.Join(home, "bench")
	report := filepath.Join(out, "load-time", "report.md")
	if _, err := os.Stat(report); err != nil {
		t.Errorf("no report: %v", err)
	}
	if first, _, _ := strings.Cut(stderr.String(), "\n"); first != "results: "+out {
		t.Errorf("first stderr line %q, want %q", first, "results: "+out)
	}
	if !strings.Contains(stdout.String(), report) {
		t.Errorf("stdout does not name %s:\n%s", report, stdout.String())
	}
	if left, _ := os.ReadDir(cwd); len(left) != 0 {
		t.Errorf("the working directory got %v", left)
	}
}

func TestBenchOut(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, flag, home, want string
	}{
		{"flag", "/tmp/results", "/srv/spindle", "/tmp/results"},
		{"relative flag", "results", "", filepath.Join(wd, "results")},
		{"SPINDLE_HOME", "", "/srv/spindle", "/srv/spindle/bench"},
		{"default home", "", "", filepath.Join(wd, ".spindle", "bench")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SPINDLE_HOME", tc.home)
			got, err := benchOut(tc.flag)
			if err != nil || got != tc.want {
				t.Errorf("benchOut(%q) = %q, %v; want %q", tc.flag, got, err, tc.want)
			}
		})
	}
}
