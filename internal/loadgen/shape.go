package loadgen

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Ramp is a closed-loop user population: Start users at once, then one more
// every 1/SpawnRate seconds until Max. The zero value is invalid; Validate
// says why.
type Ramp struct {
	Start, Max int
	// SpawnRate is users added per second; 0 means all Max users at once.
	SpawnRate float64
}

// ThesisRamp is the population of the thesis's Fig 6.3: 1 user, 2 more every
// second, up to 100.
var ThesisRamp = Ramp{Start: 1, Max: 100, SpawnRate: 2}

// Validate reports a ramp that cannot run.
func (r Ramp) Validate() error {
	switch {
	case r.Max < 1:
		return fmt.Errorf("users: %d must be at least 1", r.Max)
	case r.Start < 0 || r.Start > r.Max:
		return fmt.Errorf("start users: %d must be between 0 and users (%d)", r.Start, r.Max)
	case r.SpawnRate < 0 || math.IsNaN(r.SpawnRate) || math.IsInf(r.SpawnRate, 0):
		return fmt.Errorf("spawn rate: %v must be a finite number >= 0", r.SpawnRate)
	}
	return nil
}

// interval is the time between two spawns, 0 when all users start at once.
func (r Ramp) interval() time.Duration {
	if r.SpawnRate == 0 {
		return 0
	}
	return max(time.Duration(float64(time.Second)/r.SpawnRate), 1)
}

// Users returns how many users are active after elapsed time.
func (r Ramp) Users(elapsed time.Duration) int {
	iv := r.interval()
	if iv == 0 {
		return r.Max
	}
	if elapsed < 0 {
		elapsed = 0
	}
	n := int64(r.Start) + int64(elapsed/iv)
	return int(min(n, int64(r.Max)))
}

// NextSpawn returns the elapsed time at which Users next grows, and false
// once the population is complete.
func (r Ramp) NextSpawn(elapsed time.Duration) (time.Duration, bool) {
	n := r.Users(elapsed)
	if n >= r.Max {
		return 0, false
	}
	return time.Duration(n-r.Start+1) * r.interval(), true
}

// Think is a user's wait between an answer and its next request, uniform in
// [Min, Max]. The zero value means no wait.
type Think struct{ Min, Max time.Duration }

// ThesisThink is the thesis's wait of 2-3 s between requests.
var ThesisThink = Think{Min: 2 * time.Second, Max: 3 * time.Second}

// Validate reports a think time that cannot be drawn.
func (t Think) Validate() error {
	if t.Min < 0 || t.Max < t.Min {
		return fmt.Errorf("think time: %v-%v must satisfy 0 <= min <= max", t.Min, t.Max)
	}
	return nil
}

// Draw returns one think time from rng.
func (t Think) Draw(rng *rand.Rand) time.Duration {
	if t.Max <= t.Min {
		return t.Min
	}
	return t.Min + time.Duration(rng.Int64N(int64(t.Max-t.Min)+1))
}

// Rate is an open-loop arrival rate in requests per second as a function of
// elapsed time.
type Rate interface {
	At(elapsed time.Duration) float64
	// Next returns the first time after elapsed at which the rate changes, or
	// false when it never does.
	Next(elapsed time.Duration) (time.Duration, bool)
}

// Constant is a fixed rate in requests per second.
type Constant float64

func (c Constant) At(time.Duration) float64                 { return float64(c) }
func (c Constant) Next(time.Duration) (time.Duration, bool) { return 0, false }

// Step is a rate that starts at Start and grows by Step every Every, up to Max
// (Max 0 means no cap).
type Step struct {
	Start, Step, Max float64
	Every            time.Duration
}

// At returns the rate at elapsed.
func (s Step) At(elapsed time.Duration) float64 {
	if s.Every <= 0 || elapsed < 0 {
		return s.Start
	}
	r := s.Start + s.Step*float64(elapsed/s.Every)
	if s.Max > 0 && r > s.Max {
		r = s.Max
	}
	return r
}

// Next returns the next step boundary while the rate still grows.
func (s Step) Next(elapsed time.Duration) (time.Duration, bool) {
	if s.Every <= 0 || s.Step == 0 || (s.Max > 0 && s.At(elapsed) >= s.Max) {
		return 0, false
	}
	if elapsed < 0 {
		elapsed = 0
	}
	return (elapsed/s.Every + 1) * s.Every, true
}

// ValidateRate reports a rate schedule that cannot run: negative, not finite,
// or zero forever.
func ValidateRate(r Rate) error {
	switch r := r.(type) {
	case nil:
		return errors.New("rate: required")
	case Constant:
		if !(float64(r) > 0) || math.IsInf(float64(r), 0) {
			return fmt.Errorf("rate: %v must be a finite number > 0", float64(r))
		}
	case Step:
		switch {
		case r.Start < 0 || r.Step < 0 || r.Max < 0:
			return fmt.Errorf("step rate: start %v, step %v, max %v must not be negative", r.Start, r.Step, r.Max)
		case r.Every <= 0:
			return fmt.Errorf("step rate: every %v must be > 0", r.Every)
		case r.Start == 0 && r.Step == 0:
			return errors.New("step rate: start and step are both 0: no request would ever start")
		}
	}
	return nil
}

// Arrivals yields open-loop request start times, as offsets from the run's
// start: evenly spaced at the current rate, or a Poisson process (exponential
// gaps) when Poisson is set. The sequence is a pure function of the rate and
// seed.
type Arrivals struct {
	rate    Rate
	poisson bool
	rng     *rand.Rand
	next    time.Duration
	started bool
}

// NewArrivals returns the arrival sequence for rate.
func NewArrivals(rate Rate, poisson bool, seed uint64) *Arrivals {
	return &Arrivals{rate: rate, poisson: poisson, rng: rand.New(rand.NewPCG(seed, 0xa771fa1))}
}

// Next returns the next arrival time, or false when the rate stays at zero
// for ever.
func (a *Arrivals) Next() (time.Duration, bool) {
	t := a.next
	if a.started {
		for {
			r := a.rate.At(t)
			if r > 0 {
				gap := 1.0
				if a.poisson {
					gap = a.rng.ExpFloat64()
				}
				// Rounding gaps up keeps n gaps at rate n/s from ending a
				// nanosecond short of the second.
				t += max(time.Duration(math.Ceil(gap/r*float64(time.Second))), 1)
				break
			}
			nt, ok := a.rate.Next(t)
			if !ok {
				return 0, false
			}
			t = nt
		}
	} else {
		a.started = true
		for a.rate.At(t) <= 0 { // the first arrival waits for a rate
			nt, ok := a.rate.Next(t)
			if !ok {
				return 0, false
			}
			t = nt
		}
	}
	a.next = t
	return t, true
}

// ParseThink parses a think time: "2s-3s" (uniform between), "500ms" (fixed)
// or "0".
func ParseThink(s string) (Think, error) {
	lo, hi, ranged := strings.Cut(s, "-")
	min, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil {
		return Think{}, fmt.Errorf("think %q: want DURATION or MIN-MAX (e.g. 2s-3s): %w", s, err)
	}
	max := min
	if ranged {
		if max, err = time.ParseDuration(strings.TrimSpace(hi)); err != nil {
			return Think{}, fmt.Errorf("think %q: want DURATION or MIN-MAX (e.g. 2s-3s): %w", s, err)
		}
	}
	t := Think{Min: min, Max: max}
	return t, t.Validate()
}

// ParseStep parses a stepped rate START:STEP:EVERY[:MAX], e.g. "5:5:10s:50"
// (5 req/s, 5 more every 10 s, up to 50).
func ParseStep(s string) (Step, error) {
	f := strings.Split(s, ":")
	bad := func(err error) (Step, error) {
		return Step{}, fmt.Errorf("step rate %q: want START:STEP:EVERY[:MAX] (e.g. 5:5:10s:50): %w", s, err)
	}
	if len(f) != 3 && len(f) != 4 {
		return bad(errors.New("wrong number of fields"))
	}
	var st Step
	var err error
	if st.Start, err = strconv.ParseFloat(f[0], 64); err != nil {
		return bad(err)
	}
	if st.Step, err = strconv.ParseFloat(f[1], 64); err != nil {
		return bad(err)
	}
	if st.Every, err = time.ParseDuration(f[2]); err != nil {
		return bad(err)
	}
	if len(f) == 4 {
		if st.Max, err = strconv.ParseFloat(f[3], 64); err != nil {
			return bad(err)
		}
	}
	if err := ValidateRate(st); err != nil {
		return Step{}, err
	}
	return st, nil
}
