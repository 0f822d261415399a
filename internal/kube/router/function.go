package router

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/window"
)

// failedFor is how long a pod that could not be reached gets no requests,
// unless the watch replaces it sooner.
const failedFor = 2 * time.Second

// endpoint is one Ready pod of a function.
type endpoint struct {
	pod      string
	url      *url.URL
	vcpu     float64      // granted CPU
	inflight atomic.Int64 // requests sent or about to be
	failedAt atomic.Int64 // unix nanoseconds of the last failure to reach it
}

func (e *endpoint) fail(now time.Time) { e.failedAt.Store(now.UnixNano()) }

func (e *endpoint) usable(now time.Time) bool {
	return now.UnixNano()-e.failedAt.Load() >= int64(failedFor)
}

// function is the router's state of one InferenceFunction: its Ready pods,
// the requests waiting for one, and its policy windows.
type function struct {
	key string // namespace/name

	mu        sync.Mutex
	tenant    string // who may call it, when the gateway has keys
	specErr   error
	endpoints []*endpoint
	// changed is closed (and replaced) when endpoints change or the
	// function is removed, waking every waiter.
	changed chan struct{}
	removed bool
	// waits holds when each waiting request began waiting, by ticket.
	waits    map[int64]time.Time
	ticket   int64
	inflight int
	lastUsed time.Time
	lastWake time.Time
	turn     int // round robin among equally loaded pods
	// win and short are the policy's Window and PanicWindow (the Window
	// again when the policy has none), recreated when they change.
	win, short *window.Window
}

func newFunction(key string, now time.Time) *function {
	return &function{key: key, changed: make(chan struct{}), waits: map[int64]time.Time{}, lastUsed: now}
}

// bucket is a window's bucket: about a tenth of it, at least 100 ms, and a
// divisor of it.
func bucket(w time.Duration) time.Duration {
	b := max(w/10, 100*time.Millisecond)
	return w / (w / b)
}

// update takes the function's policy and Ready pods from a reconcile; an
// endpoint that stays keeps its counters.
func (f *function) update(tenant string, spec autoscale.Spec, specErr error, eps []*endpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tenant, f.specErr = tenant, specErr
	if specErr == nil {
		short := spec.PanicWindow
		if short <= 0 {
			short = spec.Window
		}
		if f.win == nil || f.win.Window() != spec.Window {
			f.win = mustWindow(spec.Window)
		}
		if f.short == nil || f.short.Window() != short {
			f.short = mustWindow(short)
		}
	}
	old := map[string]*endpoint{}
	for _, e := range f.endpoints {
		old[e.pod+" "+e.url.Host] = e
	}
	for i, e := range eps {
		if o := old[e.pod+" "+e.url.Host]; o != nil {
			o.vcpu = e.vcpu
			eps[i] = o
		}
	}
	f.endpoints = eps
	f.broadcastLocked()
}

func mustWindow(w time.Duration) *window.Window {
	win, err := window.New(w, bucket(w))
	if err != nil {
		// Spec.Validate bounds the windows; a bad one here is a bug.
		panic(fmt.Sprintf("router: window %v: %v", w, err))
	}
	return win
}

func (f *function) owner() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tenant
}

func (f *function) invalid() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.specErr
}

func (f *function) remove() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = true
	f.broadcastLocked()
}

func (f *function) broadcastLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *function) arrive(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastUsed = now
	if f.win != nil {
		f.win.Arrive(now)
		f.short.Arrive(now)
	}
}

func (f *function) record(now time.Time, d time.Duration, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastUsed = now
	if f.win != nil {
		f.win.Record(now, d, ok)
		f.short.Record(now, d, ok)
	}
}

// wakeDue reports whether a wake is due now (the last one was at least every
// ago) and, if so, counts it as done.
func (f *function) wakeDue(now time.Time, every time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.lastWake) < every {
		return false
	}
	f.lastWake = now
	return true
}

// acquire returns the least-loaded usable endpoint, waiting for one (and
// calling wake, which throttles itself) while there is none. Waiting is
// bounded by maxWaiting (ErrQueueFull) and by ctx. The caller must call
// release. cold is how long the request waited while the function had no
// Ready pod at all (a start from zero, which more CPU would not shorten).
func (f *function) acquire(ctx context.Context, maxWaiting int, wake func()) (ep *endpoint, cold time.Duration, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if f.removed {
			return nil, cold, errRemoved
		}
		now := time.Now()
		// The least loaded; among equals, the next in turn (sequential
		// requests, each finding every pod idle, are spread too).
		var best *endpoint
		f.turn++
		for i := range f.endpoints {
			e := f.endpoints[(f.turn+i)%len(f.endpoints)]
			if e.usable(now) && (best == nil || e.inflight.Load() < best.inflight.Load()) {
				best = e
			}
		}
		if best != nil {
			best.inflight.Add(1)
			f.inflight++
			return best, cold, nil
		}
		if len(f.waits) >= maxWaiting {
			return nil, cold, fmt.Errorf("function %s: %w (%d waiting)", f.key, ErrQueueFull, len(f.waits))
		}
		f.ticket++
		t := f.ticket
		f.waits[t] = now
		ch := f.changed
		zero := len(f.endpoints) == 0
		f.mu.Unlock()
		// Counted as waiting before the wake, so that whoever reads the
		// statistics after the annotation changes sees the queue.
		wake()
		retry := time.NewTimer(failedFor / 4)
		select {
		case <-ch:
		case <-retry.C: // a failed pod may be usable again; wake again if due
		case <-ctx.Done():
			err = ctx.Err()
		}
		retry.Stop()
		f.mu.Lock()
		delete(f.waits, t)
		if zero {
			cold += time.Since(now)
		}
		if err != nil {
			return nil, cold, err
		}
	}
}

func (f *function) release(e *endpoint) {
	e.inflight.Add(-1)
	f.mu.Lock()
	f.inflight--
	f.lastUsed = time.Now()
	f.mu.Unlock()
}

// stats is the function's autoscale.Stats at now, as the gateway on one
// node reports them: ServiceTime is estimated from outside as the median
// latency scaled by a pod's CPU (min(1, vCPU)); the queue is the requests
// waiting here plus those sent beyond the pods' workers.
func (f *function) stats(now time.Time) (autoscale.Stats, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.win == nil {
		return autoscale.Stats{}, false
	}
	w, s := f.win.Snapshot(now), f.short.Snapshot(now)
	st := autoscale.Stats{
		Window: f.win.Window(), Arrivals: int(w.Arrivals), Rate: w.ArrivalRate, ShortRate: s.ArrivalRate,
		Completions: int(w.Count - w.Errors), P50: w.P50, P95: w.P95, P99: w.P99,
	}
	capacity, vcpus := 0, 0.0
	for _, e := range f.endpoints {
		capacity += api.WorkersFor(e.vcpu)
		vcpus += e.vcpu
	}
	if n := len(f.endpoints); n > 0 && w.P50 > 0 {
		st.ServiceTime = time.Duration(float64(w.P50) * min(1, vcpus/float64(n)))
	}
	st.InFlight = min(f.inflight, capacity)
	st.Queued = len(f.waits) + max(0, f.inflight-capacity)
	for _, at := range f.waits {
		st.QueueAge = max(st.QueueAge, now.Sub(at))
	}
	if f.inflight == 0 && len(f.waits) == 0 {
		st.Idle = max(0, now.Sub(f.lastUsed))
	}
	return st, true
}
