package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/sandbox"
	"github.com/spindleml/spindle/internal/tenant"
	"github.com/spindleml/spindle/internal/tensor"
)

// detect returns this machine's sandbox capabilities and closes the controller
// after the test.
func detect(t *testing.T, opts sandbox.Options) sandbox.Capabilities {
	t.Helper()
	caps, err := sandbox.Detect(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caps.Controller.Close() })
	return caps
}

func scaleFn(t *testing.T, url, name, body string) (int, api.ScaleResult, string) {
	t.Helper()
	resp, err := http.Post(url+"/admin/v1/functions/"+name+"/scale", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var res api.ScaleResult
	json.Unmarshal(b, &res)
	return resp.StatusCode, res, string(b)
}

// instanceWorkers asks the function's only instance how many workers it runs.
func (tg *testGateway) instanceWorkers(t *testing.T, name string) (int, *sandbox.Cgroup) {
	t.Helper()
	f := tg.fn(name)
	f.mu.Lock()
	rep := f.replicas[0]
	f.mu.Unlock()
	resp, err := http.Get(rep.url.String() + "/_spindle/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Pool struct {
			Concurrency int `json:"concurrency"`
		} `json:"pool"`
		GOMAXPROCS int `json:"gomaxprocs"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	if st.GOMAXPROCS != st.Pool.Concurrency {
		t.Fatalf("instance runs %d workers but GOMAXPROCS %d", st.Pool.Concurrency, st.GOMAXPROCS)
	}
	return st.Pool.Concurrency, rep.proc.Cgroup
}

// runLoad sends requests from clients goroutines until stop is closed, and
// counts successes and failures.
func runLoad(t *testing.T, url, name, body string, clients int, stop <-chan struct{}) (wait func() (ok, failed int64, sample []string)) {
	var okN, failN atomic.Int64
	var mu sync.Mutex
	var sample []string
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, msg := infer(t, url, name, body)
				if code == 200 {
					okN.Add(1)
					continue
				}
				failN.Add(1)
				mu.Lock()
				if len(sample) < 5 {
					sample = append(sample, fmt.Sprintf("%d %.200s", code, msg))
				}
				mu.Unlock()
			}
		}()
	}
	return func() (int64, int64, []string) {
		wg.Wait()
		return okN.Load(), failN.Load(), sample
	}
}

// TestVerticalResizeUnderLoad resizes a live instance 20 times, up and down
// between 0.25 and 2 vCPUs, under load from 4 clients: the cgroup quota, the
// worker pool and GOMAXPROCS follow every step and no request fails.
func TestVerticalResizeUnderLoad(t *testing.T) {
	caps := detect(t, sandbox.Options{})
	if !caps.CPU {
		t.Fatalf("this test needs a writable cgroup CPU controller (run as root); sandbox says: %s", caps)
	}
	tg := newTestGateway(t, Config{Sandbox: caps})
	tg.deploy(t, "slow", slowModel(2))
	body := slowBody()
	if code, msg := infer(t, tg.url, "slow", body); code != 200 {
		t.Fatalf("first request: %d %.200s", code, msg)
	}
	stop := make(chan struct{})
	wait := runLoad(t, tg.url, "slow", body, 4, stop)
	steps := []float64{0.5, 1, 2, 1.5, 0.25, 0.75, 2, 0.25, 1, 0.5}
	for i := 0; i < 20; i++ {
		v := steps[i%len(steps)]
		code, res, msg := scaleFn(t, tg.url, "slow", fmt.Sprintf(`{"vcpu":%v}`, v))
		if code != 200 || !res.Enforced || res.Instances != 1 {
			close(stop)
			t.Fatalf("scale to %v: %d %s", v, code, msg)
		}
		workers, cg := tg.instanceWorkers(t, "slow")
		if workers != workersFor(v) || cg.Limits().CPU != v {
			close(stop)
			t.Fatalf("after scale to %v: %d workers, cgroup quota %v vCPU", v, workers, cg.Limits().CPU)
		}
	}
	close(stop)
	ok, failed, sample := wait()
	if failed != 0 || ok == 0 {
		t.Fatalf("%d requests failed (%d succeeded) during 20 resizes: %v", failed, ok, sample)
	}
	t.Logf("%d requests, 0 failed, during 20 live resizes", ok)
}

// TestMemoryLimitBreach gives functions a 128 MiB limit. A request whose
// intermediate tensors need 256 MiB is refused with 400 by the instance's
// budget (its share of the limit) before anything is allocated, and the
// instance keeps serving. A request whose body alone decodes past the limit
// kills only that instance: the answer says why, another function keeps
// serving, and the next request starts a fresh instance.
func TestMemoryLimitBreach(t *testing.T) {
	caps := detect(t, sandbox.Options{})
	if !caps.Memory {
		t.Fatalf("this test needs a writable cgroup memory controller (run as root); sandbox says: %s", caps)
	}
	tg := newTestGateway(t, Config{Sandbox: caps})
	b := modelgen.NewBuilder("hog", 13, 1)
	b.Input("x", tensor.Float32, []int64{1})
	shape := b.Ints64("shape", 8192, 8192) // 256 MiB of float32
	b.Node("Expand", []string{"x", shape}, nil, "big")
	b.Node("ReduceSum", []string{"big"}, []modelgen.Attr{modelgen.AInt("keepdims", 0)}, "y")
	b.Output("y", tensor.Float32, []int64{})
	tg.deploy(t, "hog", b)
	echo := modelgen.NewBuilder("echo", 13, 1)
	echo.Input("x", tensor.Float32, []int64{-1})
	echo.Node("Identity", []string{"x"}, nil, "y")
	echo.Output("y", tensor.Float32, []int64{-1})
	tg.deploy(t, "echo", echo)
	tg.deploy(t, "add", addModel())
	for _, fn := range []string{"hog", "echo"} {
		if code, _, msg := scaleFn(t, tg.url, fn, `{"vcpu":1,"memory":134217728}`); code != 200 {
			t.Fatalf("scale %s: %d %s", fn, code, msg)
		}
	}
	if code, body := infer(t, tg.url, "add", addBody); code != 200 {
		t.Fatalf("add before: %d %s", code, body)
	}
	addPid := tg.pids("add")[0]

	hogBody := `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`
	code, msg := infer(t, tg.url, "hog", hogBody)
	if code != http.StatusBadRequest || !strings.Contains(msg, "more than the limit of") {
		t.Fatalf("request past its share of the memory limit: %d %s, want 400 naming the limit", code, msg)
	}
	hogPid := tg.pids("hog")[0]
	if code, _ := infer(t, tg.url, "hog", hogBody); code != http.StatusBadRequest || tg.pids("hog")[0] != hogPid {
		t.Fatalf("the refused request's instance: %d, pid %v (was %d); want it still serving", code, tg.pids("hog"), hogPid)
	}

	const n = 24 << 20 // 24 Mi floats: a 48 MiB body decoded into 96 MiB, answered as much again
	bigBody := fmt.Sprintf(`{"inputs":[{"name":"x","shape":[%d],"datatype":"FP32","data":[%s1]}]}`, n, strings.Repeat("1,", n-1))
	code, msg = infer(t, tg.url, "echo", bigBody)
	if code != http.StatusBadGateway || !strings.Contains(msg, "memory limit") {
		t.Fatalf("request over the memory limit: %d %.300s, want 502 naming the memory limit", code, msg)
	}
	if code, body := infer(t, tg.url, "add", addBody); code != 200 || tg.pids("add")[0] != addPid {
		t.Fatalf("the other function after the breach: %d %s (pid %v, was %d)", code, body, tg.pids("add"), addPid)
	}
	// The platform restarts the function on its next request.
	if code, body := infer(t, tg.url, "echo", `{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,2]}]}`); code != 200 {
		t.Fatalf("small request after the breach: %d %s", code, body)
	}
}

// TestDegradedSandbox runs without cgroups, as on a machine without cgroup
// access: the platform says so, and a resize still changes the worker pool.
func TestDegradedSandbox(t *testing.T) {
	caps := detect(t, sandbox.Options{DisableCgroups: true})
	if !caps.Degraded() || caps.CPU || !strings.Contains(caps.String(), "degraded") {
		t.Fatalf("capabilities with cgroups disabled: %s", caps)
	}
	tg := newTestGateway(t, Config{Sandbox: caps})
	tg.deploy(t, "add", addModel())
	if code, body := infer(t, tg.url, "add", addBody); code != 200 {
		t.Fatalf("infer: %d %s", code, body)
	}
	code, res, msg := scaleFn(t, tg.url, "add", `{"vcpu":2}`)
	if code != 200 || res.Enforced || res.Workers != 2 {
		t.Fatalf("degraded scale: %d %s, want 200, enforced false, 2 workers", code, msg)
	}
	if workers, cg := tg.instanceWorkers(t, "add"); workers != 2 || !errors.Is(cg.SetCPU(1), sandbox.ErrUnsupported) {
		t.Fatalf("degraded instance: %d workers, SetCPU = %v", workers, cg.SetCPU(1))
	}
	for _, bad := range []string{`{"vcpu":0.3}`, `{"vcpu":-1}`, `{"vcpu":1,"memory":5}`, `{"cpus":1}`, `{"vcpu":4096}`} {
		if code, _, msg := scaleFn(t, tg.url, "add", bad); code != 400 {
			t.Fatalf("scale %s: %d %s, want 400", bad, code, msg)
		}
	}
}

// TestTenantCPULimit refuses a resize that would take a tenant's instances past
// its vCPU limit.
func TestTenantCPULimit(t *testing.T) {
	tg := newTestGateway(t, Config{Sandbox: detect(t, sandbox.Options{DisableCgroups: true})})
	if _, _, err := tg.Tenants().Create("default", tenant.Limits{MaxVCPU: 1.5}, time.Now()); err != nil {
		t.Fatal(err)
	}
	tg.deploy(t, "a", addModel())
	tg.deploy(t, "b", addModel())
	for _, fn := range []string{"a", "b"} {
		if code, body := infer(t, tg.url, fn, addBody); code != 200 {
			t.Fatalf("infer %s: %d %s", fn, code, body)
		}
	}
	// a and b run one 1-vCPU instance each already: 2 > 1.5, so growing a fails,
	// shrinking it to 0.5 fits (0.5 + 1).
	if code, _, msg := scaleFn(t, tg.url, "a", `{"vcpu":1.25}`); code != 403 || !strings.Contains(msg, "vcpu limit 1.5") {
		t.Fatalf("scale over the limit: %d %s, want 403 naming the limit", code, msg)
	}
	if code, _, msg := scaleFn(t, tg.url, "a", `{"vcpu":0.5}`); code != 200 {
		t.Fatalf("scale within the limit: %d %s", code, msg)
	}
}

// TestTenantMemoryLimitCapsInstances gives every instance of a tenant with a
// memory allowance a cgroup limit no larger than it, and refuses a larger one.
func TestTenantMemoryLimitCapsInstances(t *testing.T) {
	caps := detect(t, sandbox.Options{})
	if !caps.Memory {
		t.Fatalf("this test needs a writable cgroup memory controller; sandbox says: %s", caps)
	}
	tg := newTestGateway(t, Config{Sandbox: caps})
	if _, _, err := tg.Tenants().Create("default", tenant.Limits{MaxMemoryBytes: 512 << 20}, time.Now()); err != nil {
		t.Fatal(err)
	}
	tg.deploy(t, "add", addModel())
	if code, body := infer(t, tg.url, "add", addBody); code != 200 {
		t.Fatalf("infer: %d %s", code, body)
	}
	if _, cg := tg.instanceWorkers(t, "add"); cg.Limits().Memory != 512<<20 {
		t.Fatalf("instance memory limit %d, want the tenant's 512 MiB", cg.Limits().Memory)
	}
	if code, _, msg := scaleFn(t, tg.url, "add", `{"vcpu":1,"memory":1073741824}`); code != 403 || !strings.Contains(msg, "memory limit") {
		t.Fatalf("scale past the tenant's memory: %d %s, want 403", code, msg)
	}
}

// TestKillUnderLoad kills an instance with SIGKILL while 4 clients keep
// sending: every in-flight request is retried on a fresh instance, none fails,
// and the function recovers on a new pid.
func TestKillUnderLoad(t *testing.T) {
	tg := newTestGateway(t, Config{Sandbox: detect(t, sandbox.Options{})})
	tg.deploy(t, "slow", slowModel(2))
	body := slowBody()
	if code, msg := infer(t, tg.url, "slow", body); code != 200 {
		t.Fatalf("first request: %d %.200s", code, msg)
	}
	victim := tg.pids("slow")[0]
	stop := make(chan struct{})
	wait := runLoad(t, tg.url, "slow", body, 4, stop)
	waitUntil(t, "requests are in flight", func() bool {
		f := tg.fn("slow")
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.inflight >= 2
	})
	syscall.Kill(victim, syscall.SIGKILL)
	waitUntil(t, "a new instance serves", func() bool {
		p := tg.pids("slow")
		return len(p) == 1 && p[0] != victim
	})
	// Let the new instance serve a few requests before stopping the load.
	f := tg.fn("slow")
	waitUntil(t, "the new instance served requests", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.replicas) == 1 && f.replicas[0].proc.Pid != victim && f.inflight >= 1
	})
	close(stop)
	ok, failed, sample := wait()
	if failed != 0 {
		t.Fatalf("%d of %d requests failed around the kill: %v", failed, ok+failed, sample)
	}
	if code, msg := infer(t, tg.url, "slow", body); code != 200 {
		t.Fatalf("after recovery: %d %.200s", code, msg)
	}
}

// TestScaleRejectsBadInput checks that each bad scale body gets a 400 naming
// its JSON field and the rule, and changes nothing.
func TestScaleRejectsBadInput(t *testing.T) {
	tg := newTestGateway(t, Config{})
	tg.deploy(t, "add", addModel())
	tests := []struct {
		name, body, want string
	}{
		{"not a multiple", `{"vcpu":0.3}`, "vcpu: 0.3 must be a positive multiple of 0.25"},
		{"zero", `{"vcpu":0}`, "vcpu: 0 must be a positive multiple"},
		{"negative", `{"vcpu":-1}`, "vcpu: -1 must be a positive multiple"},
		{"nothing to change", `{}`, "body: set vcpu, memory or both"},
		{"memory too small to start", `{"memory":10485760}`, "memory: 10 MiB is less than the 32 MiB an instance needs to start"},
		{"over the node", `{"vcpu":100000}`, "vcpu: 100000 exceeds this node's"},
		{"tiny memory", `{"vcpu":1,"memory":5}`, "memory: 5 bytes must be 0 (no limit) or at least"},
		{"unknown field", `{"vcpus":1}`, `body: json: unknown field \"vcpus\"`},
		{"not JSON", `vcpu=1`, "body: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, msg := scaleFn(t, tg.url, "add", tc.body)
			if code != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
				t.Fatalf("scale %s: %d %s, want 400 with %q", tc.body, code, msg, tc.want)
			}
		})
	}
	f, err := tg.reg.Get("default", "add")
	if err != nil || f.VCPU != 0 || f.MemoryLimit != 0 {
		t.Fatalf("after rejected scales: vcpu %v, memory %d, err %v; want both unset", f.VCPU, f.MemoryLimit, err)
	}
}
