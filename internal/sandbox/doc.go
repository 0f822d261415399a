// Package sandbox starts function instances as child processes, confines each in
// its own cgroup (CPU quota, memory limit; v1 or v2) and Linux namespaces (pid,
// mount, ipc, uts) where the machine allows, resizes them live, and stops them.
//
// A child reports on its stdout, one line each, "SPINDLE-LISTEN <addr>" once its
// HTTP port is open and "SPINDLE-READY" once its model is loaded; anything else it
// prints, and all of its stderr, goes to the function's log file.
package sandbox
