package main

import (
	"bufio"
	"io"
	"net/http"
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
	dev := startKubeDev(t, "--nodes", "2", "--dir", dir)
	sc := dev.out
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

	interrupt(t, dev.cmd, "spindle kube dev", 30*time.Second)
	// Its API server and kwok are gone with it.
	noneRunning(t, dir)
}

// TestKubeDevProcessesAsDocumented runs `spindle kube dev --processes` and
// the lines it prints: the model is generated, the example function applied,
// and the printed load runs through the gateway against real instance
// processes, from zero, without an error. A second gateway, `spindle gateway`
// as its own process with the kubeconfig, serves the same function with the
// same answer. Ctrl-C stops the control plane and every instance.
func TestKubeDevProcessesAsDocumented(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl not installed (scripts/testdeps.sh installs it): %v", err)
	}
	dir := t.TempDir()
	dev := startKubeDev(t, "--nodes", "2", "--node-cpus", "2", "--processes", "--gateway-addr", "127.0.0.1:0", "--dir", dir)
	sc := dev.out
	var kubeconfig, gateway string
	var try []string
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "KUBECONFIG="); ok {
			kubeconfig = v
		}
		if v, ok := strings.CutPrefix(line, "Gateway (namespace default): "); ok {
			gateway = v
		}
		if strings.HasPrefix(line, "  kubectl ") || strings.HasPrefix(line, "  spindle ") {
			try = append(try, strings.TrimSpace(line))
		}
		if strings.HasPrefix(line, "Ctrl-C") {
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if kubeconfig == "" || gateway == "" || len(try) != 4 {
		t.Fatalf("kubeconfig %q, gateway %q, lines %q", kubeconfig, gateway, try)
	}
	run := func(line string) string {
		t.Helper()
		f := strings.Fields(line)
		name := kubectl
		if f[0] == "spindle" {
			name = bin
		}
		c := exec.Command(name, f[1:]...)
		c.Dir = "../.." // the printed lines name files of the repository
		c.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
		b, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, b)
		}
		return string(b)
	}
	run(try[0]) // spindle model gen
	run(try[1]) // kubectl apply
	if got := run(try[3]); strings.Contains(got, "Running") {
		t.Fatalf("a pod runs before any request:\n%s", got)
	}
	load := run(try[2]) // spindle load, through the gateway, from zero
	if !strings.Contains(load, "errors 0") {
		t.Fatalf("load through the gateway:\n%s", load)
	}
	t.Logf("%s", load[strings.LastIndex(load, "requests "):])
	if got := run(try[3]); !strings.Contains(got, "Running") || !strings.Contains(got, "127.42.") {
		t.Fatalf("no pod running on a process node after the load:\n%s", got)
	}

	// A second gateway, as a process of its own.
	gw := exec.Command(bin, "gateway", "--kubeconfig", kubeconfig, "--namespace", "default", "--listen", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	gwErr, err := gw.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer gw.Process.Kill()
	gsc := bufio.NewScanner(gwErr)
	listen := ""
	for listen == "" && gsc.Scan() {
		if _, rest, ok := strings.Cut(gsc.Text(), "gateway started"); ok {
			for _, kv := range strings.Fields(rest) {
				if v, ok := strings.CutPrefix(kv, "listen="); ok {
					listen = v
				}
			}
		}
	}
	go func() {
		for gsc.Scan() {
		}
	}()
	if listen == "" {
		t.Fatal("spindle gateway printed no address")
	}
	body := `{"inputs":[{"name":"input","shape":[1,1,28,28],"datatype":"FP32","data":[` + strings.TrimSuffix(strings.Repeat("0.5,", 784), ",") + `]}]}`
	answer := func(base string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Post(base+"/v2/models/mnist/infer", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// A gateway started a moment ago may not have read the
			// function yet (503 until its cache is synced).
			if resp.StatusCode == http.StatusOK || time.Now().After(deadline) {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: %d %s", base, resp.StatusCode, b)
				}
				return string(b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if a, b := answer(gateway), answer("http://"+listen); a != b {
		t.Errorf("the two gateways answer differently:\n%s\n%s", a, b)
	}
	// Ctrl-C stops the gateway cleanly.
	interrupt(t, gw, "spindle gateway", 15*time.Second)

	interrupt(t, dev.cmd, "spindle kube dev", 30*time.Second)
	// Its control plane and its pods' instances are gone with it.
	noneRunning(t, dir, "instance --name mnist --model /var/lib/spindle/models/mnist")
}

// devProc is a running `spindle kube dev`: its stdout, line by line.
type devProc struct {
	cmd *exec.Cmd
	out *bufio.Scanner
}

// startKubeDev starts `spindle kube dev args...` with its log in a file the
// test prints if it fails; it is killed at the end unless interrupt stopped
// it.
func startKubeDev(t *testing.T, args ...string) devProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"kube", "dev"}, args...)...)
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
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("spindle kube dev log:\n%s", b)
		}
	})
	return devProc{cmd: cmd, out: bufio.NewScanner(out)}
}

// interrupt sends cmd (name) Ctrl-C and wants a clean exit within d.
func interrupt(t *testing.T, cmd *exec.Cmd, name string, d time.Duration) {
	t.Helper()
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s after Ctrl-C: %v", name, err)
		}
	case <-time.After(d):
		t.Fatalf("%s did not stop within %v of Ctrl-C", name, d)
	}
}

// noneRunning wants no process whose command line matches a pattern.
func noneRunning(t *testing.T, patterns ...string) {
	t.Helper()
	for _, pattern := range patterns {
		b, _ := exec.Command("pgrep", "-f", pattern).Output()
		for _, p := range strings.Fields(string(b)) {
			if cmdline, err := os.ReadFile("/proc/" + p + "/cmdline"); err == nil {
				t.Errorf("still running after Ctrl-C: %s", strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
	}
}
