// Package sim simulates a cluster of nodes running functions under an
// autoscaling policy, in virtual time, to compare policies at scales and
// loads the real platform cannot be given here.
//
// It is a discrete-event simulation: one heap of events (arrivals, request
// completions, instances becoming ready, autoscaler ticks, time-series
// samples) ordered by virtual time, with ties broken by scheduling order, so
// a run is a function of its Config and Seed. The autoscaler is not a copy:
// the run drives an autoscale.Loop, whose Tick it calls in virtual time, with
// the simulated platform as its StatsSource, Actuator and Nodes, so the
// policies decide here exactly as they do on the platform.
//
// The model:
//
//   - A request needs an amount of work, drawn per function from a service
//     time distribution measured at 1 vCPU (Dist: constant, exponential,
//     log-normal, uniform, or resampled from measurements of the real
//     engine). A request is one thread: it never runs faster than one CPU.
//   - An instance has v vCPUs (its CPU quota) and a pool of
//     ceil(v x WorkersPerVCPU) workers. With w requests running, each
//     progresses at min(1, v/w) of a CPU: processor sharing within the quota,
//     as CFS gives it. It is simulated exactly, by a virtual clock per
//     instance that advances at that rate, each request finishing when the
//     clock passes its start plus its work.
//   - Requests wait in one FIFO queue per function, at the gateway, bounded
//     by MaxQueue (arrivals beyond it are dropped), and go to the ready
//     instance with a free worker and the fewest running requests per vCPU.
//   - A new instance serves after Boot plus the model's load time for its
//     load mode (the thesis's Table 4.2 for BERT: copy 1.83 s, single
//     0.134 s, mmap 0.068 s). Resizing an instance is instant (a cgroup
//     write). A stopped instance takes no new requests, finishes those it
//     runs, and its CPUs count as free at once.
//   - Memory is, per instance, InstanceBytes plus ActivationBytes per worker,
//     plus the model: once per instance for load modes copy and single, once
//     per node running any instance of the function for mmap (the page cache
//     is shared).
//   - Node CPUs bound what the autoscaler places (Node.Used); instances do
//     not slow one another beyond that, and memory bandwidth and caches are
//     not modelled.
//
// Workloads: a closed loop of users (the thesis's Locust ramp: 1 user, +2 per
// second to 100, each one request then 2-3 s of thought), and open-loop
// Poisson arrivals at a piecewise-constant rate (steady, steps, bursts). A
// run offers load for Duration, then lets what is in flight drain.
//
// Output: a Summary (latency percentiles, SLO violations, peak and mean
// memory, vCPU-seconds, replicas, decisions) and a per-step time series, for
// all functions together.
package sim
