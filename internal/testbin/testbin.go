package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Package is the import path of the spindle command.
const Package = "github.com/spindleml/spindle/cmd/spindle"

// Build builds the spindle command into the file path.
func Build(path string) error {
	out, err := exec.Command("go", "build", "-o", path, Package).CombinedOutput()
	if err != nil {
		return fmt.Errorf("build spindle: %w\n%s", err, out)
	}
	return nil
}

// Main is a TestMain body: it builds the spindle command once into a
// temporary folder, sets *bin to its path, runs the package's tests, removes
// the folder and exits with the tests' status (1 if the build fails).
func Main(m *testing.M, bin *string) {
	os.Exit(run(m, bin))
}

func run(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "spindle-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "spindle")
	if err := Build(*bin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
