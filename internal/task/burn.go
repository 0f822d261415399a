package task

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// cpu-burn defaults.
const (
	DefaultBurnMS    = 500
	DefaultMaxBurnMS = 60_000
	// DefaultItersPerMS is the xorshift rounds in one unit of work: about 1 ms
	// on one core of the machine Spindle is developed on (an AMD EPYC VM: 1.45 ns
	// a round, measured as thread CPU time; BenchmarkBurnUnit times a unit). It
	// is a constant rather than calibrated at start-up so that every instance
	// does the same work: a slower or CPU-throttled instance takes longer, which
	// is what experiments on CPU allotment measure.
	DefaultItersPerMS = 690_000
)

// burner is the cpu-burn task: the thesis's CPU-intensive function, a fixed
// busy loop with no model.
type burner struct {
	def, max, iters int
}

var _ Task = (*burner)(nil)

func newBurner(cfg Config) (*burner, error) {
	b := &burner{max: orDefault(cfg.MaxBurnMS, DefaultMaxBurnMS), iters: orDefault(cfg.ItersPerMS, DefaultItersPerMS)}
	b.def = orDefault(cfg.BurnMS, min(DefaultBurnMS, b.max))
	if b.def > b.max {
		return nil, configErrorf("config: burn_ms: %d is over max_burn_ms %d", b.def, b.max)
	}
	return b, nil
}

// BurnResult is cpu-burn's answer.
type BurnResult struct {
	// BurnedMS is the units of work done (about 1 ms of CPU each on the
	// reference machine).
	BurnedMS int `json:"burned_ms"`
	// Iterations is the number of xorshift rounds.
	Iterations int64 `json:"iterations"`
	// Result is the final xorshift state in hex: it depends only on
	// Iterations, and computing it is what keeps the loop from being optimised
	// away.
	Result string `json:"result"`
	// ComputeMS is the wall time the loop took inside the instance, excluding
	// queueing: the service time.
	ComputeMS float64 `json:"compute_ms"`
}

// Handle burns {"ms": N} units (the configured default for an empty body or
// {}), checking ctx between units so a deadline stops it.
func (b *burner) Handle(ctx context.Context, req Request, _ RunFunc) (any, error) {
	units := b.def
	if body := bytes.TrimSpace(req.Body); len(body) > 0 {
		var r struct {
			MS *int `json:"ms"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, inputErrorf("body", `%s; want empty or {"ms": N}`, jsonProblem(err))
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, inputErrorf("body", `want one JSON object like {"ms": N}, found more after it`)
		}
		if r.MS != nil {
			units = *r.MS
		}
	}
	if units < 0 || units > b.max {
		return nil, inputErrorf("ms", "%d must be between 0 and %d (max_burn_ms)", units, b.max)
	}
	began := time.Now()
	x, err := Burn(ctx, units, b.iters)
	if err != nil {
		return nil, err
	}
	return BurnResult{
		BurnedMS:   units,
		Iterations: int64(units) * int64(b.iters),
		Result:     fmt.Sprintf("%016x", x),
		ComputeMS:  float64(time.Since(began).Microseconds()) / 1000,
	}, nil
}

// burnSeed starts every burn, so the result depends only on the work done.
const burnSeed = 0x9e3779b97f4a7c15

// Burn runs units x itersPerUnit rounds of xorshift64 (Marsaglia 2003): a chain
// of dependent shifts and xors that no compiler or CPU can shorten, so its cost
// is fixed work. It returns the final state, or ctx's error if ctx ends first
// (checked once per unit).
func Burn(ctx context.Context, units, itersPerUnit int) (uint64, error) {
	x := uint64(burnSeed)
	for range units {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		for range itersPerUnit {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
	}
	return x, nil
}
