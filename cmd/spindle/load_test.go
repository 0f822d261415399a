package main

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestLoadCommand(t *testing.T) {
	var n atomic.Int64
	var lastBody atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		lastBody.Store(string(b))
		if n.Add(1) == 5 {
			http.Error(w, "busy", http.StatusTooManyRequests)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "load.csv")
	out := mustRun(t, "load", "--url", srv.URL, "--users", "3", "--spawn-rate", "0", "--think", "0",
		"--max-requests", "12", "--random", "input=FP32:1x4", "--csv", path)
	for _, want := range []string{"requests 12", "ok 11", "errors 1", "429: 1", "p99.9", "records: " + path} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 13 || rows[0][0] != "start_ms" {
		t.Fatalf("csv: %d rows, err %v, header %q", len(rows), err, rows[0])
	}
	var req struct {
		Inputs []struct {
			Name  string    `json:"name"`
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal([]byte(lastBody.Load().(string)), &req); err != nil || len(req.Inputs) != 1 || len(req.Inputs[0].Data) != 4 {
		t.Errorf("request body %q: want an OIP request with one 1x4 input (%v)", lastBody.Load(), err)
	}
}

func TestLoadCommandUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"no target", []string{"load", "--max-requests", "1"}, "give one of FUNCTION, --task NAME and --url URL"},
		{"two targets", []string{"load", "f", "--url", "http://127.0.0.1:1/", "--max-requests", "1"}, "give one of"},
		{"unbounded", []string{"load", "--url", "http://127.0.0.1:1/", "--duration", "0"}, "a run needs a duration or a request cap"},
		{"open and closed", []string{"load", "--url", "http://127.0.0.1:1/", "--rate", "5", "--users", "3"}, "exclude each other"},
		{"bad think", []string{"load", "--url", "http://127.0.0.1:1/", "--think", "3s-2s"}, "--think"},
		{"bad step", []string{"load", "--url", "http://127.0.0.1:1/", "--step", "1:1"}, "--step"},
		{"bad url", []string{"load", "--url", "ftp://x/", "--max-requests", "1"}, "must be an http or https URL"},
		{"two payloads", []string{"load", "--url", "http://127.0.0.1:1/", "--body", "x.json", "--random", "a=FP32:1"}, "give one kind"},
		// Without a body these were GETs that every function refused.
		{"function without inputs", []string{"load", "f", "--gateway", "http://127.0.0.1:1", "--max-requests", "1"},
			"FUNCTION f: an inference request needs inputs: give --random NAME=DATATYPE:D1xD2... (e.g. --random input=FP32:1x1x28x28), --input NAME=FILE.npy or --body FILE"},
		{"task without body", []string{"load", "--task", "t", "--gateway", "http://127.0.0.1:1", "--max-requests", "1"},
			"--task t: a task request needs a JSON body: give --body FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantExit2(t, tt.msg, tt.args...) })
	}
}

// TestLoadCommandAllFailed checks that a run in which no request succeeded
// exits 1 and says so, after the usual summary.
func TestLoadCommandAllFailed(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	args := []string{"load", "f", "--gateway", srv.URL, "--random", "input=FP32:1x4",
		"--users", "2", "--spawn-rate", "0", "--think", "0", "--max-requests", "5"}
	r := spindle(t, args...)
	if r.code != 1 {
		t.Fatalf("spindle %s: exit %d, want 1\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"requests 5", "ok 0, errors 5 (404: 5)", "every request failed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if want := "spindle: load: all 5 requests failed (404: 5)"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
}
