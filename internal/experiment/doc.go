// Package experiment reproduces the measurements of the thesis behind Spindle
// (Ellore, "Rethinking Serverless for Machine Learning Inference", Virginia
// Tech, 2023) on the real platform, one file per experiment:
//
//   - load-time (Table 4.2, Fig 4.6): model load time in copy, single-copy and
//     mmap (zero-copy) mode, each load in a fresh child process, with the page
//     cache warm and, where the machine lets us evict it, cold;
//   - cold-warm (Table 4.3, Figs 4.1, 4.2): a request's time split into
//     instance start, model load and inference, cold (scale from zero) and
//     warm, through a real gateway;
//   - memory-timeline (Fig 4.5): one instance's memory every 10 ms from start
//     through load to inference, copy against mmap;
//   - concurrency (Figs 5.3, 5.6): latency and memory distributions at 5-50
//     concurrent clients as one instance's vCPUs grow, for ML inference and a
//     CPU-bound function;
//   - hybrid-vs-hpa (Figs 6.1-6.3): the thesis's user ramp under each
//     autoscaling policy, live (one `spindle up --autoscale POLICY` each,
//     sampled every second) or, with --simulated, in the simulator.
//
// Each experiment writes CSV, PNG plots and a Markdown report with our
// numbers beside the thesis's (thesis.go transcribes them). Every number in a
// report comes from a run on this machine; where a run could not do what the
// thesis did (no cache eviction, a 2-core machine), the report says so.
package experiment
