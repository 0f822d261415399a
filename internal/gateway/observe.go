package gateway

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/registry"
)

// statusWriter remembers the status code a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	code int
	// errBody keeps the start of an error answer, for the function's log.
	errBody []byte
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.code >= 400 && len(w.errBody) < 512 {
		w.errBody = append(w.errBody, b[:min(len(b), 512-len(w.errBody))]...)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observed wraps a per-function data-path handler with the lookup of the
// caller's function and the recorder hook: one Arrive and one Observe per
// request, labelled tenant/name. A name that is not deployed gets its 404
// unrecorded: names come from callers, and each recorded one would keep a
// metric series and a window for good.
// batchSizeHeader is instance.BatchSizeHeader (the gateway does not link
// the instance package): how many requests the engine run held.
const batchSizeHeader = "Spindle-Batch-Size"

func (g *Gateway) observed(h func(http.ResponseWriter, *http.Request, registry.Function)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		spec, ok := g.lookup(w, r)
		if !ok {
			return
		}
		fn := fnKey(spec.Owner, spec.Name)
		// Latency is a measurement, not a decision: it uses the monotonic
		// wall clock even when tests step the injected clock.
		began := time.Now()
		g.recorder.Arrive(fn)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			took := time.Since(began)
			g.recorder.Observe(fn, sw.code, took)
			if n, err := strconv.Atoi(sw.Header().Get(batchSizeHeader)); err == nil && n > 0 {
				g.metrics.ObserveBatch(fn, n)
			}
			if sw.code >= 400 {
				g.board.failed(fn, g.clock.Now().UTC(), sw.code, string(bytes.TrimSpace(sw.errBody)))
				g.logEvent(spec, "%s %s -> %d in %s: %s", r.Method, r.URL.Path, sw.code, took.Round(time.Microsecond), bytes.TrimSpace(sw.errBody))
			}
		}()
		h(sw, r, spec)
	}
}

// functionStats answers GET /admin/v1/functions/{name}/stats: latency percentiles over
// the sliding window, arrival rate, in-flight, queue and instances.
func (g *Gateway) functionStats(w http.ResponseWriter, r *http.Request) {
	f, ok := g.lookup(w, r)
	if !ok {
		return
	}
	key := fnKey(f.Owner, f.Name)
	out := struct {
		Function  string                `json:"function"`
		Window    metrics.FunctionStats `json:"window"`
		Waiting   int                   `json:"waiting"`
		Instances int                   `json:"instances"`
		VCPU      float64               `json:"vcpu"`
		Decisions []autoscale.Record    `json:"recent_decisions"`
	}{Function: f.Name, Window: g.stats.Snapshot(key, g.clock.Now()), VCPU: g.vcpuOf(f), Decisions: g.decisions(key)}
	g.mu.Lock()
	fn := g.fns[key]
	g.mu.Unlock()
	if fn != nil {
		fn.mu.Lock()
		fn.pruneLocked()
		out.Waiting, out.Instances, out.VCPU = fn.waiting, len(fn.replicas), fn.vcpu
		fn.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, out)
}

// runGauges refreshes the per-function gauges (instances, queue, memory summed
// over instances) every period until ctx ends. Memory comes from smaps_rollup,
// about 1 ms per process, so it is sampled, not read per request.
func (g *Gateway) runGauges(ctx context.Context, period time.Duration) {
	t := g.clock.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			g.updateGauges()
		}
	}
}

func (g *Gateway) updateGauges() {
	g.mu.Lock()
	fns := make(map[string]*function, len(g.fns))
	for k, f := range g.fns {
		fns[k] = f
	}
	g.mu.Unlock()
	for key, f := range fns {
		f.mu.Lock()
		f.pruneLocked()
		pids := make([]int, len(f.replicas))
		for i, r := range f.replicas {
			pids[i] = r.proc.Pid
		}
		waiting, vcpus := f.waiting, f.vcpu*float64(len(f.replicas))
		f.mu.Unlock()
		var sum metrics.Usage
		for _, pid := range pids {
			if u, err := metrics.ReadUsage(pid); err == nil {
				sum.RSS += u.RSS
				sum.PSS += u.PSS
				sum.Private += u.Private
			}
		}
		f.mu.Lock()
		f.usage = sum
		f.mu.Unlock()
		g.metrics.SetInstances(key, len(pids))
		g.metrics.SetQueueDepth(key, waiting)
		g.metrics.SetVCPUs(key, vcpus)
		g.metrics.SetMemory(key, sum.RSS, sum.PSS)
	}
}

// decisions returns the autoscaler's recent decisions for function key, newest
// last; empty when no autoscaler runs.
func (g *Gateway) decisions(key string) []autoscale.Record {
	if g.loop == nil {
		return []autoscale.Record{}
	}
	return g.loop.History(key)
}
