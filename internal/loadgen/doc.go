// Package loadgen drives HTTP load at one target and records every request, in
// the mould of Locust (the load generator of the thesis's chapter 6).
//
// Two ways to make load:
//
//   - closed loop: a population of users, each sending a request, waiting for
//     the answer, then thinking for a random time before the next; users are
//     spawned at a fixed rate from a start count up to a maximum (the thesis:
//     1 -> 100 users, 2 more every second, 2-3 s think time). Ramp.Users is a
//     pure function of elapsed time.
//   - open loop: requests start on a schedule whatever the answers do, at a
//     constant rate, as a Poisson process, or at a rate that steps up; the
//     arrival times come from Arrivals, deterministic in a seed.
//
// A Clock decides when requests start (tests step a fake one); latency is
// always measured with the monotonic wall clock. Every request becomes a
// Record (start offset, latency, status, bytes, users); Summarize reports
// nearest-rank percentiles of the successful requests and counts the errors.
// Runs are bounded: a run needs a duration, a request cap, or both.
package loadgen
