package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/sandbox"
)

// workersFor is an instance's worker count for a CPU allotment: one worker per
// started vCPU (thesis ch. 5.1: the pool grows with the CPU it is given).
func workersFor(vcpu float64) int {
	return max(1, int(math.Ceil(vcpu)))
}

// newCgroup makes an instance's cgroup with the function's limits, or returns
// nil when the platform runs without cgroups.
func (g *Gateway) newCgroup(spec registry.Function, vcpu float64) (*sandbox.Cgroup, error) {
	if g.cfg.Sandbox.Controller == nil {
		return nil, nil
	}
	limits := sandbox.Limits{Memory: spec.MemoryLimit}
	// No single instance may use more than its tenant's whole memory allowance.
	if tl, err := g.tenants.Limits(spec.Owner); err == nil && tl.MaxMemoryBytes > 0 &&
		(limits.Memory == 0 || limits.Memory > tl.MaxMemoryBytes) {
		limits.Memory = max(tl.MaxMemoryBytes, sandbox.MinMemory)
	}
	if g.cfg.Sandbox.CPU {
		limits.CPU = vcpu
	}
	if !g.cfg.Sandbox.Memory {
		limits.Memory = 0
	}
	cg, err := g.cfg.Sandbox.Controller.New(spec.Name, limits)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return cg, nil
}

// ScaleRequest is the body of POST /admin/v1/functions/{name}/scale.
type ScaleRequest struct {
	// VCPU is the new per-instance CPU allotment, a multiple of 0.25.
	VCPU float64 `json:"vcpu"`
	// Memory, when set, is the new per-instance memory limit in bytes (0: none).
	Memory *int64 `json:"memory,omitempty"`
}

// ScaleResult says what a resize did.
type ScaleResult struct {
	VCPU      float64 `json:"vcpu"`
	Workers   int     `json:"workers"`
	Instances int     `json:"instances"`
	// Enforced is false when the machine cannot set CPU quotas (degraded
	// mode): only the worker count and GOMAXPROCS changed.
	Enforced bool `json:"enforced"`
}

func (g *Gateway) scale(w http.ResponseWriter, r *http.Request) {
	spec, ok := g.lookup(w, r)
	if !ok {
		return
	}
	var req ScaleRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body: %v", err))
		return
	}
	// Checked one by one so that each message names its JSON field (the
	// sandbox calls the first "cpu").
	if err := (sandbox.Limits{CPU: req.VCPU}).Validate(); err != nil || req.VCPU <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("vcpu: %v must be a positive multiple of %v", req.VCPU, sandbox.CPUStep))
		return
	}
	if req.Memory != nil {
		if err := (sandbox.Limits{Memory: *req.Memory}).Validate(); err != nil {
			writeError(w, http.StatusBadRequest, err.Error()) // "memory: ..."
			return
		}
	}
	if max := float64(runtime.NumCPU()); req.VCPU > max {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("vcpu: %v exceeds this node's %v CPUs", req.VCPU, max))
		return
	}
	if err := g.checkTenantCPU(spec.Owner, fnKey(spec.Owner, spec.Name), req.VCPU); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if tl, err := g.tenants.Limits(spec.Owner); err == nil && tl.MaxMemoryBytes > 0 && req.Memory != nil &&
		(*req.Memory == 0 || *req.Memory > tl.MaxMemoryBytes) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("tenant %q: memory limit %d bytes: an instance limit of %d (0 = none) exceeds it", spec.Owner, tl.MaxMemoryBytes, *req.Memory))
		return
	}
	spec.VCPU = req.VCPU
	if req.Memory != nil {
		spec.MemoryLimit = *req.Memory
	}
	if err := g.reg.Put(spec); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	res, err := g.Resize(fnKey(spec.Owner, spec.Name), req.VCPU, req.Memory)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// Resize changes the CPU allotment (and, when memory is non-nil, the memory
// limit) of every running instance of function key, live: the cgroup quota, the
// worker count and GOMAXPROCS change together, and no request is dropped —
// workers grow after the quota does and shrink before it. Instances started
// later get the new allotment too.
func (g *Gateway) Resize(key string, vcpu float64, memory *int64) (ScaleResult, error) {
	g.mu.Lock()
	f := g.fns[key]
	g.mu.Unlock()
	res := ScaleResult{VCPU: vcpu, Workers: workersFor(vcpu), Enforced: g.cfg.Sandbox.CPU}
	if f == nil {
		return res, nil // no instance yet: the next start uses the registry's values
	}
	f.mu.Lock()
	up := vcpu >= f.vcpu
	f.vcpu = vcpu
	f.spec.VCPU = vcpu
	if memory != nil {
		f.spec.MemoryLimit = *memory
	}
	f.pruneLocked()
	reps := append([]*replica(nil), f.replicas...)
	f.mu.Unlock()
	res.Instances = len(reps)
	var errs []error
	for _, rep := range reps {
		if err := g.resizeReplica(rep, vcpu, memory, up); err != nil && !rep.proc.Exited() {
			errs = append(errs, fmt.Errorf("instance pid %d: %w", rep.proc.Pid, err))
		}
	}
	return res, errors.Join(errs...)
}

func (g *Gateway) resizeReplica(rep *replica, vcpu float64, memory *int64, up bool) error {
	setQuota := func() error {
		if memory != nil {
			if err := rep.proc.Cgroup.SetMemory(*memory); err != nil && !errors.Is(err, sandbox.ErrUnsupported) {
				return err
			}
		}
		if err := rep.proc.Cgroup.SetCPU(vcpu); err != nil && !errors.Is(err, sandbox.ErrUnsupported) {
			return err
		}
		return nil
	}
	setWorkers := func() error {
		n := workersFor(vcpu)
		body, _ := json.Marshal(api.Resize{Workers: n, GOMAXPROCS: n})
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Post(rep.url.String()+"/_spindle/resize", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("resize: HTTP %d", resp.StatusCode)
		}
		return nil
	}
	steps := []func() error{setWorkers, setQuota}
	if up {
		steps = []func() error{setQuota, setWorkers}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// checkTenantCPU reports whether owner's instances stay within the tenant's
// vCPU limit if function key's instances get vcpu each (counting at least one
// instance for key, the one the next request starts).
func (g *Gateway) checkTenantCPU(owner, key string, vcpu float64) error {
	limits, err := g.tenants.Limits(owner)
	if err != nil || limits.MaxVCPU <= 0 {
		return err
	}
	total := 0.0
	g.mu.Lock()
	fns := make(map[string]*function, len(g.fns))
	for k, f := range g.fns {
		fns[k] = f
	}
	g.mu.Unlock()
	n := 1
	for k, f := range fns {
		f.mu.Lock()
		f.pruneLocked()
		if k == key {
			n = max(n, len(f.replicas))
		} else if f.spec.Owner == owner {
			total += f.vcpu * float64(len(f.replicas))
		}
		f.mu.Unlock()
	}
	if want := total + vcpu*float64(n); want > limits.MaxVCPU {
		return fmt.Errorf("tenant %q: vcpu limit %v: %v vCPU x %d instance(s) plus %v in use elsewhere would need %v", owner, limits.MaxVCPU, vcpu, n, total, want)
	}
	return nil
}
