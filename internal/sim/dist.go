package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrBadDist marks a service-time distribution that cannot be parsed or used.
var ErrBadDist = errors.New("bad distribution")

// Dist is a distribution of service times, in seconds of work at 1 vCPU.
type Dist interface {
	// Sample draws one value (> 0) from r.
	Sample(r *rand.Rand) float64
	// Mean is the distribution's mean.
	Mean() float64
	String() string
}

// Const is a fixed service time.
type Const float64

// Sample returns the constant.
func (c Const) Sample(*rand.Rand) float64 { return float64(c) }

// Mean returns the constant.
func (c Const) Mean() float64 { return float64(c) }

// String returns "const:D".
func (c Const) String() string { return "const:" + secs(float64(c)) }

// Exp is an exponential distribution with the given mean (an M/M/x server).
type Exp float64

// Sample draws an exponential time.
func (e Exp) Sample(r *rand.Rand) float64 { return r.ExpFloat64() * float64(e) }

// Mean returns the mean.
func (e Exp) Mean() float64 { return float64(e) }

// String returns "exp:MEAN".
func (e Exp) String() string { return "exp:" + secs(float64(e)) }

// LogNormal is a log-normal distribution with a given mean and coefficient of
// variation (stddev / mean): right-skewed like measured inference latencies.
// Build it with NewLogNormal.
type LogNormal struct {
	mean, cv  float64
	mu, sigma float64
}

// NewLogNormal returns the log-normal distribution with that mean and
// coefficient of variation.
func NewLogNormal(mean, cv float64) LogNormal {
	s2 := math.Log1p(cv * cv)
	return LogNormal{mean: mean, cv: cv, mu: math.Log(mean) - s2/2, sigma: math.Sqrt(s2)}
}

// Sample draws a log-normal time.
func (l LogNormal) Sample(r *rand.Rand) float64 { return math.Exp(l.mu + l.sigma*r.NormFloat64()) }

// Mean returns the mean.
func (l LogNormal) Mean() float64 { return l.mean }

// String returns "lognormal:MEAN:CV".
func (l LogNormal) String() string { return fmt.Sprintf("lognormal:%s:%g", secs(l.mean), l.cv) }

// Uniform is uniform on [Lo, Hi].
type Uniform struct{ Lo, Hi float64 }

// Sample draws a time uniformly from [Lo, Hi].
func (u Uniform) Sample(r *rand.Rand) float64 { return u.Lo + r.Float64()*(u.Hi-u.Lo) }

// Mean returns the middle of the range.
func (u Uniform) Mean() float64 { return (u.Lo + u.Hi) / 2 }

// String returns "uniform:LO:HI".
func (u Uniform) String() string { return "uniform:" + secs(u.Lo) + ":" + secs(u.Hi) }

// Empirical resamples measured service times, such as the per-request times
// of the real engine at 1 thread.
type Empirical struct {
	values []float64 // sorted
	mean   float64
	source string
}

// NewEmpirical builds an empirical distribution from samples in seconds.
func NewEmpirical(values []float64, source string) (*Empirical, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("%w: %s: no samples", ErrBadDist, source)
	}
	v := append([]float64(nil), values...)
	sort.Float64s(v)
	var sum float64
	for _, x := range v {
		if !(x > 0) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%w: %s: sample %v: must be a finite time > 0", ErrBadDist, source, x)
		}
		sum += x
	}
	return &Empirical{values: v, mean: sum / float64(len(v)), source: source}, nil
}

// Sample draws one of the measured times.
func (e *Empirical) Sample(r *rand.Rand) float64 { return e.values[r.IntN(len(e.values))] }

// Mean returns the mean of the measured times.
func (e *Empirical) Mean() float64 { return e.mean }

// String names the source and its size.
func (e *Empirical) String() string {
	return fmt.Sprintf("file:%s (%d samples, mean %s)", e.source, len(e.values), secs(e.mean))
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
}

// ParseDist parses a distribution: const:D, exp:MEAN, lognormal:MEAN:CV,
// uniform:LO:HI (durations such as 200ms) or file:PATH, a file of service
// times, one a line, as Go durations ("212ms") or seconds ("0.212"), with
// '#' comments.
func ParseDist(s string) (Dist, error) {
	kind, rest, _ := strings.Cut(s, ":")
	args := strings.Split(rest, ":")
	dur := func(i int) (float64, error) {
		if i >= len(args) || args[i] == "" {
			return 0, fmt.Errorf("%w: %q: missing argument %d", ErrBadDist, s, i+1)
		}
		d, err := time.ParseDuration(args[i])
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%w: %q: %q: want a duration > 0 such as 200ms", ErrBadDist, s, args[i])
		}
		return d.Seconds(), nil
	}
	nargs := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("%w: %q: %s takes %d argument(s)", ErrBadDist, s, kind, n)
		}
		return nil
	}
	switch kind {
	case "const", "exp":
		if err := nargs(1); err != nil {
			return nil, err
		}
		m, err := dur(0)
		if err != nil {
			return nil, err
		}
		if kind == "const" {
			return Const(m), nil
		}
		return Exp(m), nil
	case "lognormal":
		if err := nargs(2); err != nil {
			return nil, err
		}
		m, err := dur(0)
		if err != nil {
			return nil, err
		}
		cv, err := strconv.ParseFloat(args[1], 64)
		if err != nil || !(cv > 0) || cv > 100 {
			return nil, fmt.Errorf("%w: %q: cv %q: want a number in (0, 100]", ErrBadDist, s, args[1])
		}
		return NewLogNormal(m, cv), nil
	case "uniform":
		if err := nargs(2); err != nil {
			return nil, err
		}
		lo, err := dur(0)
		if err != nil {
			return nil, err
		}
		hi, err := dur(1)
		if err != nil {
			return nil, err
		}
		if hi < lo {
			return nil, fmt.Errorf("%w: %q: high %s below low %s", ErrBadDist, s, secs(hi), secs(lo))
		}
		return Uniform{lo, hi}, nil
	case "file":
		if rest == "" {
			return nil, fmt.Errorf("%w: %q: missing path", ErrBadDist, s)
		}
		f, err := os.Open(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadDist, err)
		}
		defer f.Close()
		return ReadEmpirical(f, rest)
	}
	return nil, fmt.Errorf("%w: %q: want const:D, exp:MEAN, lognormal:MEAN:CV, uniform:LO:HI or file:PATH", ErrBadDist, s)
}

// ReadEmpirical reads service times, one a line, as Go durations or seconds.
func ReadEmpirical(r io.Reader, source string) (*Empirical, error) {
	var values []float64
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if d, err := time.ParseDuration(text); err == nil {
			values = append(values, d.Seconds())
			continue
		}
		x, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %q: want a duration or seconds", ErrBadDist, source, line, text)
		}
		values = append(values, x)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadDist, source, err)
	}
	return NewEmpirical(values, source)
}
