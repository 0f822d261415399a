package kernels

import "sync"

// Group is a sync.WaitGroup whose goroutines may panic: the first panic is
// kept and raised again by Wait on the waiting goroutine, where the engine
// recovers it and fails the one request. A panic left on a worker goroutine
// would end the process. The zero value is ready to use.
type Group struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	panicked bool
	value    any
}

// Go runs f on a new goroutine.
func (g *Group) Go(f func()) {
	g.wg.Go(func() {
		defer g.Catch()
		f()
	})
}

// Catch, deferred, keeps the first panic of the calling goroutine (for work
// the waiting goroutine does itself).
func (g *Group) Catch() {
	if r := recover(); r != nil {
		g.mu.Lock()
		if !g.panicked {
			g.panicked, g.value = true, r
		}
		g.mu.Unlock()
	}
}

// Wait returns when every goroutine of g has returned, and then panics with
// the first panic's value if one panicked.
func (g *Group) Wait() {
	g.wg.Wait()
	if g.panicked {
		panic(g.value)
	}
}
