package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/npy"
	"github.com/spindleml/spindle/internal/tensor"
)

// spindleBounded runs the binary as spindle does, but kills it after limit
// and fails the test: a command that opens a FIFO waits for a writer that
// never comes, and would otherwise hold the test until go test's timeout.
func spindleBounded(t *testing.T, limit time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("spindle %s: still running after %v (killed); stderr %q", strings.Join(args, " "), limit, errb.String())
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("spindle %v: %v", args, err)
	}
	return r
}

// TestNonRegularFilesRefused checks that a FIFO (or a folder) given where the
// CLI reads a whole file is refused at once with exit 2 naming the flag, where
// opening the FIFO used to wait for a writer for ever.
func TestNonRegularFilesRefused(t *testing.T) {
	work := t.TempDir()
	fifo := filepath.Join(work, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	model := plusModel(t, filepath.Join(work, "plus"), 1)
	in := filepath.Join(work, "x.npy")
	if err := npy.WriteFile(in, tensor.FromF32([]float32{1, 2, 3, 4}, 4)); err != nil {
		t.Fatal(err)
	}
	// A model whose external data file is a FIFO.
	b := modelgen.NewBuilder("ext", 13, 1)
	b.Input("x", tensor.Float32, []int64{4})
	b.Fill("w", 2, 4)
	b.Node("Mul", []string{"x", "w"}, nil, "y")
	b.Output("y", tensor.Float32, []int64{4})
	extModel := filepath.Join(work, "ext", "model.onnx")
	if err := b.Save(extModel, modelgen.SaveOptions{ExternalData: "w.bin"}); err != nil {
		t.Fatal(err)
	}
	wbin := filepath.Join(work, "ext", "w.bin")
	if err := os.Remove(wbin); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(wbin, 0o600); err != nil {
		t.Fatal(err)
	}

	const noGateway = "--gateway=http://127.0.0.1:1"
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"deploy model fifo", []string{"deploy", "f", "--model", fifo, noGateway}, "--model " + fifo + ": not a regular file (a named pipe)"},
		{"deploy model folder", []string{"deploy", "f", "--model", work, noGateway}, "--model " + work + ": not a regular file (a directory)"},
		{"deploy file fifo", []string{"deploy", "f", "--model", model, "--task", "text-classification", "--file", fifo, noGateway}, "--file " + fifo + ": not a regular file"},
		{"deploy external data fifo", []string{"deploy", "f", "--model", extModel, noGateway}, "w.bin: not a regular file"},
		{"deploy model missing", []string{"deploy", "f", "--model", fifo + ".nope", noGateway}, "--model " + fifo + ".nope: no such file or directory"},
		{"invoke input fifo", []string{"invoke", "f", "--input", "x=" + fifo, noGateway}, "--input x=" + fifo + ": not a regular file"},
		{"invoke image fifo", []string{"invoke", "f", "--image", fifo, noGateway}, "--image " + fifo + ": not a regular file"},
		{"run model fifo", []string{"run", "--model", fifo, "--input", "x=" + in}, "--model " + fifo + ": not a regular file"},
		{"run input fifo", []string{"run", "--model", model, "--input", "x=" + fifo}, "--input x=" + fifo + ": not a regular file"},
		{"run external data fifo", []string{"run", "--model", extModel, "--input", "x=" + in}, "w.bin: not a regular file"},
		{"load body fifo", []string{"load", "--url", "http://127.0.0.1:1/", "--max-requests", "1", "--body", fifo}, "--body " + fifo + ": not a regular file"},
		{"load input fifo", []string{"load", "--url", "http://127.0.0.1:1/", "--max-requests", "1", "--input", "x=" + fifo}, "--input x=" + fifo + ": not a regular file"},
		{"compile fifo", []string{"model", "compile", fifo, "-o", filepath.Join(work, "out.spindle")}, fifo + ": not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := spindleBounded(t, time.Minute, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.msg) {
				t.Fatalf("spindle %s: exit %d, stderr %q; want exit 2 with %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.msg)
			}
		})
	}
}
