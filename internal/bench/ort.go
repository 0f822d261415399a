package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spindleml/spindle/internal/npy"
	"github.com/spindleml/spindle/internal/tensor"
)

// ErrNoORT is wrapped by FindORT's error when node or the ONNX Runtime
// runner is missing.
var ErrNoORT = errors.New("ONNX Runtime runner not installed (run scripts/testdeps.sh)")

// ORT runs ONNX Runtime (npm onnxruntime-node) through
// tools/node/ort-run.mjs. The zero value is not usable; call FindORT.
type ORT struct {
	// Node is the node binary, Script the path of ort-run.mjs.
	Node, Script string
}

// FindORT locates node on PATH and the runner script, which must have
// onnxruntime-node installed beside it (in node_modules).
func FindORT(script string) (*ORT, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w: node: %w", ErrNoORT, err)
	}
	mod := filepath.Join(filepath.Dir(script), "node_modules", "onnxruntime-node", "package.json")
	for _, p := range []string{script, mod} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoORT, err)
		}
	}
	return &ORT{Node: node, Script: script}, nil
}

// Bench runs the model at path in ONNX Runtime with the given intra-op thread
// count (inter-op parallelism off) and runs timed runs after the first, and
// returns its timings. Inputs travel as .npy files in a temporary folder.
func (o *ORT) Bench(ctx context.Context, path string, inputs map[string]*tensor.Tensor, threads, runs int) (Result, error) {
	res := Result{Engine: "onnxruntime", Threads: threads}
	dir, err := os.MkdirTemp("", "spindle-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	args := []string{o.Script, "--model", path, "--bench", strconv.Itoa(max(1, runs))}
	if threads > 0 {
		args = append(args, "--threads", strconv.Itoa(threads))
	}
	names := make([]string, 0, len(inputs))
	for name := range inputs {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		p := filepath.Join(dir, fmt.Sprintf("in%d.npy", i))
		if err := npy.WriteFile(p, inputs[name]); err != nil {
			return res, fmt.Errorf("write input %q: %w", name, err)
		}
		args = append(args, "--input", name+"="+p)
	}
	cmd := exec.CommandContext(ctx, o.Node, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return res, fmt.Errorf("onnx runtime on %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	var out struct {
		LoadMs  float64 `json:"load_ms"`
		FirstMs float64 `json:"first_run_ms"`
		Latency
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return res, fmt.Errorf("onnx runtime on %s: parse %q: %w", path, strings.TrimSpace(stdout.String()), err)
	}
	res.LoadMs, res.FirstRunMs, res.Latency = out.LoadMs, out.FirstMs, out.Latency
	return res, nil
}
