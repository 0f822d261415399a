package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/sandbox"
)

// TestHybridLoopResizesLiveInstance runs the real autoscaler loop (hybrid
// policy) against a real instance in a real cgroup: requests slower than the
// SLO make each tick double the instance's vCPUs, live, up to the node's CPUs;
// after a calm stabilisation window it halves them again. The injected clock
// decides when ticks happen; the latencies are real.
func TestHybridLoopResizesLiveInstance(t *testing.T) {
	caps := detect(t, sandbox.Options{})
	spec, err := autoscale.ParseSpec(autoscale.Hybrid, map[string]string{
		"slo": "1ms", "interval": "1s", "window": "2s", "min-vcpus": "0.25",
		"stabilization": "2s", "idle-to-zero": "0s",
	})
	if err != nil {
		t.Fatal(err)
	}
	tg := newTestGateway(t, Config{Sandbox: caps, Autoscale: &spec, DefaultVCPU: 0.25})
	tg.deploy(t, "slow", slowModel(1))
	body := slowBody()
	key := "default/slow"
	load := func() {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if code, msg := infer(t, tg.url, "slow", body); code != 200 {
					t.Errorf("infer: %d %.200s", code, msg)
				}
			}()
		}
		wg.Wait()
	}
	vcpu := func() float64 {
		f := tg.fn("slow")
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.vcpu
	}
	load()
	if v := vcpu(); v != 0.25 {
		t.Fatalf("first instance has %v vCPU, want 0.25", v)
	}
	want := []float64{0.5, 1, 2}
	for _, w := range want {
		tg.clock.Step(time.Second)
		if err := tg.loop.Tick(tg.clock.Now()); err != nil {
			t.Fatalf("tick: %v", err)
		}
		if v := vcpu(); v != w {
			t.Fatalf("after a slow window: %v vCPU, want %v; decisions: %+v", v, w, tg.loop.History(key))
		}
		if caps.CPU {
			_, cg := tg.instanceWorkers(t, "slow")
			if cg.Limits().CPU != w {
				t.Fatalf("cgroup quota %v, want %v", cg.Limits().CPU, w)
			}
		}
		load()
	}
	hist := tg.loop.History(key)
	last := hist[len(hist)-1]
	if last.Decision.Action != autoscale.ScaleUp || !strings.Contains(last.Decision.Reason, "p99") {
		t.Fatalf("last decision %+v, want a scale-up whose reason names p99", last.Decision)
	}
	// The decisions are visible in the stats endpoint with their reasons.
	resp, err := http.Get(tg.url + "/admin/v1/functions/slow/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		VCPU      float64            `json:"vcpu"`
		Decisions []autoscale.Record `json:"recent_decisions"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.VCPU != 2 || len(st.Decisions) < 3 || st.Decisions[len(st.Decisions)-1].Decision.Reason == "" {
		t.Fatalf("stats endpoint: vcpu %v, %d decisions", st.VCPU, len(st.Decisions))
	}

	// Quiet: no requests in the window for longer than the stabilisation.
	for i := 0; i < 6 && vcpu() == 2; i++ {
		tg.clock.Step(time.Second)
		tg.loop.Tick(tg.clock.Now())
	}
	if v := vcpu(); v != 1 {
		t.Fatalf("after a calm stabilisation window: %v vCPU, want 1 (halved); decisions: %+v", v, tg.loop.History(key))
	}
}

// TestHPAFirstReplicaHasReplicaSize checks that under hpa the replica a
// request starts (scale from zero, outside the loop) has the policy's replica
// size, not the platform's default allotment, so the first scale-up doubles
// capacity: 1 replica of 0.5 vCPU -> 2 of 0.5. With the default (1 vCPU)
// the first replica was shrunk to 0.5 when the second started, and the
// "doubling" left capacity at 1 vCPU.
func TestHPAFirstReplicaHasReplicaSize(t *testing.T) {
	caps := detect(t, sandbox.Options{})
	spec, err := autoscale.ParseSpec(autoscale.HPA, map[string]string{
		"slo": "1ms", "interval": "1s", "window": "2s", "replica-vcpus": "0.5", "idle-to-zero": "0s",
	})
	if err != nil {
		t.Fatal(err)
	}
	tg := newTestGateway(t, Config{Sandbox: caps, Autoscale: &spec, DefaultVCPU: 1})
	tg.deploy(t, "add", addModel())
	body := `{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}`
	if code, msg := infer(t, tg.url, "add", body); code != 200 {
		t.Fatalf("infer: %d %.200s", code, msg)
	}
	state := func() (float64, int) {
		f := tg.fn("add")
		f.mu.Lock()
		defer f.mu.Unlock()
		f.pruneLocked()
		return f.vcpu, len(f.replicas) + f.starting
	}
	if v, n := state(); v != 0.5 || n != 1 {
		t.Fatalf("after the first request: %d replica(s) of %v vCPU, want 1 of 0.5", n, v)
	}
	tg.clock.Step(time.Second)
	if err := tg.loop.Tick(tg.clock.Now()); err != nil {
		t.Fatalf("tick: %v", err)
	}
	if v, n := state(); v != 0.5 || n != 2 {
		t.Fatalf("after a slow window: %d replica(s) of %v vCPU, want 2 of 0.5; decisions: %+v", n, v, tg.loop.History("default/add"))
	}
	// Let the second replica finish starting, so that cleanup stops it.
	f := tg.fn("add")
	timeout := time.After(30 * time.Second)
	for {
		f.mu.Lock()
		f.pruneLocked()
		ready, ch := len(f.replicas), f.changed
		f.mu.Unlock()
		if ready == 2 {
			break
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("second replica not ready after 30 s (%d ready)", ready)
		}
	}
}
