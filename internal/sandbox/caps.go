package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Options tunes Detect. The zero value detects everything and uses the parent
// group "spindle".
type Options struct {
	// DisableCgroups forces the degraded mode: instances run without a CPU quota
	// or memory limit. The environment variable SPINDLE_NO_CGROUPS=1 does the same.
	DisableCgroups bool
	// DisableNamespaces starts instances in the platform's own namespaces. The
	// environment variable SPINDLE_NO_NAMESPACES=1 does the same.
	DisableNamespaces bool
	// Parent names the group that holds every instance's cgroup, created inside
	// the platform's own cgroup; empty means "spindle".
	Parent string
}

// Capabilities is what the machine lets the platform do to isolate instances.
// The zero value means no cgroups and no namespaces.
type Capabilities struct {
	// Cgroup is the cgroup version in use: 1, 2, or 0 when instances run
	// without cgroups.
	Cgroup int
	// CPU and Memory report whether a CPU quota and a memory limit can be set.
	CPU, Memory bool
	// Parents are the directories of the platform's parent group, one per
	// cgroup v1 hierarchy or one for v2.
	Parents []string
	// CgroupProblem says why cgroups, or one of their controllers, are not
	// used; empty when all work.
	CgroupProblem string
	// Namespaces lists the namespaces each instance gets of its own, in the
	// order pid, mount, ipc, uts; empty when none.
	Namespaces []string
	// NamespaceProblem says why some namespace is not used; empty when all work.
	NamespaceProblem string
	// Controller makes the instances' cgroups; it is a Noop controller when
	// Cgroup is 0, never nil after Detect.
	Controller Controller

	cloneflags, unshareflags uintptr
}

// Degraded reports whether some isolation is missing.
func (c Capabilities) Degraded() bool {
	return !c.CPU || !c.Memory || len(c.Namespaces) < len(allNamespaces)
}

// String is the one-line summary the platform prints at start-up, for example
// "cgroup v1 (cpu, memory): ok; namespaces pid,mount,ipc,uts: ok".
func (c Capabilities) String() string {
	var b strings.Builder
	switch {
	case c.Cgroup == 0:
		fmt.Fprintf(&b, "cgroups: %s (running degraded: no CPU quota, no memory limit)", c.CgroupProblem)
	default:
		var ctl, missing []string
		if c.CPU {
			ctl = append(ctl, "cpu")
		} else {
			missing = append(missing, "no CPU quota")
		}
		if c.Memory {
			ctl = append(ctl, "memory")
		} else {
			missing = append(missing, "no memory limit")
		}
		fmt.Fprintf(&b, "cgroup v%d (%s): ok", c.Cgroup, strings.Join(ctl, ", "))
		switch {
		case len(missing) > 0:
			fmt.Fprintf(&b, "; %s (running degraded: %s)", c.CgroupProblem, strings.Join(missing, ", "))
		case c.CgroupProblem != "":
			fmt.Fprintf(&b, " (%s: no CPU usage stats)", c.CgroupProblem)
		}
	}
	b.WriteString("; ")
	switch {
	case len(c.Namespaces) == 0:
		fmt.Fprintf(&b, "namespaces: %s (running degraded: instances share the platform's namespaces)", c.NamespaceProblem)
	case len(c.Namespaces) < len(allNamespaces):
		fmt.Fprintf(&b, "namespaces %s: ok; %s (running degraded)", strings.Join(c.Namespaces, ","), c.NamespaceProblem)
	default:
		fmt.Fprintf(&b, "namespaces %s: ok", strings.Join(c.Namespaces, ","))
	}
	return b.String()
}

// Detect finds out which cgroup version and controllers the platform can write
// and which namespaces it can create, and creates the parent group. A missing
// capability is not an error: the returned Capabilities say what is missing and
// why, and its Controller degrades to Noop. The error is for bad Options only.
func Detect(opts Options) (Capabilities, error) {
	parent := opts.Parent
	if parent == "" {
		parent = "spindle"
	}
	if err := checkName(parent); err != nil {
		return Capabilities{}, fmt.Errorf("parent: %w", err)
	}
	var caps Capabilities
	switch {
	case opts.DisableCgroups:
		caps.CgroupProblem = "disabled by option"
	case os.Getenv("SPINDLE_NO_CGROUPS") == "1":
		caps.CgroupProblem = "disabled by SPINDLE_NO_CGROUPS=1"
	default:
		caps = detectCgroups(procFiles{}, parent)
	}
	if caps.Controller == nil {
		caps.Cgroup, caps.CPU, caps.Memory = 0, false, false
		caps.Controller = Noop{}
	}
	switch {
	case opts.DisableNamespaces:
		caps.NamespaceProblem = "disabled by option"
	case os.Getenv("SPINDLE_NO_NAMESPACES") == "1":
		caps.NamespaceProblem = "disabled by SPINDLE_NO_NAMESPACES=1"
	default:
		detectNamespaces(&caps)
	}
	return caps, nil
}

// checkName rejects a group name that is not a single path element.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00\n") {
		return fmt.Errorf("%q must be a single non-empty path element", name)
	}
	return nil
}

// procFiles reads the kernel's view of mounts and of this process's cgroups;
// tests replace the contents.
type procFiles struct {
	mountinfo, cgroup string // file contents; empty means read /proc/self/...
}

func (p procFiles) read() (mountinfo, cgroup string, err error) {
	mountinfo, cgroup = p.mountinfo, p.cgroup
	if mountinfo == "" {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return "", "", err
		}
		mountinfo = string(b)
	}
	if cgroup == "" {
		b, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return "", "", err
		}
		cgroup = string(b)
	}
	return mountinfo, cgroup, nil
}

// hierarchy is one mounted cgroup tree.
type hierarchy struct {
	controllers []string // v1: from the mount options; v2: filled by the caller
	mount       string   // where it is mounted
	root        string   // the tree's directory mounted there (mountinfo field 4)
	own         string   // this process's cgroup directory in it
}

// layout is what mountinfo and /proc/self/cgroup say about the cgroup trees.
type layout struct {
	v1 []hierarchy // one per mount, only those with controllers we use
	v2 *hierarchy
}

// v1For returns the v1 hierarchy holding controller ctl, or nil.
func (l layout) v1For(ctl string) *hierarchy {
	for i := range l.v1 {
		if slices.Contains(l.v1[i].controllers, ctl) {
			return &l.v1[i]
		}
	}
	return nil
}

// parseLayout reads mountinfo (proc(5)) and /proc/self/cgroup (cgroups(7)).
func parseLayout(mountinfo, cgroup string) layout {
	ownV1 := map[string]string{} // controller -> path
	ownV2 := ""
	hasV2 := false
	for line := range strings.Lines(cgroup) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			ownV2, hasV2 = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			ownV1[c] = parts[2]
		}
	}
	var l layout
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(mountinfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 5 || len(f) < sep+4 {
			continue
		}
		root, mnt, fstype, super := unescape(f[3]), unescape(f[4]), f[sep+1], f[sep+3]
		switch fstype {
		case "cgroup2":
			if l.v2 != nil || !hasV2 {
				continue
			}
			l.v2 = &hierarchy{mount: mnt, root: root, own: join(mnt, root, ownV2)}
		case "cgroup":
			var ctls []string
			for _, o := range strings.Split(super, ",") {
				if o == "cpu" || o == "cpuacct" || o == "memory" || o == "cpuset" {
					ctls = append(ctls, o)
				}
			}
			if len(ctls) == 0 || seen[ctls[0]] {
				continue
			}
			own, ok := ownV1[ctls[0]]
			if !ok {
				continue
			}
			for _, c := range ctls {
				seen[c] = true
			}
			l.v1 = append(l.v1, hierarchy{controllers: ctls, mount: mnt, root: root, own: join(mnt, root, own)})
		}
	}
	return l
}

// join maps a path from /proc/self/cgroup to a directory under a mount whose
// root (field 4 of mountinfo) may itself be a sub-tree, as in containers.
func join(mnt, root, path string) string {
	if root != "/" {
		if rel, ok := strings.CutPrefix(path, root); ok && (rel == "" || rel[0] == '/') {
			path = rel
		}
	}
	return filepath.Join(mnt, path)
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + (c - '0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// detectCgroups picks v1 when cpu or memory is bound to a v1 hierarchy (a
// controller lives in one version only), else v2 when its tree offers them,
// creates the parent group and checks that its limit files can be written.
func detectCgroups(p procFiles, parent string) Capabilities {
	mountinfo, cgroup, err := p.read()
	if err != nil {
		return Capabilities{CgroupProblem: fmt.Sprintf("cannot read cgroup layout: %v", err)}
	}
	l := parseLayout(mountinfo, cgroup)
	if l.v1For("cpu") != nil || l.v1For("memory") != nil {
		return setupV1(l, parent)
	}
	if l.v2 == nil {
		return Capabilities{CgroupProblem: "no cgroup hierarchy with the cpu or memory controller is mounted"}
	}
	return setupV2(*l.v2, parent)
}

// problem formats why a cgroup directory cannot be used.
func problem(path string, err error) string {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return fmt.Sprintf("no write access to %s: %v", path, unwrapPath(err))
	}
	return fmt.Sprintf("cannot use %s: %v", path, unwrapPath(err))
}

// unwrapPath drops the path from a *fs.PathError, which the message names already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
