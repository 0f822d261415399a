package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStartReadsAddressBeforeReady starts children that print their address
// and readiness in one write, so both lines are read before Start looks:
// every start must return the address (a select over two channels once
// picked "ready" first at random and failed the start).
func TestStartReadsAddressBeforeReady(t *testing.T) {
	const script = `printf 'SPINDLE-LISTEN 127.0.0.1:1234\nSPINDLE-READY\n'; exec sleep 30`
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := Start(ctx, Spec{Path: "/bin/sh", Args: []string{"-c", script}})
		cancel()
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if p.Addr != "127.0.0.1:1234" {
			t.Errorf("start %d: Addr %q, want 127.0.0.1:1234", i, p.Addr)
		}
		p.Kill()
		<-p.Done()
	}
}

// TestStartReadyWithoutAddress refuses a child that reports ready without
// ever printing its address.
func TestStartReadyWithoutAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Start(ctx, Spec{Path: "/bin/sh", Args: []string{"-c", `echo SPINDLE-READY; exec sleep 30`}})
	if err == nil {
		p.Kill()
		t.Fatal("Start succeeded for a child that never printed its address")
	}
}

// TestReadProtocol feeds the whole of a child's stdout at once, as a reader
// that is ahead of Start would see it: ready carries the address of the
// listen line before it and the load time of the loaded line, and other
// lines go to the log.
func TestReadProtocol(t *testing.T) {
	tests := []struct {
		name, out, addr string
		load            time.Duration
		logged          []string
	}{
		{"listen then ready", "SPINDLE-LISTEN 127.0.0.1:80\nSPINDLE-READY\n", "127.0.0.1:80", 0, nil},
		{"log lines around", "hello\nSPINDLE-LISTEN 127.0.0.1:80\nworld\nSPINDLE-READY\nbye\n", "127.0.0.1:80", 0, []string{"hello", "world", "bye"}},
		{"ready without address", "SPINDLE-READY\n", "", 0, nil},
		{"last address wins", "SPINDLE-LISTEN a:1\nSPINDLE-LISTEN b:2\nSPINDLE-READY\nSPINDLE-READY\n", "b:2", 0, nil},
		{"load time", "SPINDLE-LISTEN a:1\nSPINDLE-LOADED 4.5ms\nSPINDLE-READY\n", "a:1", 4500 * time.Microsecond, nil},
		{"load time not a duration", "SPINDLE-LISTEN a:1\nSPINDLE-LOADED soon\nSPINDLE-LOADED -1s\nSPINDLE-READY\n", "a:1", 0, []string{"SPINDLE-LOADED soon", "SPINDLE-LOADED -1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready := make(chan readiness, 1)
			var logged []string
			readProtocol(strings.NewReader(tt.out), ready, func(l string) { logged = append(logged, l) })
			select {
			case got := <-ready:
				if got.addr != tt.addr || got.load != tt.load {
					t.Errorf("ready sent %q %v, want %q %v", got.addr, got.load, tt.addr, tt.load)
				}
			default:
				t.Fatal("ready sent nothing")
			}
			if !slices.Equal(logged, tt.logged) {
				t.Errorf("logged %q, want %q", logged, tt.logged)
			}
		})
	}
}

// TestReapLeftoverGroups kills a platform (a helper process) that left an
// instance group holding a process, and checks that Reap, as a restarted
// platform calls it, kills that process and removes the group, while a group
// of this running platform stays.
func TestReapLeftoverGroups(t *testing.T) {
	caps := testCaps(t)
	requireCap(t, caps, caps.Cgroup != 0, "writable cgroups", "cgroups:")
	mine := newGroup(t, caps.Controller, "mine", Limits{})
	platform := startChild(t, helperCmd("platform", "SANDBOX_TEST_PARENT="+filepath.Base(caps.Parents[0])), nil)
	var leaf string
	var pid int
	if _, err := fmt.Sscan(platform.line(t), &leaf, &pid); err != nil {
		t.Fatal(err)
	}
	platform.cmd.Process.Kill()
	<-platform.exited
	if got, _ := caps.Controller.Reap(); len(got) != 1 || got[0] != leaf {
		t.Errorf("Reap removed %q, want [%s]", got, leaf)
	}
	for _, d := range caps.Parents {
		if _, err := os.Stat(filepath.Join(d, leaf)); !os.IsNotExist(err) {
			t.Errorf("leftover group %s still there: %v", filepath.Join(d, leaf), err)
		}
		if _, err := os.Stat(filepath.Join(d, mine.Name())); err != nil {
			t.Errorf("the running platform's group was removed: %v", err)
		}
	}
	if running(pid) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("process %d left in the reaped group still runs", pid)
		}
	}
}

func TestCreator(t *testing.T) {
	tests := []struct {
		leaf string
		pid  int
		ok   bool
	}{
		{"mnist-123-4", 123, true},
		{"check-my-fn-99-1", 99, true},
		{"mnist", 0, false},
		{"mnist-x-1", 0, false},
		{"mnist-12-x", 0, false},
		{"-12-1", 0, false},
		{"a-0-1", 0, false},
	}
	for _, tt := range tests {
		pid, ok := creator(tt.leaf)
		if pid != tt.pid || ok != tt.ok {
			t.Errorf("creator(%q) = %d, %v; want %d, %v", tt.leaf, pid, ok, tt.pid, tt.ok)
		}
	}
}

// TestRun runs children to completion: their stdout comes back (bounded), a
// child past its deadline is killed, and one past its memory limit is
// reported as killed for it.
func TestRun(t *testing.T) {
	ctx := context.Background()
	out, err := Run(ctx, Spec{Path: "/bin/sh", Args: []string{"-c", "pwd; echo to-log >&2"}, Dir: "/tmp"}, 100)
	if err != nil || string(out) != "/tmp\n" {
		t.Errorf("Run = %q, %v; want \"/tmp\\n\" from the working directory asked for", out, err)
	}
	if out, err := Run(ctx, Spec{Path: "/bin/sh", Args: []string{"-c", "echo 0123456789"}}, 4); err == nil || string(out) != "0123" {
		t.Errorf("Run of a child writing past the bound = %q, %v; want its first 4 bytes and an error", out, err)
	}
	if _, err := Run(ctx, Spec{Path: "/bin/sh", Args: []string{"-c", "exit 3"}}, 10); err == nil {
		t.Error("Run of a child exiting 3 succeeded")
	}
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	if _, err := Run(dctx, Spec{Path: "sleep", Args: []string{"30"}}, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run past its deadline = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("Run past its deadline returned after %s", d)
	}
	caps := testCaps(t)
	requireCap(t, caps, caps.Memory, "a memory limit", "no memory limit")
	cg, err := caps.Controller.New("run-oom", Limits{Memory: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cmd := helperCmd("alloc", "SANDBOX_TEST_MIB=256")
	_, err = Run(ctx, Spec{Path: cmd.Path, Args: cmd.Args[1:], Env: cmd.Env[len(cmd.Env)-2:], Cgroup: cg}, 1<<10)
	if !errors.Is(err, ErrOOMKilled) {
		t.Errorf("Run of a child allocating 256 MiB under a 32 MiB limit = %v, want ErrOOMKilled", err)
	}
}
