package loadgen

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it. It returns 0 for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps 99.9% of 1000 at rank 999 despite 0.999*1000 being
	// 999.0000000000001 in binary floating point.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Summary is what a run did.
type Summary struct {
	// Requests counts every request sent; OK those answered 2xx; Errors the
	// rest (no answer or a non-2xx status).
	Requests, OK, Errors int
	// ByStatus counts answers by status code (0: no answer).
	ByStatus map[int]int
	// Elapsed is the span from the run's start to its last answer.
	Elapsed time.Duration
	// Latency percentiles and mean of the successful requests.
	Mean, P50, P90, P99, P999, Max time.Duration
}

// Summarize computes the summary of records.
func Summarize(records []Record) Summary {
	s := Summary{ByStatus: map[int]int{}}
	lat := make([]time.Duration, 0, len(records))
	var sum time.Duration
	for _, r := range records {
		s.Requests++
		s.ByStatus[r.Status]++
		if end := r.Start + r.Latency; end > s.Elapsed {
			s.Elapsed = end
		}
		if !r.OK() {
			s.Errors++
			continue
		}
		s.OK++
		lat = append(lat, r.Latency)
		sum += r.Latency
	}
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	s.Mean = sum / time.Duration(len(lat))
	s.P50, s.P90 = Percentile(lat, 50), Percentile(lat, 90)
	s.P99, s.P999 = Percentile(lat, 99), Percentile(lat, 99.9)
	s.Max = lat[len(lat)-1]
	return s
}

// Throughput is requests answered per second over the run.
func (s Summary) Throughput() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Requests) / s.Elapsed.Seconds()
}

// String formats the summary as a few lines for a terminal.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests %d in %v (%.1f/s), ok %d, errors %d", s.Requests, s.Elapsed.Round(time.Millisecond), s.Throughput(), s.OK, s.Errors)
	if s.Errors > 0 {
		fmt.Fprintf(&b, " (%s)", s.StatusCounts())
	}
	fmt.Fprintf(&b, "\nlatency of ok requests: p50 %v  p90 %v  p99 %v  p99.9 %v  max %v  mean %v\n",
		round(s.P50), round(s.P90), round(s.P99), round(s.P999), round(s.Max), round(s.Mean))
	if s.AllFailed() {
		fmt.Fprintf(&b, "every request failed: no answer was a 2xx\n")
	}
	return b.String()
}

// StatusCounts lists ByStatus in status order, like "200: 11, 429: 1" ("no
// answer" for 0).
func (s Summary) StatusCounts() string {
	codes := make([]int, 0, len(s.ByStatus))
	for c := range s.ByStatus {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		name := fmt.Sprint(c)
		if c == 0 {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, s.ByStatus[c]))
	}
	return strings.Join(parts, ", ")
}

// AllFailed reports whether the run sent requests and none succeeded: its
// latencies measure nothing the target can serve.
func (s Summary) AllFailed() bool { return s.Requests > 0 && s.OK == 0 }

// round trims a latency to three significant figures for display.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= 10*time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
