package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/sandbox"
)

// ErrQueueFull is returned when too many requests already wait for a function's
// instance to start.
var ErrQueueFull = errors.New("too many requests waiting for an instance")

// errRemoved is acquire's answer once a function's live state was dropped
// (the function was removed or redeployed): the caller looks it up again.
var errRemoved = errors.New("function removed or redeployed")

// replica is one running instance of a function.
type replica struct {
	proc     *sandbox.Process
	url      *url.URL
	inflight atomic.Int64 // requests acquired on it, sent or about to be
	// started is how long its start took, to ready; served is set by its
	// first request.
	started time.Duration
	served  atomic.Bool

	drainMu  sync.Mutex
	draining bool
	idle     chan struct{} // closed once draining with nothing in flight
	idleOnce sync.Once
}

// retire stops a replica already taken out of routing: it waits (up to grace)
// until every request the gateway had routed to it has finished — including
// one acquired but not yet sent, which the instance's own drain would refuse —
// then asks the instance to drain and exit.
func (r *replica) retire(grace time.Duration) {
	r.drainMu.Lock()
	r.draining = true
	if r.idle == nil {
		r.idle = make(chan struct{})
	}
	if r.inflight.Load() == 0 {
		r.idleOnce.Do(func() { close(r.idle) })
	}
	idle := r.idle
	r.drainMu.Unlock()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-idle:
	case <-r.proc.Done():
	case <-t.C:
	}
	r.proc.Stop(grace)
}

// done ends one request on r.
func (r *replica) done() {
	if r.inflight.Add(-1) != 0 {
		return
	}
	r.drainMu.Lock()
	if r.draining {
		r.idleOnce.Do(func() { close(r.idle) })
	}
	r.drainMu.Unlock()
}

// function is the gateway's live state for one deployed function: its running
// replicas, starts in progress, and the requests waiting for them.
type function struct {
	name string
	key  string // fnKey(owner, name)

	// resizeMu serialises resizes (Gateway.Resize): each reads the values
	// it may have to restore.
	resizeMu sync.Mutex

	mu       sync.Mutex
	spec     registry.Function
	replicas []*replica
	starting int
	// changed is closed (and replaced) whenever replicas or starting change,
	// waking every waiter.
	changed chan struct{}
	// failures counts failed starts and lastErr is the latest one's error: a
	// waiter that sees failures move while nothing else is starting gets
	// lastErr. A count, not a time, so the answer does not depend on the
	// clock's resolution (or on a test's fake clock standing still).
	failures int
	lastErr  error
	waiting  int
	inflight int
	lastUsed time.Time
	// vcpu is each replica's current CPU allotment.
	vcpu float64
	// usage is the replicas' memory summed, as updateGauges last read it.
	usage metrics.Usage
	// removed is set once the gateway dropped this state (remove, redeploy,
	// shutdown): no request is routed here any more and an instance that
	// finishes starting is stopped at once.
	removed bool
}

// newFunction returns the live state of spec, whose replicas get vcpu each.
func newFunction(spec registry.Function, now time.Time, vcpu float64) *function {
	return &function{name: spec.Name, key: fnKey(spec.Owner, spec.Name), spec: spec, changed: make(chan struct{}), lastUsed: now, vcpu: vcpu}
}

// broadcastLocked wakes every waiter.
func (f *function) broadcastLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// pruneLocked drops replicas whose process has exited.
func (f *function) pruneLocked() {
	live := f.replicas[:0]
	for _, r := range f.replicas {
		if !r.proc.Exited() {
			live = append(live, r)
		}
	}
	clear(f.replicas[len(live):])
	f.replicas = live
}

// acquire returns the least-loaded running replica, starting one if none runs.
// Waiting is bounded by maxWaiting (ErrQueueFull) and by ctx. A start that fails
// while this caller waits is returned as its error. The caller must call
// release(r) when the request is done.
func (g *Gateway) acquire(ctx context.Context, f *function) (*replica, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	failures := f.failures
	for {
		if f.removed {
			return nil, errRemoved
		}
		f.pruneLocked()
		if len(f.replicas) > 0 {
			best := f.replicas[0]
			for _, r := range f.replicas[1:] {
				if r.inflight.Load() < best.inflight.Load() {
					best = r
				}
			}
			best.inflight.Add(1)
			f.inflight++
			f.lastUsed = g.clock.Now()
			return best, nil
		}
		if f.failures != failures && f.starting == 0 {
			return nil, f.lastErr
		}
		if f.starting == 0 {
			f.starting++
			go g.startReplica(f)
		}
		if f.waiting >= g.cfg.MaxWaiting {
			return nil, fmt.Errorf("function %q: %w (%d waiting)", f.name, ErrQueueFull, f.waiting)
		}
		f.waiting++
		ch := f.changed
		f.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		f.mu.Lock()
		f.waiting--
		if err != nil {
			return nil, err
		}
	}
}

// release ends a request on r.
func (g *Gateway) release(f *function, r *replica) {
	r.done()
	f.mu.Lock()
	f.inflight--
	f.lastUsed = g.clock.Now()
	f.mu.Unlock()
}

// startReplica starts one instance of f (the caller counted it in f.starting).
func (g *Gateway) startReplica(f *function) {
	f.mu.Lock()
	f.pruneLocked()
	spec, vcpu, fromZero := f.spec, f.vcpu, len(f.replicas) == 0
	f.mu.Unlock()
	began := g.clock.Now()
	r, err := g.launch(spec, vcpu)
	if err == nil {
		g.board.started(f.key, api.ColdStart{Time: began.UTC(), Pid: r.proc.Pid, FromZero: fromZero, Start: max(0, r.started-r.proc.LoadTime), Load: r.proc.LoadTime})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starting--
	switch {
	case err != nil:
		f.failures++
		f.lastErr = err
	case f.removed:
		// Started for a deployment that is gone: nothing would route to it,
		// stop it or reap it.
		go r.retire(g.cfg.StopGrace)
	default:
		f.replicas = append(f.replicas, r)
	}
	f.broadcastLocked()
}

// instanceSpec is what an instance of spec with vcpu and a memory limit of
// mem bytes (0: none) runs: the flags of `spindle instance`, or a stem
// cell's assignment.
func (g *Gateway) instanceSpec(spec registry.Function, vcpu float64, mem int64) api.Assign {
	a := api.Assign{Name: spec.Name, Workers: workersFor(vcpu), MemoryLimit: mem, Batch: spec.Batch}
	if spec.ModelFile != "" { // a cpu-burn function has none
		a.Model, a.TaskDir, a.Load = g.store.Path(spec.ModelDigest, spec.ModelFile), g.store.Path(spec.ModelDigest, ""), g.loadMode(spec)
		if spec.Artifact != "" && a.Load != autoscale.LoadCopy && a.Load != autoscale.LoadSingle {
			a.Model = g.store.Path(spec.ModelDigest, spec.Artifact)
		}
	}
	if spec.Task != "" && spec.Task != api.TaskInfer {
		a.Task, a.TaskConfig = spec.Task, spec.TaskConfig
	}
	return a
}

// instanceArgs are the flags of `spindle instance` that run a.
func instanceArgs(a api.Assign) []string {
	args := []string{"instance", "--name", a.Name, "--listen", "127.0.0.1:0", "--workers", strconv.Itoa(a.Workers)}
	if a.Model != "" {
		args = append(args, "--model", a.Model, "--task-dir", a.TaskDir)
		if a.Load != "" {
			args = append(args, "--load", a.Load)
		}
	}
	if a.Task != "" {
		args = append(args, "--task", a.Task)
		if len(a.TaskConfig) > 0 {
			args = append(args, "--task-config", string(a.TaskConfig))
		}
	}
	if a.Batch != "" {
		args = append(args, "--batch", a.Batch)
	}
	if a.MemoryLimit > 0 {
		args = append(args, "--memory-limit", strconv.FormatInt(a.MemoryLimit, 10))
	}
	return args
}

// launch starts an instance for spec and waits until it is ready: a stem
// cell given spec's model when one is ready, else a new process.
func (g *Gateway) launch(spec registry.Function, vcpu float64) (*replica, error) {
	began := time.Now()
	if cell := g.stems.take(); cell != nil {
		p, err := g.assign(spec, vcpu, cell)
		if err == nil {
			return g.started(spec, p, vcpu, began, "stem cell"), nil
		}
		g.logEvent(spec, "stem cell %d not assigned, starting a new instance: %v", cell.proc.Pid, err)
		g.cfg.Logger.Warn("stem cell not assigned", "function", fnKey(spec.Owner, spec.Name), "pid", cell.proc.Pid, "err", err)
		began = time.Now()
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.StartTimeout)
	defer cancel()
	cg, err := g.newCgroup(spec, vcpu)
	if err != nil {
		g.logEvent(spec, "instance not started: %v", err)
		return nil, err
	}
	a := g.instanceSpec(spec, vcpu, cg.Limits().Memory)
	p, err := sandbox.Start(ctx, sandbox.Spec{
		Path:   g.cfg.Exe,
		Args:   instanceArgs(a),
		Env:    []string{"GOMAXPROCS=" + strconv.Itoa(a.Workers)},
		Log:    g.funcLog(spec),
		Cgroup: cg,
		Caps:   g.cfg.Sandbox,
	})
	if err != nil {
		g.logEvent(spec, "instance start failed after %s: %v", time.Since(began).Round(time.Millisecond), err)
		g.cfg.Logger.Warn("instance start failed", "function", fnKey(spec.Owner, spec.Name), "err", err)
		return nil, err
	}
	return g.started(spec, p, vcpu, began, "new process"), nil
}

// started makes the replica of instance p of spec, ready after a start that
// began then (how: a new process or a stem cell), and watches its exit.
func (g *Gateway) started(spec registry.Function, p *sandbox.Process, vcpu float64, began time.Time, how string) *replica {
	took := time.Since(began)
	g.logEvent(spec, "instance %d started in %s (%s, %v vCPU, %d workers)", p.Pid, took.Round(time.Millisecond), how, vcpu, workersFor(vcpu))
	g.cfg.Logger.Info("instance started", "function", fnKey(spec.Owner, spec.Name), "pid", p.Pid, "addr", p.Addr, "how", how, "elapsed", took.Round(time.Millisecond))
	g.metrics.InstanceStarted(fnKey(spec.Owner, spec.Name), "start", took)
	g.watchers.Add(1)
	go func() {
		defer g.watchers.Done()
		<-p.Done()
		how := "exited"
		if err := p.Err(); err != nil {
			how = fmt.Sprintf("exited: %v", err)
		}
		g.logEvent(spec, "instance %d %s", p.Pid, how)
		g.board.event(fnKey(spec.Owner, spec.Name), g.clock.Now().UTC(), "stop", fmt.Sprintf("instance %d %s", p.Pid, how))
		g.cfg.Logger.Info("instance exited", "function", fnKey(spec.Owner, spec.Name), "pid", p.Pid, "err", p.Err())
	}()
	return &replica{proc: p, url: &url.URL{Scheme: "http", Host: p.Addr}, started: took}
}

// stopAll removes every replica of f from routing and stops them, letting each
// drain its in-flight requests. With remove it also marks f removed (see
// function.removed), for state the gateway has dropped.
func (g *Gateway) stopAll(f *function, remove bool) {
	f.mu.Lock()
	f.removed = f.removed || remove
	rs := f.replicas
	f.replicas = nil
	f.broadcastLocked()
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() { defer wg.Done(); r.retire(g.cfg.StopGrace) }()
	}
	wg.Wait()
}

// reapIdle stops the replicas of every function idle for longer than IdleTimeout
// (scale to zero). It returns the keys ("owner/name") of the functions it
// scaled down.
func (g *Gateway) reapIdle(now time.Time) []string {
	g.mu.Lock()
	fns := make([]*function, 0, len(g.fns))
	for _, f := range g.fns {
		fns = append(fns, f)
	}
	g.mu.Unlock()
	var reaped []string
	for _, f := range fns {
		f.mu.Lock()
		idle := f.inflight == 0 && f.waiting == 0 && len(f.replicas) > 0 && now.Sub(f.lastUsed) >= g.cfg.IdleTimeout
		f.mu.Unlock()
		if idle {
			g.cfg.Logger.Info("scaling to zero", "function", f.key, "idle", now.Sub(f.lastUsed).Round(time.Second))
			g.stopAll(f, false)
			reaped = append(reaped, f.key)
		}
	}
	return reaped
}

// runReaper calls reapIdle periodically until ctx ends.
func (g *Gateway) runReaper(ctx context.Context) {
	period := max(g.cfg.IdleTimeout/4, 100*time.Millisecond)
	t := g.clock.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C():
			g.reapIdle(now)
		}
	}
}
