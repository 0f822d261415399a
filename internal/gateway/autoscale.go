package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"k8s.io/utils/clock"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/registry"
)

// The gateway is the autoscaler's view of this machine (one node): it reports
// each function's window statistics (StatsSource), lists and changes its
// instances (Actuator), and tells the node's capacity (Nodes). The decisions
// themselves are autoscale.Decide's, the same code the simulator runs.
var (
	_ autoscale.StatsSource = (*scaler)(nil)
	_ autoscale.Actuator    = (*scaler)(nil)
	_ autoscale.Clock       = loopClock{}
)

type scaler struct {
	g *Gateway
	// window and short are sliding windows sized to the policy's Window and
	// PanicWindow, fed by the same request hook as the metrics.
	window, short *metrics.Stats
	node          autoscale.Local
}

// loopClock adapts the gateway's clock to the autoscaler's Clock.
type loopClock struct{ c clock.WithTicker }

func (l loopClock) Now() time.Time { return l.c.Now() }

func (l loopClock) NewTicker(d time.Duration) autoscale.Ticker { return l.c.NewTicker(d) }

// newScaler builds the autoscaler loop for spec, the platform's policy.
func (g *Gateway) newScaler(spec autoscale.Spec) (*autoscale.Loop, *scaler, error) {
	if err := spec.Validate(); err != nil {
		return nil, nil, err
	}
	bucket := func(w time.Duration) time.Duration {
		b := max(w/10, 100*time.Millisecond)
		return w / (w / b) // a divisor of w
	}
	s := &scaler{g: g}
	var err error
	if s.window, err = metrics.NewStats(spec.Window, bucket(spec.Window), g.cfg.Clock); err != nil {
		return nil, nil, fmt.Errorf("autoscale window: %w", err)
	}
	short := spec.PanicWindow
	if short <= 0 {
		short = spec.Window
	}
	if s.short, err = metrics.NewStats(short, bucket(short), g.cfg.Clock); err != nil {
		return nil, nil, fmt.Errorf("autoscale panic window: %w", err)
	}
	s.node = autoscale.NewLocal(0, g.usedVCPUs)
	loop, err := autoscale.NewLoop(autoscale.LoopConfig{
		Clock: loopClock{g.cfg.Clock}, Stats: s, Actuator: s, Nodes: s.node,
		Observe: func(fn string, rec autoscale.Record) {
			if rec.Decision.Changed() {
				g.metrics.ScalingDecision(fn, string(spec.Policy), string(rec.Decision.Action))
				g.cfg.Logger.Info("scaling decision", "function", fn, "action", rec.Decision.Action, "reason", rec.Decision.Reason, "applied", rec.Applied, "err", rec.Err)
			}
		},
	})
	return loop, s, err
}

// usedVCPUs is the vCPUs given to every running instance on this node.
func (g *Gateway) usedVCPUs() float64 {
	g.mu.Lock()
	fns := make([]*function, 0, len(g.fns))
	for _, f := range g.fns {
		fns = append(fns, f)
	}
	g.mu.Unlock()
	var used float64
	for _, f := range fns {
		f.mu.Lock()
		f.pruneLocked()
		used += f.vcpu * float64(len(f.replicas)+f.starting)
		f.mu.Unlock()
	}
	return used
}

func (s *scaler) fn(key string) *function {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	return s.g.fns[key]
}

// Stats reports function key's window. ServiceTime is estimated as the median
// latency scaled by the instance's CPU share (min(1, vCPU)): a request runs on
// one worker, so at 0.25 vCPU it takes about 4x its 1-vCPU time. It is an
// estimate from outside the instance, not a measurement of CPU time.
func (s *scaler) Stats(key string, q autoscale.Query) (autoscale.Stats, error) {
	w := s.window.Snapshot(key, q.Now)
	st := autoscale.Stats{
		Window: q.Window, Arrivals: int(w.Arrivals), Rate: w.ArrivalRate,
		ShortRate:   s.short.Snapshot(key, q.Now).ArrivalRate,
		Completions: int(w.Count - w.Errors), P50: w.P50, P95: w.P95, P99: w.P99,
		InFlight: int(w.InFlight),
	}
	f := s.fn(key)
	if f == nil {
		st.Idle = q.Window
		return st, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneLocked()
	if w.P50 > 0 {
		st.ServiceTime = time.Duration(float64(w.P50) * min(1, f.vcpu))
	}
	capacity := workersFor(f.vcpu) * len(f.replicas)
	st.Queued = f.waiting + max(0, f.inflight-capacity)
	st.InFlight = min(st.InFlight, capacity)
	if f.inflight == 0 && f.waiting == 0 {
		st.Idle = max(0, q.Now.Sub(f.lastUsed))
	}
	return st, nil
}

// Instances lists function key's instances: running ones by pid, starting
// ones not ready.
func (s *scaler) Instances(key string) ([]autoscale.Instance, error) {
	f := s.fn(key)
	if f == nil {
		return nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneLocked()
	out := make([]autoscale.Instance, 0, len(f.replicas)+f.starting)
	for _, r := range f.replicas {
		out = append(out, autoscale.Instance{ID: strconv.Itoa(r.proc.Pid), Node: s.node.Name, VCPUs: f.vcpu, Ready: true})
	}
	for i := 0; i < f.starting; i++ {
		out = append(out, autoscale.Instance{ID: "starting-" + strconv.Itoa(i), Node: s.node.Name, VCPUs: f.vcpu})
	}
	return out, nil
}

// Apply carries out a decision: stops first (draining), then the vertical
// resize, then starts. Every instance of a function gets the same allotment on
// this single node, so a resize applies the largest target to all of them.
func (s *scaler) Apply(key string, d autoscale.Decision) error {
	f := s.fn(key)
	if f == nil {
		return fmt.Errorf("function %q has no live state", key)
	}
	ins, err := s.Instances(key)
	if err != nil {
		return err
	}
	plan := autoscale.Plan(autoscale.State{Function: key, Instances: ins}, d)
	var errs []error
	resize := 0.0
	for _, c := range plan {
		switch c.Op {
		case autoscale.Stop:
			s.stop(f, c.Instance.ID)
		case autoscale.Resize:
			resize = max(resize, c.Instance.VCPUs)
		case autoscale.Start:
			resize = max(resize, c.Instance.VCPUs)
		}
	}
	if resize > 0 {
		if err := s.g.checkTenantCPU(f.spec.Owner, key, resize); err != nil {
			return err
		}
		if _, err := s.g.Resize(key, resize, nil); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range plan {
		if c.Op == autoscale.Start {
			f.mu.Lock()
			f.starting++
			f.mu.Unlock()
			go s.g.startReplica(f)
		}
	}
	return errors.Join(errs...)
}

// stop removes the instance with pid id from routing and drains it.
func (s *scaler) stop(f *function, id string) {
	pid, err := strconv.Atoi(id)
	if err != nil {
		return // a starting instance: it will be stopped once idle
	}
	f.mu.Lock()
	var victim *replica
	for i, r := range f.replicas {
		if r.proc.Pid == pid {
			victim = r
			f.replicas = append(f.replicas[:i], f.replicas[i+1:]...)
			break
		}
	}
	f.broadcastLocked()
	f.mu.Unlock()
	if victim != nil {
		go victim.retire(s.g.cfg.StopGrace)
	}
}

// vcpuOf is the allotment of spec's next instance when no instance of it
// runs: its own, else the default.
func (g *Gateway) vcpuOf(spec registry.Function) float64 {
	if spec.VCPU > 0 {
		return spec.VCPU
	}
	return g.defaultVCPU()
}

// defaultVCPU is the allotment of a function's first instance when its
// deployment sets none: under hpa a replica's size and under static the
// policy's size, as the loop would start them (a request that finds no
// instance starts one outside the loop); otherwise the platform's default,
// from which hybrid and predictive grow. Starting an hpa replica at the
// default made the first scale-up shrink it to the replica size, so
// "doubling" from one replica left capacity where it was.
func (g *Gateway) defaultVCPU() float64 {
	if sp := g.cfg.Autoscale; sp != nil {
		switch sp.Policy {
		case autoscale.HPA:
			return sp.ReplicaVCPUs
		case autoscale.Static:
			return sp.VCPUs
		}
	}
	return g.cfg.DefaultVCPU
}

// loadMode is how instances of spec load their model: the policy's mode (hpa
// copies, as per-replica servers do), or "" for the instance default (mmap).
func (g *Gateway) loadMode(spec registry.Function) string {
	if g.loop == nil {
		return ""
	}
	if sp, ok := g.loop.Spec(fnKey(spec.Owner, spec.Name)); ok {
		return sp.Load
	}
	return ""
}
