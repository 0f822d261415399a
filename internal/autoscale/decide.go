package autoscale

import (
	"fmt"
	"time"
)

// Decide is the autoscaler: given the time, what was observed of a function,
// its instances and the nodes, and its spec, it returns the target instances
// and why. It is a pure function: it reads no clock, keeps nothing between
// calls (what a policy remembers comes in state.Memory and goes out in
// Decision.Memory) and does not modify state. A bad spec or impossible stats
// give a Decision with Valid false.
func Decide(now time.Time, stats Stats, state State, spec Spec) Decision {
	if err := spec.Validate(); err != nil {
		return Decision{Reason: err.Error(), Memory: state.Memory}
	}
	if err := stats.validate(); err != nil {
		return Decision{Reason: err.Error(), Memory: state.Memory}
	}
	d := decide(now, stats, state, spec)
	d.Valid = true
	if d.Action == Hold {
		d.Instances = append([]Instance(nil), state.Instances...)
	} else {
		d.Memory.LastChange = now
	}
	return d
}

// decide runs the policy; Decide fills in what every decision shares.
func decide(now time.Time, stats Stats, st State, spec Spec) Decision {
	if spec.Policy == Static {
		return decideStatic(stats, st, spec)
	}
	mem := st.Memory
	n := len(st.Instances)
	idle := stats.InFlight == 0 && stats.Queued == 0
	if n > 0 && spec.MinInstances == 0 && spec.IdleToZero > 0 && idle && stats.Idle >= spec.IdleToZero {
		return Decision{Action: ToZero, Instances: []Instance{}, Memory: Memory{},
			Reason: fmt.Sprintf("idle %v >= idle-to-zero %v: stop %d instance(s)", stats.Idle, spec.IdleToZero, n)}
	}
	if n == 0 && !stats.busy() && spec.MinInstances == 0 {
		return Decision{Action: Hold, Memory: mem, Reason: "no instances and no requests"}
	}
	if n < spec.MinInstances || n == 0 {
		return fromZero(stats, st, spec)
	}
	switch spec.Policy {
	case HPA:
		return decideHPA(now, stats, st, spec)
	case Predictive:
		return decidePredictive(now, stats, st, spec)
	default:
		return decideHybrid(now, stats, st, spec)
	}
}

// fromZero starts instances for waiting work, or up to MinInstances.
func fromZero(stats Stats, st State, spec Spec) Decision {
	n := len(st.Instances)
	want := max(1, spec.MinInstances) - n
	size := spec.MinVCPUs
	switch spec.Policy {
	case HPA:
		size = spec.ReplicaVCPUs
	case Predictive:
		if need := predictiveNeed(stats, stats.Rate, spec); need > 0 {
			size = max(size, need)
		} else {
			// Blind: give the first request all the CPU one request can use.
			size = max(size, 1)
			if spec.MaxVCPUs > 0 {
				size = min(size, spec.MaxVCPUs)
			}
		}
	}
	p := newPlacer(st.Nodes, spec)
	avoid := map[int]bool{}
	if spec.Policy != HPA {
		for _, in := range st.Instances {
			if i := p.index(in.Node); i >= 0 {
				avoid[i] = true
			}
		}
	}
	out := append([]Instance(nil), st.Instances...)
	for range want {
		i := p.pick(size, size, avoid)
		if i < 0 && spec.Policy != HPA {
			i = p.pick(size, spec.MinVCPUs, avoid)
		}
		if i < 0 {
			break
		}
		v := min(size, spec.capOn(p.nodes[i]), quantizeDown(p.free(i)))
		out = append(out, Instance{Node: p.nodes[i].Name, VCPUs: v})
		p.take(i, v)
		if spec.Policy != HPA {
			avoid[i] = true
		}
	}
	why := "requests waiting"
	action := FromZero
	if n > 0 || !stats.busy() {
		why, action = fmt.Sprintf("%d instance(s) < min-instances %d", n, spec.MinInstances), ScaleUp
	}
	if len(out) == n {
		return Decision{Action: Hold, Memory: st.Memory,
			Reason: fmt.Sprintf("%s, but no node has %g free vCPUs", why, size)}
	}
	return Decision{Action: action, Instances: out, Memory: Memory{},
		Reason: fmt.Sprintf("%s: start %d instance(s) of %g vCPUs", why, len(out)-n, size)}
}

// latencyText describes the latency a decision acted on.
func latencyText(s Stats) string {
	if s.Completions == 0 && s.QueueAge == 0 {
		return "no completions in window"
	}
	if s.QueueAge > s.P99 {
		return fmt.Sprintf("oldest waiting %v", s.QueueAge.Round(time.Millisecond))
	}
	return fmt.Sprintf("p99 %v", s.P99.Round(time.Millisecond))
}

// calm handles "latency well under the SLO": it starts or continues the
// stabilisation window and reports whether it has passed, with a reason when
// it has not.
func calm(now time.Time, mem *Memory, spec Spec, what string) (bool, string) {
	if mem.CalmSince.IsZero() {
		mem.CalmSince = now
	}
	since := mem.CalmSince
	if mem.LastChange.After(since) {
		since = mem.LastChange
	}
	if held := now.Sub(since); held < spec.Stabilization {
		return false, fmt.Sprintf("%s for %v of stabilization %v", what, held, spec.Stabilization)
	}
	return true, ""
}

// decideHybrid is the thesis's policy: double on a p99 violation (vertical
// first, then a new node), halve after a calm stabilisation window.
func decideHybrid(now time.Time, stats Stats, st State, spec Spec) Decision {
	mem := st.Memory
	if k := st.starting(); k > 0 {
		return Decision{Action: Hold, Memory: mem, Reason: fmt.Sprintf("waiting for %d instance(s) to start", k)}
	}
	lat, cur := stats.latency(), st.total()
	switch {
	case lat > spec.SLO:
		mem.CalmSince = time.Time{}
		out := grow(st, spec, 2*cur)
		got := total(out)
		if got <= cur+1e-9 {
			return Decision{Action: Hold, Memory: mem,
				Reason: fmt.Sprintf("%s > slo %v, but at the cap: %d instance(s), %g vCPUs, no room to grow", latencyText(stats), spec.SLO, len(out), cur)}
		}
		return Decision{Action: ScaleUp, Instances: out, Memory: mem,
			Reason: fmt.Sprintf("%s > slo %v: double vCPUs %g -> %g%s", latencyText(stats), spec.SLO, cur, got, spread(st, out))}
	case lat < time.Duration(spec.DownBelow*float64(spec.SLO)):
		what := fmt.Sprintf("%s < %v", latencyText(stats), time.Duration(spec.DownBelow*float64(spec.SLO)))
		ok, why := calm(now, &mem, spec, what)
		if !ok {
			return Decision{Action: Hold, Memory: mem, Reason: why}
		}
		want := max(spec.MinVCPUs, quantizeUp(cur/2))
		out := shrink(st, spec, want)
		if got := total(out); got >= cur-1e-9 {
			return Decision{Action: Hold, Memory: mem, Reason: what + ": at the minimum"}
		}
		mem.CalmSince = time.Time{}
		return Decision{Action: ScaleDown, Instances: out, Memory: mem,
			Reason: fmt.Sprintf("%s for %v: halve vCPUs %g -> %g%s", what, spec.Stabilization, cur, total(out), spread(st, out))}
	default:
		mem.CalmSince = time.Time{}
		return Decision{Action: Hold, Memory: mem, Reason: fmt.Sprintf("%s within slo %v", latencyText(stats), spec.SLO)}
	}
}

// spread describes a change in instance count, if any.
func spread(st State, out []Instance) string {
	if len(out) == len(st.Instances) {
		return ""
	}
	return fmt.Sprintf(", instances %d -> %d", len(st.Instances), len(out))
}

// decideHPA is the Kubernetes HPA baseline: replicas of a fixed size, doubled
// on a p99 violation and halved after a calm stabilisation window, placed on
// a node that already runs a replica while it has room.
func decideHPA(now time.Time, stats Stats, st State, spec Spec) Decision {
	mem := st.Memory
	if k := st.starting(); k > 0 {
		return Decision{Action: Hold, Memory: mem, Reason: fmt.Sprintf("waiting for %d replica(s) to start", k)}
	}
	n, r := len(st.Instances), spec.ReplicaVCPUs
	lat := stats.latency()
	switch {
	case lat > spec.SLO:
		mem.CalmSince = time.Time{}
		want := 2 * n
		if spec.MaxInstances > 0 {
			want = min(want, spec.MaxInstances)
		}
		p := newPlacer(st.Nodes, spec)
		out := append([]Instance(nil), st.Instances...)
		for len(out) < want {
			i := -1
			for _, in := range out { // affinity: a node that already runs one
				if j := p.index(in.Node); j >= 0 && p.free(j) >= r-1e-9 {
					i = j
					break
				}
			}
			if i < 0 {
				i = p.pick(r, r, nil)
			}
			if i < 0 {
				break
			}
			out = append(out, Instance{Node: p.nodes[i].Name, VCPUs: r})
			p.take(i, r)
		}
		if len(out) == n {
			return Decision{Action: Hold, Memory: mem,
				Reason: fmt.Sprintf("%s > slo %v, but at the cap: %d replica(s), no room for more", latencyText(stats), spec.SLO, n)}
		}
		return Decision{Action: ScaleUp, Instances: out, Memory: mem,
			Reason: fmt.Sprintf("%s > slo %v: double replicas %d -> %d", latencyText(stats), spec.SLO, n, len(out))}
	case lat < time.Duration(spec.DownBelow*float64(spec.SLO)):
		what := fmt.Sprintf("%s < %v", latencyText(stats), time.Duration(spec.DownBelow*float64(spec.SLO)))
		ok, why := calm(now, &mem, spec, what)
		if !ok {
			return Decision{Action: Hold, Memory: mem, Reason: why}
		}
		keep := max((n+1)/2, 1, spec.MinInstances)
		if keep >= n {
			return Decision{Action: Hold, Memory: mem, Reason: what + ": at the minimum"}
		}
		mem.CalmSince = time.Time{}
		// Newest replicas go first, as a ReplicaSet scale-down prefers.
		return Decision{Action: ScaleDown, Instances: append([]Instance(nil), st.Instances[:keep]...), Memory: mem,
			Reason: fmt.Sprintf("%s for %v: halve replicas %d -> %d", what, spec.Stabilization, n, keep)}
	default:
		mem.CalmSince = time.Time{}
		return Decision{Action: Hold, Memory: mem, Reason: fmt.Sprintf("%s within slo %v", latencyText(stats), spec.SLO)}
	}
}

// decideStatic keeps Instances instances of VCPUs each, whatever the load.
func decideStatic(stats Stats, st State, spec Spec) Decision {
	ok := len(st.Instances) == spec.Instances
	for _, in := range st.Instances {
		ok = ok && in.VCPUs == spec.VCPUs
	}
	if ok {
		return Decision{Action: Hold, Memory: st.Memory,
			Reason: fmt.Sprintf("static %d x %g vCPUs (%s)", spec.Instances, spec.VCPUs, latencyText(stats))}
	}
	p := newPlacer(st.Nodes, spec)
	var out []Instance
	avoid := map[int]bool{}
	for k, in := range st.Instances {
		if k >= spec.Instances {
			break // stop the newest extras
		}
		i := p.index(in.Node)
		if i >= 0 {
			avoid[i] = true
			if add := spec.VCPUs - in.VCPUs; add <= p.free(i)+1e-9 {
				p.take(i, add)
				in.VCPUs = spec.VCPUs
			}
		}
		out = append(out, in)
	}
	for len(out) < spec.Instances {
		i := p.pick(spec.VCPUs, spec.VCPUs, avoid)
		if i < 0 {
			i = p.pick(spec.VCPUs, spec.VCPUs, nil)
		}
		if i < 0 {
			break
		}
		out = append(out, Instance{Node: p.nodes[i].Name, VCPUs: spec.VCPUs})
		p.take(i, spec.VCPUs)
		avoid[i] = true
	}
	reason := fmt.Sprintf("static: %d x %g vCPUs wanted, %d instance(s) with %g vCPUs placed", spec.Instances, spec.VCPUs, len(out), total(out))
	if len(out) == len(st.Instances) && total(out) == st.total() {
		return Decision{Action: Hold, Memory: st.Memory, Reason: reason + ": no room for more"}
	}
	return Decision{Action: Reconcile, Instances: out, Memory: st.Memory, Reason: reason}
}

// predictiveNeed is the vCPUs that keep utilisation at the target for the
// given arrival rate (Little's law: busy vCPUs = rate x service time) plus
// those that drain the present queue within one interval, and never so few
// that one request alone, which runs at min(1, vCPUs) of a CPU, takes more
// than half the SLO. 0 when the service time is unknown.
func predictiveNeed(stats Stats, rate float64, spec Spec) float64 {
	s := stats.ServiceTime.Seconds()
	if s == 0 {
		return 0
	}
	need := rate*s/spec.TargetUtilization + float64(stats.Queued)*s/spec.Interval.Seconds()
	floor := min(1, 2*s/spec.SLO.Seconds())
	return max(spec.MinVCPUs, quantizeUp(max(need, floor)))
}

// decidePredictive sizes capacity from demand in one step. It scales up to
// the larger of the needs over the window and over the short panic window (up
// fast: a rising rate shows in the short window first); a short-window need
// of PanicThreshold times capacity starts panic mode, which forbids
// scale-down for a window (Knative's panic mode); scale-down waits for the
// window's need to stay under capacity by the hysteresis for the
// stabilisation window, then goes to the largest need seen meanwhile.
func decidePredictive(now time.Time, stats Stats, st State, spec Spec) Decision {
	mem := st.Memory
	cur := st.total()
	if stats.ServiceTime == 0 {
		return Decision{Action: Hold, Memory: mem, Reason: "no service time measured yet"}
	}
	stable := predictiveNeed(stats, stats.Rate, spec)
	short := predictiveNeed(stats, stats.ShortRate, spec)
	desc := fmt.Sprintf("rate %.3g/s x service %v / utilization %g", stats.Rate, stats.ServiceTime.Round(time.Millisecond), spec.TargetUtilization)
	if stats.Queued > 0 {
		desc += fmt.Sprintf(" + %d queued", stats.Queued)
	}
	entered := false
	if short >= spec.PanicThreshold*cur {
		entered = !now.Before(mem.PanicUntil)
		mem.PanicUntil = now.Add(spec.Window)
	}
	up := func(want float64, why string) Decision {
		out := grow(st, spec, want)
		got := total(out)
		if got <= cur+1e-9 {
			return Decision{Action: Hold, Memory: mem,
				Reason: fmt.Sprintf("%s, but no room to grow beyond %g vCPUs", why, cur)}
		}
		return Decision{Action: ScaleUp, Instances: out, Memory: mem,
			Reason: fmt.Sprintf("%s: vCPUs %g -> %g%s", why, cur, got, spread(st, out))}
	}
	if now.Before(mem.PanicUntil) {
		mem.CalmSince, mem.CalmNeed = time.Time{}, 0
		want := max(short, stable)
		if want > cur {
			why := fmt.Sprintf("panic for another %v: short-window need %g", mem.PanicUntil.Sub(now), short)
			if entered {
				why = fmt.Sprintf("panic: short-window need %g >= %g x capacity %g", short, spec.PanicThreshold, cur)
			}
			return up(want, why)
		}
		return Decision{Action: Hold, Memory: mem,
			Reason: fmt.Sprintf("panic for another %v: need %g <= capacity %g, not scaling down", mem.PanicUntil.Sub(now), want, cur)}
	}
	switch {
	case short > cur && short > stable:
		// Up fast: a rising rate shows in the short window first.
		mem.CalmSince, mem.CalmNeed = time.Time{}, 0
		return up(short, fmt.Sprintf("short-window need %g (rate %.3g/s) > capacity %g", short, stats.ShortRate, cur))
	case stable > cur:
		mem.CalmSince, mem.CalmNeed = time.Time{}, 0
		return up(stable, fmt.Sprintf("need %g (%s) > capacity %g", stable, desc, cur))
	case stable < cur*(1-spec.Hysteresis) && stable < cur:
		what := fmt.Sprintf("need %g (%s) < capacity %g less hysteresis %g", stable, desc, cur, spec.Hysteresis)
		ok, why := calm(now, &mem, spec, what)
		mem.CalmNeed = max(mem.CalmNeed, stable)
		if !ok {
			return Decision{Action: Hold, Memory: mem, Reason: why}
		}
		want := max(spec.MinVCPUs, mem.CalmNeed)
		out := shrink(st, spec, want)
		if total(out) >= cur-1e-9 {
			return Decision{Action: Hold, Memory: mem, Reason: what + ": at the minimum"}
		}
		mem.CalmSince, mem.CalmNeed = time.Time{}, 0
		return Decision{Action: ScaleDown, Instances: out, Memory: mem,
			Reason: fmt.Sprintf("need at most %g for %v: vCPUs %g -> %g%s", want, spec.Stabilization, cur, total(out), spread(st, out))}
	default:
		mem.CalmSince, mem.CalmNeed = time.Time{}, 0
		return Decision{Action: Hold, Memory: mem, Reason: fmt.Sprintf("need %g (%s) fits capacity %g", stable, desc, cur)}
	}
}
