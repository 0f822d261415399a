package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgroupDirs returns the cgroup v1 directories (or the v2 one) of process
// pid that belong to a Spindle instance, from /proc/pid/cgroup.
func cgroupDirs(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.Contains(parts[2], "/spindle/") {
			continue
		}
		switch {
		case parts[1] == "":
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup/unified", parts[2]))
		default:
			for _, ctl := range strings.Split(parts[1], ",") {
				if d := filepath.Join("/sys/fs/cgroup", ctl, parts[2]); exists(d) {
					dirs = append(dirs, d)
				}
			}
		}
	}
	return dirs
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// TestKilledPlatformIsCleanedUp kills `spindle up` with SIGKILL while an
// instance runs and an upload is half sent, then starts it again on the same
// home: the instance's cgroup and the staging folder the killed platform
// left (both survived restarts before) are removed, and the function serves.
func TestKilledPlatformIsCleanedUp(t *testing.T) {
	home := t.TempDir()
	p := startPlatform(t, home)
	gw := "--gateway=" + p.url
	mustRun(t, "deploy", "m", "--model", plusModel(t, t.TempDir(), 1), gw)
	wantInfer(t, p.url, "m", "", 200, `"data":[2,3,4,5]`)
	var d struct {
		Instances []struct{ Pid int } `json:"instances"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "describe", "m", "--json", gw)), &d); err != nil || len(d.Instances) != 1 {
		t.Fatalf("describe: %v %+v", err, d)
	}
	pid := d.Instances[0].Pid
	groups := cgroupDirs(t, pid)

	// An upload the platform will not see the end of.
	c, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const boundary = "b0undary"
	fmt.Fprintf(c, "POST /admin/v1/functions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n", boundary, 100<<20)
	fmt.Fprintf(c, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model.onnx\"\r\n\r\n%s", boundary, strings.Repeat("x", 1<<20))
	staging := filepath.Join(home, "models", "staging")
	waitFor(t, "the upload is being staged", func() bool {
		es, _ := os.ReadDir(staging)
		return len(es) == 1
	})

	p.cmd.Process.Kill()
	p.cmd.Wait()
	waitFor(t, "the instance dies with its platform", func() bool { return syscall.Kill(pid, 0) != nil })
	for _, g := range groups {
		if !exists(g) {
			t.Fatalf("cgroup %s is gone already: the test shows nothing", g)
		}
	}
	if len(groups) == 0 {
		t.Log("instances run without cgroups here: only the staging folder is checked")
	}

	p2 := startPlatform(t, home)
	for _, g := range groups {
		if exists(g) {
			t.Errorf("cgroup %s left by the killed platform survived the restart", g)
		}
	}
	if es, _ := os.ReadDir(staging); len(es) != 0 {
		t.Errorf("staging holds %d folders after the restart, want none", len(es))
	}
	wantInfer(t, p2.url, "m", "", 200, `"data":[2,3,4,5]`)
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
