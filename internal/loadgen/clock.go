package loadgen

import "time"

// Clock is the time source that decides when requests start. Tests inject a
// fake one; nil in a Config means the real clock.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed (at once for
	// d <= 0).
	After(d time.Duration) <-chan time.Time
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

var _ Clock = realClock{}
