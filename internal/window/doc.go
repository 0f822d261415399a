// Package window keeps sliding-window request statistics (completions, errors,
// arrivals, rates and latency percentiles) for one stream of requests, in bounded
// memory and O(1) time per request.
//
// The window is a ring of time buckets; each bucket holds counters and a
// log-linear latency histogram (64 linear sub-buckets per power of two, after
// HdrHistogram), so a percentile read from the merged buckets is within 1/128
// (0.79%) of the exact order statistic. Buckets older than the window are reused
// as time moves on, so memory does not grow with the request rate.
//
// Every call takes the current time as an argument and nothing here reads the
// clock (Knative pkg/autoscaler/aggregation: windows take now), so tests step
// time by hand and the autoscaler decides from values it was given.
package window
