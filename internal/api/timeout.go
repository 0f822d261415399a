package api

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// TimeoutHeader carries a per-request deadline: a Go duration ("2.5s",
// "300ms") or a number of seconds. Gateways cap it at their maximum.
const TimeoutHeader = "Spindle-Timeout"

// RequestTimeout reads a TimeoutHeader value h: def when h is empty, capped
// at most. The error names the header and the rule.
func RequestTimeout(h string, def, most time.Duration) (time.Duration, error) {
	if h == "" {
		return def, nil
	}
	d, err := time.ParseDuration(h)
	if err != nil {
		secs, ferr := strconv.ParseFloat(h, 64)
		if ferr != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
			return 0, fmt.Errorf("header %s %q: want a duration like 2s or 500ms, or seconds", TimeoutHeader, h)
		}
		// Capped before converting: seconds past about 292 years overflow a
		// Duration, and would read as negative.
		d = time.Duration(min(secs, most.Seconds()) * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("header %s %q: must be positive", TimeoutHeader, h)
	}
	return min(d, most), nil
}
