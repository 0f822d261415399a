package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/tenant"
)

// servedGateway runs a gateway through Serve on a real loopback listener, as
// spindle up does, so that the listener's bounds apply.
func servedGateway(t *testing.T, cfg Config) *testGateway {
	t.Helper()
	if cfg.Exe == "" {
		cfg.Exe = spindleBin
	}
	cfg.Home = t.TempDir()
	cfg.Logger = discard()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	return &testGateway{Gateway: g, url: "http://" + ln.Addr().String()}
}

// rawRequest writes req on a new connection and returns the connection.
func rawRequest(t *testing.T, url, req string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if req != "" {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// readStatus reads the status code of the response on c.
func readStatus(t *testing.T, c net.Conn, within time.Duration) (int, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		// Where the gateway's goroutines are, to find what held the answer.
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var ours []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "internal/gateway.") && !strings.Contains(g, "readStatus") {
				ours = append(ours, g)
			}
		}
		t.Fatalf("no response within %s: %v\ngateway goroutines:\n%s", within, err, strings.Join(ours, "\n\n"))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestIdleConnectionsAreBounded opens four times as many idle connections
// as the gateway may hold (20,000 of them used to exhaust its descriptors,
// and valid requests timed out): the gateway closes the idlest to make room,
// never holds more than its limit, and a valid request is served.
func TestIdleConnectionsAreBounded(t *testing.T) {
	const limit = 50
	tg := servedGateway(t, Config{MaxConns: limit})
	tg.deploy(t, "add", addModel())
	var idle []net.Conn
	for range 4 * limit {
		idle = append(idle, rawRequest(t, tg.url, ""))
	}
	// Some of them made one request and stay open between requests.
	for _, c := range idle[:limit/2] {
		io.WriteString(c, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	// A new client, on a connection of its own: the deploy's keep-alive
	// connection, pooled in the default transport, may be among those the
	// gateway closed to make room (a POST on it would fail with EOF).
	http.DefaultClient.CloseIdleConnections()
	code, body := infer(t, tg.url, "add", addBody)
	wantStatus(t, "request past many idle connections", code, body, 200, `"data":[2,3,4,5]`)
	l := tg.conns.Load()
	if n := l.open(); n > limit {
		t.Errorf("%d connections open, over the limit of %d", n, limit)
	}
	if l.evicted.Load() == 0 {
		t.Error("no idle connection was closed to make room")
	}
}

// TestBusyConnectionsAreRefused fills the connection limit with requests in
// progress (bodies still arriving): a new connection gets 503 at once.
func TestBusyConnectionsAreRefused(t *testing.T) {
	tg := servedGateway(t, Config{MaxConns: 2})
	tg.deploy(t, "add", addModel())
	busy := func() int {
		l := tg.conns.Load()
		l.mu.Lock()
		defer l.mu.Unlock()
		n := 0
		for _, ci := range l.conns {
			if !ci.idle {
				n++
			}
		}
		return n
	}
	// One at a time: a connection counts as idle until its request is read,
	// and the deploy's keep-alive connection is idle once its answer is out.
	for i := 1; i <= 2; i++ {
		waitUntil(t, "the connections before are settled", func() bool { return busy() == i-1 })
		rawRequest(t, tg.url, "POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	}
	waitUntil(t, "both connections busy", func() bool { return busy() == 2 })
	c := rawRequest(t, tg.url, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
	code, body := readStatus(t, c, 5*time.Second)
	wantStatus(t, "connection over the limit", code, body, 503, "connection limit")
}

// TestSlowBodyEndsAtTheDeadline trickles a body a byte at a time under a
// 2 s deadline (one such body stayed open 45 s despite Spindle-Timeout: 5s):
// the gateway answers 408 at the deadline.
func TestSlowBodyEndsAtTheDeadline(t *testing.T) {
	tg := servedGateway(t, Config{})
	tg.deploy(t, "add", addModel())
	c := rawRequest(t, tg.url, "POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nSpindle-Timeout: 2s\r\nContent-Length: 1000\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := io.WriteString(c, " "); err != nil {
					return
				}
			}
		}
	}()
	began := time.Now()
	code, body := readStatus(t, c, 20*time.Second)
	wantStatus(t, "trickled body", code, body, 408, "did not arrive in time")
	if d := time.Since(began); d > 8*time.Second {
		t.Errorf("answered after %s, want at the 2 s deadline", d)
	}
}

// TestBodyBudget holds the gateway's whole body budget with one request
// whose body is still arriving: another request that needs room gets 503
// (within its deadline) instead of being buffered, and one that fits gets
// through once the first is done.
func TestBodyBudget(t *testing.T) {
	tg := servedGateway(t, Config{MaxBodyBytes: 1 << 20, MaxBodyBytesInFlight: 1 << 20})
	tg.deploy(t, "add", addModel())
	hold := rawRequest(t, tg.url, fmt.Sprintf("POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{", 1<<20))
	free := func(n int64) bool {
		if tg.bodies.sem.TryAcquire(n) {
			tg.bodies.sem.Release(n)
			return true
		}
		return false
	}
	waitUntil(t, "the first body holds the budget", func() bool { return !free(1) })
	c := rawRequest(t, tg.url, "POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nSpindle-Timeout: 1s\r\nContent-Length: 5000\r\n\r\n")
	code, body := readStatus(t, c, 10*time.Second)
	wantStatus(t, "body over the budget", code, body, 503, "request bodies")
	hold.Close()
	waitUntil(t, "the budget is free again", func() bool { return free(1 << 20) })
	code, body = infer(t, tg.url, "add", addBody)
	wantStatus(t, "request after the budget freed", code, body, 200, `"data":[2,3,4,5]`)
}

// TestTenantRateAndConcurrency checks a tenant's request rate and
// concurrency limits: requests over them get 429 with Retry-After, and
// another tenant is not affected.
func TestTenantRateAndConcurrency(t *testing.T) {
	tg, admin := keysGateway(t)
	// Half a request per second: however slowly the machine sends the ten
	// requests below (three seconds would refill six tokens of a faster
	// rate), most of them find the bucket empty.
	slowpoke := tg.createTenant(t, admin, "slowpoke", tenant.Limits{MaxRequestsPerSecond: 0.5})
	other := tg.createTenant(t, admin, "other", tenant.Limits{})
	for _, k := range []string{slowpoke, other} {
		if err := tg.deployAs(t, k, "m", plusModel(1)); err != nil {
			t.Fatal(err)
		}
	}
	var limited int
	for range 10 {
		req, _ := http.NewRequest("POST", tg.url+"/v2/models/m/infer", strings.NewReader(addBody))
		req.Header.Set("Authorization", "Bearer "+slowpoke)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "over its rate of 0.5 requests per second") {
				t.Errorf("429 without Retry-After or naming the rate: %s", b)
			}
		}
	}
	if limited < 6 {
		t.Errorf("%d of 10 back-to-back requests limited at 0.5/s, want most", limited)
	}
	code, body := call(t, "POST", tg.url+"/v2/models/m/infer", other, addBody)
	wantStatus(t, "another tenant", code, body, 200, `"data":[2,3,4,5]`)

	// A request whose body is still arriving holds the only slot of a
	// tenant limited to one request at a time.
	busy := tg.createTenant(t, admin, "busy", tenant.Limits{MaxConcurrency: 1})
	if err := tg.deployAs(t, busy, "m", plusModel(1)); err != nil {
		t.Fatal(err)
	}
	rawRequest(t, tg.url, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+busy+"\r\nContent-Length: 100\r\n\r\n{")
	waitUntil(t, "the first request holds the slot", func() bool {
		tg.gatesMu.Lock()
		gt := tg.gates["busy"]
		tg.gatesMu.Unlock()
		if gt == nil {
			return false
		}
		gt.mu.Lock()
		defer gt.mu.Unlock()
		return gt.inflight == 1
	})
	code, body = call(t, "POST", tg.url+"/v2/models/m/infer", busy, addBody)
	wantStatus(t, "second request at a concurrency of 1", code, body, 429, `1 requests in flight, its limit`)
	code, body = call(t, "POST", tg.url+"/v2/models/m/infer", other, addBody)
	wantStatus(t, "another tenant meanwhile", code, body, 200, `"data":[2,3,4,5]`)
}

// TestDeadlineAfterProxyError sends a request whose deadline has passed by
// the time it reaches a warm instance: the answer is 504 at once (it came
// 1 s late, after waiting to see whether the instance had died).
func TestDeadlineAfterProxyError(t *testing.T) {
	tg := newTestGateway(t, Config{})
	tg.deploy(t, "add", addModel())
	code, body := infer(t, tg.url, "add", addBody)
	wantStatus(t, "warm-up", code, body, 200, `"data"`)
	for range 5 {
		began := time.Now()
		code, body = infer(t, tg.url, "add", addBody, TimeoutHeader, "1ns")
		if code != http.StatusGatewayTimeout {
			t.Fatalf("1ns deadline: %d %s, want 504", code, body)
		}
		if d := time.Since(began); d > 500*time.Millisecond {
			t.Errorf("1ns deadline answered after %s", d)
		}
	}
}
