package autoscale

import (
	"fmt"
	"math"
	"time"
)

// Quantum is the step in which vCPUs are given out: a quarter of a CPU.
const Quantum = 0.25

// Stats is what was observed of one function over its window, as of the
// decision's time. The zero value means no traffic and no measurements.
// Durations encode in JSON as nanoseconds.
type Stats struct {
	// Window is the span the counts, rates and percentiles cover.
	Window time.Duration `json:"window"`
	// Arrivals is the number of requests that arrived in the window.
	Arrivals int `json:"arrivals"`
	// Rate is arrivals per second over Window.
	Rate float64 `json:"rate"`
	// ShortRate is arrivals per second over the spec's PanicWindow, the most
	// recent part of the window; predictive's panic mode reads it.
	ShortRate float64 `json:"short_rate"`
	// Completions is the number of requests that finished in the window; the
	// percentiles are over them and are zero when it is zero.
	Completions int           `json:"completions"`
	P50         time.Duration `json:"p50"`
	P95         time.Duration `json:"p95"`
	P99         time.Duration `json:"p99"`
	// ServiceTime is the mean CPU time one request needs at 1 vCPU, measured
	// (for example as worker busy time per completion, normalised to 1 vCPU);
	// zero means not known yet.
	ServiceTime time.Duration `json:"service_time"`
	// InFlight is the number of requests running now.
	InFlight int `json:"in_flight"`
	// Queued is the number of requests waiting now, at the gateway or in an
	// instance.
	Queued int `json:"queued"`
	// QueueAge is how long the oldest waiting request has waited; zero when
	// none waits. A decision reads it as a latency when nothing completes.
	QueueAge time.Duration `json:"queue_age"`
	// Idle is the time since the last request arrived (or since the function
	// was first seen, if none has).
	Idle time.Duration `json:"idle"`
}

// validate rejects what no stats source should produce.
func (s Stats) validate() error {
	switch {
	case s.Window < 0:
		return fmt.Errorf("stats: window: must be >= 0, got %v", s.Window)
	case s.Arrivals < 0, s.Completions < 0, s.InFlight < 0, s.Queued < 0:
		return fmt.Errorf("stats: counts must be >= 0, got arrivals %d completions %d in-flight %d queued %d",
			s.Arrivals, s.Completions, s.InFlight, s.Queued)
	case !(s.Rate >= 0) || math.IsInf(s.Rate, 0):
		return fmt.Errorf("stats: rate: must be a finite number >= 0, got %v", s.Rate)
	case !(s.ShortRate >= 0) || math.IsInf(s.ShortRate, 0):
		return fmt.Errorf("stats: short rate: must be a finite number >= 0, got %v", s.ShortRate)
	case s.P50 < 0, s.P95 < 0, s.P99 < 0, s.ServiceTime < 0, s.QueueAge < 0, s.Idle < 0:
		return fmt.Errorf("stats: durations must be >= 0")
	}
	return nil
}

// latency is the p99 a decision acts on: the window's p99, or the age of the
// oldest waiting request when that is longer, so that a function whose
// requests are all stuck still counts as slow.
func (s Stats) latency() time.Duration {
	return max(s.P99, s.QueueAge)
}

// busy reports whether the function has work now or had arrivals in the window.
func (s Stats) busy() bool {
	return s.InFlight > 0 || s.Queued > 0 || s.Arrivals > 0 || s.Rate > 0
}

// Instance is one running (or starting) instance of a function.
type Instance struct {
	// ID names the instance; empty in a Decision for an instance to start.
	ID string `json:"id,omitempty"`
	// Node is the name of the node it runs on.
	Node string `json:"node"`
	// VCPUs is its CPU allowance.
	VCPUs float64 `json:"vcpus"`
	// Ready is false while it boots and loads its model.
	Ready bool `json:"ready"`
}

// Node is one machine that instances are placed on.
type Node struct {
	Name string `json:"name"`
	// CPUs is the capacity given to functions.
	CPUs float64 `json:"cpus"`
	// Used is the vCPUs allocated to instances of all functions.
	Used float64 `json:"used"`
}

// Free is the capacity not yet allocated.
func (n Node) Free() float64 { return n.CPUs - n.Used }

// Memory is what policies remember between decisions. The zero value is a
// function about which nothing is remembered.
type Memory struct {
	// LastChange is when capacity last changed; zero if never.
	LastChange time.Time `json:"last_change,omitzero"`
	// CalmSince is when the current stretch of "could scale down" began:
	// p99 well under the SLO (hybrid, hpa) or need under capacity by more
	// than the hysteresis (predictive). Zero when not calm.
	CalmSince time.Time `json:"calm_since,omitzero"`
	// CalmNeed is predictive's largest need, in vCPUs, seen since CalmSince:
	// scale-down goes to it, never below.
	CalmNeed float64 `json:"calm_need,omitempty"`
	// PanicUntil is when predictive's panic mode ends; zero or past when not
	// panicking.
	PanicUntil time.Time `json:"panic_until,omitzero"`
}

// State is what a decision knows of the function and the cluster.
type State struct {
	Function string
	// Instances are the function's instances, ready or starting; instances
	// being stopped are not listed.
	Instances []Instance
	// Nodes are all nodes, with Used counting every function's instances,
	// this one's included. Decide only reads it.
	Nodes []Node
	// Memory is the previous decision's Memory.
	Memory Memory
}

// total is the vCPUs of all instances.
func (s State) total() float64 {
	var t float64
	for _, in := range s.Instances {
		t += in.VCPUs
	}
	return t
}

// starting counts instances not yet ready.
func (s State) starting() int {
	n := 0
	for _, in := range s.Instances {
		if !in.Ready {
			n++
		}
	}
	return n
}

// Action says what kind of change a decision makes.
type Action string

// Actions.
const (
	Hold      Action = "hold"       // keep what there is
	ScaleUp   Action = "scale-up"   // more vCPUs or instances
	ScaleDown Action = "scale-down" // fewer vCPUs or instances
	FromZero  Action = "from-zero"  // first instance for waiting work
	ToZero    Action = "to-zero"    // stop every instance after idling
	Reconcile Action = "reconcile"  // static: bring instances to the spec
)

// Decision is the outcome of Decide for one function.
type Decision struct {
	// Valid is false when the stats or spec could not be used; Reason says
	// why and nothing should be applied.
	Valid  bool   `json:"valid"`
	Action Action `json:"action"`
	// Instances is the target: instances of the state that keep running (by
	// ID, with their new VCPUs) and new ones (empty ID) with a node. An
	// instance of the state that is missing is to be stopped.
	Instances []Instance `json:"instances"`
	// Reason explains the decision in one line.
	Reason string `json:"reason"`
	// Memory is what the next decision must get in State.Memory.
	Memory Memory `json:"memory"`
}

// Changed reports whether applying the decision would change anything.
func (d Decision) Changed() bool {
	return d.Valid && d.Action != Hold
}

// VCPUs is the target's total vCPUs.
func (d Decision) VCPUs() float64 {
	var t float64
	for _, in := range d.Instances {
		t += in.VCPUs
	}
	return t
}

// Op is one step of a Plan.
type Op string

// Plan operations.
const (
	Start  Op = "start"
	Stop   Op = "stop"
	Resize Op = "resize"
)

// Change is one step from a state to a decision's target.
type Change struct {
	Op Op
	// Instance is the instance to start (empty ID), stop, or resize (with the
	// new VCPUs).
	Instance Instance
	// From is the VCPUs before the change (0 for Start).
	From float64
}

// Plan lists the changes that take the state to the decision's target: stops
// first (they free capacity), then resizes, then starts.
func Plan(s State, d Decision) []Change {
	if !d.Changed() {
		return nil
	}
	keep := make(map[string]Instance, len(d.Instances))
	var stops, resizes, starts []Change
	for _, in := range d.Instances {
		if in.ID == "" {
			starts = append(starts, Change{Op: Start, Instance: in})
		} else {
			keep[in.ID] = in
		}
	}
	for _, cur := range s.Instances {
		tgt, ok := keep[cur.ID]
		switch {
		case !ok:
			stops = append(stops, Change{Op: Stop, Instance: cur, From: cur.VCPUs})
		case tgt.VCPUs != cur.VCPUs:
			tgt.Node, tgt.Ready = cur.Node, cur.Ready
			resizes = append(resizes, Change{Op: Resize, Instance: tgt, From: cur.VCPUs})
		}
	}
	return append(append(stops, resizes...), starts...)
}

// quantizeUp rounds v up to a multiple of Quantum (tolerating float noise).
func quantizeUp(v float64) float64 {
	return math.Ceil(v/Quantum-1e-9) * Quantum
}

// quantizeDown rounds v down to a multiple of Quantum.
func quantizeDown(v float64) float64 {
	return math.Floor(v/Quantum+1e-9) * Quantum
}

// onQuantum reports whether v is a multiple of Quantum.
func onQuantum(v float64) bool {
	return math.Abs(v/Quantum-math.Round(v/Quantum)) < 1e-9
}
