package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the child process of these tests: with
// SANDBOX_TEST_HELPER set, TestMain runs that helper instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SANDBOX_TEST_HELPER"); mode != "" {
		os.Exit(helper(mode))
	}
	os.Exit(m.Run())
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// helper is a child process. Modes: spin (busy loop, says "spinning" after
// 20ms of CPU time), alloc (touch
// SANDBOX_TEST_MIB MiB, say "allocated", wait for stdin to close), hold (say
// "ready", wait for stdin to close), term (say "ready", exit 0 on SIGTERM).
func helper(mode string) int {
	switch mode {
	case "spin":
		for cpuTime() < 20*time.Millisecond {
		}
		fmt.Println("spinning")
		for {
		}
	case "alloc":
		mib, err := strconv.Atoi(os.Getenv("SANDBOX_TEST_MIB"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		// Memory outside the Go heap, so that the race detector's shadow
		// memory does not add to what the limit sees.
		b, err := syscall.Mmap(-1, 0, mib<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("allocated", mib, "MiB")
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "hold":
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "platform":
		// A platform that makes an instance group holding a process, then
		// is killed before it can remove it.
		caps, err := Detect(Options{Parent: os.Getenv("SANDBOX_TEST_PARENT"), DisableNamespaces: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		cg, err := caps.Controller.New("fn", Limits{CPU: 1})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		sleep := exec.Command("sleep", "60")
		if err := cg.Start(sleep); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println(cg.Name(), sleep.Process.Pid)
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "term":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		fmt.Println("ready")
		<-ctx.Done()
		fmt.Println("terminated")
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// child is a helper process started by a test.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	exited chan struct{}
	err    error // set before exited closes
}

// helperCmd prepares the test binary as helper mode; it dies with the test.
func helperCmd(mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"SANDBOX_TEST_HELPER=" + mode}, env...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	return cmd
}

// startChild starts cmd through start (cmd.Start when nil) and reaps it in
// the background; the test's cleanup kills it.
func startChild(t *testing.T, cmd *exec.Cmd, start func(*exec.Cmd) error) *child {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if start == nil {
		start = (*exec.Cmd).Start
	}
	if err := start(cmd); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout), exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.exited
	})
	return c
}

// line reads the child's next stdout line.
func (c *child) line(t *testing.T) string {
	t.Helper()
	if !c.lines.Scan() {
		<-c.exited
		t.Fatalf("child %v: no line on stdout (exit: %v)", c.cmd.Args, c.err)
	}
	return c.lines.Text()
}

// expect reads the child's next stdout line and fails unless it starts with want.
func (c *child) expect(t *testing.T, want string) {
	t.Helper()
	if !c.lines.Scan() {
		<-c.exited
		t.Fatalf("child %v: no %q on stdout (exit: %v)", c.cmd.Args, want, c.err)
	}
	if got := c.lines.Text(); !strings.HasPrefix(got, want) {
		t.Fatalf("child said %q, want %q", got, want)
	}
}

func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// testCaps detects with a parent group of this test process's own, removed
// (and checked to be gone) when the test ends.
func testCaps(t *testing.T) Capabilities {
	t.Helper()
	caps, err := Detect(Options{Parent: fmt.Sprintf("spindle-test-%d", os.Getpid()), DisableNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := caps.Controller.Close(); err != nil {
			t.Errorf("controller close: %v", err)
		}
		for _, d := range caps.Parents {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("parent group %s still there after Close (stat: %v)", d, err)
			}
		}
	})
	return caps
}

// newGroup makes a cgroup that the test closes when it ends.
func newGroup(t *testing.T, ctl Controller, name string, l Limits) *Cgroup {
	t.Helper()
	cg, err := ctl.New(name, l)
	if err != nil {
		t.Fatalf("New(%q, %+v): %v", name, l, err)
	}
	t.Cleanup(func() {
		if err := cg.Close(); err != nil {
			t.Errorf("close %s: %v", cg.Name(), err)
		}
	})
	return cg
}

// requireCap checks, where the machine cannot do what a test needs, that the
// platform reports it and degrades, and skips naming what is missing.
func requireCap(t *testing.T, caps Capabilities, have bool, what, summary string) {
	t.Helper()
	if have {
		return
	}
	if !strings.Contains(caps.String(), summary) || !strings.Contains(caps.String(), "running degraded") {
		t.Errorf("machine lacks %s but Detect says %q, want it to say %q and running degraded", what, caps, summary)
	}
	cg, err := caps.Controller.New("degraded", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	if err := cg.SetCPU(1); caps.CPU != (err == nil) {
		t.Errorf("SetCPU(1) = %v with Capabilities.CPU %v", err, caps.CPU)
	}
	if err := cg.SetMemory(64 << 20); caps.Memory != (err == nil) {
		t.Errorf("SetMemory = %v with Capabilities.Memory %v", err, caps.Memory)
	}
	t.Skipf("%s not available here (%s); checked the degraded report instead", what, caps.CgroupProblem)
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name    string
		limits  Limits
		wantErr string // "" for valid
	}{
		{"zero means none", Limits{}, ""},
		{"quarter vcpu", Limits{CPU: 0.25, Memory: 64 << 20}, ""},
		{"several vcpus", Limits{CPU: 3.75}, ""},
		{"below step", Limits{CPU: 0.1}, "cpu: 0.1 vCPU must be a multiple of 0.25"},
		{"off step", Limits{CPU: 0.3}, "cpu: 0.3 vCPU must be a multiple"},
		{"negative cpu", Limits{CPU: -1}, "cpu: -1 vCPU must be a finite number"},
		{"nan cpu", Limits{CPU: math.NaN()}, "cpu: NaN vCPU"},
		{"tiny memory", Limits{Memory: 1000}, "memory: 1000 bytes must be 0 (no limit) or at least"},
		{"negative memory", Limits{Memory: -5}, "memory: -5 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.limits.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestQuotaMicros(t *testing.T) {
	tests := []struct {
		vcpus float64
		want  int64
	}{{0, -1}, {0.25, 25000}, {0.5, 50000}, {1, 100000}, {2.75, 275000}}
	for _, tt := range tests {
		if got := quotaMicros(tt.vcpus); got != tt.want {
			t.Errorf("quotaMicros(%v) = %d, want %d", tt.vcpus, got, tt.want)
		}
	}
}

// TestDegraded runs the Noop controller and a nil *Cgroup, what the platform
// uses when cgroups are disabled or not writable.
func TestDegraded(t *testing.T) {
	t.Setenv("SPINDLE_NO_CGROUPS", "1")
	caps, err := Detect(Options{DisableNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := caps.Controller.(Noop); !ok || caps.Cgroup != 0 || caps.CPU || caps.Memory {
		t.Fatalf("with SPINDLE_NO_CGROUPS=1: %+v, want the Noop controller", caps)
	}
	noop, err := caps.Controller.New("fn", Limits{CPU: 1, Memory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := caps.Controller.New("fn", Limits{CPU: 0.3}); err == nil {
		t.Error("Noop.New accepted 0.3 vCPU")
	}
	for name, cg := range map[string]*Cgroup{"noop": noop, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			if err := cg.SetCPU(0.5); !errors.Is(err, ErrUnsupported) {
				t.Errorf("SetCPU = %v, want ErrUnsupported", err)
			}
			if err := cg.SetMemory(64 << 20); !errors.Is(err, ErrUnsupported) {
				t.Errorf("SetMemory = %v, want ErrUnsupported", err)
			}
			if _, err := cg.Stats(); !errors.Is(err, ErrUnsupported) {
				t.Errorf("Stats = %v, want ErrUnsupported", err)
			}
			if _, err := cg.OOMKilled(); !errors.Is(err, ErrUnsupported) {
				t.Errorf("OOMKilled = %v, want ErrUnsupported", err)
			}
			cmd := exec.Command("echo", "unconfined")
			var out strings.Builder
			cmd.Stdout = &out
			if err := cg.Start(cmd); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if err := cmd.Wait(); err != nil || out.String() != "unconfined\n" {
				t.Errorf("child ran with %v, printed %q", err, out.String())
			}
			if err := cg.Attach(os.Getpid()); err != nil {
				t.Errorf("Attach = %v, want nil", err)
			}
			if len(cg.Dirs()) != 0 {
				t.Errorf("Dirs = %v, want none", cg.Dirs())
			}
			if err := cg.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
		})
	}
}

// cgroupsOf returns /proc/<pid or thread>/cgroup.
func cgroupsOf(t *testing.T, proc string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", proc, "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStartInCgroup checks that the child is in the group from its first
// instruction (it reads its own cgroups as the first thing it does) and that
// no thread of the platform is left behind in it.
func TestStartInCgroup(t *testing.T) {
	caps := testCaps(t)
	requireCap(t, caps, caps.Cgroup != 0, "writable cgroups", "cgroups:")
	cg := newGroup(t, caps.Controller, "start", Limits{CPU: 1, Memory: 256 << 20})
	for i := range 5 {
		cmd := exec.Command("cat", "/proc/self/cgroup")
		var out strings.Builder
		cmd.Stdout = &out
		if err := cg.Start(cmd); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out.String(), "/"+cg.Name()+"\n"); n < len(cg.Dirs()) {
			t.Fatalf("run %d: child's first read of its cgroups shows %s in %d hierarchies, want %d:\n%s", i, cg.Name(), n, len(cg.Dirs()), out.String())
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if s := cgroupsOf(t, filepath.Join("self/task", task.Name())); strings.Contains(s, cg.Name()) {
			t.Errorf("thread %s of the platform stayed in %s:\n%s", task.Name(), cg.Name(), s)
		}
	}
}

func TestAttachAndClose(t *testing.T) {
	caps := testCaps(t)
	requireCap(t, caps, caps.Cgroup != 0, "writable cgroups", "cgroups:")
	cg, err := caps.Controller.New("attach", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	c := startChild(t, helperCmd("hold"), nil)
	c.expect(t, "ready")
	if err := cg.Attach(c.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if s := cgroupsOf(t, strconv.Itoa(c.cmd.Process.Pid)); strings.Count(s, "/"+cg.Name()+"\n") < len(cg.Dirs()) {
		t.Fatalf("after Attach the child is in:\n%s\nwant %s in every hierarchy", s, cg.Name())
	}
	// The instance is still in the group: Close kills it, then removes it.
	if err := cg.Close(); err != nil {
		t.Fatal(err)
	}
	<-c.exited
	var ee *exec.ExitError
	if !errors.As(c.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("straggler ended with %v, want killed by SIGKILL", c.err)
	}
	for _, d := range cg.Dirs() {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Close (stat: %v)", d, err)
		}
	}
	if err := cg.SetCPU(1); err == nil && caps.CPU {
		t.Error("SetCPU on a closed group succeeded")
	}
}

// cpuRates is the CPU each group used per second of wall time over d, and
// the CFS periods the first was throttled in.
func cpuRates(t *testing.T, d time.Duration, cgs ...*Cgroup) ([]float64, uint64) {
	t.Helper()
	stats := func() []Stats {
		s := make([]Stats, len(cgs))
		for i, cg := range cgs {
			var err error
			if s[i], err = cg.Stats(); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	// The clock brackets both readings, so a test goroutine descheduled
	// between a reading and its timestamp (a loaded machine) can only
	// understate a rate, never show more CPU than a quota allows.
	t0 := time.Now()
	s0 := stats()
	<-time.After(d) // the quota is enforced over wall-clock time: wait it out
	s1 := stats()
	el := float64(time.Since(t0))
	rates := make([]float64, len(cgs))
	for i := range cgs {
		rates[i] = float64(s1[i].CPU-s0[i].CPU) / el
	}
	return rates, s1[0].Throttled - s0[0].Throttled
}

// raiseWeight gives the test's parent group the weight of 16 busy tasks, so
// that other work on a shared machine does not starve the loops below their
// quotas (then no quota would show).
func raiseWeight(t *testing.T, caps Capabilities) {
	t.Helper()
	for _, d := range caps.Parents {
		for f, v := range map[string]string{"cpu.shares": "16384", "cpu.weight": "1600"} {
			if _, err := os.Stat(filepath.Join(d, f)); err == nil {
				if err := writeFile(filepath.Join(d, f), v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestSetCPULive resizes the quota of a busy loop while it runs, beside an
// unlimited busy loop in a sibling group as the reference for what a CPU
// gives now: the machine's cores are shared with other work, so "rises to a
// whole CPU" is asserted against the reference, not as an absolute rate. A
// quota cannot be exceeded, so upper bounds are absolute (quota plus one
// period of slack over the interval); a step that misses gets a few tries.
func TestSetCPULive(t *testing.T) {
	caps := testCaps(t)
	requireCap(t, caps, caps.CPU, "the cgroup cpu controller", "no CPU quota")
	raiseWeight(t, caps)
	cg := newGroup(t, caps.Controller, "cpu", Limits{CPU: 2})
	ref := newGroup(t, caps.Controller, "ref", Limits{CPU: 2})
	startChild(t, helperCmd("spin"), cg.Start)
	startChild(t, helperCmd("spin"), ref.Start)
	steps := []struct {
		vcpus     float64
		max       float64 // absolute, in CPUs
		minOfRef  float64 // share of the reference loop's rate
		throttled bool
	}{
		{vcpus: 0.5, max: 0.7, throttled: true},
		{vcpus: 0.25, max: 0.4, throttled: true},
		// One busy thread uses one CPU at most, but rates sampled over 400 ms
		// read a little above it on a loaded machine (1.12 seen): bound by the
		// quota itself.
		{vcpus: 2, max: 2.05, minOfRef: 0.8},
	}
	for _, st := range steps {
		if err := cg.SetCPU(st.vcpus); err != nil {
			t.Fatal(err)
		}
		if got := cg.Limits().CPU; got != st.vcpus {
			t.Errorf("Limits().CPU = %v after SetCPU(%v)", got, st.vcpus)
		}
		var seen []string
		ok := false
		for range 5 {
			r, throttled := cpuRates(t, 400*time.Millisecond, cg, ref)
			seen = append(seen, fmt.Sprintf("%.2f CPU (reference %.2f), throttled %d", r[0], r[1], throttled))
			if r[0] > st.max {
				break // more than the quota allows: no retry can fix that
			}
			if r[0] > 0.05 && r[0] >= st.minOfRef*r[1] && (throttled > 0) == st.throttled {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("at %v vCPU a busy loop used %v; want at most %v CPU, at least %v of the reference, throttled %v", st.vcpus, seen, st.max, st.minOfRef, st.throttled)
		} else {
			t.Logf("at %v vCPU: %s", st.vcpus, seen[len(seen)-1])
		}
	}
}

// TestMemoryLimit breaches a 64 MiB limit in one group while a sibling group
// lives on, and raises another group's limit while it runs.
func TestMemoryLimit(t *testing.T) {
	caps := testCaps(t)
	requireCap(t, caps, caps.Memory, "the cgroup memory controller", "no memory limit")
	const limit = 64 << 20
	sibling := newGroup(t, caps.Controller, "sibling", Limits{Memory: limit})
	victim := newGroup(t, caps.Controller, "victim", Limits{Memory: limit})
	grown := newGroup(t, caps.Controller, "grown", Limits{Memory: limit})

	sib := startChild(t, helperCmd("alloc", "SANDBOX_TEST_MIB=16"), sibling.Start)
	sib.expect(t, "allocated")

	v := startChild(t, helperCmd("alloc", "SANDBOX_TEST_MIB=256"), victim.Start)
	<-v.exited
	var ee *exec.ExitError
	if !errors.As(v.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("child allocating 256 MiB under a 64 MiB limit ended with %v, want SIGKILL", v.err)
	}
	if oom, err := victim.OOMKilled(); err != nil || !oom {
		t.Errorf("victim OOMKilled() = %v, %v; want true", oom, err)
	}
	if err := victim.ExitError(v.err); !errors.Is(err, ErrOOMKilled) {
		t.Errorf("victim ExitError = %v, want ErrOOMKilled", err)
	}
	// The kernel charges in per-CPU batches, so the peak may pass the limit
	// by a few pages.
	if s, err := victim.Stats(); err != nil || s.MemoryPeak < limit/2 || s.MemoryPeak > limit+1<<20 {
		t.Errorf("victim stats %+v, %v: want a peak near the %d limit", s, err, limit)
	}

	if !sib.running() {
		t.Fatalf("sibling died with the victim: %v", sib.err)
	}
	if oom, err := sibling.OOMKilled(); err != nil || oom {
		t.Errorf("sibling OOMKilled() = %v, %v; want false", oom, err)
	}
	if s, err := sibling.Stats(); err != nil || s.Memory < 16<<20 {
		t.Errorf("sibling stats %+v, %v: want at least its 16 MiB charged", s, err)
	}
	sib.stdin.Close()
	<-sib.exited
	if sib.err != nil {
		t.Errorf("sibling exit: %v", sib.err)
	}
	if err := sibling.ExitError(errors.New("exit status 3")); errors.Is(err, ErrOOMKilled) {
		t.Errorf("sibling ExitError = %v, want no ErrOOMKilled", err)
	}

	// Vertical resize of memory: 128 MiB fits once the limit is 256 MiB.
	if err := grown.SetMemory(256 << 20); err != nil {
		t.Fatal(err)
	}
	g := startChild(t, helperCmd("alloc", "SANDBOX_TEST_MIB=128"), grown.Start)
	g.expect(t, "allocated")
	if oom, err := grown.OOMKilled(); err != nil || oom {
		t.Errorf("after SetMemory(256 MiB) a 128 MiB child: OOMKilled() = %v, %v", oom, err)
	}
	if got := grown.Limits().Memory; got != 256<<20 {
		t.Errorf("Limits().Memory = %d", got)
	}
}

// TestParentRemadeAfterClose runs two platforms on one parent group: when
// one closes while the other has no instance, the parent goes (it is
// empty), and the other's next instance must make it again rather than fail
// (two test binaries of this project raced so).
func TestParentRemadeAfterClose(t *testing.T) {
	first := testCaps(t)
	requireCap(t, first, first.Cgroup != 0, "writable cgroups", "cgroups:")
	second, err := Detect(Options{Parent: fmt.Sprintf("spindle-test-%d", os.Getpid()), DisableNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Controller.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range first.Parents {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("parent %s still there after the first platform closed (stat: %v)", d, err)
		}
	}
	cg := newGroup(t, second.Controller, "after", Limits{CPU: 1})
	c := startChild(t, helperCmd("hold"), cg.Start)
	c.expect(t, "ready")
	if s := cgroupsOf(t, strconv.Itoa(c.cmd.Process.Pid)); strings.Count(s, "/"+cg.Name()+"\n") < len(cg.Dirs()) {
		t.Fatalf("the instance started after the parent was made again is in:\n%s\nwant %s in every hierarchy", s, cg.Name())
	}
}
