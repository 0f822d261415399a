package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnbounded is returned by Run for a run with neither a duration nor a
// request cap.
var ErrUnbounded = errors.New("a run needs a duration or a request cap")

// Closed configures closed-loop load: users that wait for each answer.
type Closed struct {
	Ramp  Ramp
	Think Think
}

// Open configures open-loop load: requests on a schedule.
type Open struct {
	Rate    Rate
	Poisson bool
	// MaxInFlight bounds outstanding requests; an arrival beyond it is
	// recorded as an error without being sent. 0 means 1000.
	MaxInFlight int
}

// Config configures one run. Exactly one of Closed and Open is set.
type Config struct {
	// URL is the target; Method defaults to POST with a Payload, GET without.
	URL    string
	Method string
	Header http.Header
	// Payload gives request bodies; nil sends none.
	Payload Payload

	Closed *Closed
	Open   *Open

	// Duration stops new requests after this long (0: no limit); MaxRequests
	// stops them after this many (0: no limit). At least one is needed.
	// Requests in flight at the stop finish and are recorded.
	Duration    time.Duration
	MaxRequests int
	// Timeout bounds each request; 0 means 60 s.
	Timeout time.Duration
	// Seed makes think times and Poisson gaps repeatable.
	Seed uint64

	// Client sends the requests; nil means a client whose transport keeps
	// enough idle connections for every user.
	Client *http.Client
	// Clock decides when requests start; nil means the real clock.
	Clock Clock
	// OnRecord, when set, receives every record as its request finishes, from
	// many goroutines at once.
	OnRecord func(Record)
}

// Validate reports a Config that cannot run, naming the field.
func (c *Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("target %q: must be an http or https URL with a host", c.URL)
	}
	switch {
	case (c.Closed == nil) == (c.Open == nil):
		return errors.New("load: exactly one of closed loop (users) and open loop (rate) must be set")
	case c.Duration < 0:
		return fmt.Errorf("duration: %v must not be negative", c.Duration)
	case c.MaxRequests < 0:
		return fmt.Errorf("max requests: %d must not be negative", c.MaxRequests)
	case c.Duration == 0 && c.MaxRequests == 0:
		return ErrUnbounded
	case c.Timeout < 0:
		return fmt.Errorf("timeout: %v must not be negative", c.Timeout)
	}
	if c.Closed != nil {
		if err := c.Closed.Ramp.Validate(); err != nil {
			return err
		}
		return c.Closed.Think.Validate()
	}
	if c.Open.MaxInFlight < 0 {
		return fmt.Errorf("max in flight: %d must not be negative", c.Open.MaxInFlight)
	}
	return ValidateRate(c.Open.Rate)
}

// Result is a finished run: every record, in the order requests finished,
// and their summary.
type Result struct {
	Records []Record
	Summary Summary
}

// run is one Run's shared state.
type run struct {
	cfg     *Config
	clock   Clock
	start   time.Time
	client  *http.Client
	method  string
	stop    chan struct{}
	stopped sync.Once
	// started counts requests taken (for MaxRequests and payload indexes);
	// inflight feeds Record.InFlight.
	started  atomic.Int64
	inflight atomic.Int64

	mu      sync.Mutex
	records []Record
}

// Run makes the configured load until its duration or request cap is reached,
// or ctx ends (then requests in flight are cancelled), and returns what
// happened. Request failures are data, not errors: Run fails only for a bad
// Config.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &run{cfg: &cfg, clock: cfg.Clock, client: cfg.Client, method: cfg.Method, stop: make(chan struct{})}
	if r.clock == nil {
		r.clock = realClock{}
	}
	if r.client == nil {
		r.client = &http.Client{Transport: &http.Transport{
			Proxy:               nil, // load goes straight to the target
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     90 * time.Second,
		}}
		defer r.client.CloseIdleConnections()
	}
	if r.method == "" {
		r.method = http.MethodGet
		if cfg.Payload != nil {
			r.method = http.MethodPost
		}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	r.start = r.clock.Now()
	done := make(chan struct{})
	defer close(done)
	go func() {
		var end <-chan time.Time
		if cfg.Duration > 0 {
			end = r.clock.After(cfg.Duration)
		}
		select {
		case <-end:
		case <-ctx.Done():
		case <-done:
		}
		r.halt()
	}()
	if cfg.Closed != nil {
		r.closedLoop(ctx)
	} else {
		r.openLoop(ctx)
	}
	return &Result{Records: r.records, Summary: Summarize(r.records)}, nil
}

// halt stops new requests.
func (r *run) halt() { r.stopped.Do(func() { close(r.stop) }) }

// halted reports whether new requests are stopped.
func (r *run) halted() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// take claims the next request's index, false once the run is over. A
// cancelled ctx ends the run here too, not only when the goroutine watching
// it gets to halt: a request that failed at once because ctx ended must not
// be followed by more.
func (r *run) take(ctx context.Context) (int, bool) {
	if ctx.Err() != nil {
		r.halt()
	}
	if r.halted() {
		return 0, false
	}
	n := r.started.Add(1)
	if max := int64(r.cfg.MaxRequests); max > 0 {
		if n > max {
			return 0, false
		}
		if n == max {
			r.halt()
		}
	}
	return int(n - 1), true
}

// wait blocks for d on the run's clock; false when the run stops first.
func (r *run) wait(d time.Duration) bool {
	if d <= 0 {
		return !r.halted()
	}
	select {
	case <-r.stop:
		return false
	case <-r.clock.After(d):
		return !r.halted()
	}
}

// elapsed is the time since the run's start on its clock.
func (r *run) elapsed() time.Duration { return r.clock.Now().Sub(r.start) }

// closedLoop spawns users along the ramp and waits for them all to finish.
func (r *run) closedLoop(ctx context.Context) {
	c := r.cfg.Closed
	var wg sync.WaitGroup
	spawned := 0
	for {
		for n := c.Ramp.Users(r.elapsed()); spawned < n; {
			spawned++
			wg.Add(1)
			go func(id int) {
				defer wg.Done()
				r.user(ctx, id)
			}(spawned)
		}
		next, ok := c.Ramp.NextSpawn(r.elapsed())
		if !ok || !r.wait(next-r.elapsed()) {
			break
		}
	}
	wg.Wait()
}

// user is one closed-loop user: request, think, repeat.
func (r *run) user(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(id)))
	for {
		i, ok := r.take(ctx)
		if !ok {
			return
		}
		r.do(ctx, i, r.elapsed())
		if !r.wait(r.cfg.Closed.Think.Draw(rng)) {
			return
		}
	}
}

// openLoop starts requests at the scheduled arrivals.
func (r *run) openLoop(ctx context.Context) {
	o := r.cfg.Open
	limit := o.MaxInFlight
	if limit == 0 {
		limit = 1000
	}
	sem := make(chan struct{}, limit)
	arr := NewArrivals(o.Rate, o.Poisson, r.cfg.Seed)
	var wg sync.WaitGroup
	for {
		at, ok := arr.Next()
		if !ok || (r.cfg.Duration > 0 && at >= r.cfg.Duration) {
			break
		}
		if !r.wait(at - r.elapsed()) {
			break
		}
		i, ok := r.take(ctx)
		if !ok {
			break
		}
		start := r.elapsed()
		select {
		case sem <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.do(ctx, i, start)
				<-sem
			}()
		default:
			r.add(Record{Start: start, InFlight: int(r.inflight.Load()), Err: fmt.Sprintf("not sent: %d requests already in flight", limit)})
		}
	}
	wg.Wait()
}

// do sends request i, started at start on the run's clock, and records it.
func (r *run) do(ctx context.Context, i int, start time.Duration) {
	rec := Record{Start: start, InFlight: int(r.inflight.Add(1))}
	if c := r.cfg.Closed; c != nil {
		// From the ramp, not a count of running goroutines, so that the
		// figure is the population the run meant to have at that time.
		rec.Users = c.Ramp.Users(start)
	}
	defer r.inflight.Add(-1)
	var body io.Reader
	if r.cfg.Payload != nil {
		body = bytes.NewReader(r.cfg.Payload.Body(i))
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, r.cfg.URL, body)
	if err != nil { // the URL was validated; only a bad method gets here
		rec.Err = err.Error()
		r.add(rec)
		return
	}
	for k, v := range r.cfg.Header {
		req.Header[k] = v
	}
	if r.cfg.Payload != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", r.cfg.Payload.ContentType())
	}
	sent := time.Now()
	resp, err := r.client.Do(req)
	if err == nil {
		rec.Status = resp.StatusCode
		rec.Bytes, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	rec.Latency = time.Since(sent)
	if err != nil {
		rec.Err = err.Error()
		if rec.Status != 0 { // the answer broke off: not a success
			rec.Status = 0
		}
	}
	r.add(rec)
}

// add keeps rec and passes it on.
func (r *run) add(rec Record) {
	r.mu.Lock()
	r.records = append(r.records, rec)
	r.mu.Unlock()
	if r.cfg.OnRecord != nil {
		r.cfg.OnRecord(rec)
	}
}
