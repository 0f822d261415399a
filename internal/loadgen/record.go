package loadgen

import (
	"encoding/csv"
	"io"
	"strconv"
	"sync"
	"time"
)

// Record is one request as the load generator saw it.
type Record struct {
	// Start is when the request was sent, from the run's start, on the run's
	// Clock.
	Start time.Duration
	// Latency is from sending the request to reading the whole answer, on the
	// monotonic wall clock.
	Latency time.Duration
	// Status is the HTTP status code, 0 when no answer came.
	Status int
	// Bytes is the answer body's length.
	Bytes int64
	// Users is how many closed-loop users were active at the send (0 in open
	// loop).
	Users int
	// InFlight is how many requests of this run were outstanding at the send,
	// this one included.
	InFlight int
	// Err says why the request failed without an answer; empty otherwise.
	Err string
}

// OK reports whether the request got a 2xx answer.
func (r Record) OK() bool { return r.Status >= 200 && r.Status < 300 }

// CSVHeader is the header row CSVWriter writes.
var CSVHeader = []string{"start_ms", "latency_ms", "status", "bytes", "users", "in_flight", "error"}

// CSVWriter writes Records as CSV rows, one per request, under CSVHeader. It
// is safe for concurrent use.
type CSVWriter struct {
	mu  sync.Mutex
	w   *csv.Writer
	err error
}

// NewCSVWriter writes the header to w and returns the writer.
func NewCSVWriter(w io.Writer) (*CSVWriter, error) {
	cw := &CSVWriter{w: csv.NewWriter(w)}
	if err := cw.w.Write(CSVHeader); err != nil {
		return nil, err
	}
	return cw, nil
}

// ms formats d in milliseconds with microsecond resolution.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// Add writes r. The first write error sticks and is returned by Flush.
func (c *CSVWriter) Add(r Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = c.w.Write([]string{
		ms(r.Start), ms(r.Latency), strconv.Itoa(r.Status), strconv.FormatInt(r.Bytes, 10),
		strconv.Itoa(r.Users), strconv.Itoa(r.InFlight), r.Err,
	})
}

// Flush writes buffered rows and returns the first error met.
func (c *CSVWriter) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.Flush()
	if c.err == nil {
		c.err = c.w.Error()
	}
	return c.err
}
