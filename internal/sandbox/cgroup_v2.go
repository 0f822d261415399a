package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// v2Controller makes groups in the unified hierarchy
// (Documentation/admin-guide/cgroup-v2.rst).
type v2Controller struct {
	parent   string
	cpu, mem bool
	enable   []string // the controllers enabled for the parent's children
}

// setupV2 creates the parent group and enables cpu and memory for it and its
// children. Enabling a controller for children is refused (EBUSY) in a group
// that holds processes, other than the root ("no internal processes" rule): a
// platform started in such a group runs degraded and says why.
func setupV2(h hierarchy, parent string) Capabilities {
	b, err := os.ReadFile(filepath.Join(h.own, "cgroup.controllers"))
	if err != nil {
		return Capabilities{CgroupProblem: problem(h.own, err)}
	}
	var want []string
	for _, c := range strings.Fields(string(b)) {
		if c == "cpu" || c == "memory" {
			want = append(want, c)
		}
	}
	if len(want) == 0 {
		return Capabilities{CgroupProblem: fmt.Sprintf("cgroup v2 at %s offers neither the cpu nor the memory controller", h.own)}
	}
	dir := filepath.Join(h.own, parent)
	if err := enableV2(h.own, want); err != nil {
		msg := problem(h.own, err)
		if errors.Is(err, syscall.EBUSY) {
			msg += " (the platform's own cgroup holds processes; start it in a delegated cgroup, e.g. a systemd unit with Delegate=yes)"
		}
		return Capabilities{CgroupProblem: msg}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return Capabilities{CgroupProblem: problem(dir, err)}
	}
	if err := enableV2(dir, want); err != nil {
		return Capabilities{CgroupProblem: problem(dir, err)}
	}
	c := &v2Controller{parent: dir, enable: want}
	var problems []string
	for _, ctl := range want {
		// Write back what is there, as setupV1 does.
		path := filepath.Join(dir, map[string]string{"cpu": "cpu.max", "memory": "memory.max"}[ctl])
		v, err := os.ReadFile(path)
		if err == nil {
			err = writeFile(path, strings.TrimSpace(string(v)))
		}
		if err != nil {
			problems = append(problems, problem(dir, err))
			continue
		}
		if ctl == "cpu" {
			c.cpu = true
		} else {
			c.mem = true
		}
	}
	if !c.cpu && !slices.Contains(want, "cpu") {
		problems = append(problems, fmt.Sprintf("cgroup v2 at %s offers no cpu controller", h.own))
	}
	if !c.mem && !slices.Contains(want, "memory") {
		problems = append(problems, fmt.Sprintf("cgroup v2 at %s offers no memory controller", h.own))
	}
	caps := Capabilities{Cgroup: 2, CPU: c.cpu, Memory: c.mem, Parents: []string{dir}, CgroupProblem: strings.Join(problems, "; ")}
	if !c.cpu && !c.mem {
		return Capabilities{CgroupProblem: caps.CgroupProblem}
	}
	caps.Controller = c
	return caps
}

// enableV2 enables controllers for dir's children, skipping those already on:
// the kernel checks the no-internal-processes rule even for a no-op change.
func enableV2(dir string, ctls []string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	on := strings.Fields(string(b))
	for _, c := range ctls {
		if slices.Contains(on, c) {
			continue
		}
		if err := writeFile(filepath.Join(dir, "cgroup.subtree_control"), "+"+c); err != nil {
			return err
		}
	}
	return nil
}

// New creates name-<pid>-<n> under the parent group.
func (c *v2Controller) New(name string, limits Limits) (*Cgroup, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	leaf, err := mkdirUnique([]string{c.parent}, name, c.remake)
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", name, err)
	}
	g := &v2Group{dir: filepath.Join(c.parent, leaf)}
	cg := &Cgroup{name: leaf, g: g, cpu: c.cpu, mem: c.mem}
	if c.mem {
		// One OOM kill takes the whole instance, helpers included, and a breach
		// must not turn into swapping.
		err = g.setOptional("memory.oom.group", "1")
		if err == nil {
			err = g.setOptional("memory.swap.max", "0")
		}
		if err == nil && limits.Memory > 0 {
			err = g.setMemory(limits.Memory)
			cg.limits.Memory = limits.Memory
		}
	}
	if err == nil && c.cpu {
		err = g.setCPU(limits.CPU)
		cg.limits.CPU = limits.CPU
	}
	if err != nil {
		g.remove()
		return nil, fmt.Errorf("create cgroup %s: %w", leaf, err)
	}
	return cg, nil
}

// remake creates the parent group again with its controllers enabled (see
// mkdirUnique).
func (c *v2Controller) remake(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return enableV2(dir, c.enable)
}

// Close removes the parent group if it is empty.
func (c *v2Controller) Close() error {
	if err := os.Remove(c.parent); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.EBUSY) {
		return err
	}
	return nil
}

// Reap removes leftover groups under the parent.
func (c *v2Controller) Reap() ([]string, error) { return reap([]string{c.parent}) }

// v2Group is one instance's directory in the unified hierarchy.
type v2Group struct{ dir string }

func (g *v2Group) dirs() []string { return []string{g.dir} }

// start uses clone3's CLONE_INTO_CGROUP (Linux 5.7).
func (g *v2Group) start(cmd *exec.Cmd) error {
	fd, err := syscall.Open(g.dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("start in cgroup: open %s: %w", g.dir, err)
	}
	defer syscall.Close(fd)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = fd
	return cmd.Start()
}

func (g *v2Group) attach(pid int) error {
	return writeFile(filepath.Join(g.dir, "cgroup.procs"), strconv.Itoa(pid))
}

func (g *v2Group) setCPU(vcpus float64) error {
	if err := writeFile(filepath.Join(g.dir, "cpu.weight"), strconv.FormatInt(cpuWeight(vcpus, 100, 1, 10000), 10)); err != nil {
		return err
	}
	q := "max"
	if vcpus > 0 {
		q = strconv.FormatInt(quotaMicros(vcpus), 10)
	}
	return writeFile(filepath.Join(g.dir, "cpu.max"), fmt.Sprintf("%s %d", q, cpuPeriod.Microseconds()))
}

func (g *v2Group) setMemory(bytes int64) error {
	v := "max"
	if bytes >= 0 {
		v = strconv.FormatInt(bytes, 10)
	}
	return writeFile(filepath.Join(g.dir, "memory.max"), v)
}

// setOptional writes a file that older kernels or swapless machines lack.
func (g *v2Group) setOptional(file, v string) error {
	err := writeFile(filepath.Join(g.dir, file), v)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// stats reads cpu.stat, which v2 keeps even without the cpu controller, and
// the memory files where the memory controller is on.
func (g *v2Group) stats() (Stats, error) {
	var s Stats
	m, err := readKeyed(filepath.Join(g.dir, "cpu.stat"))
	if err != nil {
		return s, err
	}
	s.CPU = time.Duration(m["usage_usec"]) * time.Microsecond
	s.Throttled = uint64(m["nr_throttled"])
	s.ThrottledTime = time.Duration(m["throttled_usec"]) * time.Microsecond
	if s.Memory, err = readInt(filepath.Join(g.dir, "memory.current")); errors.Is(err, fs.ErrNotExist) {
		return s, nil // no memory controller
	} else if err != nil {
		return s, err
	}
	if s.MemoryPeak, err = readInt(filepath.Join(g.dir, "memory.peak")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, err // memory.peak is Linux 5.19+
	}
	ev, err := readKeyed(filepath.Join(g.dir, "memory.events"))
	if err != nil {
		return s, err
	}
	s.OOMKills = uint64(ev["oom_kill"])
	return s, nil
}

func (g *v2Group) procs() ([]int, error) {
	pids, err := readProcs(filepath.Join(g.dir, "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return pids, err
}

func (g *v2Group) remove() error {
	if err := os.Remove(g.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
