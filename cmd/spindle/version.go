package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// newVersionCmd is `spindle version`; the root's --version prints the same.
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the source revision it was built from, and the Go toolchain",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), versionText(debug.ReadBuildInfo()))
			return err
		},
	}
}

// versionText describes the build in bi (ok false: no build information, as
// in a binary built without module support): the module version ("devel"
// for a build from a source tree without one), the VCS revision, its commit
// time and whether the tree had local changes (what 'go build' stamps from
// git; "unknown" without it), then the Go version and the target platform.
func versionText(bi *debug.BuildInfo, ok bool) string {
	version, revision, when, modified := "devel", "unknown", "unknown", ""
	if ok && bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "spindle %s\n", version)
	fmt.Fprintf(&b, "revision: %s%s\n", revision, modified)
	fmt.Fprintf(&b, "time: %s\n", when)
	fmt.Fprintf(&b, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}
