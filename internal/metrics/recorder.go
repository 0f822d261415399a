package metrics

import "time"

// Recorder is the hook the gateway calls around each inference request. Every
// Arrive is followed by exactly one Observe for the same function, whatever the
// outcome, so that in-flight counts return to zero.
type Recorder interface {
	// Arrive reports that a request for function arrived.
	Arrive(function string)
	// Observe reports that a request for function was answered with HTTP
	// status code, d after it arrived.
	Observe(function string, code int, d time.Duration)
}

// Multi is a Recorder that passes each call to all of its Recorders, in order.
// A nil or empty Multi records nothing.
type Multi []Recorder

var (
	_ Recorder = Multi(nil)
	_ Recorder = (*Metrics)(nil)
	_ Recorder = (*Stats)(nil)
)

// Arrive calls Arrive on each Recorder.
func (m Multi) Arrive(function string) {
	for _, r := range m {
		r.Arrive(function)
	}
}

// Observe calls Observe on each Recorder.
func (m Multi) Observe(function string, code int, d time.Duration) {
	for _, r := range m {
		r.Observe(function, code, d)
	}
}

// Succeeded reports whether a status code counts as a successful request in
// the latency statistics: 2xx and 3xx. Client errors (400), rejections (429)
// and timeouts (504) are counted as errors and kept out of the latency
// percentiles, which describe how long the function takes to answer.
func Succeeded(code int) bool { return code >= 200 && code < 400 }
