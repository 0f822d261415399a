package autoscale

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// FuzzDecide checks, over random but consistent states, that a decision never
// panics, never overfills a node, keeps vCPUs on the quantum and within the
// cap, respects max-instances, and is a function of its inputs.
func FuzzDecide(f *testing.F) {
	f.Add(uint64(1), uint8(0), uint16(900), 10.0, uint8(0), uint16(0))
	f.Add(uint64(2), uint8(1), uint16(100), 0.0, uint8(3), uint16(120))
	f.Add(uint64(3), uint8(2), uint16(0), 50.0, uint8(40), uint16(1))
	f.Add(uint64(4), uint8(3), uint16(2000), 200.0, uint8(255), uint16(0))
	f.Fuzz(func(t *testing.T, seed uint64, pol uint8, p99ms uint16, rate float64, queued uint8, idleS uint16) {
		r := rand.New(rand.NewPCG(seed, 0))
		policy := Policies[int(pol)%len(Policies)]
		kv := map[string]string{}
		if r.IntN(2) == 0 && policy != Static {
			kv["max-instances"] = fmt.Sprint(1 + r.IntN(4))
		}
		if r.IntN(2) == 0 && (policy == Hybrid || policy == Predictive) {
			kv["max-vcpus"] = fmt.Sprint(float64(1+r.IntN(32)) * Quantum * 4)
			kv["min-vcpus"] = fmt.Sprint(float64(1+r.IntN(4)) * Quantum)
		}
		if r.IntN(3) == 0 {
			kv["placement"] = string(FirstFit)
		}
		if policy == Static {
			kv["vcpus"] = fmt.Sprint(float64(1+r.IntN(64)) * Quantum)
			kv["instances"] = fmt.Sprint(1 + r.IntN(3))
		}
		spec, err := ParseSpec(policy, kv)
		if err != nil {
			t.Skip(err) // e.g. max-vcpus below min-vcpus
		}
		st := State{Memory: Memory{CalmSince: t0.Add(-time.Duration(r.IntN(60)) * time.Second)}}
		for i := range 1 + r.IntN(5) {
			cpus := float64(r.IntN(65))
			st.Nodes = append(st.Nodes, Node{Name: fmt.Sprint("n", i), CPUs: cpus, Used: float64(r.IntN(int(cpus) + 1))})
		}
		for k := range r.IntN(4) {
			i := r.IntN(len(st.Nodes))
			n := &st.Nodes[i]
			v := quantizeDown(r.Float64() * n.Free())
			if v < Quantum {
				continue
			}
			n.Used += v
			st.Instances = append(st.Instances, Instance{ID: fmt.Sprint("i", k), Node: n.Name, VCPUs: v, Ready: r.IntN(5) > 0})
		}
		stats := Stats{
			Window: spec.Window, P99: time.Duration(p99ms) * time.Millisecond, Rate: rate, ShortRate: rate * 2 * r.Float64(),
			Queued: int(queued), Idle: time.Duration(idleS) * time.Second, ServiceTime: time.Duration(r.IntN(500)) * time.Millisecond,
			Completions: r.IntN(100),
		}
		d := Decide(t0, stats, st, spec)
		if again := Decide(t0, stats, st, spec); !reflect.DeepEqual(d, again) {
			t.Fatalf("not a function of its inputs:\n%+v\n%+v", d, again)
		}
		if err := stats.validate(); err != nil {
			if d.Valid {
				t.Fatalf("valid decision on bad stats %v", err)
			}
			return
		}
		if !d.Valid {
			t.Fatalf("invalid decision: %s", d.Reason)
		}
		if !d.Changed() {
			return
		}
		checkCapacity(t, st, d)
		caps := map[string]float64{}
		for _, n := range st.Nodes {
			caps[n.Name] = spec.capOn(n)
		}
		for _, c := range Plan(st, d) {
			grows := c.Op == Start || c.Op == Resize && c.Instance.VCPUs > c.From
			if grows && policy != HPA && policy != Static && c.Instance.VCPUs > caps[c.Instance.Node] {
				t.Errorf("%s to %g vCPUs above the cap %g", c.Op, c.Instance.VCPUs, caps[c.Instance.Node])
			}
		}
		if len(d.Instances) > len(st.Instances) && spec.MaxInstances > 0 && len(d.Instances) > spec.MaxInstances {
			t.Errorf("%d instances above max-instances %d", len(d.Instances), spec.MaxInstances)
		}
	})
}

func FuzzParseSpec(f *testing.F) {
	f.Add("hybrid", "slo", "500ms")
	f.Add("predictive", "target-utilization", "0.7")
	f.Add("static", "vcpus", "1e309")
	f.Add("hpa", "max-instances", "-3")
	f.Fuzz(func(t *testing.T, policy, key, value string) {
		s, err := ParseSpec(Policy(policy), map[string]string{key: value})
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("ParseSpec returned an invalid spec: %v", err)
		}
	})
}
