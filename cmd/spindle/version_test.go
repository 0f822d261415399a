package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	goLine := "go: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build info", nil, false, "spindle devel\nrevision: unknown\ntime: unknown\n" + goLine},
		{"source tree without git", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true,
			"spindle devel\nrevision: unknown\ntime: unknown\n" + goLine},
		{"git checkout with changes", &debug.BuildInfo{
			Main: debug.Module{Version: "v0.0.0-20261207104900-3c52a16e1f00+dirty"},
			Settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"},
				{Key: "vcs.revision", Value: "3c52a16e1f0011223344556677889900aabbccdd"},
				{Key: "vcs.time", Value: "2026-12-07T10:49:00Z"},
				{Key: "vcs.modified", Value: "true"},
			},
		}, true, "spindle v0.0.0-20261207104900-3c52a16e1f00+dirty\nrevision: 3c52a16e1f0011223344556677889900aabbccdd (modified)\ntime: 2026-12-07T10:49:00Z\n" + goLine},
		{"release", &debug.BuildInfo{
			Main:     debug.Module{Version: "v1.2.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}},
		}, true, "spindle v1.2.0\nrevision: abc\ntime: unknown\n" + goLine},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionText(tc.bi, tc.ok); got != tc.want {
				t.Errorf("versionText (-want +got):\n-%q\n+%q", tc.want, got)
			}
		})
	}
}

// TestVersionCommand runs the built binary: `spindle version` and `spindle
// --version` print the same text, with the Go version that built it.
func TestVersionCommand(t *testing.T) {
	cmd := mustRun(t, "version")
	flag := mustRun(t, "--version")
	if cmd != flag {
		t.Errorf("spindle version printed %q, spindle --version %q", cmd, flag)
	}
	for _, want := range []string{"spindle ", "revision: ", "time: ", "go: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("spindle version lacks %q:\n%s", want, cmd)
		}
	}
	wantExit2(t, "want 0 argument(s)", "version", "extra")
}
