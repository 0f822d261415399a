package loadgen

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when a test calls Advance. BlockUntil
// lets the test wait until the code under test is parked on the clock, so
// every step happens at a known virtual time.
type fakeClock struct {
	mu      sync.Mutex
	cond    *sync.Cond
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

var _ Clock = (*fakeClock)(nil)

func newFakeClock() *fakeClock {
	f := &fakeClock{now: time.Date(2023, 6, 26, 0, 0, 0, 0, time.UTC)}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, fakeWaiter{at: f.now.Add(d), ch: ch})
	f.cond.Broadcast()
	return ch
}

// Advance moves the clock by d and fires every waiter that is due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.at.After(f.now) {
			w.ch <- f.now
		} else {
			kept = append(kept, w)
		}
	}
	f.waiters = kept
}

// BlockUntil waits until exactly n waiters are parked on the clock, failing
// the test if that does not happen within 10 s of real time.
func (f *fakeClock) BlockUntil(t *testing.T, n int) {
	t.Helper()
	timedOut := false
	timer := time.AfterFunc(10*time.Second, func() {
		f.mu.Lock()
		timedOut = true
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer timer.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.waiters) != n && !timedOut {
		f.cond.Wait()
	}
	if timedOut {
		t.Fatalf("fake clock: %d waiters, want %d", len(f.waiters), n)
	}
}
