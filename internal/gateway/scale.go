package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/sandbox"
)

// workersFor is an instance's worker count for a CPU allotment.
func workersFor(vcpu float64) int { return api.WorkersFor(vcpu) }

// memoryFor is the memory limit an instance of spec runs under: the
// function's, capped by its tenant's whole allowance (no single instance may
// use more); 0 for none, or where the machine cannot enforce one.
func (g *Gateway) memoryFor(spec registry.Function) int64 {
	if !g.cfg.Sandbox.Memory {
		return 0
	}
	limit := spec.MemoryLimit
	if tl, err := g.tenants.Limits(spec.Owner); err == nil && tl.MaxMemoryBytes > 0 &&
		(limit == 0 || limit > tl.MaxMemoryBytes) {
		limit = max(tl.MaxMemoryBytes, sandbox.MinMemory)
	}
	return limit
}

// newCgroup makes an instance's cgroup with the function's limits, or returns
// nil when the platform runs without cgroups.
func (g *Gateway) newCgroup(spec registry.Function, vcpu float64) (*sandbox.Cgroup, error) {
	if g.cfg.Sandbox.Controller == nil {
		return nil, nil
	}
	limits := sandbox.Limits{Memory: g.memoryFor(spec)}
	if g.cfg.Sandbox.CPU {
		limits.CPU = vcpu
	}
	cg, err := g.cfg.Sandbox.Controller.New(spec.Name, limits)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return cg, nil
}

// minInstanceMemory is the least memory limit a function may be given: what
// an instance process takes before it maps a model (its Go runtime, its
// server, a small model's working set). Below it no instance could start, and
// the limit would break every later cold start.
const minInstanceMemory = 32 << 20

// resizeError is a resize the live instances refused; nothing was changed.
type resizeError struct{ msg string }

func (e *resizeError) Error() string { return e.msg }

func (g *Gateway) scale(w http.ResponseWriter, r *http.Request) {
	spec, ok := g.lookup(w, r)
	if !ok {
		return
	}
	var req api.ScaleRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body: %v", err))
		return
	}
	vcpu, memory, err := g.scaleTarget(spec, req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := g.checkTenantCPU(spec.Owner, fnKey(spec.Owner, spec.Name), vcpu); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if tl, err := g.tenants.Limits(spec.Owner); err == nil && tl.MaxMemoryBytes > 0 && req.Memory != nil &&
		(memory == 0 || memory > tl.MaxMemoryBytes) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("tenant %q: memory limit %d bytes: an instance limit of %d (0 = none) exceeds it", spec.Owner, tl.MaxMemoryBytes, memory))
		return
	}
	// Live first, then the registry: a change the instances refuse is not
	// recorded, so it cannot break later starts either.
	res, err := g.Resize(fnKey(spec.Owner, spec.Name), vcpu, req.Memory)
	var re *resizeError
	switch {
	case errors.As(err, &re):
		writeError(w, http.StatusConflict, re.msg)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	_, err = g.reg.Update(spec.Owner, spec.Name, func(f *registry.Function) error {
		if req.VCPU != nil {
			f.VCPU = vcpu
		}
		if req.Memory != nil {
			f.MemoryLimit = memory
		}
		return nil
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	g.board.event(fnKey(spec.Owner, spec.Name), g.clock.Now().UTC(), "scale", scaleText(req, res))
	writeJSON(w, http.StatusOK, res)
}

// scaleTarget validates req against spec and the node: the vCPU allotment
// and memory limit it asks for, each field unset keeping spec's. The error
// names the JSON field and the rule.
func (g *Gateway) scaleTarget(spec registry.Function, req api.ScaleRequest) (vcpu float64, memory int64, err error) {
	if req.VCPU == nil && req.Memory == nil {
		return 0, 0, errors.New("body: set vcpu, memory or both")
	}
	vcpu, memory = g.vcpuOf(spec), spec.MemoryLimit
	if req.VCPU != nil {
		vcpu = *req.VCPU
		// The sandbox calls the field "cpu": say "vcpu", as the body does.
		if err := (sandbox.Limits{CPU: vcpu}).Validate(); err != nil || vcpu <= 0 {
			return 0, 0, fmt.Errorf("vcpu: %v must be a positive multiple of %v", vcpu, sandbox.CPUStep)
		}
		if max := float64(runtime.NumCPU()); vcpu > max {
			return 0, 0, fmt.Errorf("vcpu: %v exceeds this node's %v CPUs", vcpu, max)
		}
	}
	if req.Memory != nil {
		memory = *req.Memory
		if err := (sandbox.Limits{Memory: memory}).Validate(); err != nil {
			return 0, 0, err // "memory: ..."
		}
		if memory != 0 && memory < minInstanceMemory {
			return 0, 0, fmt.Errorf("memory: %s is less than the %s an instance needs to start (0 removes the limit)", humanize.IBytes(uint64(memory)), humanize.IBytes(minInstanceMemory))
		}
	}
	return vcpu, memory, nil
}

// Resize changes the CPU allotment (and, when memory is non-nil, the memory
// limit) of every running instance of function key, live: the cgroup quota,
// the worker count and GOMAXPROCS change together, and no request is dropped
// (workers grow after the quota does and shrink before it). It is all or
// nothing: when an instance refuses (a memory limit below what it uses), the
// instances already changed go back to what they had, nothing is recorded,
// and the error, a *resizeError, says why in words. Instances started later
// get the new allotment only once it took.
func (g *Gateway) Resize(key string, vcpu float64, memory *int64) (api.ScaleResult, error) {
	g.mu.Lock()
	f := g.fns[key]
	g.mu.Unlock()
	res := api.ScaleResult{VCPU: vcpu, Workers: workersFor(vcpu), Enforced: g.cfg.Sandbox.CPU}
	if f == nil {
		if memory != nil {
			res.Memory = *memory
		}
		return res, nil // no instance yet: the next start uses the registry's values
	}
	f.resizeMu.Lock()
	defer f.resizeMu.Unlock()
	f.mu.Lock()
	oldVCPU := f.vcpu
	res.Memory = f.spec.MemoryLimit
	f.pruneLocked()
	reps := slices.Clone(f.replicas)
	f.mu.Unlock()
	if memory != nil {
		res.Memory = *memory
		if err := fitsUse(reps, *memory); err != nil {
			return res, err
		}
	}
	// What each instance has now, to go back to: its memory limit may be its
	// tenant's cap rather than the function's.
	olds := make([]int64, len(reps))
	for i, rep := range reps {
		olds[i] = rep.proc.Cgroup.Limits().Memory
	}
	up := vcpu >= oldVCPU
	for i, rep := range reps {
		err := g.resizeReplica(rep, vcpu, memory, up)
		if err == nil || rep.proc.Exited() {
			continue
		}
		// Undo: this instance and those before it go back.
		for j, done := range reps[:i+1] {
			if uerr := g.resizeReplica(done, oldVCPU, &olds[j], !up); uerr != nil && !done.proc.Exited() {
				g.cfg.Logger.Warn("resize: could not restore an instance", "function", key, "pid", done.proc.Pid, "err", uerr)
			}
		}
		return res, refusal(rep, memory, err)
	}
	f.mu.Lock()
	f.vcpu = vcpu
	f.spec.VCPU = vcpu
	if memory != nil {
		f.spec.MemoryLimit = *memory
	}
	f.pruneLocked()
	res.Instances = len(f.replicas)
	var late []*replica // started while the resize ran, with the old values
	for _, r := range f.replicas {
		if !slices.Contains(reps, r) {
			late = append(late, r)
		}
	}
	f.mu.Unlock()
	for _, rep := range late {
		if err := g.resizeReplica(rep, vcpu, memory, up); err != nil && !rep.proc.Exited() {
			g.cfg.Logger.Warn("resize: an instance started meanwhile kept its old allotment", "function", key, "pid", rep.proc.Pid, "err", err)
		}
	}
	return res, nil
}

// fitsUse refuses a memory limit below what a running instance uses now:
// cgroup v1 refuses to set it, and v2 sets it and then kills the instance.
func fitsUse(reps []*replica, memory int64) error {
	if memory == 0 {
		return nil
	}
	for _, rep := range reps {
		st, err := rep.proc.Cgroup.Stats()
		if err != nil || st.Memory <= memory {
			continue
		}
		return &resizeError{fmt.Sprintf("memory: %s is less than the %s instance %d uses now; nothing was changed", humanize.IBytes(uint64(memory)), humanize.IBytes(uint64(st.Memory)), rep.proc.Pid)}
	}
	return nil
}

// refusal says in words why rep refused a resize; the cgroup's paths and
// errno stay in the gateway's log.
func refusal(rep *replica, memory *int64, err error) error {
	if memory != nil && errors.Is(err, syscall.EBUSY) {
		return &resizeError{fmt.Sprintf("memory: instance %d cannot be reclaimed down to %s; nothing was changed", rep.proc.Pid, humanize.IBytes(uint64(*memory)))}
	}
	return &resizeError{fmt.Sprintf("instance %d refused the resize (%v); nothing was changed", rep.proc.Pid, errors.Unwrap(err))}
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
		req := api.Resize{Workers: n, GOMAXPROCS: n}
		if memory != nil && g.cfg.Sandbox.Memory {
			req.MemoryLimit = memory
		}
		body, _ := json.Marshal(req)
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

// scaleText says in the dashboard's timeline what a manual resize did.
func scaleText(req api.ScaleRequest, res api.ScaleResult) string {
	var parts []string
	if req.VCPU != nil {
		parts = append(parts, fmt.Sprintf("%v vCPU (%d workers)", res.VCPU, res.Workers))
	}
	if req.Memory != nil {
		mem := "no memory limit"
		if res.Memory > 0 {
			mem = "memory " + humanize.IBytes(uint64(res.Memory))
		}
		parts = append(parts, mem)
	}
	return fmt.Sprintf("scaled by hand to %s on %d instances", strings.Join(parts, ", "), res.Instances)
}
