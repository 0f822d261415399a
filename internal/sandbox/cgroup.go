package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrUnsupported is returned by a Cgroup's setters and Stats when the machine's
// cgroups cannot do it (degraded mode); callers then size the instance by its
// worker count and GOMAXPROCS alone.
var ErrUnsupported = errors.New("sandbox: not supported without a writable cgroup controller")

// ErrOOMKilled marks the exit of an instance that the kernel killed for
// exceeding its memory limit.
var ErrOOMKilled = errors.New("killed for exceeding its memory limit")

// CPUStep is the granularity of CPU quotas in vCPUs.
const CPUStep = 0.25

// cpuPeriod is the CFS bandwidth period; quota = vCPUs × period.
const cpuPeriod = 100 * time.Millisecond

// MinMemory is the smallest memory limit accepted: below it even the Go
// runtime of an instance cannot start.
const MinMemory = 4 << 20

// Limits are an instance's resource limits. The zero value means no limits.
type Limits struct {
	// CPU is the CPU quota in vCPUs, a multiple of CPUStep; 0 means no quota.
	CPU float64
	// Memory is the memory limit in bytes, at least MinMemory; 0 means no limit.
	Memory int64
}

// Validate checks both limits.
func (l Limits) Validate() error {
	return errors.Join(checkCPU(l.CPU), checkMemory(l.Memory))
}

func checkCPU(vcpus float64) error {
	if math.IsNaN(vcpus) || math.IsInf(vcpus, 0) || vcpus < 0 {
		return fmt.Errorf("cpu: %v vCPU must be a finite number >= 0", vcpus)
	}
	if vcpus == 0 {
		return nil
	}
	steps := vcpus / CPUStep
	if math.Abs(steps-math.Round(steps)) > 1e-9 || steps < 1 {
		return fmt.Errorf("cpu: %v vCPU must be a multiple of %v", vcpus, CPUStep)
	}
	return nil
}

func checkMemory(bytes int64) error {
	if bytes != 0 && bytes < MinMemory {
		return fmt.Errorf("memory: %d bytes must be 0 (no limit) or at least %d", bytes, MinMemory)
	}
	return nil
}

// quotaMicros is the CFS quota for vcpus, -1 for none.
func quotaMicros(vcpus float64) int64 {
	if vcpus == 0 {
		return -1
	}
	return int64(math.Round(vcpus * float64(cpuPeriod.Microseconds())))
}

// cpuWeight scales the default weight (v1 cpu.shares 1024, v2 cpu.weight 100)
// by vcpus, clamped to [lo, hi]; no quota keeps the default.
func cpuWeight(vcpus float64, def, lo, hi int64) int64 {
	if vcpus == 0 {
		return def
	}
	return min(max(int64(math.Round(vcpus*float64(def))), lo), hi)
}

// Stats is a cgroup's usage since it was created.
type Stats struct {
	// CPU is the CPU time used by all its processes.
	CPU time.Duration
	// Throttled counts CFS periods in which the quota stopped the group, and
	// ThrottledTime is how long it was stopped.
	Throttled     uint64
	ThrottledTime time.Duration
	// Memory is the memory charged now, MemoryPeak the most ever charged (0 where
	// the kernel does not keep it).
	Memory, MemoryPeak int64
	// OOMKills counts processes the kernel killed for breaching the memory limit.
	OOMKills uint64
}

// Controller makes the cgroups of instances under the platform's parent group.
type Controller interface {
	// New creates the cgroup of one instance, named name plus a unique suffix,
	// and applies the limits this controller supports (Capabilities says which).
	New(name string, limits Limits) (*Cgroup, error)
	// Close removes the parent group if no instance group is left in it.
	Close() error
	// Reap removes the groups a platform that is no longer running left
	// under the parent (killed, it could not remove them), killing what they
	// still hold, and returns their names. Groups of running platforms,
	// this one included, are left alone.
	Reap() ([]string, error)
}

var (
	_ Controller = (*v1Controller)(nil)
	_ Controller = (*v2Controller)(nil)
	_ Controller = Noop{}
)

// Noop is the degraded controller: its cgroups hold no processes and limit
// nothing; their setters and Stats return ErrUnsupported.
type Noop struct{}

// New returns a cgroup that limits nothing.
func (Noop) New(name string, limits Limits) (*Cgroup, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	return &Cgroup{name: name}, nil
}

// Close does nothing.
func (Noop) Close() error { return nil }

// Reap does nothing: Noop makes no groups.
func (Noop) Reap() ([]string, error) { return nil, nil }

// group is one instance's cgroup in one cgroup version.
type group interface {
	dirs() []string
	start(cmd *exec.Cmd) error
	attach(pid int) error
	setCPU(vcpus float64) error  // quota and weight; 0: no quota, default weight
	setMemory(bytes int64) error // -1 for none
	stats() (Stats, error)
	procs() ([]int, error)
	remove() error
}

// Cgroup is one instance's cgroup. Its methods are safe for concurrent use. A
// nil *Cgroup, like one from Noop, runs processes unconfined: Start and Attach
// succeed, the setters and Stats return ErrUnsupported, Close does nothing.
type Cgroup struct {
	name     string
	g        group // nil: unconfined
	cpu, mem bool  // which controllers g has

	mu     sync.Mutex
	limits Limits
	closed bool
}

// Name returns the cgroup's directory name.
func (c *Cgroup) Name() string {
	if c == nil {
		return ""
	}
	return c.name
}

// Dirs returns the cgroup's directories, one per v1 hierarchy or one for v2;
// none when unconfined.
func (c *Cgroup) Dirs() []string {
	if c == nil || c.g == nil {
		return nil
	}
	return c.g.dirs()
}

// Start starts cmd with its process inside the cgroup from its first
// instruction: on v2 through clone3's CLONE_INTO_CGROUP (SysProcAttr.CgroupFD),
// on v1 by forking from a thread moved into the cgroup for the moment of the
// fork. It sets cmd.SysProcAttr fields and keeps those already set.
func (c *Cgroup) Start(cmd *exec.Cmd) error {
	if c == nil || c.g == nil {
		return cmd.Start()
	}
	if err := c.usable(); err != nil {
		return err
	}
	return c.g.start(cmd)
}

// Attach moves a running process (all its threads) into the cgroup. Prefer
// Start, which leaves no moment in which the child runs unconfined.
func (c *Cgroup) Attach(pid int) error {
	if c == nil || c.g == nil {
		return nil
	}
	if err := c.usable(); err != nil {
		return err
	}
	if err := c.g.attach(pid); err != nil {
		return fmt.Errorf("attach pid %d to cgroup %s: %w", pid, c.name, err)
	}
	return nil
}

// SetCPU changes the CPU quota of the running group to vcpus, a multiple of
// CPUStep (0.25 vCPU); 0 removes the quota. The group's CPU weight follows, so
// that under contention instances share CPUs in proportion to their quotas
// (as Kubernetes maps CPU requests to shares).
func (c *Cgroup) SetCPU(vcpus float64) error {
	if err := checkCPU(vcpus); err != nil {
		return err
	}
	if c == nil || c.g == nil || !c.cpu {
		return ErrUnsupported
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("cgroup %s: closed", c.name)
	}
	if err := c.g.setCPU(vcpus); err != nil {
		return fmt.Errorf("cgroup %s: set cpu %v vCPU: %w", c.name, vcpus, err)
	}
	c.limits.CPU = vcpus
	return nil
}

// SetMemory changes the memory limit to bytes; 0 removes it. Lowering it below
// what the group uses makes the kernel reclaim, and on v1 fails when it cannot.
func (c *Cgroup) SetMemory(bytes int64) error {
	if err := checkMemory(bytes); err != nil {
		return err
	}
	if c == nil || c.g == nil || !c.mem {
		return ErrUnsupported
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("cgroup %s: closed", c.name)
	}
	v := bytes
	if v == 0 {
		v = -1
	}
	if err := c.g.setMemory(v); err != nil {
		return fmt.Errorf("cgroup %s: set memory %d bytes: %w", c.name, bytes, err)
	}
	c.limits.Memory = bytes
	return nil
}

// Limits returns the limits in force; a limit the controller cannot set reads 0.
func (c *Cgroup) Limits() Limits {
	if c == nil {
		return Limits{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limits
}

// Stats reads the group's usage.
func (c *Cgroup) Stats() (Stats, error) {
	if c == nil || c.g == nil {
		return Stats{}, ErrUnsupported
	}
	s, err := c.g.stats()
	if err != nil {
		return Stats{}, fmt.Errorf("cgroup %s: stats: %w", c.name, err)
	}
	return s, nil
}

// OOMKilled reports whether the kernel killed a process of the group for
// breaching its memory limit.
func (c *Cgroup) OOMKilled() (bool, error) {
	s, err := c.Stats()
	return s.OOMKills > 0, err
}

// ExitError returns the exit error err of the group's process, wrapped with
// ErrOOMKilled when the kernel OOM-killed a process of the group; a nil err
// stays nil.
func (c *Cgroup) ExitError(err error) error {
	if err == nil {
		return nil
	}
	if oom, serr := c.OOMKilled(); serr == nil && oom {
		return fmt.Errorf("%w (%v)", ErrOOMKilled, err)
	}
	return err
}

// Close kills any process still in the group (what an exited instance left
// behind) and removes the group. It is meant for after the instance exited.
func (c *Cgroup) Close() error {
	if c == nil || c.g == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	// A process only leaves the group when it exits, so poll: the kernel
	// signals nothing on v1. SIGKILL makes this short.
	var err error
	for range 200 {
		var pids []int
		if pids, err = c.g.procs(); err != nil {
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if err = c.g.remove(); err == nil {
			c.closed = true
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", c.name, err)
}

func (c *Cgroup) usable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("cgroup %s: closed", c.name)
	}
	return nil
}

// seq makes instance group names unique within this process; the pid makes
// them unique among platforms sharing a parent group.
var seq atomic.Uint64

// mkdirUnique creates dir/name-pid-n in every parent dir for the first n for
// which none exists yet, and returns the leaf name. Platforms share the
// parent groups and each removes them on Close when they are empty, so a
// parent can vanish between this platform's setup and this call: remake
// creates a missing parent again, as setup did, and the name is tried anew.
func mkdirUnique(parents []string, name string, remake func(parent string) error) (string, error) {
	for range 100 {
		leaf := fmt.Sprintf("%s-%d-%d", name, os.Getpid(), seq.Add(1))
		var made []string
		var err error
		missing := ""
		for _, p := range parents {
			if err = os.Mkdir(filepath.Join(p, leaf), 0o755); err != nil {
				missing = p
				break
			}
			made = append(made, filepath.Join(p, leaf))
		}
		if err == nil {
			return leaf, nil
		}
		for _, d := range made {
			os.Remove(d)
		}
		switch {
		case errors.Is(err, os.ErrExist):
		case errors.Is(err, os.ErrNotExist):
			if rerr := remake(missing); rerr != nil {
				return "", fmt.Errorf("parent group %s gone and not made again: %w", missing, rerr)
			}
		default:
			return "", err
		}
	}
	return "", fmt.Errorf("no free cgroup name for %q", name)
}

// creator returns the pid of the platform that made the group named leaf
// (mkdirUnique names them name-<pid>-<n>), or false for another name.
func creator(leaf string) (int, bool) {
	i := strings.LastIndexByte(leaf, '-')
	if i <= 0 {
		return 0, false
	}
	j := strings.LastIndexByte(leaf[:i], '-')
	if j <= 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(leaf[j+1 : i])
	if _, nerr := strconv.ParseUint(leaf[i+1:], 10, 64); err != nil || nerr != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// running reports whether a process pid exists.
func running(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// reap removes, in each parent directory, the groups whose creator is not
// running (see Controller.Reap).
func reap(parents []string) ([]string, error) {
	var removed []string
	var errs []error
	for _, p := range parents {
		entries, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			pid, ok := creator(e.Name())
			if !e.IsDir() || !ok || pid == os.Getpid() || running(pid) {
				continue
			}
			if err := removeGroup(filepath.Join(p, e.Name())); err != nil {
				errs = append(errs, err)
				continue
			}
			if !slices.Contains(removed, e.Name()) {
				removed = append(removed, e.Name())
			}
		}
	}
	return removed, errors.Join(errs...)
}

// removeGroup kills what the group dir holds and removes it; a process only
// leaves a group when it exits, so it polls, as Cgroup.Close does.
func removeGroup(dir string) error {
	var err error
	for range 200 {
		pids, rerr := readProcs(filepath.Join(dir, "cgroup.procs"))
		if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return rerr
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if err = os.Remove(dir); err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

// writeFile writes a cgroup control file, which must exist: cgroupfs rejects
// creating files, and a missing one means the controller is absent.
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// readKeyed reads a flat keyed file ("key value" per line), like cpu.stat.
func readKeyed(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m, nil
}

// readProcs lists the pids in a cgroup.procs file.
func readProcs(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
