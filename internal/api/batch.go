package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BatchPolicy is a function's batching: Max rows per run (the sum of the
// requests' first dimensions; 0 or 1 turns batching off) and Delay, how
// long a run with fewer rows waits for more requests. Delay 0 is "auto":
// an idle function runs each request at once; under load (a run starting
// within a run's time of the last one's end) a run waits up to a quarter of
// the last run's time, at most 2 ms, for the requests on their way.
//
// Pad names a transformer's attention mask input: requests whose sequences
// (their inputs' second dimension) differ in length are then batched too,
// every input padded with zeros to the longest and the outputs whose second
// dimension is the sequence cut back to each request's length. Only a
// model that masks padded positions (as transformers do with their
// attention mask) answers the same padded; "" batches equal shapes only.
type BatchPolicy struct {
	Max   int
	Delay time.Duration
	Pad   string
}

// Enabled reports whether p batches at all.
func (p BatchPolicy) Enabled() bool { return p.Max > 1 }

// maxBatchDelay bounds Delay: a batch window longer than this is latency no
// SLO would accept.
const maxBatchDelay = time.Second

// ParseBatchPolicy reads "off", "auto" (max 32, no delay) or
// "max=N[,delay=D][,pad=MASK]" (any of the three; max defaults to 32).
func ParseBatchPolicy(s string) (BatchPolicy, error) {
	switch s {
	case "", "off":
		return BatchPolicy{}, nil
	case "auto":
		return BatchPolicy{Max: 32}, nil
	}
	p := BatchPolicy{Max: 32}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return p, fmt.Errorf("%q: want off, auto or max=N[,delay=D][,pad=MASK]", s)
		}
		switch k {
		case "max":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 4096 {
				return p, fmt.Errorf("max=%s: must be an integer in [1, 4096]", v)
			}
			p.Max = n
		case "delay":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > maxBatchDelay {
				return p, fmt.Errorf("delay=%s: must be a duration in [0, %s]", v, maxBatchDelay)
			}
			p.Delay = d
		case "pad":
			if v == "" || strings.ContainsAny(v, " ,=") {
				return p, fmt.Errorf("pad=%s: must name the attention mask input", v)
			}
			p.Pad = v
		default:
			return p, fmt.Errorf("%s: unknown; want max, delay or pad", k)
		}
	}
	return p, nil
}

// String formats p as ParseBatchPolicy reads it.
func (p BatchPolicy) String() string {
	if !p.Enabled() {
		return "off"
	}
	out := fmt.Sprintf("max=%d", p.Max)
	if p.Delay > 0 {
		out += fmt.Sprintf(",delay=%s", p.Delay)
	}
	if p.Pad != "" {
		out += ",pad=" + p.Pad
	}
	return out
}
