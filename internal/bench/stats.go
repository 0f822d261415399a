package bench

import (
	"math"
	"slices"
	"time"
)

// Latency summarises repeated timings in milliseconds. The zero value means no
// runs.
type Latency struct {
	Runs   int     `json:"runs"`
	Median float64 `json:"median_ms"`
	P90    float64 `json:"p90_ms"`
	P99    float64 `json:"p99_ms"`
	Mean   float64 `json:"mean_ms"`
	Min    float64 `json:"min_ms"`
	Max    float64 `json:"max_ms"`
}

// Summarize computes a Latency from timings. Quantiles are nearest-rank
// (the smallest timing with at least that share of timings at or below it),
// as tools/node/ort-run.mjs computes them, so both engines' numbers compare.
func Summarize(times []time.Duration) Latency {
	if len(times) == 0 {
		return Latency{}
	}
	ms := make([]float64, len(times))
	var sum float64
	for i, t := range times {
		ms[i] = float64(t) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ms)))) - 1
		return ms[min(len(ms)-1, max(0, i))]
	}
	return Latency{
		Runs: len(ms), Median: q(0.5), P90: q(0.9), P99: q(0.99),
		Mean: sum / float64(len(ms)), Min: ms[0], Max: ms[len(ms)-1],
	}
}
