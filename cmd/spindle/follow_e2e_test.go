package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/sandbox"
)

// TestInstanceFollowsItsCgroup: an instance started with --follow-cgroup in
// a real cgroup sizes its workers and GOMAXPROCS to the cgroup's CPU quota
// when someone else changes it (as a kubelet resizing a pod in place does),
// with no call from the gateway.
func TestInstanceFollowsItsCgroup(t *testing.T) {
	caps, err := sandbox.Detect(sandbox.Options{Parent: "spindle-test-follow", DisableNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	defer caps.Controller.Close()
	if !caps.CPU {
		t.Fatalf("no CPU quota on this machine's cgroups: %s", caps.CgroupProblem)
	}
	work := t.TempDir()
	mustRun(t, "model", "gen", "mnist-cnn", "-o", work)
	cg, err := caps.Controller.New("follow", sandbox.Limits{CPU: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command(bin, "instance", "--name", "m", "--model", filepath.Join(work, "model.onnx"), "--follow-cgroup", "50ms")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.Start(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var addr string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), sandbox.ListenLine); ok {
			addr = a
		}
		if sc.Text() == sandbox.ReadyLine {
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if addr == "" {
		t.Fatal("the instance printed no address")
	}
	stats := func() (int, int) {
		resp, err := http.Get("http://" + addr + "/_spindle/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct {
			Pool struct {
				Concurrency int `json:"concurrency"`
			} `json:"pool"`
			GOMAXPROCS int `json:"gomaxprocs"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st.Pool.Concurrency, st.GOMAXPROCS
	}
	for _, step := range []struct {
		vcpus   float64
		workers int
	}{{1, 1}, {3, 3}, {2.5, 3}, {0.5, 1}} {
		if err := cg.SetCPU(step.vcpus); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		var w, p int
		for time.Now().Before(deadline) {
			if w, p = stats(); w == step.workers && p == step.workers {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if w != step.workers || p != step.workers {
			t.Fatalf("cgroup at %v vCPUs: instance runs %d workers, GOMAXPROCS %d; want %d", step.vcpus, w, p, step.workers)
		}
		t.Log(fmt.Sprintf("%v vCPUs: %d workers", step.vcpus, w))
	}
}
