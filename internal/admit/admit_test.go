package admit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLimiterRejectsWhenFull(t *testing.T) {
	l := New(1, 1)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- l.Acquire(context.Background()) }()
	waitFor(t, l, Stats{Concurrency: 1, Queue: 1, Running: 1, Waiting: 1})
	if err := l.Acquire(context.Background()); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third Acquire: got %v, want ErrQueueFull", err)
	}
	l.Release()
	if err := <-got; err != nil {
		t.Fatalf("queued Acquire: %v", err)
	}
	l.Release()
	if s := l.Stats(); s.Running != 0 || s.Waiting != 0 {
		t.Fatalf("after releases: %+v", s)
	}
}

func TestLimiterCancelWhileWaiting(t *testing.T) {
	l := New(1, 4)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { got <- l.Acquire(ctx) }()
	waitFor(t, l, Stats{Concurrency: 1, Queue: 4, Running: 1, Waiting: 1})
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if s := l.Stats(); s.Waiting != 0 || s.Running != 1 {
		t.Fatalf("after cancel: %+v", s)
	}
}

func TestLimiterResizeAdmitsWaiters(t *testing.T) {
	l := New(1, 8)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var admitted atomic.Int32
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Acquire(context.Background()); err == nil {
				admitted.Add(1)
			}
		}()
	}
	waitFor(t, l, Stats{Concurrency: 1, Queue: 8, Running: 1, Waiting: 3})
	l.Resize(4, 8)
	wg.Wait()
	if got := admitted.Load(); got != 3 {
		t.Fatalf("admitted %d after resize, want 3", got)
	}
	if s := l.Stats(); s.Running != 4 {
		t.Fatalf("running = %d, want 4", s.Running)
	}
	// Lowering concurrency below running keeps running work and admits nobody new.
	l.Resize(2, 0)
	for range 3 {
		l.Release()
	}
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire after shrink to 2 with 1 running: %v", err)
	}
	if err := l.Acquire(context.Background()); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("got %v, want ErrQueueFull (2 running, queue 0)", err)
	}
}

func TestLimiterNeverExceedsConcurrency(t *testing.T) {
	l := New(3, 1000)
	var cur, peak atomic.Int32
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.Do(context.Background(), func() error {
				n := cur.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				cur.Add(-1)
				return nil
			})
			if err != nil {
				t.Errorf("Do %d: %v", i, err)
			}
			if i == 100 {
				l.Resize(5, 1000)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 5 || p < 1 {
		t.Fatalf("peak concurrency %d, want 1..5", p)
	}
}

// waitFor blocks until the limiter reaches want; goroutines enqueue
// asynchronously, so the test polls the limiter's own state rather than sleeping.
func waitFor(t *testing.T, l *Limiter, want Stats) {
	t.Helper()
	for i := 0; i < 1e7; i++ {
		if l.Stats() == want {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("limiter never reached %+v (now %+v)", want, l.Stats())
}
