package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/sandbox"
)

// Deploy-time checks run outside the gateway. The gateway is every tenant's
// front door, so it never parses or compiles what a tenant uploads: a model
// can be built to make constant folding ask for terabytes, or to take hours.
// Each upload is checked by `spindle instance --check` in a child process,
// sandboxed as an instance is (its own cgroup and namespaces), under the
// tenant's memory limit (or the platform's check limit), one vCPU and a
// deadline. The child loads, compiles and builds the task exactly as the
// instance that will serve the function does, and prints an api.Check or an
// api.CheckError; whatever it does to itself, the gateway only reads a line.

// artifactPath is where a deploy's check writes the compiled artifact of
// the upload's model (`spindle model compile`), relative to the upload: in
// a folder uploads may not use (see partPath). Instances map it: MatMul and
// Gemm weights prepacked, page-aligned and shared, no packing at start.
const artifactPath = artifactDir + "/model.spindle"

// artifactDir is the upload folder that is the platform's.
const artifactDir = ".spindle"

// uploadError is a deploy the upload is at fault for: 400 with its message.
type uploadError struct{ msg string }

func (e *uploadError) Error() string { return e.msg }

// checkRequest is one upload to check.
type checkRequest struct {
	owner, name string
	// dir holds the uploaded files; modelFile is the model's path in it ("":
	// none uploaded).
	dir, modelFile string
	kind           string
	config         json.RawMessage
	// uploadBytes is the size of the files, which the memory limit must
	// leave room for.
	uploadBytes int64
}

// checkMemory is the memory limit of the check of an upload of n bytes for
// owner: the tenant's instance memory limit when it has one (a model that
// cannot compile within it could not run within it either), else room for
// the model, its packed copy and its folded constants, at least
// Config.CheckMemory.
func (g *Gateway) checkMemory(owner string, n int64) (limit int64, why string) {
	if tl, err := g.tenants.Limits(owner); err == nil && tl.MaxMemoryBytes > 0 {
		return max(tl.MaxMemoryBytes, sandbox.MinMemory), fmt.Sprintf("tenant %q's memory limit", owner)
	}
	return max(g.cfg.CheckMemory, satMul64(n, 4)), "the platform's limit for checking a model of this size"
}

// check runs the deploy-time check of req in a sandboxed child. An error is
// an *uploadError when the upload is at fault.
func (g *Gateway) check(ctx context.Context, req checkRequest) (api.Check, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.CheckTimeout)
	defer cancel()
	memory, why := g.checkMemory(req.owner, req.uploadBytes)
	args := []string{"instance", "--check", "--name", req.name, "--task-dir", "."}
	if req.modelFile != "" {
		args = append(args, "--model", req.modelFile, "--artifact", artifactPath)
	}
	if req.kind != "" {
		args = append(args, "--task", req.kind)
	}
	if len(bytes.TrimSpace(req.config)) > 0 {
		args = append(args, "--task-config", string(req.config))
	}
	var cg *sandbox.Cgroup
	if g.cfg.Sandbox.Controller != nil {
		limits := sandbox.Limits{}
		if g.cfg.Sandbox.CPU {
			limits.CPU = 1
		}
		if g.cfg.Sandbox.Memory {
			limits.Memory = memory
		}
		var err error
		if cg, err = g.cfg.Sandbox.Controller.New("check-"+req.name, limits); err != nil {
			return api.Check{}, fmt.Errorf("sandbox: %w", err)
		}
	}
	if !g.cfg.Sandbox.Memory {
		// No memory cgroup: the child caps its own address space.
		args = append(args, "--max-memory", fmt.Sprint(memory))
	}
	var stderr tailBuffer
	began := time.Now()
	out, err := sandbox.Run(ctx, sandbox.Spec{
		Path:   g.cfg.Exe,
		Args:   args,
		Env:    []string{"GOMAXPROCS=1"},
		Dir:    req.dir,
		Log:    &stderr,
		Cgroup: cg,
		Caps:   g.cfg.Sandbox,
	}, 1<<20)
	g.cfg.Logger.Info("model checked", "function", fnKey(req.owner, req.name), "elapsed", time.Since(began).Round(time.Millisecond), "err", err)
	var ce api.CheckError
	if json.Unmarshal(out, &ce) == nil && ce.Error != "" {
		return api.Check{}, &uploadError{ce.Error}
	}
	switch {
	case errors.Is(err, sandbox.ErrOOMKilled):
		return api.Check{}, &uploadError{fmt.Sprintf("model: loading and compiling it needs more than %s of memory, %s", humanize.IBytes(uint64(memory)), why)}
	case errors.Is(err, context.DeadlineExceeded):
		return api.Check{}, &uploadError{fmt.Sprintf("model: loading and compiling it took longer than %s, the limit for a deploy", g.cfg.CheckTimeout)}
	case err != nil && ctx.Err() != nil:
		return api.Check{}, ctx.Err()
	case err != nil && strings.Contains(stderr.String(), "out of memory"):
		// Without a memory cgroup the child's own address-space limit
		// ends it with the Go runtime's fatal error.
		return api.Check{}, &uploadError{fmt.Sprintf("model: loading and compiling it needs more than %s of memory, %s", humanize.IBytes(uint64(memory)), why)}
	case err != nil:
		return api.Check{}, fmt.Errorf("model check failed (%v): %s", err, stderr.tail())
	}
	var res api.Check
	if err := json.Unmarshal(out, &res); err != nil {
		return api.Check{}, fmt.Errorf("model check: unreadable answer %q: %v", out, err)
	}
	return res, nil
}

// tailBuffer keeps the last 8 KiB written to it: the end of a child's stderr,
// for error messages.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	const keep = 8 << 10
	t.b = append(t.b, p...)
	if len(t.b) > keep {
		t.b = append(t.b[:0], t.b[len(t.b)-keep:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// tail returns the last few lines, joined by " | ".
func (t *tailBuffer) tail() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// satMul64 returns a*b for non-negative a and b, saturating.
func satMul64(a, b int64) int64 {
	if a != 0 && b > (1<<63-1)/a {
		return 1<<63 - 1
	}
	return a * b
}
