package difftest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spindleml/spindle/internal/npy"
	"github.com/spindleml/spindle/internal/tensor"
)

// ErrNoReference is wrapped by FindORT's error when node or the installed
// reference packages are missing.
var ErrNoReference = errors.New("ONNX Runtime reference not installed (run scripts/testdeps.sh)")

// ORT runs models in ONNX Runtime through tools/node/ort-run.mjs. The zero
// value is not usable; call FindORT.
type ORT struct {
	// Node is the node binary; Script is ort-run.mjs.
	Node, Script string
	// Threads is ONNX Runtime's intra-op thread count; 0 lets it choose.
	Threads int
}

// FindORT locates node on PATH and ort-run.mjs with onnxruntime-node installed
// beside it under root/tools/node, where root is the repository root.
func FindORT(root string) (*ORT, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w: node: %w", ErrNoReference, err)
	}
	dir := filepath.Join(root, "tools", "node")
	script := filepath.Join(dir, "ort-run.mjs")
	for _, p := range []string{script, filepath.Join(dir, "node_modules", "onnxruntime-node", "package.json")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoReference, err)
		}
	}
	return &ORT{Node: node, Script: script}, nil
}

// Run runs the model at path on inputs and returns the named outputs. The
// inputs and outputs travel as .npy files in a temporary folder that Run
// removes.
func (o *ORT) Run(ctx context.Context, model string, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	dir, err := os.MkdirTemp("", "spindle-ort-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	args := []string{o.Script, "--model", model, "--out", filepath.Join(dir, "out")}
	if o.Threads > 0 {
		args = append(args, "--threads", strconv.Itoa(o.Threads))
	}
	i := 0
	for name, t := range inputs {
		p := filepath.Join(dir, fmt.Sprintf("in%d.npy", i))
		i++
		if err := npy.WriteFile(p, t); err != nil {
			return nil, fmt.Errorf("write input %q: %w", name, err)
		}
		args = append(args, "--input", name+"="+p)
	}
	cmd := exec.CommandContext(ctx, o.Node, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("onnx runtime on %s: %w: %s", model, err, strings.TrimSpace(stderr.String()))
	}
	out := map[string]*tensor.Tensor{}
	for _, name := range outputs {
		t, err := npy.ReadFile(filepath.Join(dir, "out", name+".npy"))
		if err != nil {
			return nil, fmt.Errorf("onnx runtime output %q: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}
