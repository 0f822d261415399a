package metrics

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/spindleml/spindle/internal/window"
)

var t0 = time.Unix(1_700_000_000, 0)

func newStats(t *testing.T) (*Stats, *clocktesting.FakePassiveClock) {
	t.Helper()
	clk := clocktesting.NewFakePassiveClock(t0)
	s, err := NewStats(10*time.Second, time.Second, clk)
	if err != nil {
		t.Fatalf("NewStats: %v", err)
	}
	return s, clk
}

func TestNewStatsConfig(t *testing.T) {
	if _, err := NewStats(10*time.Second, 3*time.Second, nil); !errors.Is(err, window.ErrConfig) {
		t.Errorf("NewStats(10s, 3s) error = %v; want window.ErrConfig", err)
	}
	if s, err := NewStats(time.Second, time.Second, nil); err != nil || s == nil {
		t.Errorf("NewStats(1s, 1s, nil clock) = %v, %v; want Stats on the real clock", s, err)
	}
}

func TestSucceeded(t *testing.T) {
	for code, want := range map[int]bool{200: true, 204: true, 304: true, 199: false, 400: false, 429: false, 499: false, 500: false, 502: false, 504: false} {
		if got := Succeeded(code); got != want {
			t.Errorf("Succeeded(%d) = %v; want %v", code, got, want)
		}
	}
}

func TestStats(t *testing.T) {
	s, clk := newStats(t)
	var r Recorder = s
	// Second 0: three arrive, one answered. Second 1: one more answered, a 504
	// and a 429.
	r.Arrive("resnet")
	r.Arrive("resnet")
	r.Arrive("resnet")
	r.Observe("resnet", 200, 10*time.Millisecond)
	clk.SetTime(t0.Add(1500 * time.Millisecond))
	r.Observe("resnet", 200, 10*time.Millisecond)
	r.Arrive("resnet")
	r.Arrive("resnet")
	r.Observe("resnet", 504, 5*time.Second)
	r.Observe("resnet", 429, time.Microsecond)

	got := s.Snapshot("resnet", t0.Add(2*time.Second))
	want := FunctionStats{
		Snapshot: window.Snapshot{
			Count: 4, Errors: 2, Arrivals: 5, Rate: 2, ArrivalRate: 2.5,
			P50: 10 * time.Millisecond, P95: 10 * time.Millisecond, P99: 10 * time.Millisecond,
			Max: 10 * time.Millisecond, Mean: 10 * time.Millisecond,
		},
		InFlight: 1,
	}
	if got != want {
		t.Errorf("Snapshot:\n got %+v\nwant %+v", got, want)
	}
	if got := s.Snapshot("unknown", t0); got != (FunctionStats{}) {
		t.Errorf("Snapshot of an unknown function = %+v; want zero", got)
	}
	// The window moves on with the now it is given; in-flight does not expire.
	if got := s.Snapshot("resnet", t0.Add(time.Minute)); got.Count != 0 || got.InFlight != 1 {
		t.Errorf("a minute later: Count %d InFlight %d; want 0 and 1", got.Count, got.InFlight)
	}

	r.Arrive("bert")
	all := s.All(t0.Add(2 * time.Second))
	if len(all) != 2 || all["resnet"] != want || all["bert"].InFlight != 1 {
		t.Errorf("All = %+v; want resnet %+v and bert with one in flight", all, want)
	}
	s.Forget("resnet")
	if all := s.All(t0.Add(2 * time.Second)); len(all) != 1 {
		t.Errorf("All after Forget(resnet) = %+v; want only bert", all)
	}
}

func TestFunctionStatsJSON(t *testing.T) {
	s, _ := newStats(t)
	s.Arrive("f")
	s.Arrive("f")
	s.Observe("f", 200, 20*time.Millisecond)
	b, err := json.Marshal(s.Snapshot("f", t0))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	for key, want := range map[string]float64{"p50": 20e6, "p95": 20e6, "p99": 20e6, "in_flight": 1, "count": 1, "arrivals": 2} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("JSON %s: %q = %v (present %v); want %v", b, key, got, ok, want)
		}
	}
}

// TestMulti checks that one call reaches every Recorder, in order.
func TestMulti(t *testing.T) {
	s, _ := newStats(t)
	m := New()
	var calls []string
	r := Multi{s, m, recorderFunc(func(call string) { calls = append(calls, call) })}
	r.Arrive("f")
	r.Observe("f", 200, time.Millisecond)
	if got := s.Snapshot("f", t0); got.Count != 1 || got.Arrivals != 1 || got.InFlight != 0 {
		t.Errorf("Stats after Multi: %+v; want one arrival, one completion", got)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fams {
		if f.GetName() == "spindle_requests_total" && len(f.Metric) == 1 && f.Metric[0].GetCounter().GetValue() == 1 {
			found = true
		}
	}
	if !found {
		t.Error("Metrics after Multi: spindle_requests_total is not 1")
	}
	if len(calls) != 2 || calls[0] != "arrive f" || calls[1] != "observe f 200 1ms" {
		t.Errorf("third recorder saw %q; want arrive then observe", calls)
	}
	Multi(nil).Arrive("f") // records nothing, does not panic
}

// recorderFunc is a Recorder that describes each call to a function.
type recorderFunc func(call string)

func (f recorderFunc) Arrive(function string) { f("arrive " + function) }
func (f recorderFunc) Observe(function string, code int, d time.Duration) {
	f("observe " + function + " " + strconv.Itoa(code) + " " + d.String())
}

func TestStatsConcurrent(t *testing.T) {
	s, _ := newStats(t)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			name := []string{"a", "b"}[g%2]
			for range each {
				s.Arrive(name)
				s.Observe(name, 200, time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			s.All(t0)
		}
	})
	wg.Wait()
	for _, name := range []string{"a", "b"} {
		if got := s.Snapshot(name, t0); got.Count != workers/2*each || got.InFlight != 0 {
			t.Errorf("%s: Count %d InFlight %d; want %d and 0", name, got.Count, got.InFlight, workers/2*each)
		}
	}
}
