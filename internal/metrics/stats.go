package metrics

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/spindleml/spindle/internal/window"
)

// Stats keeps a sliding window of request statistics per function, for the
// autoscaler. It is a Recorder: the clock it is given stamps each Arrive and
// Observe, while Snapshot takes now from its caller, as the autoscaler's pure
// decision does. Its methods are safe for concurrent use. Create it with
// NewStats; the zero value is not usable.
type Stats struct {
	clock          clock.PassiveClock
	window, bucket time.Duration

	mu  sync.RWMutex
	fns map[string]*functionStats
}

type functionStats struct {
	w        *window.Window
	inFlight atomic.Int64
}

// FunctionStats is one function's statistics at an instant: its window
// snapshot (fields inline in JSON) and the requests in flight.
type FunctionStats struct {
	window.Snapshot
	// InFlight is how many requests arrived and are not answered yet, queued
	// or running.
	InFlight int64 `json:"in_flight"`
}

// NewStats returns Stats whose windows cover the last win in buckets of
// bucket (see window.New for the rules); clk stamps the requests, nil means
// the real clock.
func NewStats(win, bucket time.Duration, clk clock.PassiveClock) (*Stats, error) {
	if _, err := window.New(win, bucket); err != nil {
		return nil, fmt.Errorf("metrics: stats: %w", err)
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Stats{clock: clk, window: win, bucket: bucket, fns: map[string]*functionStats{}}, nil
}

// get returns function's statistics, creating them on first use.
func (s *Stats) get(function string) *functionStats {
	s.mu.RLock()
	f := s.fns[function]
	s.mu.RUnlock()
	if f != nil {
		return f
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f = s.fns[function]; f == nil {
		w, err := window.New(s.window, s.bucket)
		if err != nil {
			panic("metrics: window sizes checked by NewStats: " + err.Error())
		}
		f = &functionStats{w: w}
		s.fns[function] = f
	}
	return f
}

// Arrive counts a request for function arriving now.
func (s *Stats) Arrive(function string) {
	f := s.get(function)
	f.inFlight.Add(1)
	f.w.Arrive(s.clock.Now())
}

// Observe counts a request for function answered now with code after d;
// Succeeded(code) decides whether d enters the latency statistics.
func (s *Stats) Observe(function string, code int, d time.Duration) {
	f := s.get(function)
	f.inFlight.Add(-1)
	f.w.Record(s.clock.Now(), d, Succeeded(code))
}

// Snapshot returns function's statistics over the window ending at now. A
// function with no requests yet, or unknown, has zero statistics.
func (s *Stats) Snapshot(function string, now time.Time) FunctionStats {
	s.mu.RLock()
	f := s.fns[function]
	s.mu.RUnlock()
	if f == nil {
		return FunctionStats{}
	}
	return FunctionStats{Snapshot: f.w.Snapshot(now), InFlight: f.inFlight.Load()}
}

// All returns the statistics of every function seen, over the window ending at
// now, for an admin endpoint or a scaling loop over all functions.
func (s *Stats) All(now time.Time) map[string]FunctionStats {
	s.mu.RLock()
	fns := make(map[string]*functionStats, len(s.fns))
	for name, f := range s.fns {
		fns[name] = f
	}
	s.mu.RUnlock()
	out := make(map[string]FunctionStats, len(fns))
	for name, f := range fns {
		out[name] = FunctionStats{Snapshot: f.w.Snapshot(now), InFlight: f.inFlight.Load()}
	}
	return out
}

// Forget drops function's statistics, for when it is removed.
func (s *Stats) Forget(function string) {
	s.mu.Lock()
	delete(s.fns, function)
	s.mu.Unlock()
}
