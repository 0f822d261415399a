package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// v1Controller makes groups in the cgroup v1 hierarchies of cpu, cpuacct and
// memory (Documentation/admin-guide/cgroup-v1). Each controller may have its
// own mount, or share one.
type v1Controller struct {
	cpu, acct, mem *hierarchy // nil: controller not usable
	parents        map[*hierarchy]string
}

// setupV1 creates the parent group in each hierarchy and checks that the
// limit files can be written.
func setupV1(l layout, parent string) Capabilities {
	c := &v1Controller{parents: map[*hierarchy]string{}}
	var problems []string
	prepare := func(ctl, probe string) *hierarchy {
		h := l.v1For(ctl)
		if h == nil {
			problems = append(problems, fmt.Sprintf("cgroup v1 %s controller not mounted", ctl))
			return nil
		}
		dir := filepath.Join(h.own, parent)
		if _, done := c.parents[h]; !done {
			if err := mkdirParentV1(h, dir); err != nil {
				problems = append(problems, problem(dir, err))
				return nil
			}
		}
		// Write back what is there: proves write access without undoing a
		// limit an operator put on the parent group.
		path := filepath.Join(dir, probe)
		if probe != "cpuacct.usage" {
			v, err := os.ReadFile(path)
			if err == nil {
				err = writeFile(path, strings.TrimSpace(string(v)))
			}
			if err != nil {
				problems = append(problems, problem(dir, err))
				return nil
			}
		} else if _, err := os.Stat(path); err != nil {
			problems = append(problems, problem(dir, err))
			return nil
		}
		c.parents[h] = dir
		return h
	}
	c.cpu = prepare("cpu", "cpu.cfs_quota_us")
	c.acct = prepare("cpuacct", "cpuacct.usage")
	c.mem = prepare("memory", "memory.limit_in_bytes")
	caps := Capabilities{Cgroup: 1, CPU: c.cpu != nil, Memory: c.mem != nil, CgroupProblem: strings.Join(problems, "; ")}
	if !caps.CPU && !caps.Memory {
		return Capabilities{CgroupProblem: caps.CgroupProblem}
	}
	for _, d := range c.parents {
		caps.Parents = append(caps.Parents, d)
	}
	slices.Sort(caps.Parents)
	caps.Controller = c
	return caps
}

// mkdirParentV1 creates a v1 group that may already exist. In a hierarchy
// that also holds cpuset, a new group has no CPUs or memory nodes and no
// process can join it until they are copied from its parent.
func mkdirParentV1(h *hierarchy, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return initCpuset(h, dir)
}

func initCpuset(h *hierarchy, dir string) error {
	if !slices.Contains(h.controllers, "cpuset") {
		return nil
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, f), strings.TrimSpace(string(v))); err != nil {
			return err
		}
	}
	return nil
}

// New creates name-<pid>-<n> under the parent group of each hierarchy.
func (c *v1Controller) New(name string, limits Limits) (*Cgroup, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	var hs []*hierarchy
	var parents []string
	for _, h := range []*hierarchy{c.cpu, c.acct, c.mem} {
		if h != nil && !slices.Contains(hs, h) {
			hs = append(hs, h)
			parents = append(parents, c.parents[h])
		}
	}
	leaf, err := mkdirUnique(parents, name, c.remake)
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", name, err)
	}
	g := &v1Group{hs: hs, all: make([]string, len(hs))}
	for i, h := range hs {
		dir := filepath.Join(c.parents[h], leaf)
		g.all[i] = dir
		if h == c.cpu {
			g.cpu = dir
		}
		if h == c.acct {
			g.acct = dir
		}
		if h == c.mem {
			g.mem = dir
		}
	}
	cg := &Cgroup{name: leaf, g: g, cpu: g.cpu != "", mem: g.mem != ""}
	for i, h := range hs {
		if err := initCpuset(h, g.all[i]); err != nil {
			g.remove()
			return nil, fmt.Errorf("create cgroup %s: %w", leaf, err)
		}
	}
	if cg.cpu {
		err = g.setCPU(limits.CPU)
		cg.limits.CPU = limits.CPU
	}
	if err == nil && cg.mem && limits.Memory > 0 {
		err = g.setMemory(limits.Memory)
		cg.limits.Memory = limits.Memory
	}
	if err != nil {
		g.remove()
		return nil, fmt.Errorf("create cgroup %s: %w", leaf, err)
	}
	return cg, nil
}

// remake creates the parent group dir again (see mkdirUnique).
func (c *v1Controller) remake(dir string) error {
	for h, d := range c.parents {
		if d == dir {
			return mkdirParentV1(h, dir)
		}
	}
	return fmt.Errorf("%s is not a parent group of this platform", dir)
}

// Close removes the parent groups if they are empty.
func (c *v1Controller) Close() error {
	var errs []error
	for _, d := range c.parents {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.EBUSY) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Reap removes leftover groups in every hierarchy.
func (c *v1Controller) Reap() ([]string, error) {
	var parents []string
	for _, d := range c.parents {
		if !slices.Contains(parents, d) {
			parents = append(parents, d)
		}
	}
	slices.Sort(parents)
	return reap(parents)
}

// v1Group is one instance's directories in the v1 hierarchies.
type v1Group struct {
	hs             []*hierarchy
	all            []string // one per hs
	cpu, acct, mem string   // "" when the controller is not usable
}

func (g *v1Group) dirs() []string { return g.all }

// start forks cmd from a thread that sits in the group: in v1 a thread
// (tasks file) can be moved alone, and a child starts in its forking thread's
// groups. Go forks on the calling thread, which LockOSThread pins.
func (g *v1Group) start(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	tid := strconv.Itoa(syscall.Gettid())
	home, err := g.threadGroups()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("start in cgroup: %w", err)
	}
	var moveErr, startErr error
	moved := 0
	for _, d := range g.all {
		if moveErr = writeFile(filepath.Join(d, "tasks"), tid); moveErr != nil {
			break
		}
		moved++
	}
	if moveErr == nil {
		startErr = cmd.Start()
	}
	var back error
	for i := range moved {
		back = errors.Join(back, writeFile(filepath.Join(home[i], "tasks"), tid))
	}
	if back != nil {
		// The thread is stuck in the instance's group: keep it locked so it
		// ends with this goroutine, and do not leave a child that runs
		// beside it unaccounted.
		if moveErr == nil && startErr == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		return fmt.Errorf("start in cgroup: move thread back: %w", back)
	}
	runtime.UnlockOSThread()
	if moveErr != nil {
		return fmt.Errorf("start in cgroup: %w", moveErr)
	}
	return startErr
}

// threadGroups returns the calling thread's group directory in each of g's
// hierarchies.
func (g *v1Group) threadGroups() ([]string, error) {
	b, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) == 3 {
			for _, ctl := range strings.Split(parts[1], ",") {
				paths[ctl] = parts[2]
			}
		}
	}
	home := make([]string, len(g.hs))
	for i, h := range g.hs {
		p, ok := paths[h.controllers[0]]
		if !ok {
			return nil, fmt.Errorf("thread has no %s cgroup", h.controllers[0])
		}
		home[i] = join(h.mount, h.root, p)
	}
	return home, nil
}

func (g *v1Group) attach(pid int) error {
	for _, d := range g.all {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

func (g *v1Group) setCPU(vcpus float64) error {
	if err := writeFile(filepath.Join(g.cpu, "cpu.shares"), strconv.FormatInt(cpuWeight(vcpus, 1024, 2, 262144), 10)); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(g.cpu, "cpu.cfs_period_us"), strconv.FormatInt(cpuPeriod.Microseconds(), 10)); err != nil {
		return err
	}
	return writeFile(filepath.Join(g.cpu, "cpu.cfs_quota_us"), strconv.FormatInt(quotaMicros(vcpus), 10))
}

// setMemory sets memory.limit_in_bytes and, where swap accounting exists,
// memory.memsw.limit_in_bytes to the same value so that a breach ends in the
// OOM killer instead of swap. The kernel requires limit <= memsw at all times.
func (g *v1Group) setMemory(bytes int64) error {
	limit := filepath.Join(g.mem, "memory.limit_in_bytes")
	memsw := filepath.Join(g.mem, "memory.memsw.limit_in_bytes")
	v := strconv.FormatInt(bytes, 10)
	if _, err := os.Stat(memsw); err != nil {
		return writeFile(limit, v)
	}
	cur, err := readInt(limit)
	if err != nil {
		return err
	}
	if bytes < 0 || bytes > cur {
		if err := writeFile(memsw, v); err != nil {
			return err
		}
		return writeFile(limit, v)
	}
	if err := writeFile(limit, v); err != nil {
		return err
	}
	return writeFile(memsw, v)
}

func (g *v1Group) stats() (Stats, error) {
	var s Stats
	if g.acct != "" {
		ns, err := readInt(filepath.Join(g.acct, "cpuacct.usage"))
		if err != nil {
			return s, err
		}
		s.CPU = time.Duration(ns)
	}
	if g.cpu != "" {
		m, err := readKeyed(filepath.Join(g.cpu, "cpu.stat"))
		if err != nil {
			return s, err
		}
		s.Throttled = uint64(m["nr_throttled"])
		s.ThrottledTime = time.Duration(m["throttled_time"])
	}
	if g.mem != "" {
		var err error
		if s.Memory, err = readInt(filepath.Join(g.mem, "memory.usage_in_bytes")); err != nil {
			return s, err
		}
		if s.MemoryPeak, err = readInt(filepath.Join(g.mem, "memory.max_usage_in_bytes")); err != nil {
			return s, err
		}
		m, err := readKeyed(filepath.Join(g.mem, "memory.oom_control"))
		if err != nil {
			return s, err
		}
		s.OOMKills = uint64(m["oom_kill"])
	}
	return s, nil
}

func (g *v1Group) procs() ([]int, error) {
	var all []int
	for _, d := range g.all {
		pids, err := readProcs(filepath.Join(d, "cgroup.procs"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, p := range pids {
			if !slices.Contains(all, p) {
				all = append(all, p)
			}
		}
	}
	return all, nil
}

func (g *v1Group) remove() error {
	for _, d := range g.all {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
