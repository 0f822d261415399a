package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/tensor"
	"github.com/spindleml/spindle/internal/testbin"
)

// spindleBin is the real spindle binary, built once: the gateway starts real
// instance processes from it.
var spindleBin string

func TestMain(m *testing.M) { testbin.Main(m, &spindleBin) }

// gatedExe returns a wrapper around the spindle binary that starts instances
// only once the returned gate file exists, so tests control exactly when an
// instance becomes ready; deploy-time checks (instance --check) pass at once.
func gatedExe(t *testing.T) (exe, gate string) {
	t.Helper()
	dir := t.TempDir()
	gate = filepath.Join(dir, "open")
	exe = filepath.Join(dir, "spindle-gated")
	script := fmt.Sprintf("#!/bin/sh\ncase \" $* \" in *\" --check \"*) exec %q \"$@\";; esac\nwhile [ ! -e %q ]; do sleep 0.02; done\nexec %q \"$@\"\n", spindleBin, gate, spindleBin)
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return exe, gate
}

type testGateway struct {
	*Gateway
	url   string
	clock *clocktesting.FakeClock
}

func newTestGateway(t *testing.T, cfg Config) *testGateway {
	t.Helper()
	if cfg.Exe == "" {
		cfg.Exe = spindleBin
	}
	cfg.Home = t.TempDir()
	fc := clocktesting.NewFakeClock(time.Now())
	cfg.Clock = fc
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(func() {
		srv.Close()
		g.Close()
	})
	return &testGateway{Gateway: g, url: srv.URL, clock: fc}
}

// deploy writes a model with the builder and deploys it through the real API.
func (tg *testGateway) deploy(t *testing.T, name string, b *modelgen.Builder) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(tg.url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deploy(context.Background(), name, path); err != nil {
		t.Fatal(err)
	}
}

// addModel is a tiny model: y = x + 1 over 4 floats.
func addModel() *modelgen.Builder {
	b := modelgen.NewBuilder("add", 13, 1)
	b.Input("x", tensor.Float32, []int64{4})
	b.Fill("one", 1, 4)
	b.Node("Add", []string{"x", "one"}, nil, "y")
	b.Output("y", tensor.Float32, []int64{4})
	return b
}

// slowModel chains layers MatMuls of 384x384 matrices (about 1 ms each with
// the AVX-512 kernels, much more without) so an inference lasts long enough to
// act on it mid-request. The weight is one shared identity matrix, so values
// neither vanish nor overflow however long the chain.
func slowModel(layers int) *modelgen.Builder {
	b := modelgen.NewBuilder("slow", 13, 1)
	b.Input("x", tensor.Float32, []int64{384, 384})
	eye := make([]float32, 384*384)
	for i := 0; i < 384; i++ {
		eye[i*384+i] = 1
	}
	w := b.Init("eye", []int64{384, 384}, eye)
	x := "x"
	for i := 0; i < layers; i++ {
		x = b.Node("MatMul", []string{x, w}, nil)
	}
	b.Node("Identity", []string{x}, nil, "y")
	b.Output("y", tensor.Float32, []int64{384, 384})
	return b
}

const addBody = `{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}`

func slowBody() string {
	return `{"inputs":[{"name":"x","shape":[384,384],"datatype":"FP32","data":[` + strings.TrimSuffix(strings.Repeat("0.01,", 384*384), ",") + `]}]}`
}

func infer(t *testing.T, url, name, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v2/models/"+name+"/infer", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("infer: %v", err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (tg *testGateway) fn(name string) *function {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.fns[fnKey(registry.DefaultOwner, name)]
}

func (tg *testGateway) pids(name string) []int {
	f := tg.fn(name)
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneLocked()
	var out []int
	for _, r := range f.replicas {
		out = append(out, r.proc.Pid)
	}
	return out
}

// waitUntil polls cond (gateway state changes on other goroutines); it bounds
// the wait by count, not by asserting any duration.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 3000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}

func TestScaleFromZeroAndToZero(t *testing.T) {
	tg := newTestGateway(t, Config{IdleTimeout: time.Minute})
	tg.deploy(t, "add", addModel())
	if got := tg.pids("add"); len(got) != 0 {
		t.Fatalf("instances before any request: %v", got)
	}
	code, body := infer(t, tg.url, "add", addBody)
	if code != 200 || !strings.Contains(body, `"data":[2,3,4,5]`) {
		t.Fatalf("first request: %d %s", code, body)
	}
	first := tg.pids("add")
	if len(first) != 1 {
		t.Fatalf("instances after first request: %v", first)
	}
	// Not idle long enough: nothing happens.
	tg.clock.Step(30 * time.Second)
	if r := tg.reapIdle(tg.clock.Now()); len(r) != 0 {
		t.Fatalf("reaped %v after 30s idle, IdleTimeout is 1m", r)
	}
	tg.clock.Step(31 * time.Second)
	if r := tg.reapIdle(tg.clock.Now()); len(r) != 1 || r[0] != "default/add" {
		t.Fatalf("reaped %v after 61s idle, want [default/add]", r)
	}
	if got := tg.pids("add"); len(got) != 0 {
		t.Fatalf("instances after scale to zero: %v", got)
	}
	if err := syscall.Kill(first[0], 0); err == nil {
		t.Fatalf("instance pid %d still exists after scale to zero", first[0])
	}
	code, body = infer(t, tg.url, "add", addBody)
	if code != 200 {
		t.Fatalf("request after scale to zero: %d %s", code, body)
	}
	if again := tg.pids("add"); len(again) != 1 || again[0] == first[0] {
		t.Fatalf("instances after restart: %v (first was %v)", again, first)
	}
}

func TestWaitingRequestsAreBounded(t *testing.T) {
	exe, gate := gatedExe(t)
	tg := newTestGateway(t, Config{Exe: exe, MaxWaiting: 2})
	tg.deploy(t, "add", addModel())

	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := infer(t, tg.url, "add", addBody)
			codes <- code
		}()
	}
	waitUntil(t, "2 requests wait for the instance", func() bool {
		f := tg.fn("add")
		if f == nil {
			return false
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.waiting == 2
	})
	code, body := infer(t, tg.url, "add", addBody)
	if code != http.StatusTooManyRequests || !strings.Contains(body, "waiting for an instance") {
		t.Fatalf("third request while starting: %d %s, want 429", code, body)
	}
	os.WriteFile(gate, nil, 0o644)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("queued request got %d, want 200", c)
		}
	}
}

func TestDeadlineWhileStarting(t *testing.T) {
	exe, gate := gatedExe(t)
	tg := newTestGateway(t, Config{Exe: exe})
	tg.deploy(t, "add", addModel())
	code, body := infer(t, tg.url, "add", addBody, TimeoutHeader, "300ms")
	if code != http.StatusGatewayTimeout || !strings.Contains(body, "deadline 300ms exceeded") {
		t.Fatalf("got %d %s, want 504 naming the 300ms deadline", code, body)
	}
	for _, bad := range []string{"soon", "-1s", "0"} {
		code, body := infer(t, tg.url, "add", addBody, TimeoutHeader, bad)
		if code != 400 || !strings.Contains(body, TimeoutHeader) {
			t.Fatalf("%s=%q: got %d %s, want 400 naming the header", TimeoutHeader, bad, code, body)
		}
	}
	os.WriteFile(gate, nil, 0o644)
	if code, body := infer(t, tg.url, "add", addBody); code != 200 {
		t.Fatalf("after the gate opened: %d %s", code, body)
	}
}

func TestRetryWhenInstanceIsKilledMidRequest(t *testing.T) {
	tg := newTestGateway(t, Config{})
	tg.deploy(t, "slow", slowModel(400))
	body := slowBody()
	if code, msg := infer(t, tg.url, "slow", body); code != 200 {
		t.Fatalf("warm-up: %d %.200s", code, msg)
	}
	victim := tg.pids("slow")[0]

	done := make(chan [2]any, 1)
	go func() {
		code, msg := infer(t, tg.url, "slow", body)
		done <- [2]any{code, msg}
	}()
	waitUntil(t, "the request is in flight on the instance", func() bool {
		f := tg.fn("slow")
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.replicas) == 1 && f.replicas[0].inflight.Load() == 1
	})
	syscall.Kill(victim, syscall.SIGKILL)
	res := <-done
	if res[0].(int) != 200 {
		t.Fatalf("request whose instance was killed: %v %.300s, want 200 after one retry", res[0], res[1])
	}
	var resp struct {
		Outputs []struct{ Shape []int } `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(res[1].(string)), &resp); err != nil || len(resp.Outputs) != 1 {
		t.Fatalf("retried response: %v %.200s", err, res[1])
	}
	if now := tg.pids("slow"); len(now) != 1 || now[0] == victim {
		t.Fatalf("instances after the kill: %v (victim %d)", now, victim)
	}
}

func TestMetricsAndStats(t *testing.T) {
	tg := newTestGateway(t, Config{})
	tg.deploy(t, "add", addModel())
	for range 3 {
		if code, body := infer(t, tg.url, "add", addBody); code != 200 {
			t.Fatalf("infer: %d %s", code, body)
		}
	}
	if code, _ := infer(t, tg.url, "add", `{"inputs":[]}`); code != 400 {
		t.Fatalf("bad request: %d, want 400", code)
	}
	tg.updateGauges()

	resp, err := http.Get(tg.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for _, want := range []string{
		`spindle_requests_total{code="200",function="default/add"} 3`,
		`spindle_requests_total{code="400",function="default/add"} 1`,
		`spindle_instances{function="default/add"} 1`,
		`spindle_vcpus{function="default/add"} 1`,
		`spindle_request_duration_seconds_count{function="default/add"} 4`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(text, `spindle_memory_rss_bytes{function="default/add"}`) {
		t.Errorf("/metrics lacks the memory gauge")
	}

	resp, err = http.Get(tg.url + "/admin/v1/functions/add/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Window struct {
			Count  int   `json:"count"`
			Errors int   `json:"errors"`
			P99    int64 `json:"p99"`
		} `json:"window"`
		Instances int `json:"instances"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st.Window.Count != 4 || st.Window.Errors != 1 || st.Window.P99 <= 0 || st.Instances != 1 {
		t.Fatalf("stats %+v: want 4 requests, 1 error, p99 > 0, 1 instance", st)
	}
}

// TestScaleDownDrainsInFlight scales a function to zero while a request runs
// on it: the instance leaves routing at once but finishes the request.
func TestScaleDownDrainsInFlight(t *testing.T) {
	tg := newTestGateway(t, Config{IdleTimeout: time.Minute})
	tg.deploy(t, "slow", slowModel(400))
	body := slowBody()
	if code, msg := infer(t, tg.url, "slow", body); code != 200 {
		t.Fatalf("warm-up: %d %.200s", code, msg)
	}
	pid := tg.pids("slow")[0]
	done := make(chan int, 1)
	go func() {
		code, _ := infer(t, tg.url, "slow", body)
		done <- code
	}()
	f := tg.fn("slow")
	waitUntil(t, "the request is in flight", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.inflight == 1
	})
	stopped := make(chan struct{})
	go func() { tg.stopAll(f, false); close(stopped) }()
	if code := <-done; code != 200 {
		t.Fatalf("in-flight request during scale-down: %d, want 200 (drained)", code)
	}
	<-stopped
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("instance %d still runs after draining", pid)
	}
	// Had the instance been killed rather than drained, the retry would have
	// started a new one.
	if p := tg.pids("slow"); len(p) != 0 {
		t.Fatalf("instances after scale-down: %v; the request was retried instead of drained", p)
	}
}

// TestFailedStartIsReported checks that a request waiting for a start that
// fails gets the failure (503 with the instance's last stderr line) rather
// than starting instance after instance until its deadline. The gateway's
// clock is fake and stands still, as it may between two readings of a coarse
// real clock.
func TestFailedStartIsReported(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "spindle-broken")
	script := fmt.Sprintf("#!/bin/sh\ncase \" $* \" in *\" --check \"*) exec %q \"$@\";; esac\necho 'cannot start: broken on purpose' >&2\nexit 1\n", spindleBin)
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tg := newTestGateway(t, Config{Exe: exe})
	tg.deploy(t, "add", addModel())
	code, body := infer(t, tg.url, "add", addBody, TimeoutHeader, "30s")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "broken on purpose") {
		t.Fatalf("got %d %s, want 503 with the instance's stderr", code, body)
	}
	f := tg.fn("add")
	f.mu.Lock()
	failures := f.failures
	f.mu.Unlock()
	if failures != 1 {
		t.Fatalf("%d failed starts for one request, want 1", failures)
	}
}

// children returns the pids of this test process's live child processes: the
// instances the gateway started.
func children(t *testing.T) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		var pid int
		fmt.Sscan(s, &pid)
		if len(fields) > 1 && fields[0] != "Z" && fields[1] == fmt.Sprint(os.Getpid()) {
			out = append(out, pid)
		}
	}
	return out
}

// TestRemoveWhileStarting removes (or redeploys) a function while a request
// waits for its first instance: the request is answered from what is
// deployed now, and the instance that finishes starting for the old
// deployment is stopped, not left running outside the gateway's state.
func TestRemoveWhileStarting(t *testing.T) {
	tests := []struct {
		name     string
		change   func(t *testing.T, tg *testGateway)
		wantCode int
	}{
		{"remove", func(t *testing.T, tg *testGateway) {
			c, err := client.New(tg.url)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Remove(context.Background(), "add"); err != nil {
				t.Fatal(err)
			}
		}, http.StatusNotFound},
		{"redeploy", func(t *testing.T, tg *testGateway) {
			b := addModel()
			b.Fill("spare", 0, 1) // other bytes, so another digest
			tg.deploy(t, "add", b)
		}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Earlier tests' instances may still be draining.
			waitUntil(t, "no instance runs before the test", func() bool { return len(children(t)) == 0 })
			exe, gate := gatedExe(t)
			tg := newTestGateway(t, Config{Exe: exe})
			tg.deploy(t, "add", addModel())
			done := make(chan int, 1)
			go func() {
				code, _ := infer(t, tg.url, "add", addBody)
				done <- code
			}()
			var old *function
			waitUntil(t, "the request waits for the first instance", func() bool {
				if old = tg.fn("add"); old == nil {
					return false
				}
				old.mu.Lock()
				defer old.mu.Unlock()
				return old.waiting == 1
			})
			tc.change(t, tg)
			os.WriteFile(gate, nil, 0o644)
			if code := <-done; code != tc.wantCode {
				t.Fatalf("waiting request: %d, want %d", code, tc.wantCode)
			}
			var live []int
			if f := tg.fn("add"); f != nil {
				live = tg.pids("add")
			}
			waitUntil(t, "only the current deployment's instances run", func() bool {
				return len(children(t)) == len(live)
			})
			// The old deployment's start ends either way: ready and stopped at
			// once, or failed (its model was freed with it).
			waitUntil(t, "the old deployment has no replica and no start", func() bool {
				old.mu.Lock()
				defer old.mu.Unlock()
				return len(old.replicas) == 0 && old.starting == 0
			})
		})
	}
}

// TestUndeployedNamesAreNotRecorded sends requests for names nobody deployed:
// each is a 404, and none leaves a metric series or a statistics window
// behind (callers choose the names, so each would be kept for good).
func TestUndeployedNamesAreNotRecorded(t *testing.T) {
	tg := newTestGateway(t, Config{})
	for i := range 3 {
		name := fmt.Sprintf("ghost%d", i)
		if code, body := infer(t, tg.url, name, addBody); code != http.StatusNotFound {
			t.Fatalf("infer %s: %d %s, want 404", name, code, body)
		}
		resp, err := http.Post(tg.url+"/v1/tasks/"+name, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("task %s: %d, want 404", name, resp.StatusCode)
		}
	}
	resp, err := http.Get(tg.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "ghost") {
		t.Errorf("/metrics has series for undeployed names:\n%s", grepLines(string(b), "ghost"))
	}
	if all := tg.stats.All(tg.clock.Now()); len(all) != 0 {
		t.Errorf("statistics windows for undeployed names: %v", all)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "\n")
}

func TestRequestTimeout(t *testing.T) {
	g := &Gateway{cfg: Config{DefaultTimeout: time.Minute, MaxTimeout: 10 * time.Minute}}
	tests := []struct {
		header  string
		want    time.Duration
		wantErr string
	}{
		{"", time.Minute, ""},
		{"2.5s", 2500 * time.Millisecond, ""},
		{"300ms", 300 * time.Millisecond, ""},
		{"1.5", 1500 * time.Millisecond, ""},
		{"1h", 10 * time.Minute, ""},
		{"1e10", 10 * time.Minute, ""}, // past a Duration's range: capped, not "negative"
		{"0", 0, "must be positive"},
		{"-1s", 0, "must be positive"},
		{"-1e300", 0, "must be positive"},
		{"soon", 0, "want a duration"},
		{"NaN", 0, "want a duration"},
		{"Inf", 0, "want a duration"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodPost, "/v2/models/m/infer", nil)
		if tc.header != "" {
			r.Header.Set(TimeoutHeader, tc.header)
		}
		got, err := g.requestTimeout(r)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), TimeoutHeader) {
				t.Errorf("%s %q: %v, %v; want an error naming the header and %q", TimeoutHeader, tc.header, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %q: %v, %v; want %v", TimeoutHeader, tc.header, got, err, tc.want)
		}
	}
}

// TestVCPUBeforeFirstInstance checks that describe and stats report the
// allotment a function's first instance will get before any runs: the
// platform default, or the function's own after a scale.
func TestVCPUBeforeFirstInstance(t *testing.T) {
	tg := newTestGateway(t, Config{DefaultVCPU: 0.5})
	tg.deploy(t, "add", addModel())
	get := func(path, field string) float64 {
		t.Helper()
		resp, err := http.Get(tg.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		f, _ := v[field].(float64)
		return f
	}
	check := func(want float64) {
		t.Helper()
		if got := get("/admin/v1/functions/add", "current_vcpu"); got != want {
			t.Errorf("describe current_vcpu %v, want %v", got, want)
		}
		if got := get("/admin/v1/functions/add/stats", "vcpu"); got != want {
			t.Errorf("stats vcpu %v, want %v", got, want)
		}
	}
	check(0.5)
	if code, _, msg := scaleFn(t, tg.url, "add", `{"vcpu":0.75}`); code != 200 {
		t.Fatalf("scale: %d %s", code, msg)
	}
	check(0.75)
	if got := tg.pids("add"); len(got) != 0 {
		t.Fatalf("instances started by describe or stats: %v", got)
	}
}
