package autoscale

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Query asks a StatsSource for one function's stats as of Now.
type Query struct {
	Now time.Time
	// Window is the span for counts, rates and percentiles; ShortWindow the
	// span for Stats.ShortRate (0 when the policy reads none).
	Window, ShortWindow time.Duration
}

// StatsSource reports what was observed of a function: the gateway's
// latency and queue metrics on the platform, the simulated window in the
// simulator.
type StatsSource interface {
	Stats(fn string, q Query) (Stats, error)
}

// Actuator runs instances: it lists a function's instances (oldest first,
// stopped ones left out) and applies decisions, resizing, starting and
// stopping instances. The Loop does not keep the slice Instances returns past
// the Apply of the same tick, so an implementation may reuse it.
type Actuator interface {
	Instances(fn string) ([]Instance, error)
	Apply(fn string, d Decision) error
}

// Record is one decision as the Loop made it.
type Record struct {
	Time     time.Time `json:"time"`
	Stats    Stats     `json:"stats"`
	Decision Decision  `json:"decision"`
	// Applied is true when the decision changed something and the actuator
	// accepted it.
	Applied bool `json:"applied"`
	// Err is why stats could not be read or the decision not applied.
	Err string `json:"error,omitempty"`
}

// LoopConfig configures a Loop. Stats, Actuator and Nodes are required.
type LoopConfig struct {
	// Clock drives Run; nil means RealClock.
	Clock    Clock
	Stats    StatsSource
	Actuator Actuator
	Nodes    Nodes
	// Resolution is how often Run ticks; a function is decided on at the
	// first tick at or after its interval has passed. 0 means 1 s.
	Resolution time.Duration
	// History is how many records are kept per function; 0 means 32.
	History int
	// Observe, if set, is called with every record, after it is kept: a
	// hook for logs and metrics. It must not call back into the Loop's Tick.
	Observe func(fn string, r Record)
}

// Loop decides on every function when its interval has passed and applies
// the decisions. It is safe for concurrent use.
type Loop struct {
	cfg    LoopConfig
	tickMu sync.Mutex    // one Tick at a time
	wake   chan struct{} // Wake asks Run for a tick now

	mu    sync.Mutex
	fns   map[string]*fnLoop
	names []string // sorted, for a deterministic order
}

type fnLoop struct {
	spec Spec
	mem  Memory
	due  time.Time
	// woken is set by a Wake that arrives while a tick decides on this
	// function, so that the tick's record does not push the due time back
	// and lose the wake.
	woken bool
	hist  []Record // ring buffer
	next  int      // where the next record goes
	full  bool
}

// NewLoop checks the configuration and returns a loop with no functions.
func NewLoop(cfg LoopConfig) (*Loop, error) {
	switch {
	case cfg.Stats == nil:
		return nil, errors.New("autoscale: loop: stats source is nil")
	case cfg.Actuator == nil:
		return nil, errors.New("autoscale: loop: actuator is nil")
	case cfg.Nodes == nil:
		return nil, errors.New("autoscale: loop: nodes is nil")
	case cfg.Resolution < 0:
		return nil, fmt.Errorf("autoscale: loop: resolution: must be >= 0, got %v", cfg.Resolution)
	case cfg.History < 0:
		return nil, fmt.Errorf("autoscale: loop: history: must be >= 0, got %d", cfg.History)
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Resolution == 0 {
		cfg.Resolution = time.Second
	}
	if cfg.History == 0 {
		cfg.History = 32
	}
	return &Loop{cfg: cfg, fns: map[string]*fnLoop{}, wake: make(chan struct{}, 1)}, nil
}

// Set adds a function or changes its spec; what its policy remembers is
// kept. A function is first decided on at the next Tick.
func (l *Loop) Set(fn string, spec Spec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("function %q: %w", fn, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.fns[fn]; ok {
		f.spec = spec
		return nil
	}
	l.fns[fn] = &fnLoop{spec: spec, hist: make([]Record, l.cfg.History)}
	i := sort.SearchStrings(l.names, fn)
	l.names = append(l.names, "")
	copy(l.names[i+1:], l.names[i:])
	l.names[i] = fn
	return nil
}

// Restore sets what a function's policy remembers, for a platform that keeps
// it elsewhere (the Kubernetes operator keeps it in the function's status, so
// that a restarted operator goes on where it stopped). The function must have
// been Set.
func (l *Loop) Restore(fn string, mem Memory) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fns[fn]
	if !ok {
		return fmt.Errorf("autoscale: restore: function %q: not set", fn)
	}
	f.mem = mem
	return nil
}

// Remove forgets a function and its history.
func (l *Loop) Remove(fn string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.fns[fn]; !ok {
		return
	}
	delete(l.fns, fn)
	i := sort.SearchStrings(l.names, fn)
	l.names = append(l.names[:i], l.names[i+1:]...)
}

// Spec returns a function's spec.
func (l *Loop) Spec(fn string) (Spec, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fns[fn]
	if !ok {
		return Spec{}, false
	}
	return f.spec, true
}

// Wake makes a function due at once, whatever its interval, and has Run
// tick now rather than at its next tick: the gateway calls it when a request
// finds no instance, so that scaling from zero waits for neither.
func (l *Loop) Wake(fn string) {
	l.mu.Lock()
	f, ok := l.fns[fn]
	if ok {
		f.due, f.woken = time.Time{}, true
	}
	l.mu.Unlock()
	if ok {
		select {
		case l.wake <- struct{}{}:
		default: // a tick is already asked for
		}
	}
}

// History returns a function's last records, oldest first; nil for an
// unknown function.
func (l *Loop) History(fn string) []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fns[fn]
	if !ok {
		return nil
	}
	var out []Record
	if f.full {
		out = append(out, f.hist[f.next:]...)
	}
	return append(out, f.hist[:f.next]...)
}

// Run ticks every Resolution, and whenever Wake asks, until ctx ends, and
// returns ctx's error. Errors of single functions are in their records, not
// returned.
func (l *Loop) Run(ctx context.Context) error {
	t := l.cfg.Clock.NewTicker(l.cfg.Resolution)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
			l.Tick(l.cfg.Clock.Now())
		case <-l.wake:
			l.Tick(l.cfg.Clock.Now())
		}
	}
}

type dueFn struct {
	name string
	spec Spec
	mem  Memory
}

// Tick decides on every function whose interval has passed as of now, in
// name order, and applies the decisions that change something. It reads the
// nodes once; capacity a decision takes or frees is accounted for before the
// next function is decided on. It returns the errors of reading stats or
// instances and of applying, also kept in the functions' records.
func (l *Loop) Tick(now time.Time) error {
	l.tickMu.Lock()
	defer l.tickMu.Unlock()
	l.mu.Lock()
	var due []dueFn
	for _, name := range l.names {
		f := l.fns[name]
		if !now.Before(f.due) {
			due = append(due, dueFn{name, f.spec, f.mem})
			f.woken = false
		}
	}
	l.mu.Unlock()
	if len(due) == 0 {
		return nil
	}

	var errs []error
	nodes := l.cfg.Nodes.Nodes()
	index := make(map[string]int, len(nodes))
	for i := range nodes {
		index[nodes[i].Name] = i
	}

	for _, f := range due {
		rec := Record{Time: now}
		mem := f.mem
		ins, err := l.cfg.Actuator.Instances(f.name)
		if err != nil {
			err = fmt.Errorf("function %q: instances: %w", f.name, err)
		} else if rec.Stats, err = l.cfg.Stats.Stats(f.name, Query{Now: now, Window: f.spec.Window, ShortWindow: f.spec.PanicWindow}); err != nil {
			err = fmt.Errorf("function %q: stats: %w", f.name, err)
		}
		if err != nil {
			rec.Decision = Decision{Reason: "no stats or instances", Memory: mem}
		} else {
			st := State{Function: f.name, Instances: ins, Nodes: nodes, Memory: mem}
			d := Decide(now, rec.Stats, st, f.spec)
			rec.Decision = d
			if d.Changed() {
				plan := Plan(st, d)
				if aerr := l.cfg.Actuator.Apply(f.name, d); aerr != nil {
					err = fmt.Errorf("function %q: apply %s: %w", f.name, d.Action, aerr)
				} else {
					rec.Applied = true
					mem = d.Memory
					for _, c := range plan {
						i, ok := index[c.Instance.Node]
						if !ok {
							continue
						}
						switch c.Op {
						case Start:
							nodes[i].Used += c.Instance.VCPUs
						case Stop:
							nodes[i].Used -= c.From
						case Resize:
							nodes[i].Used += c.Instance.VCPUs - c.From
						}
					}
				}
			} else if d.Valid {
				mem = d.Memory
			}
		}
		if err != nil {
			rec.Err = err.Error()
			errs = append(errs, err)
		}
		l.record(f.name, now, mem, rec)
		if l.cfg.Observe != nil {
			l.cfg.Observe(f.name, rec)
		}
	}
	return errors.Join(errs...)
}

// record stores a decision's outcome, unless the function was removed
// meanwhile.
func (l *Loop) record(name string, now time.Time, mem Memory, rec Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fns[name]
	if !ok {
		return
	}
	f.mem = mem
	f.due = now.Add(f.spec.Interval)
	if f.woken {
		f.due, f.woken = time.Time{}, false
	}
	f.hist[f.next] = rec
	f.next++
	if f.next == len(f.hist) {
		f.next, f.full = 0, true
	}
}
