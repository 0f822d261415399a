package sandbox

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
)

// namespace is one kind of Linux namespace an instance gets of its own. There
// is deliberately no network namespace: the gateway reaches instances on
// 127.0.0.1 of the host.
type namespace struct {
	name string
	// clone flags apply at clone time: a new pid namespace only takes effect
	// for children, so the instance must be created in it. unshare flags apply
	// in the child before exec; Go follows CLONE_NEWNS there with a recursive
	// MS_PRIVATE remount of /, so no mount the instance makes reaches the host.
	clone, unshare uintptr
}

var allNamespaces = []namespace{
	{name: "pid", clone: syscall.CLONE_NEWPID},
	{name: "mount", unshare: syscall.CLONE_NEWNS},
	{name: "ipc", unshare: syscall.CLONE_NEWIPC},
	{name: "uts", unshare: syscall.CLONE_NEWUTS},
}

// NamespaceAttrs returns process attributes that start a child in new pid,
// mount, ipc and uts namespaces, those Detect found working; with none it
// returns attributes that change nothing. The child keeps the host's network,
// file system view (no pivot_root) and /proc, and is pid 1 of its pid
// namespace: the kernel then delivers it only signals it has a handler for,
// plus SIGKILL. A Go program handles SIGTERM (signal.NotifyContext, or the
// runtime's own handler that exits), a shell does not.
func NamespaceAttrs(caps Capabilities) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Cloneflags: caps.cloneflags, Unshareflags: caps.unshareflags}
}

// detectNamespaces starts true(1) in all namespaces at once, and on failure in
// each alone, keeping those that work.
func detectNamespaces(caps *Capabilities) {
	probe, err := exec.LookPath("true")
	if err != nil {
		caps.NamespaceProblem = fmt.Sprintf("cannot probe: %v", err)
		return
	}
	try := func(ns ...namespace) error {
		attr := &syscall.SysProcAttr{}
		for _, n := range ns {
			attr.Cloneflags |= n.clone
			attr.Unshareflags |= n.unshare
		}
		cmd := exec.Command(probe)
		cmd.SysProcAttr = attr
		return cmd.Run()
	}
	ok := allNamespaces
	if err := try(allNamespaces...); err != nil {
		ok = nil
		var failed []string
		for _, n := range allNamespaces {
			if err := try(n); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", n.name, err))
				continue
			}
			ok = append(ok, n)
		}
		caps.NamespaceProblem = "cannot create namespace " + strings.Join(failed, ", ")
	}
	for _, n := range ok {
		caps.Namespaces = append(caps.Namespaces, n.name)
		caps.cloneflags |= n.clone
		caps.unshareflags |= n.unshare
	}
}
