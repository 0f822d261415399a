package kernels

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Parallel calls fn(i) once for every i in [0, parts), on the calling
// goroutine and on the process's kernel workers, and returns when every call
// has returned. A panic in any call is raised again on the caller once every
// call has stopped (the engine recovers it there and fails the one request; a
// panic left on a worker goroutine would end the process).
//
// Why workers and not a goroutine per part: waking a parked goroutine on an
// idle P costs a futex wake and tens of microseconds, as long as a whole
// MiniLM matrix multiply at 16 tokens, and one request runs hundreds of
// parallel regions. Workers spin for a while after their last part (as ONNX
// Runtime's thread pool does), so the next region of the same request starts
// on them within a microsecond; after spinWindow without work they park and
// cost nothing. The caller always works through the parts itself, so a
// region finishes even when every worker is busy with another request's.
func Parallel(parts int, fn func(i int)) {
	if parts <= 0 {
		return
	}
	if parts == 1 {
		fn(0)
		return
	}
	t := &task{fn: fn, parts: int32(parts)}
	t.left.Store(int32(parts))
	workers.post(t, parts-1)
	t.work()
	for spins := 0; t.left.Load() > 0; spins++ {
		if spins&63 == 63 {
			runtime.Gosched()
		}
	}
	if t.panicked {
		panic(t.value)
	}
}

// spinWindow is how long a worker keeps looking for work after its last part
// before it parks: longer than the gap between two parallel regions of one
// request (a serial op, a layer's bookkeeping), far shorter than a request.
const spinWindow = 200 * time.Microsecond

// task is one Parallel call: parts calls of fn, claimed in order through
// next, counted down through left as they finish.
type task struct {
	fn    func(int)
	parts int32
	next  atomic.Int32 // next part to claim; >= parts once all are claimed
	left  atomic.Int32 // parts not yet finished

	mu       sync.Mutex
	panicked bool
	value    any
}

// work runs unclaimed parts of t until none is left.
func (t *task) work() {
	for {
		i := t.next.Add(1) - 1
		if i >= t.parts {
			return
		}
		if i == t.parts-1 {
			workers.remove(t) // every part is claimed; nobody needs to find t
		}
		t.run(int(i))
	}
}

// run calls part i, keeping the first panic for the caller.
func (t *task) run(i int) {
	defer t.left.Add(-1)
	defer func() {
		if r := recover(); r != nil {
			t.mu.Lock()
			if !t.panicked {
				t.panicked, t.value = true, r
			}
			t.mu.Unlock()
		}
	}()
	t.fn(i)
}

// pool is the process's kernel workers and the tasks they may help with.
type pool struct {
	mu       sync.Mutex
	wake     *sync.Cond
	tasks    []*task      // tasks with parts perhaps still unclaimed
	open     atomic.Int32 // len(tasks), read by spinning workers without mu
	started  int          // workers started so far
	sleeping int          // workers parked on wake
}

var workers = newPool()

func newPool() *pool {
	p := &pool{}
	p.wake = sync.NewCond(&p.mu)
	return p
}

// post makes t visible to the workers, starting workers up to helpers (and
// up to GOMAXPROCS-1: more would only take turns on the same Ps) and waking
// parked ones.
func (p *pool) post(t *task, helpers int) {
	p.mu.Lock()
	p.tasks = append(p.tasks, t)
	p.open.Store(int32(len(p.tasks)))
	for want := min(helpers, runtime.GOMAXPROCS(0)-1); p.started < want; p.started++ {
		go p.loop()
	}
	if p.sleeping > 0 {
		p.wake.Broadcast()
	}
	p.mu.Unlock()
}

// remove drops t from the open tasks.
func (p *pool) remove(t *task) {
	p.mu.Lock()
	if i := slices.Index(p.tasks, t); i >= 0 {
		p.tasks = slices.Delete(p.tasks, i, i+1) // clears the vacated slot
	}
	p.open.Store(int32(len(p.tasks)))
	p.mu.Unlock()
}

// first returns the oldest open task, or nil.
func (p *pool) first() *task {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.tasks) == 0 {
		return nil
	}
	return p.tasks[0]
}

// loop is one worker: help with open tasks, spin for spinWindow after the
// last one, then park until post wakes it.
func (p *pool) loop() {
	for {
		deadline := time.Now().Add(spinWindow)
		for spins := 0; ; spins++ {
			if p.open.Load() > 0 {
				if t := p.first(); t != nil {
					t.work()
					deadline = time.Now().Add(spinWindow)
					continue
				}
			}
			if spins&255 == 255 {
				if time.Now().After(deadline) {
					break
				}
				runtime.Gosched()
			}
		}
		p.mu.Lock()
		for len(p.tasks) == 0 {
			p.sleeping++
			p.wake.Wait()
			p.sleeping--
		}
		p.mu.Unlock()
	}
}
