package autoscale

import (
	"sync"
	"time"
)

// Clock is the time source of the Loop: the real clock in the platform, a
// FakeClock in tests.
type Clock interface {
	Now() time.Time
	NewTicker(d time.Duration) Ticker
}

// Ticker delivers ticks like time.Ticker: one buffered tick, extra ticks
// dropped while it is full.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTicker wraps time.NewTicker.
func (RealClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// FakeClock is a clock for tests that moves only when Step is called. It is
// safe for concurrent use.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
	changed chan struct{} // closed and replaced when tickers are added
}

// NewFakeClock returns a fake clock showing start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTicker returns a ticker that fires when Step passes its next time.
func (c *FakeClock) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("autoscale: non-positive interval for FakeClock.NewTicker")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{clock: c, period: d, next: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.tickers = append(c.tickers, t)
	close(c.changed)
	c.changed = make(chan struct{})
	return t
}

// Step moves the clock forward by d, firing every ticker whose time came.
func (c *FakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.tickers {
		if t.stopped {
			continue
		}
		for !t.next.After(c.now) {
			select {
			case t.ch <- t.next:
			default: // a full channel drops the tick, as time.Ticker does
			}
			t.next = t.next.Add(t.period)
		}
	}
}

// Tickers returns the number of live tickers.
func (c *FakeClock) Tickers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.tickers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// WaitForTickers blocks until at least n tickers are live or done is closed,
// so a test can step the clock only after the code under test has started
// its ticker. It reports whether the tickers are there.
func (c *FakeClock) WaitForTickers(n int, done <-chan struct{}) bool {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if c.Tickers() >= n {
			return true
		}
		select {
		case <-ch:
		case <-done:
			return false
		}
	}
}

type fakeTicker struct {
	clock   *FakeClock
	period  time.Duration
	next    time.Time
	ch      chan time.Time
	stopped bool
}

func (t *fakeTicker) C() <-chan time.Time { return t.ch }

func (t *fakeTicker) Stop() {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	t.stopped = true
}
