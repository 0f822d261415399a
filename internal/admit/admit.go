package admit

import (
	"context"
	"errors"
	"sync"
)

// ErrQueueFull is returned by Do when the running and waiting slots are all taken.
var ErrQueueFull = errors.New("admission queue is full")

// Limiter admits at most Concurrency callers at once and lets at most Queue more
// wait. The zero value is not usable; call New.
type Limiter struct {
	mu          sync.Mutex
	concurrency int
	queue       int
	running     int
	waiters     []chan struct{} // FIFO; a closed channel means "admitted"
}

// New returns a Limiter that runs up to concurrency calls at once and queues up to
// queue more. concurrency < 1 is treated as 1; queue < 0 as 0.
func New(concurrency, queue int) *Limiter {
	l := &Limiter{}
	l.Resize(concurrency, queue)
	return l
}

// Stats is a snapshot of a Limiter.
type Stats struct {
	Concurrency int `json:"concurrency"`
	Queue       int `json:"queue_capacity"`
	Running     int `json:"running"`
	Waiting     int `json:"waiting"`
}

// Stats returns the limiter's current limits and occupancy.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Concurrency: l.concurrency, Queue: l.queue, Running: l.running, Waiting: len(l.waiters)}
}

// Resize changes both limits. Raising concurrency admits waiters at once; lowering
// it lets running calls finish and admits no one until running drops below it.
// Waiters beyond a lowered queue keep waiting: nobody already accepted is dropped.
func (l *Limiter) Resize(concurrency, queue int) {
	if concurrency < 1 {
		concurrency = 1
	}
	if queue < 0 {
		queue = 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.concurrency, l.queue = concurrency, queue
	l.admitLocked()
}

// admitLocked hands free slots to waiters in arrival order.
func (l *Limiter) admitLocked() {
	for l.running < l.concurrency && len(l.waiters) > 0 {
		w := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.running++
		close(w)
	}
}

// Acquire takes a slot, waiting for one if the queue has room. It returns
// ErrQueueFull at once when it does not, and ctx's error if ctx ends first. On
// success the caller must call Release exactly once.
func (l *Limiter) Acquire(ctx context.Context) error {
	l.mu.Lock()
	if l.running < l.concurrency && len(l.waiters) == 0 {
		l.running++
		l.mu.Unlock()
		return nil
	}
	if len(l.waiters) >= l.queue {
		l.mu.Unlock()
		return ErrQueueFull
	}
	w := make(chan struct{})
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()

	select {
	case <-w:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, x := range l.waiters {
			if x == w {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				return ctx.Err()
			}
		}
		// Admitted just as ctx ended: give the slot back.
		l.running--
		l.admitLocked()
		return ctx.Err()
	}
}

// Release returns a slot taken by Acquire.
func (l *Limiter) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running <= 0 {
		panic("admit: Release without Acquire")
	}
	l.running--
	l.admitLocked()
}

// Do runs fn once a slot is free (see Acquire for the errors it returns first).
func (l *Limiter) Do(ctx context.Context, fn func() error) error {
	if err := l.Acquire(ctx); err != nil {
		return err
	}
	defer l.Release()
	return fn()
}
