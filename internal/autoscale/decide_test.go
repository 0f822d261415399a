package autoscale

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func mustSpec(t *testing.T, p Policy, kv ...string) Spec {
	t.Helper()
	m, err := ParseParams(kv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSpec(p, m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// node64 is the thesis's node; nodes gives n of them with the given use.
func nodes(cpus float64, used ...float64) []Node {
	out := make([]Node, len(used))
	for i, u := range used {
		out[i] = Node{Name: fmt.Sprintf("n%d", i), CPUs: cpus, Used: u}
	}
	return out
}

func inst(id, node string, v float64) Instance {
	return Instance{ID: id, Node: node, VCPUs: v, Ready: true}
}

// slow and fast are stats with p99 over and well under the 500 ms SLO.
var (
	slow = Stats{Window: 10 * time.Second, Arrivals: 100, Rate: 10, Completions: 90, P50: 300 * time.Millisecond, P99: 900 * time.Millisecond}
	ok   = Stats{Window: 10 * time.Second, Arrivals: 100, Rate: 10, Completions: 100, P50: 200 * time.Millisecond, P99: 400 * time.Millisecond}
	fast = Stats{Window: 10 * time.Second, Arrivals: 100, Rate: 10, Completions: 100, P50: 200 * time.Millisecond, P99: 210 * time.Millisecond}
)

type decideCase struct {
	name   string
	spec   Spec
	stats  Stats
	state  State
	now    time.Time // zero: t0
	action Action
	want   []Instance // target, compared by node, vCPUs and ID
	reason string     // substring of the reason
	check  func(t *testing.T, d Decision)
}

func runDecideCases(t *testing.T, tests []decideCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			before := fmt.Sprint(tc.state)
			d := Decide(now, tc.stats, tc.state, tc.spec)
			if !d.Valid {
				t.Fatalf("invalid decision: %s", d.Reason)
			}
			if d.Action != tc.action {
				t.Errorf("action = %s, want %s (reason %q)", d.Action, tc.action, d.Reason)
			}
			if tc.want != nil {
				if diff := instancesDiff(tc.want, d.Instances); diff != "" {
					t.Errorf("instances (-want +got):\n%s(reason %q)", diff, d.Reason)
				}
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tc.reason)
			}
			if after := fmt.Sprint(tc.state); after != before {
				t.Errorf("Decide modified its state:\nbefore %s\nafter  %s", before, after)
			}
			if d.Changed() {
				if !d.Memory.LastChange.Equal(now) {
					t.Errorf("LastChange = %v, want now", d.Memory.LastChange)
				}
				checkCapacity(t, tc.state, d)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

func instancesDiff(want, got []Instance) string {
	var b strings.Builder
	for i := range max(len(want), len(got)) {
		var w, g string
		if i < len(want) {
			w = fmt.Sprintf("%s@%s:%g", want[i].ID, want[i].Node, want[i].VCPUs)
		}
		if i < len(got) {
			g = fmt.Sprintf("%s@%s:%g", got[i].ID, got[i].Node, got[i].VCPUs)
		}
		if w != g {
			fmt.Fprintf(&b, "-%s\n+%s\n", w, g)
		}
	}
	return b.String()
}

// checkCapacity asserts that applying the decision overfills no node.
func checkCapacity(t *testing.T, st State, d Decision) {
	t.Helper()
	used := map[string]float64{}
	for _, n := range st.Nodes {
		used[n.Name] = n.Used
	}
	for _, c := range Plan(st, d) {
		switch c.Op {
		case Start:
			used[c.Instance.Node] += c.Instance.VCPUs
		case Stop:
			used[c.Instance.Node] -= c.From
		case Resize:
			used[c.Instance.Node] += c.Instance.VCPUs - c.From
		}
	}
	for _, n := range st.Nodes {
		if used[n.Name] > n.CPUs+1e-9 {
			t.Errorf("node %s: %g vCPUs used of %g", n.Name, used[n.Name], n.CPUs)
		}
	}
	for _, in := range d.Instances {
		if !onQuantum(in.VCPUs) || in.VCPUs <= 0 {
			t.Errorf("instance %+v: vCPUs not a positive multiple of %g", in, Quantum)
		}
	}
}

func TestDecideHybrid(t *testing.T) {
	hybrid := mustSpec(t, Hybrid, "max-vcpus=56")
	calmSince := t0.Add(-31 * time.Second)
	runDecideCases(t, []decideCase{
		{
			name: "scale up doubles on its node", spec: hybrid, stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 1)}, Nodes: nodes(64, 1)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 2)}, reason: "p99 900ms > slo 500ms: double vCPUs 1 -> 2",
		},
		{
			name: "cap clips the doubling", spec: hybrid, stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 32)}, Nodes: nodes(64, 32)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 56)},
		},
		{
			name: "at cap on the only node holds", spec: hybrid, stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 56)}, Nodes: nodes(64, 56)},
			action: Hold, reason: "at the cap",
		},
		{
			name: "full node overflows to another node", spec: hybrid, stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 8)}, Nodes: nodes(16, 12, 0)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 12), {Node: "n1", VCPUs: 4}},
			reason: "instances 1 -> 2",
		},
		{
			name: "at cap overflows horizontally", spec: hybrid, stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 56)}, Nodes: nodes(64, 56, 64, 10)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 56), {Node: "n2", VCPUs: 54}},
		},
		{
			name: "first fit picks the first node with room", spec: mustSpec(t, Hybrid, "placement=first-fit"), stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 2)}, Nodes: nodes(8, 8, 5, 0)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 2), {Node: "n1", VCPUs: 2}},
		},
		{
			name: "spread picks the emptiest node", spec: hybrid, stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 2)}, Nodes: nodes(8, 8, 5, 0)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 2), {Node: "n2", VCPUs: 2}},
		},
		{
			name: "spread splits what no node holds", spec: mustSpec(t, Hybrid, "placement=spread"), stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 4)}, Nodes: nodes(4, 4, 3, 1, 2)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 4), {Node: "n2", VCPUs: 3}, {Node: "n3", VCPUs: 1}},
		},
		{
			name: "max-instances stops the overflow", spec: mustSpec(t, Hybrid, "max-instances=1"), stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 4)}, Nodes: nodes(4, 4, 0)},
			action: Hold, reason: "at the cap",
		},
		{
			name: "oldest waiting request counts as latency", spec: hybrid,
			stats:  Stats{Window: 10 * time.Second, Queued: 5, InFlight: 1, QueueAge: 2 * time.Second},
			state:  State{Instances: []Instance{inst("a", "n0", 1)}, Nodes: nodes(64, 1)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 2)}, reason: "oldest waiting 2s",
		},
		{
			name: "waits for starting instances", spec: hybrid, stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 8), {ID: "b", Node: "n1", VCPUs: 4}}, Nodes: nodes(8, 8, 4)},
			action: Hold, reason: "waiting for 1 instance(s) to start",
		},
		{
			name: "within slo holds and forgets calm", spec: hybrid, stats: ok,
			state:  State{Instances: []Instance{inst("a", "n0", 4)}, Nodes: nodes(64, 4), Memory: Memory{CalmSince: calmSince}},
			action: Hold, reason: "within slo",
			check: func(t *testing.T, d Decision) {
				if !d.Memory.CalmSince.IsZero() {
					t.Errorf("CalmSince = %v, want zero", d.Memory.CalmSince)
				}
			},
		},
		{
			name: "calm starts the stabilization window", spec: hybrid, stats: fast,
			state:  State{Instances: []Instance{inst("a", "n0", 4)}, Nodes: nodes(64, 4)},
			action: Hold, reason: "for 0s of stabilization 30s",
			check: func(t *testing.T, d Decision) {
				if !d.Memory.CalmSince.Equal(t0) {
					t.Errorf("CalmSince = %v, want %v", d.Memory.CalmSince, t0)
				}
			},
		},
		{
			name: "scale down halves after stabilization", spec: hybrid, stats: fast,
			state:  State{Instances: []Instance{inst("a", "n0", 56)}, Nodes: nodes(64, 56), Memory: Memory{CalmSince: calmSince}},
			action: ScaleDown, want: []Instance{inst("a", "n0", 28)}, reason: "halve vCPUs 56 -> 28",
		},
		{
			name: "a recent change restarts stabilization", spec: hybrid, stats: fast,
			state: State{Instances: []Instance{inst("a", "n0", 56)}, Nodes: nodes(64, 56),
				Memory: Memory{CalmSince: calmSince, LastChange: t0.Add(-10 * time.Second)}},
			action: Hold, reason: "for 10s of stabilization 30s",
		},
		{
			name: "scale down gathers load in the largest instance", spec: hybrid, stats: fast,
			state: State{Instances: []Instance{inst("a", "n0", 8), inst("b", "n1", 16)}, Nodes: nodes(16, 8, 16),
				Memory: Memory{CalmSince: calmSince}},
			action: ScaleDown, want: []Instance{inst("b", "n1", 12)}, reason: "instances 2 -> 1",
		},
		{
			name: "scale down stops at min-vcpus", spec: mustSpec(t, Hybrid, "min-vcpus=0.25"), stats: fast,
			state:  State{Instances: []Instance{inst("a", "n0", 0.25)}, Nodes: nodes(64, 0.25), Memory: Memory{CalmSince: calmSince}},
			action: Hold, reason: "at the minimum",
		},
		{
			name: "halving rounds up to the quantum", spec: mustSpec(t, Hybrid, "min-vcpus=0.25"), stats: fast,
			state:  State{Instances: []Instance{inst("a", "n0", 0.75)}, Nodes: nodes(64, 0.75), Memory: Memory{CalmSince: calmSince}},
			action: ScaleDown, want: []Instance{inst("a", "n0", 0.5)},
		},
		{
			name: "to zero after idle", spec: hybrid, stats: Stats{Window: 10 * time.Second, Idle: 61 * time.Second},
			state:  State{Instances: []Instance{inst("a", "n0", 2)}, Nodes: nodes(64, 2)},
			action: ToZero, want: []Instance{}, reason: "idle 1m1s >= idle-to-zero 1m0s",
		},
		{
			name: "no zero while requests run", spec: hybrid, stats: Stats{Window: 10 * time.Second, Idle: 61 * time.Second, InFlight: 1, Completions: 0},
			state:  State{Instances: []Instance{inst("a", "n0", 2)}, Nodes: nodes(64, 2)},
			action: Hold,
		},
		{
			name: "min-instances keeps one", spec: mustSpec(t, Hybrid, "min-instances=1"), stats: Stats{Window: 10 * time.Second, Idle: time.Hour},
			state:  State{Instances: []Instance{inst("a", "n0", 1)}, Nodes: nodes(64, 1), Memory: Memory{CalmSince: calmSince}},
			action: Hold, reason: "at the minimum",
		},
		{
			name: "from zero on waiting work", spec: hybrid, stats: Stats{Window: 10 * time.Second, Queued: 1, QueueAge: time.Millisecond},
			state:  State{Nodes: nodes(4, 4, 3.5, 0)},
			action: FromZero, want: []Instance{{Node: "n2", VCPUs: 1}}, reason: "requests waiting: start 1 instance(s) of 1 vCPUs",
		},
		{
			name: "from zero with no room", spec: hybrid, stats: Stats{Window: 10 * time.Second, Queued: 1},
			state:  State{Nodes: nodes(4, 4)},
			action: Hold, reason: "no node has 1 free vCPUs",
		},
		{
			name: "nothing to do without instances or requests", spec: hybrid, stats: Stats{Window: 10 * time.Second, Idle: time.Hour},
			state:  State{Nodes: nodes(4, 0)},
			action: Hold, reason: "no instances and no requests",
		},
		{
			name: "min-instances tops up on idle", spec: mustSpec(t, Hybrid, "min-instances=2"), stats: Stats{Window: 10 * time.Second, Idle: time.Hour},
			state:  State{Instances: []Instance{inst("a", "n0", 1)}, Nodes: nodes(4, 1, 0)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 1), {Node: "n1", VCPUs: 1}}, reason: "1 instance(s) < min-instances 2",
		},
	})
}

func TestDecideHPA(t *testing.T) {
	hpa := mustSpec(t, HPA, "max-instances=56")
	calmSince := t0.Add(-31 * time.Second)
	replicas := func(node string, n int, from int) []Instance {
		var out []Instance
		for i := range n {
			out = append(out, inst(fmt.Sprintf("r%d", from+i), node, 1))
		}
		return out
	}
	runDecideCases(t, []decideCase{
		{
			name: "scale up doubles replicas on the same node", spec: hpa, stats: slow,
			state:  State{Instances: replicas("n1", 2, 0), Nodes: nodes(64, 0, 2)},
			action: ScaleUp, want: append(replicas("n1", 2, 0), Instance{Node: "n1", VCPUs: 1}, Instance{Node: "n1", VCPUs: 1}),
			reason: "double replicas 2 -> 4",
		},
		{
			name: "cap clips the doubling", spec: hpa, stats: slow,
			state:  State{Instances: replicas("n0", 32, 0), Nodes: nodes(64, 32)},
			action: ScaleUp, reason: "double replicas 32 -> 56",
			check: func(t *testing.T, d Decision) {
				if len(d.Instances) != 56 {
					t.Errorf("%d replicas, want 56", len(d.Instances))
				}
			},
		},
		{
			name: "at the cap holds", spec: hpa, stats: slow,
			state:  State{Instances: replicas("n0", 56, 0), Nodes: nodes(64, 56)},
			action: Hold, reason: "at the cap",
		},
		{
			name: "full node overflows to another node", spec: hpa, stats: slow,
			state:  State{Instances: replicas("n0", 3, 0), Nodes: nodes(4, 3, 0)},
			action: ScaleUp, want: append(replicas("n0", 3, 0), Instance{Node: "n0", VCPUs: 1}, Instance{Node: "n1", VCPUs: 1}, Instance{Node: "n1", VCPUs: 1}),
		},
		{
			name: "waits for starting replicas", spec: hpa, stats: slow,
			state:  State{Instances: append(replicas("n0", 1, 0), Instance{ID: "r1", Node: "n0", VCPUs: 1}), Nodes: nodes(64, 2)},
			action: Hold, reason: "waiting for 1 replica(s) to start",
		},
		{
			name: "scale down halves, newest first", spec: hpa, stats: fast,
			state:  State{Instances: replicas("n0", 5, 0), Nodes: nodes(64, 5), Memory: Memory{CalmSince: calmSince}},
			action: ScaleDown, want: replicas("n0", 3, 0), reason: "halve replicas 5 -> 3",
		},
		{
			name: "one replica is the minimum", spec: hpa, stats: fast,
			state:  State{Instances: replicas("n0", 1, 0), Nodes: nodes(64, 1), Memory: Memory{CalmSince: calmSince}},
			action: Hold, reason: "at the minimum",
		},
		{
			name: "to zero after idle", spec: hpa, stats: Stats{Idle: 2 * time.Minute},
			state:  State{Instances: replicas("n0", 4, 0), Nodes: nodes(64, 4)},
			action: ToZero, want: []Instance{},
		},
		{
			name: "from zero starts one replica", spec: hpa, stats: Stats{Rate: 1, Arrivals: 1, Queued: 1},
			state:  State{Nodes: nodes(64, 0)},
			action: FromZero, want: []Instance{{Node: "n0", VCPUs: 1}},
		},
	})
}

func TestDecideStatic(t *testing.T) {
	static := mustSpec(t, Static, "vcpus=56")
	runDecideCases(t, []decideCase{
		{
			name: "starts its instance without traffic", spec: static, stats: Stats{Idle: time.Hour},
			state:  State{Nodes: nodes(64, 0)},
			action: Reconcile, want: []Instance{{Node: "n0", VCPUs: 56}},
		},
		{
			name: "holds whatever the latency", spec: static, stats: slow,
			state:  State{Instances: []Instance{inst("a", "n0", 56)}, Nodes: nodes(64, 56)},
			action: Hold, reason: "static 1 x 56 vCPUs",
		},
		{
			name: "never goes to zero", spec: static, stats: Stats{Idle: 24 * time.Hour},
			state:  State{Instances: []Instance{inst("a", "n0", 56)}, Nodes: nodes(64, 56)},
			action: Hold,
		},
		{
			name: "resizes and trims to the spec", spec: static, stats: ok,
			state:  State{Instances: []Instance{inst("a", "n0", 8), inst("b", "n1", 8)}, Nodes: nodes(64, 8, 8)},
			action: Reconcile, want: []Instance{inst("a", "n0", 56)},
		},
		{
			name: "no room", spec: static, stats: ok,
			state:  State{Nodes: nodes(32, 0)},
			action: Hold, reason: "no room",
		},
	})
}

func TestDecidePredictive(t *testing.T) {
	pred := mustSpec(t, Predictive, "max-vcpus=56")
	// 40 req/s x 200 ms / 0.7 = 11.43 -> 11.5 vCPUs.
	steady := Stats{Window: 10 * time.Second, Arrivals: 400, Rate: 40, ShortRate: 40, Completions: 400,
		P50: 210 * time.Millisecond, P99: 300 * time.Millisecond, ServiceTime: 200 * time.Millisecond}
	withRate := func(s Stats, rate, short float64) Stats {
		s.Rate, s.ShortRate = rate, short
		return s
	}
	calmSince := t0.Add(-31 * time.Second)
	runDecideCases(t, []decideCase{
		{
			name: "sizes in one step", spec: pred, stats: steady,
			state:  State{Instances: []Instance{inst("a", "n0", 6)}, Nodes: nodes(64, 6)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 11.5)}, reason: "need 11.5 (rate 40/s x service 200ms / utilization 0.7) > capacity 6",
		},
		{
			name: "queue adds what drains it in one interval", spec: pred,
			stats:  func() Stats { s := steady; s.Queued = 10; return s }(), // + 10 x 0.2 s / 1 s = 2
			state:  State{Instances: []Instance{inst("a", "n0", 8)}, Nodes: nodes(64, 8)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 13.5)}, reason: "+ 10 queued",
		},
		{
			name: "up fast on the short window", spec: pred, stats: withRate(steady, 40, 50), // 50 x 0.2 / 0.7 = 14.3
			state:  State{Instances: []Instance{inst("a", "n0", 12)}, Nodes: nodes(64, 12)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 14.5)}, reason: "short-window need 14.5 (rate 50/s) > capacity 12",
			check: func(t *testing.T, d Decision) {
				if !d.Memory.PanicUntil.IsZero() {
					t.Errorf("panicked: %+v", d.Memory)
				}
			},
		},
		{
			name: "spills to a second node", spec: pred, stats: withRate(steady, 40, 40),
			state:  State{Instances: []Instance{inst("a", "n0", 6)}, Nodes: nodes(8, 6, 0)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 8), {Node: "n1", VCPUs: 3.5}},
		},
		{
			name: "fits: holds", spec: pred, stats: steady,
			state:  State{Instances: []Instance{inst("a", "n0", 12)}, Nodes: nodes(64, 12)},
			action: Hold, reason: "fits capacity 12",
		},
		{
			name: "hysteresis: need within 20% below capacity holds", spec: pred, stats: steady,
			state:  State{Instances: []Instance{inst("a", "n0", 14)}, Nodes: nodes(64, 14), Memory: Memory{CalmSince: calmSince}},
			action: Hold, reason: "fits capacity 14",
			check: func(t *testing.T, d Decision) {
				if !d.Memory.CalmSince.IsZero() {
					t.Errorf("CalmSince = %v, want zero", d.Memory.CalmSince)
				}
			},
		},
		{
			name: "below hysteresis starts stabilization", spec: pred, stats: steady,
			state:  State{Instances: []Instance{inst("a", "n0", 20)}, Nodes: nodes(64, 20)},
			action: Hold, reason: "for 0s of stabilization 30s",
			check: func(t *testing.T, d Decision) {
				if !d.Memory.CalmSince.Equal(t0) || d.Memory.CalmNeed != 11.5 {
					t.Errorf("memory = %+v, want calm since t0 with need 11.5", d.Memory)
				}
			},
		},
		{
			name: "scale down goes to the largest need of the window", spec: pred, stats: steady,
			state: State{Instances: []Instance{inst("a", "n0", 20)}, Nodes: nodes(64, 20),
				Memory: Memory{CalmSince: calmSince, CalmNeed: 13}},
			action: ScaleDown, want: []Instance{inst("a", "n0", 13)}, reason: "need at most 13",
			check: func(t *testing.T, d Decision) {
				if !d.Memory.CalmSince.IsZero() || d.Memory.CalmNeed != 0 {
					t.Errorf("memory = %+v, want calm reset", d.Memory)
				}
			},
		},
		{
			name: "panic on a burst in the short window", spec: pred, stats: withRate(steady, 10, 80),
			state:  State{Instances: []Instance{inst("a", "n0", 4)}, Nodes: nodes(64, 4)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 23)}, reason: "panic: short-window need 23 >= 2 x capacity 4",
			check: func(t *testing.T, d Decision) {
				if want := t0.Add(10 * time.Second); !d.Memory.PanicUntil.Equal(want) {
					t.Errorf("PanicUntil = %v, want %v", d.Memory.PanicUntil, want)
				}
			},
		},
		{
			name: "panic blocks scale-down", spec: pred, stats: withRate(steady, 1, 1),
			state: State{Instances: []Instance{inst("a", "n0", 23)}, Nodes: nodes(64, 23),
				Memory: Memory{PanicUntil: t0.Add(5 * time.Second), CalmSince: calmSince}},
			action: Hold, reason: "panic for another 5s",
		},
		{
			name: "after panic, stabilization starts afresh", spec: pred, stats: withRate(steady, 1, 1),
			state: State{Instances: []Instance{inst("a", "n0", 23)}, Nodes: nodes(64, 23),
				Memory: Memory{PanicUntil: t0.Add(-time.Second)}},
			action: Hold, reason: "stabilization",
		},
		{
			name: "no service time yet holds", spec: pred, stats: Stats{Rate: 5, Arrivals: 50, Window: 10 * time.Second},
			state:  State{Instances: []Instance{inst("a", "n0", 0.25)}, Nodes: nodes(64, 0.25)},
			action: Hold, reason: "no service time measured yet",
		},
		{
			name: "a lone request gets enough CPU for half the slo", spec: pred, stats: withRate(steady, 0.5, 0.5),
			state:  State{Instances: []Instance{inst("a", "n0", 0.75)}, Nodes: nodes(64, 0.75)},
			action: ScaleUp, want: []Instance{inst("a", "n0", 1)}, reason: "need 1 (rate 0.5/s",
		},
		{
			name: "from zero without a service time starts at 1 vCPU", spec: pred, stats: Stats{Queued: 1, Arrivals: 1, Rate: 0.1},
			state:  State{Nodes: nodes(64, 0)},
			action: FromZero, want: []Instance{{Node: "n0", VCPUs: 1}},
		},
		{
			name: "from zero sized by demand", spec: pred, stats: withRate(steady, 7, 7),
			state:  State{Nodes: nodes(64, 0)},
			action: FromZero, want: []Instance{{Node: "n0", VCPUs: 2}},
		},
		{
			name: "to zero after idle", spec: pred, stats: Stats{Idle: 2 * time.Minute, ServiceTime: 200 * time.Millisecond},
			state:  State{Instances: []Instance{inst("a", "n0", 2)}, Nodes: nodes(64, 2)},
			action: ToZero, want: []Instance{},
		},
	})
}

// TestHybridSequence steps a fake clock through the thesis's ramp of
// decisions: doubling every interval to the cap, then halving once per
// stabilization window.
func TestHybridSequence(t *testing.T) {
	spec := mustSpec(t, Hybrid, "max-vcpus=56")
	clock := NewFakeClock(t0)
	st := State{Instances: []Instance{inst("a", "n0", 1)}, Nodes: nodes(64, 1)}
	step := func(stats Stats) Decision {
		t.Helper()
		d := Decide(clock.Now(), stats, st, spec)
		if !d.Valid {
			t.Fatal(d.Reason)
		}
		st.Instances, st.Memory = d.Instances, d.Memory
		st.Nodes[0].Used = total(d.Instances)
		clock.Step(spec.Interval)
		return d
	}
	var got []float64
	for range 8 {
		step(slow)
		got = append(got, st.Instances[0].VCPUs)
	}
	if want := "[2 4 8 16 32 56 56 56]"; fmt.Sprint(got) != want {
		t.Fatalf("vCPUs while slow = %v, want %s", got, want)
	}
	got = got[:0]
	for range 20 { // 100 s of calm: a halving every 30 s + one interval
		step(fast)
		got = append(got, st.Instances[0].VCPUs)
	}
	want := "[56 56 56 56 56 56 28 28 28 28 28 28 28 14 14 14 14 14 14 14]"
	if fmt.Sprint(got) != want {
		t.Fatalf("vCPUs while calm = %v, want %s", got, want)
	}
}

func TestDecideRejects(t *testing.T) {
	good := mustSpec(t, Hybrid)
	st := State{Instances: []Instance{inst("a", "n0", 1)}, Nodes: nodes(4, 1), Memory: Memory{CalmSince: t0}}
	tests := []struct {
		name   string
		spec   Spec
		stats  Stats
		reason string
	}{
		{"zero spec", Spec{}, ok, `policy ""`},
		{"negative rate", good, Stats{Rate: -1}, "rate: must be"},
		{"negative count", good, Stats{Queued: -1}, "counts must be >= 0"},
		{"negative duration", good, Stats{P99: -time.Second}, "durations must be >= 0"},
		{"bad spec field", func() Spec { s := good; s.DownBelow = 2; return s }(), ok, "down-below"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(t0, tc.stats, st, tc.spec)
			if d.Valid || d.Changed() {
				t.Fatalf("decision valid: %+v", d)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tc.reason)
			}
			if d.Memory != st.Memory {
				t.Errorf("memory changed to %+v", d.Memory)
			}
		})
	}
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		policy Policy
		params []string
		err    string // "" for success
		check  func(Spec) bool
	}{
		{Hybrid, nil, "", func(s Spec) bool {
			return s.Interval == 5*time.Second && s.SLO == 500*time.Millisecond && s.MinVCPUs == 1
		}},
		{HPA, nil, "", func(s Spec) bool { return s.Load == LoadCopy && s.ReplicaVCPUs == 1 }},
		{Predictive, []string{"target-utilization=0.5", "slo=1s"}, "", func(s Spec) bool { return s.TargetUtilization == 0.5 && s.SLO == time.Second }},
		{Static, []string{"vcpus=56", "instances=2"}, "", func(s Spec) bool { return s.VCPUs == 56 && s.Instances == 2 }},
		{"knative", nil, `policy "knative": must be one of hybrid, hpa, static, predictive`, nil},
		{Hybrid, []string{"bogus=1"}, "bogus: unknown parameter", nil},
		{Hybrid, []string{"panic-window=1s"}, "panic-window: not a parameter of policy hybrid", nil},
		{Hybrid, []string{"slo=fast"}, `slo="fast": want a duration`, nil},
		{Hybrid, []string{"slo=0s"}, "slo: must be > 0", nil},
		{Hybrid, []string{"interval=10ms"}, "interval: must be at least 100ms", nil},
		{Hybrid, []string{"window=1s"}, "window: must be at least the interval (5s)", nil},
		{Hybrid, []string{"min-vcpus=0.3"}, "min-vcpus: must be a multiple of 0.25 vCPU", nil},
		{Hybrid, []string{"min-vcpus=0"}, "min-vcpus: must be a multiple", nil},
		{Hybrid, []string{"max-vcpus=0.5"}, "max-vcpus: must be 0 or at least min-vcpus (1)", nil},
		{Hybrid, []string{"max-instances=-1"}, "max-instances: must be >= 0", nil},
		{Hybrid, []string{"min-instances=3", "max-instances=2"}, "max-instances: must be 0 or at least max(1, min-instances=3)", nil},
		{Hybrid, []string{"down-below=1"}, "down-below: must be in (0, 1)", nil},
		{Hybrid, []string{"stabilization=-1s"}, "stabilization: must be >= 0", nil},
		{Hybrid, []string{"idle-to-zero=-1s"}, "idle-to-zero: must be >= 0", nil},
		{Hybrid, []string{"placement=random"}, `placement: must be first-fit or spread, got "random"`, nil},
		{Hybrid, []string{"load=stream"}, `load: must be copy, single or mmap, got "stream"`, nil},
		{HPA, []string{"replica-vcpus=0"}, "replica-vcpus: must be a multiple", nil},
		{Static, []string{"instances=0"}, "instances: must be at least 1", nil},
		{Static, []string{"vcpus=NaN"}, "vcpus: must be a multiple", nil},
		{Predictive, []string{"target-utilization=1.5"}, "target-utilization: must be in (0, 1]", nil},
		{Predictive, []string{"panic-window=11s"}, "panic-window: must be > 0 and at most the window (10s)", nil},
		{Predictive, []string{"panic-threshold=1"}, "panic-threshold: must be > 1", nil},
		{Predictive, []string{"hysteresis=1"}, "hysteresis: must be in [0, 1)", nil},
		{Predictive, []string{"max-instances=x"}, `max-instances="x": want an integer`, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.policy, tc.params), func(t *testing.T) {
			kv, err := ParseParams(tc.params)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ParseSpec(tc.policy, kv)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("ParseSpec: %v", err)
				}
				if !tc.check(s) {
					t.Errorf("spec %+v fails its check", s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
			if !errors.Is(err, ErrBadSpec) {
				t.Errorf("error %v does not wrap ErrBadSpec", err)
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	for _, in := range [][]string{{"x"}, {"=1"}, {"a="}, {"a=1", "a=2"}} {
		if _, err := ParseParams(in); !errors.Is(err, ErrBadSpec) {
			t.Errorf("ParseParams(%q) = %v, want ErrBadSpec", in, err)
		}
	}
	kv, err := ParseParams([]string{"slo=1s", " window = 20s "})
	if err != nil || kv["slo"] != "1s" || kv["window"] != "20s" {
		t.Errorf("ParseParams = %v, %v", kv, err)
	}
}

func TestPlan(t *testing.T) {
	st := State{Instances: []Instance{inst("a", "n0", 4), inst("b", "n1", 2), inst("c", "n2", 1)}}
	d := Decision{Valid: true, Action: ScaleUp, Instances: []Instance{inst("a", "n0", 8), inst("c", "n2", 1), {Node: "n3", VCPUs: 2}}}
	var got []string
	for _, c := range Plan(st, d) {
		got = append(got, fmt.Sprintf("%s %s@%s %g->%g", c.Op, c.Instance.ID, c.Instance.Node, c.From, c.Instance.VCPUs))
	}
	want := "[stop b@n1 2->2 resize a@n0 4->8 start @n3 0->2]"
	if fmt.Sprint(got) != want {
		t.Errorf("Plan = %v, want %s", got, want)
	}
	if p := Plan(st, Decision{Valid: true, Action: Hold, Instances: st.Instances}); p != nil {
		t.Errorf("Plan of a hold = %v, want none", p)
	}
}
