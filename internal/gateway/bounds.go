package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// Bounds on what clients can make the gateway hold: connections (each a file
// descriptor), request bodies (memory) and time (a goroutine and a
// connection per request). Each bound answers in words with a status a
// client can act on, instead of failing everyone: 20,000 idle connections
// used to exhaust the descriptors so that valid requests timed out, a body
// trickled at a byte every 3 s held its connection for as long as its sender
// liked, and 30 bodies of 60 MB took the gateway to 3.3 GB.

// Body pacing: a body must keep arriving at minBodyRate once bodyGrace has
// passed since the request began, so a slow but honest upload of any size
// gets through while a trickle ends.
const (
	bodyGrace   = 30 * time.Second
	minBodyRate = 64 << 10 // bytes per second
)

// errBodyTooSlow ends a body read that missed its pace or its request's
// deadline.
var errBodyTooSlow = errors.New("the request body did not arrive in time")

// defaultMaxConns is the connection limit when Config.MaxConns is 0: half
// of the descriptors left after a reserve for instances, logs and model
// files, between 256 and 16384. (Go raises the soft RLIMIT_NOFILE to the
// hard one at start-up.)
func defaultMaxConns() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	n := (int64(rl.Cur) - 1024) / 2
	return int(min(max(n, 256), 16384))
}

// connLimiter caps a listener's open connections. At the cap a new
// connection takes the place of the one idle longest (a keep-alive
// connection between requests, or one that has not sent a request yet),
// which is closed; when every connection is busy with a request, the new
// one is answered 503 and closed.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[net.Conn]*connInfo
	// refused counts connections answered 503 at the cap, evicted those
	// closed to make room.
	refused, evicted atomic.Int64
}

type connInfo struct {
	idle  bool // no request in progress
	since time.Time
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, conns: map[net.Conn]*connInfo{}}
}

// Accept returns the next connection, making room for it at the cap.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if len(l.conns) >= l.max {
			victim := l.idlestLocked()
			if victim == nil {
				l.mu.Unlock()
				l.refused.Add(1)
				go refuseConn(c)
				continue
			}
			delete(l.conns, victim)
			victim.Close()
			l.evicted.Add(1)
		}
		l.conns[c] = &connInfo{idle: true, since: time.Now()}
		l.mu.Unlock()
		return c, nil
	}
}

// idlestLocked returns the connection idle longest, or nil when all are busy.
func (l *connLimiter) idlestLocked() net.Conn {
	var victim net.Conn
	var since time.Time
	for c, ci := range l.conns {
		if ci.idle && (victim == nil || ci.since.Before(since)) {
			victim, since = c, ci.since
		}
	}
	return victim
}

// track is the server's ConnState hook: it follows each connection between
// requests (idle) and in one (busy), and forgets it once closed.
func (l *connLimiter) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ci := l.conns[c]
	switch st {
	case http.StateActive:
		if ci != nil {
			ci.idle = false
		}
	case http.StateIdle:
		if ci != nil {
			ci.idle, ci.since = true, time.Now()
		}
	case http.StateHijacked, http.StateClosed:
		delete(l.conns, c)
	}
}

// open returns how many connections are open.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// refuseConn answers a connection the gateway has no room for.
func refuseConn(c net.Conn) {
	defer c.Close()
	const body = `{"error":"the gateway is at its connection limit and every connection is busy; retry"}` + "\n"
	c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// pacedBody is a request body read under a deadline: its request's (until,
// when set) and its pace (bodyGrace, then minBodyRate).
type pacedBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	read  int64
	until time.Time
	eof   bool // read to its end
}

func (p *pacedBody) Read(b []byte) (int, error) {
	d := p.start.Add(bodyGrace + time.Duration(float64(p.read)/minBodyRate*float64(time.Second)))
	if !p.until.IsZero() && p.until.Before(d) {
		d = p.until
	}
	p.rc.SetReadDeadline(d)
	n, err := p.ReadCloser.Read(b)
	p.read += int64(n)
	p.eof = p.eof || err == io.EOF
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: %d bytes in %s (at most %s without a deadline of its own, then %s/s)", errBodyTooSlow, p.read, time.Since(p.start).Round(time.Millisecond), bodyGrace, humanize.IBytes(minBodyRate))
	}
	return n, err
}

// paceBody bounds r's body by pace, and its response by the longest a
// request may take: a client that sends slowly or never reads its answer
// cannot hold a connection and a goroutine for ever.
func (g *Gateway) paceBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.SetWriteDeadline(time.Now().Add(g.cfg.MaxTimeout + bodyGrace))
		body := &pacedBody{ReadCloser: r.Body, rc: rc, start: time.Now()}
		r.Body = body
		cu := &closeUnread{ResponseWriter: w, body: body, req: r}
		next.ServeHTTP(cu, r)
		if cu.early {
			// Answered before the body was read (a refusal): send the
			// answer, then read and drop what the client still sends, for
			// a while, before net/http closes the connection. Closing with
			// unread data makes the kernel send a reset, which can destroy
			// the answer at the client before it reads it (net/http lingers
			// so for bodies it knows are unread, not for ours).
			rc.Flush()
			body.until = time.Now().Add(lingerTime)
			io.CopyN(io.Discard, body, lingerBytes)
		}
	})
}

// lingerTime and lingerBytes bound how long, and how much of a body, the
// gateway reads and drops after answering before the body was read.
const (
	lingerTime  = 5 * time.Second
	lingerBytes = 64 << 20
)

// closeUnread answers with "Connection: close" a request whose body the
// handler did not read to its end (a refusal before reading it): net/http
// would otherwise wait for the rest of the body, unbounded, before
// answering, to keep the connection.
type closeUnread struct {
	http.ResponseWriter
	body  *pacedBody
	req   *http.Request
	wrote bool
	early bool // answered before the body was read to its end
}

func (w *closeUnread) WriteHeader(code int) {
	if !w.wrote && !w.body.eof && w.req.ContentLength != 0 {
		w.Header().Set("Connection", "close")
		w.early = true
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeUnread) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *closeUnread) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bodyDeadline makes r's body reads also end at deadline.
func bodyDeadline(r *http.Request, deadline time.Time) {
	if p, ok := r.Body.(*pacedBody); ok {
		p.until = deadline
	}
}

// bodyBudget bounds the bytes of request bodies the gateway holds at once
// (a body is held until its instance answered, for the retry): a body
// reserves its declared length, or the most a body may have when it
// declares none, before any of it is read.
//
// Bodies are garbage once answered, but the Go runtime returns freed memory
// to the system only slowly (30 bodies of 60 MB kept the gateway at 2.5 GB
// for minutes): when the last body in flight is released after large ones,
// the memory is returned at once, at most once a second.
type bodyBudget struct {
	sem *semaphore.Weighted
	max int64

	inFlight atomic.Int64
	large    atomic.Bool  // a body of freeAfter bytes or more was held since the last return
	lastFree atomic.Int64 // unix nanoseconds of the last return
}

// freeAfter is the body size from which releasing bodies returns memory.
const freeAfter = 8 << 20

// errBodyBudget is returned when a body's reservation did not come in time.
var errBodyBudget = errors.New("the gateway holds as many request bodies as it may")

// reserve waits (at most wait) for n bytes; release them with release(n).
func (b *bodyBudget) reserve(ctx context.Context, n int64, wait time.Duration) error {
	if !b.sem.TryAcquire(min(n, b.max)) {
		ctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if err := b.sem.Acquire(ctx, min(n, b.max)); err != nil {
			return fmt.Errorf("%w (%s); retry", errBodyBudget, humanize.IBytes(uint64(b.max)))
		}
	}
	b.inFlight.Add(n)
	if n >= freeAfter {
		b.large.Store(true)
	}
	return nil
}

func (b *bodyBudget) release(n int64) {
	b.sem.Release(min(n, b.max))
	if b.inFlight.Add(-n) != 0 || !b.large.Load() {
		return
	}
	now := time.Now().UnixNano()
	last := b.lastFree.Load()
	if now-last < int64(time.Second) || !b.lastFree.CompareAndSwap(last, now) {
		return
	}
	b.large.Store(false)
	go debug.FreeOSMemory()
}

// tenantGate holds one tenant's request rate and concurrency.
type tenantGate struct {
	mu       sync.Mutex
	limiter  *rate.Limiter
	rps      float64
	inflight int
}

// tenantLimitError is a request over its tenant's rate or concurrency limit.
type tenantLimitError struct{ msg string }

func (e *tenantLimitError) Error() string { return e.msg }

// admitTenant counts a data-path request against its tenant's limits
// (tenant.Limits.MaxConcurrency, MaxRequestsPerSecond) and returns the
// function that ends it, or a *tenantLimitError naming the limit, with how
// long to wait before a retry may pass.
func (g *Gateway) admitTenant(owner string) (done func(), retryAfter time.Duration, err error) {
	lim, err := g.tenants.Limits(owner)
	if err != nil {
		return nil, 0, err
	}
	if lim.MaxConcurrency <= 0 && lim.MaxRequestsPerSecond <= 0 {
		return func() {}, 0, nil
	}
	g.gatesMu.Lock()
	gt := g.gates[owner]
	if gt == nil {
		gt = &tenantGate{}
		g.gates[owner] = gt
	}
	g.gatesMu.Unlock()
	gt.mu.Lock()
	defer gt.mu.Unlock()
	if lim.MaxRequestsPerSecond > 0 {
		if gt.limiter == nil || gt.rps != lim.MaxRequestsPerSecond {
			burst := max(1, int(lim.MaxRequestsPerSecond))
			gt.limiter, gt.rps = rate.NewLimiter(rate.Limit(lim.MaxRequestsPerSecond), burst), lim.MaxRequestsPerSecond
		}
		if r := gt.limiter.Reserve(); r.Delay() > 0 {
			r.Cancel()
			wait := max(time.Second/time.Duration(max(1, int(lim.MaxRequestsPerSecond))), time.Millisecond)
			return nil, wait, &tenantLimitError{fmt.Sprintf("tenant %q: over its rate of %v requests per second", owner, lim.MaxRequestsPerSecond)}
		}
	}
	if lim.MaxConcurrency > 0 && gt.inflight >= lim.MaxConcurrency {
		return nil, time.Second, &tenantLimitError{fmt.Sprintf("tenant %q: %d requests in flight, its limit", owner, gt.inflight)}
	}
	gt.inflight++
	return func() {
		gt.mu.Lock()
		gt.inflight--
		gt.mu.Unlock()
	}, 0, nil
}
