package autoscale

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStats is a StatsSource whose answers the test sets.
type fakeStats struct {
	mu    sync.Mutex
	stats map[string]Stats
	err   error
	asked []Query
}

func (f *fakeStats) set(fn string, s Stats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats[fn] = s
}

func (f *fakeStats) Stats(fn string, q Query) (Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, q)
	return f.stats[fn], f.err
}

// fakeActuator is an Actuator that records decisions and keeps instances
// in memory, ready at once.
type fakeActuator struct {
	mu        sync.Mutex
	instances map[string][]Instance
	applied   []string
	err       error
	nextID    int
	notify    chan string // receives the function name after each Apply, if set
}

func newFakeActuator() *fakeActuator {
	return &fakeActuator{instances: map[string][]Instance{}}
}

func (f *fakeActuator) Instances(fn string) ([]Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Instance(nil), f.instances[fn]...), nil
}

func (f *fakeActuator) Apply(fn string, d Decision) error {
	f.mu.Lock()
	defer func() {
		f.mu.Unlock()
		if f.notify != nil {
			f.notify <- fn
		}
	}()
	if f.err != nil {
		return f.err
	}
	var out []Instance
	for _, in := range d.Instances {
		if in.ID == "" {
			f.nextID++
			in.ID = fmt.Sprintf("i%d", f.nextID)
		}
		in.Ready = true
		out = append(out, in)
	}
	f.instances[fn] = out
	f.applied = append(f.applied, fmt.Sprintf("%s %s %g", fn, d.Action, d.VCPUs()))
	return nil
}

// fakeNodes are nodes whose use is what the fakeActuator runs on them.
type fakeNodes struct {
	act   *fakeActuator
	nodes []Node
}

func (f fakeNodes) Nodes() []Node {
	f.act.mu.Lock()
	defer f.act.mu.Unlock()
	out := append([]Node(nil), f.nodes...)
	for _, ins := range f.act.instances {
		for _, in := range ins {
			for i := range out {
				if out[i].Name == in.Node {
					out[i].Used += in.VCPUs
				}
			}
		}
	}
	return out
}

func newTestLoop(t *testing.T, n StaticNodes, history int) (*Loop, *fakeStats, *fakeActuator) {
	t.Helper()
	st := &fakeStats{stats: map[string]Stats{}}
	act := newFakeActuator()
	l, err := NewLoop(LoopConfig{Stats: st, Actuator: act, Nodes: fakeNodes{act, n}, History: history})
	if err != nil {
		t.Fatal(err)
	}
	return l, st, act
}

func TestLoopTick(t *testing.T) {
	l, st, act := newTestLoop(t, StaticNodes{{Name: "n0", CPUs: 64}}, 4)
	spec := mustSpec(t, Hybrid, "max-vcpus=56")
	if err := l.Set("bert", spec); err != nil {
		t.Fatal(err)
	}
	st.set("bert", Stats{Window: spec.Window, Queued: 3, QueueAge: time.Second})
	now := t0
	for i := range 6 {
		if err := l.Tick(now); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
		if i == 0 {
			st.set("bert", slow)
		}
		now = now.Add(time.Second) // resolution 1 s, interval 5 s
	}
	// Decided at t0 (from zero) and t0+5s (double); not in between.
	if want := "[bert from-zero 1 bert scale-up 2]"; fmt.Sprint(act.applied) != want {
		t.Errorf("applied %v, want %s", act.applied, want)
	}
	h := l.History("bert")
	if len(h) != 2 || !h[0].Time.Equal(t0) || !h[1].Time.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("history %+v", h)
	}
	if !h[1].Applied || !strings.Contains(h[1].Decision.Reason, "double vCPUs 1 -> 2") {
		t.Errorf("record %+v", h[1])
	}
	if q := st.asked[0]; q.Window != spec.Window || !q.Now.Equal(t0) {
		t.Errorf("query %+v", q)
	}
	// The ring keeps the last 4, oldest first.
	for range 5 {
		now = now.Add(5 * time.Second)
		l.Tick(now)
	}
	h = l.History("bert")
	if len(h) != 4 || !h[3].Time.Equal(now) || !h[0].Time.Equal(now.Add(-15*time.Second)) {
		var times []string
		for _, r := range h {
			times = append(times, r.Time.Sub(t0).String())
		}
		t.Errorf("history times %v, want the last 4 ending at %v", times, now.Sub(t0))
	}
}

func TestLoopSharesNodeCapacity(t *testing.T) {
	l, st, act := newTestLoop(t, StaticNodes{{Name: "n0", CPUs: 6}}, 0)
	var observed []string
	l.cfg.Observe = func(fn string, r Record) {
		observed = append(observed, fmt.Sprintf("%s %s", fn, r.Decision.Action))
	}
	spec := mustSpec(t, Hybrid)
	for _, fn := range []string{"a", "b"} {
		if err := l.Set(fn, spec); err != nil {
			t.Fatal(err)
		}
		act.instances[fn] = []Instance{inst(fn+"0", "n0", 2)}
		st.set(fn, slow)
	}
	if err := l.Tick(t0); err != nil {
		t.Fatal(err)
	}
	// a doubles 2 -> 4 and takes the node's last 2 vCPUs; b has no room.
	if want := "[a scale-up 4]"; fmt.Sprint(act.applied) != want {
		t.Errorf("applied %v, want %s", act.applied, want)
	}
	if h := l.History("b"); len(h) != 1 || !strings.Contains(h[0].Decision.Reason, "at the cap") {
		t.Errorf("b's history %+v", h)
	}
	if want := "[a scale-up b hold]"; fmt.Sprint(observed) != want {
		t.Errorf("observed %v, want %s", observed, want)
	}
}

func TestLoopErrors(t *testing.T) {
	l, st, act := newTestLoop(t, StaticNodes{{Name: "n0", CPUs: 8}}, 0)
	spec := mustSpec(t, Hybrid)
	l.Set("f", spec)
	act.instances["f"] = []Instance{inst("f0", "n0", 1)}
	st.set("f", slow)
	act.err = errors.New("cgroup write failed")
	err := l.Tick(t0)
	if err == nil || !strings.Contains(err.Error(), `function "f": apply scale-up: cgroup write failed`) {
		t.Fatalf("Tick error = %v", err)
	}
	h := l.History("f")
	if len(h) != 1 || h[0].Applied || !strings.Contains(h[0].Err, "cgroup write failed") {
		t.Fatalf("record %+v", h)
	}
	// The failed decision's memory is dropped: the next one doubles again.
	act.err = nil
	if err := l.Tick(t0.Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if want := "[f scale-up 2]"; fmt.Sprint(act.applied) != want {
		t.Errorf("applied %v, want %s", act.applied, want)
	}
	st.err = errors.New("metrics down")
	if err := l.Tick(t0.Add(10 * time.Second)); err == nil || !strings.Contains(err.Error(), "stats: metrics down") {
		t.Errorf("Tick error = %v", err)
	}
	if h := l.History("f"); h[len(h)-1].Err == "" || h[len(h)-1].Decision.Valid {
		t.Errorf("last record %+v", h[len(h)-1])
	}
}

func TestLoopSetRemove(t *testing.T) {
	l, _, _ := newTestLoop(t, StaticNodes{{Name: "n0", CPUs: 8}}, 0)
	bad := mustSpec(t, Hybrid)
	bad.SLO = 0
	if err := l.Set("f", bad); !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), `function "f": `) {
		t.Errorf("Set(bad) = %v", err)
	}
	good := mustSpec(t, HPA)
	if err := l.Set("f", good); err != nil {
		t.Fatal(err)
	}
	if s, ok := l.Spec("f"); !ok || s.Policy != HPA {
		t.Errorf("Spec = %+v, %v", s, ok)
	}
	l.Tick(t0)
	if len(l.History("f")) != 1 {
		t.Fatal("no record")
	}
	l.Remove("f")
	if h := l.History("f"); h != nil {
		t.Errorf("history after Remove: %v", h)
	}
	if _, ok := l.Spec("f"); ok {
		t.Error("spec after Remove")
	}
}

func TestNewLoopRejects(t *testing.T) {
	st, act, n := &fakeStats{}, newFakeActuator(), StaticNodes{}
	for _, cfg := range []LoopConfig{
		{Actuator: act, Nodes: n},
		{Stats: st, Nodes: n},
		{Stats: st, Actuator: act},
		{Stats: st, Actuator: act, Nodes: n, Resolution: -1},
		{Stats: st, Actuator: act, Nodes: n, History: -1},
	} {
		if _, err := NewLoop(cfg); err == nil {
			t.Errorf("NewLoop(%+v) accepted", cfg)
		}
	}
}

// TestLoopRun drives Run with a fake clock: no sleeping, each step of the
// clock makes exactly the decisions that are due.
func TestLoopRun(t *testing.T) {
	clock := NewFakeClock(t0)
	st := &fakeStats{stats: map[string]Stats{}}
	act := newFakeActuator()
	act.notify = make(chan string, 8)
	l, err := NewLoop(LoopConfig{Clock: clock, Stats: st, Actuator: act, Nodes: fakeNodes{act, []Node{{Name: "n0", CPUs: 4}}}})
	if err != nil {
		t.Fatal(err)
	}
	l.Set("f", mustSpec(t, Hybrid))
	st.set("f", Stats{Queued: 1})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	if !clock.WaitForTickers(1, ctxDone(t)) {
		t.Fatal("Run started no ticker")
	}
	clock.Step(time.Second)
	select {
	case fn := <-act.notify:
		if fn != "f" {
			t.Fatalf("applied %q", fn)
		}
	case <-time.After(10 * time.Second): // a guard against a hang, not a wait
		t.Fatal("no decision applied after a tick")
	}
	// Wake ticks at once, without the clock moving.
	st.set("f", slow)
	l.Wake("f")
	select {
	case <-act.notify:
	case <-time.After(10 * time.Second):
		t.Fatal("no decision applied after Wake")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	h := l.History("f")
	if len(h) != 2 || !h[0].Time.Equal(t0.Add(time.Second)) || h[0].Decision.Action != FromZero ||
		!h[1].Time.Equal(t0.Add(time.Second)) || h[1].Decision.Action != ScaleUp {
		t.Errorf("history %+v", h)
	}
	if clock.Tickers() != 0 {
		t.Error("Run left its ticker running")
	}
}

// ctxDone is closed when the test ends.
func ctxDone(t *testing.T) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx.Done()
}

func TestFakeClockTicker(t *testing.T) {
	c := NewFakeClock(t0)
	tk := c.NewTicker(2 * time.Second)
	c.Step(time.Second)
	select {
	case <-tk.C():
		t.Fatal("tick before its time")
	default:
	}
	c.Step(5 * time.Second) // passes 2 s, 4 s, 6 s: one tick buffered, the rest dropped
	if got := <-tk.C(); !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("tick at %v", got)
	}
	select {
	case got := <-tk.C():
		t.Fatalf("second buffered tick %v", got)
	default:
	}
	tk.Stop()
	c.Step(10 * time.Second)
	select {
	case <-tk.C():
		t.Fatal("tick after Stop")
	default:
	}
}

func TestLocalNodes(t *testing.T) {
	n := NewLocal(0, nil).Nodes()
	if len(n) != 1 || n[0].CPUs < 1 || n[0].Name == "" || n[0].Used != 0 {
		t.Errorf("NewLocal(0, nil) = %+v", n)
	}
	if n := NewLocal(1e6, func() float64 { return 0.5 }).Nodes(); n[0].CPUs != Quantum || n[0].Used != 0.5 {
		t.Errorf("NewLocal(huge reserve, 0.5 used) = %+v, want %g CPUs, 0.5 used", n, Quantum)
	}
}

// TestLoopRestore checks that remembered state set from outside counts: a
// function calm since long before (as a restarted operator reads it from the
// function's status) scales down at the first tick, where a loop that
// remembers nothing first waits out the stabilization.
func TestLoopRestore(t *testing.T) {
	calm := Stats{Window: 30 * time.Second, Arrivals: 30, Rate: 1, Completions: 30, P99: 10 * time.Millisecond, P50: 5 * time.Millisecond, P95: 8 * time.Millisecond}
	run := func(restore *Memory) Action {
		l, st, act := newTestLoop(t, StaticNodes{{Name: "n0", CPUs: 8}}, 0)
		if err := l.Restore("f", Memory{}); err == nil {
			t.Error("Restore of a function never set: no error")
		}
		if err := l.Set("f", mustSpec(t, Hybrid)); err != nil {
			t.Fatal(err)
		}
		if restore != nil {
			if err := l.Restore("f", *restore); err != nil {
				t.Fatal(err)
			}
		}
		act.instances["f"] = []Instance{inst("f0", "n0", 4)}
		st.set("f", calm)
		if err := l.Tick(t0); err != nil {
			t.Fatal(err)
		}
		return l.History("f")[0].Decision.Action
	}
	if a := run(nil); a != Hold {
		t.Errorf("without memory: %s, want hold (calm only from now)", a)
	}
	if a := run(&Memory{CalmSince: t0.Add(-time.Minute), LastChange: t0.Add(-2 * time.Minute)}); a != ScaleDown {
		t.Errorf("with restored memory: %s, want scale-down", a)
	}
}
