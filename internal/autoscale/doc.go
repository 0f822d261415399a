// Package autoscale decides how much CPU, and how many instances on which nodes,
// each function gets.
//
// The decision is a pure function, Decide(now, stats, state, spec), after
// Knative's pkg/autoscaler/scaling: it reads no clock and keeps no state of its
// own. What a policy must remember between decisions (when p99 fell under the
// SLO, until when panic mode lasts) travels in State.Memory and comes back,
// updated, in Decision.Memory. The Loop owns the goroutine and the clock: every
// tick it gathers Stats for each function that is due, calls Decide and hands a
// changed Decision to an Actuator, keeping the last decisions of every function
// with their reasons. The simulator (package sim) drives the same Loop, and so
// the same policy code, in virtual time.
//
// Four policies:
//
//   - hybrid, the thesis's design (Ellore, "Rethinking Serverless for Machine
//     Learning Inference", 2023, §5.2 and ch. 6): every interval, if p99 over the window exceeds the SLO, double the
//     function's vCPUs, growing its instance on its own node first (vertical)
//     and adding an instance on another node only when that node is full or the
//     instance is at its cap (horizontal); after a stabilisation window with p99
//     well under the SLO, halve; after an idle period, go to zero. One instance
//     per node shares one copy of the model among its worker threads.
//   - hpa, the Kubernetes Horizontal Pod Autoscaler baseline of the thesis: the
//     same trigger, but capacity is replicas of a fixed size (1 vCPU), doubled
//     and halved, each replica loading its own copy of the model, placed on a
//     node that already runs one while it has room (pod affinity).
//   - static: fixed vCPUs and instances; the thesis's "bare metal" line.
//   - predictive, ours: the vCPUs needed are computed from the arrival rate and
//     the measured service time per request (Little's law at a target
//     utilisation, plus what it takes to drain the queue within one interval)
//     and reached in one step, every second; it scales up on the short
//     (panic) window as soon as that shows more need, a burst of twice the
//     capacity enters panic mode, which holds capacity for a window
//     (Knative's panic mode), and scale-down waits out a stabilisation window
//     with hysteresis.
//
// vCPUs move in steps of Quantum (0.25 vCPU, the granularity a CFS quota can
// follow without rounding surprises). Nodes are a real abstraction: the live
// platform on one machine is one node whose capacity is its CPUs (Local);
// the simulator and, later, a Kubernetes operator provide other Nodes.
package autoscale
