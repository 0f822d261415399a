package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// nsCaps detects namespaces; where the machine cannot create them it checks
// the degraded report and skips naming what is missing.
func nsCaps(t *testing.T) Capabilities {
	t.Helper()
	caps, err := Detect(Options{DisableCgroups: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(caps.Namespaces) < len(allNamespaces) {
		if caps.NamespaceProblem == "" || !strings.Contains(caps.String(), "running degraded") {
			t.Errorf("namespaces %v, but Detect says %q", caps.Namespaces, caps)
		}
		t.Skipf("Linux namespaces not all creatable here (%s); checked the degraded report instead", caps.NamespaceProblem)
	}
	return caps
}

// nsRun runs argv with attrs and returns its trimmed stdout.
func nsRun(t *testing.T, attr *syscall.SysProcAttr, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = attr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	return strings.TrimSpace(string(out))
}

func TestNamespacePid1(t *testing.T) {
	caps := nsCaps(t)
	tests := []struct {
		name string
		attr *syscall.SysProcAttr
		pid1 bool
	}{
		{"with namespaces", NamespaceAttrs(caps), true},
		{"degraded", NamespaceAttrs(Capabilities{}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nsRun(t, tt.attr, "sh", "-c", "echo $$")
			if (got == "1") != tt.pid1 {
				t.Errorf("child's own pid is %s, want pid 1: %v", got, tt.pid1)
			}
		})
	}
}

// TestNamespacesSeparate compares the namespaces of a running child with the
// platform's: pid, mnt, ipc and uts differ, net is shared.
func TestNamespacesSeparate(t *testing.T) {
	caps := nsCaps(t)
	cmd := helperCmd("hold")
	attr := NamespaceAttrs(caps)
	attr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr = attr
	c := startChild(t, cmd, nil)
	c.expect(t, "ready")
	pid := strconv.Itoa(c.cmd.Process.Pid)
	for ns, wantOwn := range map[string]bool{"pid": true, "mnt": true, "ipc": true, "uts": true, "net": false} {
		mine, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		its, err := os.Readlink(filepath.Join("/proc", pid, "ns", ns))
		if err != nil {
			t.Fatal(err)
		}
		if (mine != its) != wantOwn {
			t.Errorf("%s namespace: platform %s, child %s; want its own: %v", ns, mine, its, wantOwn)
		}
	}
}

// TestNamespaceSIGTERM checks that a Go instance that is pid 1 of its
// namespace still gets SIGTERM for a graceful stop.
func TestNamespaceSIGTERM(t *testing.T) {
	caps := nsCaps(t)
	cmd := helperCmd("term")
	attr := NamespaceAttrs(caps)
	attr.Pdeathsig = syscall.SIGKILL
	attr.Setpgid = true // as sandbox.Start does
	cmd.SysProcAttr = attr
	c := startChild(t, cmd, nil)
	c.expect(t, "ready")
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.expect(t, "terminated")
	<-c.exited
	if c.err != nil {
		t.Errorf("after SIGTERM the child exited with %v, want 0", c.err)
	}
}

// TestNamespaceMountsPrivate checks that the child reads the host's files
// (models) but that its mounts and hostname stay its own.
func TestNamespaceMountsPrivate(t *testing.T) {
	caps := nsCaps(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(model, []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	got := nsRun(t, NamespaceAttrs(caps), "sh", "-c",
		`cat "$1" && mount -t tmpfs none "$2" && touch "$2/x" && hostname spindle-ns-test && echo " $(hostname)"`,
		"sh", model, mnt)
	if got != "weights spindle-ns-test" {
		t.Errorf("child printed %q, want the model's bytes and its own hostname", got)
	}
	if _, err := os.Stat(filepath.Join(mnt, "x")); !os.IsNotExist(err) {
		t.Errorf("the child's tmpfs mount reached the host (stat: %v)", err)
	}
	if now, _ := os.Hostname(); now != host {
		t.Errorf("host name changed from %q to %q", host, now)
		syscall.Sethostname([]byte(host))
	}
}
