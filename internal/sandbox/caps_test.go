package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestParseLayout(t *testing.T) {
	tests := []struct {
		name              string
		mountinfo, cgroup string
		wantV1            map[string]string // first controller -> own dir
		wantV2            string            // own dir, "" for none
		wantV1Controllers [][]string
	}{
		{
			name: "hybrid",
			mountinfo: `22 27 0:21 / /proc rw,relatime - proc proc rw
30 29 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
31 29 0:27 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 29 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 29 0:32 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
38 29 0:34 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`,
			cgroup:            "8:pids:/\n4:memory:/process_api/8b8b\n2:cpuacct:/\n1:cpu:/\n0::/\n",
			wantV1:            map[string]string{"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct", "memory": "/sys/fs/cgroup/memory/process_api/8b8b"},
			wantV1Controllers: [][]string{{"cpu"}, {"cpuacct"}, {"memory"}},
			wantV2:            "/sys/fs/cgroup/unified",
		},
		{
			name: "co-mounted cpu,cpuacct with optional fields",
			mountinfo: `25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory
`,
			cgroup:            "4:memory:/system.slice/spindle.service\n3:cpu,cpuacct:/system.slice/spindle.service\n",
			wantV1:            map[string]string{"cpu": "/sys/fs/cgroup/cpu,cpuacct/system.slice/spindle.service", "memory": "/sys/fs/cgroup/memory/system.slice/spindle.service"},
			wantV1Controllers: [][]string{{"cpu", "cpuacct"}, {"memory"}},
		},
		{
			name:      "pure v2 under systemd",
			mountinfo: "27 22 0:24 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
			cgroup:    "0::/system.slice/spindle.service\n",
			wantV2:    "/sys/fs/cgroup/system.slice/spindle.service",
		},
		{
			name:      "container: mount root is a sub-tree",
			mountinfo: "40 39 0:24 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n",
			cgroup:    "0::/docker/abc/app\n",
			wantV2:    "/sys/fs/cgroup/app",
		},
		{
			name:              "escaped mount point",
			mountinfo:         `41 39 0:25 / /mnt/my\040cgroups rw - cgroup cgroup rw,memory` + "\n",
			cgroup:            "5:memory:/\n",
			wantV1:            map[string]string{"memory": "/mnt/my cgroups"},
			wantV1Controllers: [][]string{{"memory"}},
		},
		{
			name:      "no cgroups",
			mountinfo: "22 27 0:21 / /proc rw,relatime - proc proc rw\n",
			cgroup:    "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := parseLayout(tt.mountinfo, tt.cgroup)
			got := map[string]string{}
			var ctls [][]string
			for _, h := range l.v1 {
				got[h.controllers[0]] = h.own
				ctls = append(ctls, h.controllers)
			}
			if len(tt.wantV1) == 0 && len(got) == 0 {
				got = nil
			}
			if len(tt.wantV1) == 0 {
				tt.wantV1 = nil
			}
			if !reflect.DeepEqual(got, tt.wantV1) {
				t.Errorf("v1 own dirs (-want +got):\n-%v\n+%v", tt.wantV1, got)
			}
			if !reflect.DeepEqual(ctls, tt.wantV1Controllers) {
				t.Errorf("v1 controllers (-want +got):\n-%v\n+%v", tt.wantV1Controllers, ctls)
			}
			gotV2 := ""
			if l.v2 != nil {
				gotV2 = l.v2.own
			}
			if gotV2 != tt.wantV2 {
				t.Errorf("v2 own dir = %q, want %q", gotV2, tt.wantV2)
			}
		})
	}
}

func TestDetectDisabled(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		env      map[string]string
		wantText []string
	}{
		{"cgroups by option", Options{DisableCgroups: true}, nil,
			[]string{"cgroups: disabled by option (running degraded: no CPU quota, no memory limit)"}},
		{"cgroups by env", Options{}, map[string]string{"SPINDLE_NO_CGROUPS": "1"},
			[]string{"cgroups: disabled by SPINDLE_NO_CGROUPS=1 (running degraded"}},
		{"namespaces by option", Options{DisableCgroups: true, DisableNamespaces: true}, nil,
			[]string{"namespaces: disabled by option (running degraded: instances share the platform's namespaces)"}},
		{"namespaces by env", Options{DisableCgroups: true}, map[string]string{"SPINDLE_NO_NAMESPACES": "1"},
			[]string{"namespaces: disabled by SPINDLE_NO_NAMESPACES=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			caps, err := Detect(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(caps.String(), w) {
					t.Errorf("Detect says %q, want it to contain %q", caps, w)
				}
			}
			if !caps.Degraded() {
				t.Error("Degraded() = false")
			}
			if caps.Controller == nil {
				t.Error("Controller is nil")
			}
			if caps.CgroupProblem != "" && (caps.Cgroup != 0 || caps.CPU || caps.Memory) {
				t.Errorf("cgroups disabled but %+v", caps)
			}
			if attr := NamespaceAttrs(caps); len(caps.Namespaces) == 0 && (attr.Cloneflags != 0 || attr.Unshareflags != 0) {
				t.Errorf("no namespaces but NamespaceAttrs = %+v", attr)
			}
		})
	}
}

func TestDetectBadParent(t *testing.T) {
	for _, p := range []string{"a/b", "..", "."} {
		if _, err := Detect(Options{Parent: p}); err == nil || !strings.Contains(err.Error(), "parent:") {
			t.Errorf("Detect(Parent %q) = %v, want a parent: error", p, err)
		}
	}
}

// TestDetectNoWriteAccess points detection at cgroup mounts on a read-only
// file system: the report must say so and the controller degrade to Noop.
func TestDetectNoWriteAccess(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("spindle-test", dir, "tmpfs", syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("cannot mount a read-only tmpfs to stand for read-only cgroups (needs CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	mi := "30 29 0:26 / " + filepath.Join(dir) + " rw - cgroup cgroup rw,cpu,cpuacct,memory\n"
	caps := detectCgroups(procFiles{mountinfo: mi, cgroup: "3:cpu,cpuacct,memory:/\n"}, "spindle")
	if caps.Controller != nil || caps.Cgroup != 0 {
		t.Fatalf("read-only cgroups detected as usable: %+v", caps)
	}
	want := "no write access to " + filepath.Join(dir, "spindle") + ": read-only file system"
	if !strings.Contains(caps.CgroupProblem, want) {
		t.Errorf("CgroupProblem = %q, want it to contain %q", caps.CgroupProblem, want)
	}
	caps.Controller = Noop{}
	if s := caps.String(); !strings.Contains(s, "(running degraded: no CPU quota, no memory limit)") {
		t.Errorf("String() = %q", s)
	}
}

// TestDetect runs detection on this machine and checks that what it reports
// holds: parents exist for a cgroup version it claims, the summary says
// "running degraded" for whatever it lacks.
func TestDetect(t *testing.T) {
	caps, err := Detect(Options{Parent: fmt.Sprintf("spindle-detect-test-%d", os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Detect: %s", caps)
	s := caps.String()
	switch caps.Cgroup {
	case 0:
		if _, ok := caps.Controller.(Noop); !ok || !strings.Contains(s, "running degraded") || caps.CgroupProblem == "" {
			t.Errorf("no cgroups but controller %T, summary %q", caps.Controller, s)
		}
	case 1, 2:
		if !strings.HasPrefix(s, "cgroup v") {
			t.Errorf("summary %q does not start with the cgroup version", s)
		}
		if len(caps.Parents) == 0 {
			t.Error("no parent groups")
		}
		for _, d := range caps.Parents {
			if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
				t.Errorf("parent group %s: %v", d, err)
			}
		}
		if (!caps.CPU || !caps.Memory) != strings.Contains(s, "running degraded: no") {
			t.Errorf("CPU %v Memory %v but summary %q", caps.CPU, caps.Memory, s)
		}
		if err := caps.Controller.Close(); err != nil {
			t.Error(err)
		}
		for _, d := range caps.Parents {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("parent group %s still there after Close", d)
			}
		}
	default:
		t.Errorf("Cgroup = %d", caps.Cgroup)
	}
	if len(caps.Namespaces) == len(allNamespaces) {
		if !strings.HasSuffix(s, "namespaces pid,mount,ipc,uts: ok") {
			t.Errorf("all namespaces but summary %q", s)
		}
	} else if caps.NamespaceProblem == "" || !strings.Contains(s, "running degraded") {
		t.Errorf("namespaces %v but problem %q, summary %q", caps.Namespaces, caps.NamespaceProblem, s)
	}
}
