package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestV2Unified runs the v2 controller on this machine's real unified tree.
// On a hybrid machine that tree has no cpu or memory controller (they are
// bound to v1), but placing a child with CLONE_INTO_CGROUP, cpu.stat and
// removal work there all the same.
func TestV2Unified(t *testing.T) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	l := parseLayout(string(mi), string(cg))
	if l.v2 == nil {
		t.Skip("no cgroup v2 hierarchy mounted here")
	}
	parent := filepath.Join(l.v2.own, fmt.Sprintf("spindle-v2-test-%d", os.Getpid()))
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Skipf("cgroup v2 tree %s not writable here: %v", l.v2.own, err)
	}
	ctls, err := os.ReadFile(filepath.Join(l.v2.own, "cgroup.controllers"))
	if err != nil {
		t.Fatal(err)
	}
	has := func(c string) bool { return strings.Contains(" "+string(ctls)+" ", " "+c+" ") }
	ctl := &v2Controller{parent: parent, cpu: has("cpu"), mem: has("memory")}
	t.Cleanup(func() {
		if err := ctl.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(parent); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("parent %s still there after Close", parent)
		}
	})
	g := newGroup(t, ctl, "v2", Limits{})

	cmd := exec.Command("cat", "/proc/self/cgroup")
	var out strings.Builder
	cmd.Stdout = &out
	if err := g.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "0::"+strings.TrimPrefix(g.Dirs()[0], l.v2.mount)+"\n") {
		t.Errorf("child started in %s reads its cgroups as:\n%s", g.Dirs()[0], out.String())
	}

	c := startChild(t, helperCmd("spin"), g.Start)
	c.expect(t, "spinning")
	if s, err := g.Stats(); err != nil || s.CPU < 20*time.Millisecond {
		t.Errorf("cpu.stat of %s after the child used 20ms of CPU: %+v, %v", g.Dirs()[0], s, err)
	}
	if !ctl.cpu {
		if err := g.SetCPU(1); !errors.Is(err, ErrUnsupported) {
			t.Errorf("SetCPU without the v2 cpu controller = %v, want ErrUnsupported", err)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	<-c.exited
	if _, err := os.Stat(g.Dirs()[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after Close", g.Dirs()[0])
	}
}

// TestV2Files drives a v2 group against a fake cgroupfs (plain files in a
// temporary directory), because this machine's v2 tree has no cpu or memory
// controller: it checks what is written to and parsed from the control files.
func TestV2Files(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"cpu.max": "max 100000\n", "cpu.weight": "100\n", "memory.max": "max\n",
		"cpu.stat":       "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 7\nthrottled_usec 250000\n",
		"memory.current": "73400320\n", "memory.peak": "80000000\n",
		"memory.events": "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 1\n",
	}
	for f, v := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := &v2Group{dir: dir}
	cg := &Cgroup{name: "fake", g: g, cpu: true, mem: true}
	tests := []struct {
		name string
		set  func() error
		file string
		want string
	}{
		{"quarter vcpu", func() error { return cg.SetCPU(0.25) }, "cpu.max", "25000 100000"},
		{"weight follows quota", func() error { return cg.SetCPU(0.25) }, "cpu.weight", "25"},
		{"two vcpus", func() error { return cg.SetCPU(2) }, "cpu.max", "200000 100000"},
		{"no quota", func() error { return cg.SetCPU(0) }, "cpu.max", "max 100000"},
		{"default weight", func() error { return cg.SetCPU(0) }, "cpu.weight", "100"},
		{"memory", func() error { return cg.SetMemory(64 << 20) }, "memory.max", "67108864"},
		{"no memory limit", func() error { return cg.SetMemory(0) }, "memory.max", "max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.set(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("%s = %q, want %q", tt.file, b, tt.want)
			}
		})
	}
	s, err := cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{CPU: 1500 * time.Millisecond, Throttled: 7, ThrottledTime: 250 * time.Millisecond,
		Memory: 73400320, MemoryPeak: 80000000, OOMKills: 1}
	if s != want {
		t.Errorf("Stats (-want +got):\n-%+v\n+%+v", want, s)
	}
}
