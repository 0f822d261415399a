package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKubeDevAsDocumented runs `spindle kube dev` and the kubectl lines it
// prints, as a user pastes them: the example function starts, grows in place
// under the annotated load and spreads to a second node; Ctrl-C stops the
// API server, etcd and kwok and leaves nothing running.
func TestKubeDevAsDocumented(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl not installed (scripts/testdeps.sh installs it): %v", err)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "kube", "dev", "--nodes", "2", "--dir", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "kube-dev.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("spindle kube dev log:\n%s", b)
		}
	}()
	sc := bufio.NewScanner(out)
	var kubeconfig string
	var try []string
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "KUBECONFIG="); ok {
			kubeconfig = v
		}
		if strings.HasPrefix(line, "  kubectl ") {
			try = append(try, strings.TrimSpace(line))
		}
		if strings.HasPrefix(line, "Ctrl-C") {
			break
		}
	}
	if kubeconfig == "" || len(try) != 3 {
		t.Fatalf("kubeconfig %q, kubectl lines %q", kubeconfig, try)
	}
	kc := func(args ...string) string {
		t.Helper()
		c := exec.Command(kubectl, args...)
		c.Dir = "../.." // the printed lines name files of the repository
		c.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
		b, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	for _, line := range try[:2] { // apply, annotate
		kc(strings.Fields(line)[1:]...)
	}
	deadline := time.Now().Add(60 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		got = kc(strings.Fields(try[2])[1:]...)
		if strings.Count(got, "Running") == 2 && strings.Contains(got, "node-1") && strings.Contains(got, "node-2") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if strings.Count(got, "Running") != 2 {
		t.Fatalf("after 60s of load:\n%s", got)
	}
	t.Logf("%s", got)
	if d := kc("describe", "inferencefunction", "bert"); !strings.Contains(d, "ScaledUp") || !strings.Contains(d, "double vCPUs") {
		t.Errorf("kubectl describe shows no scale-up events:\n%s", d)
	}

	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("spindle kube dev after Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("spindle kube dev did not stop within 30s of Ctrl-C")
	}
	// Its API server and kwok are gone with it.
	b, _ := exec.Command("pgrep", "-f", dir).Output()
	if pids := strings.Fields(string(b)); len(pids) > 0 {
		for _, p := range pids {
			if cmdline, err := os.ReadFile("/proc/" + p + "/cmdline"); err == nil {
				t.Errorf("still running after Ctrl-C: %s", strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
	}
}
