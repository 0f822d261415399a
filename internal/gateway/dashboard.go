package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"k8s.io/utils/clock"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/registry"
)

// The dashboard (package dashboard serves its page) reads one stream, GET
// /admin/v1/dashboard/stream: a Board when it opens, then a BoardUpdate a
// second. The gateway keeps what the page charts: a sample per function and
// second for the last boardHistory seconds, the recent cold starts with
// their phases, failed requests and scaling events.
const (
	boardHistory   = 15 * 60 // seconds of samples kept per function
	boardShortSpan = 10 * time.Second
	boardEvents    = 50 // timeline entries kept per function
	boardRecent    = 20 // cold starts and failed requests kept per function
	boardLogLines  = 40
)

// board is the dashboard's memory. Its methods are safe for concurrent use.
type board struct {
	// short is a 10 s window per function: the charts' latencies and rate
	// move with the load, where the autoscaler's minute would lag.
	short *metrics.Stats

	mu  sync.Mutex
	fns map[string]*boardFn // by function key
}

// boardFn is one function's dashboard memory.
type boardFn struct {
	samples    []api.Sample // ring of boardHistory, oldest at next once full
	next       int
	idle       bool // the newest sample kept was idle
	errors     map[int]int64
	recentErrs []api.RequestError
	events     []api.BoardEvent
	starts     []api.ColdStart
	coldStarts int64
}

func newBoard(clk clock.PassiveClock) (*board, error) {
	short, err := metrics.NewStats(boardShortSpan, time.Second, clk)
	if err != nil {
		return nil, err
	}
	return &board{short: short, fns: map[string]*boardFn{}}, nil
}

// fnLocked returns key's memory, creating it.
func (b *board) fnLocked(key string) *boardFn {
	f := b.fns[key]
	if f == nil {
		f = &boardFn{errors: map[int]int64{}}
		b.fns[key] = f
	}
	return f
}

// keep appends v to s, dropping the oldest beyond n.
func keep[T any](s []T, v T, n int) []T {
	s = append(s, v)
	if len(s) > n {
		s = slices.Delete(s, 0, len(s)-n)
	}
	return s
}

// failed records a request of key answered with code.
func (b *board) failed(key string, at time.Time, code int, msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fnLocked(key)
	f.errors[code]++
	f.recentErrs = keep(f.recentErrs, api.RequestError{Time: at, Status: code, Message: msg}, boardRecent)
}

// event adds an entry to key's timeline.
func (b *board) event(key string, at time.Time, kind, text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fnLocked(key)
	f.events = keep(f.events, api.BoardEvent{Time: at, Kind: kind, Text: text}, boardEvents)
}

// started records an instance start of key.
func (b *board) started(key string, cs api.ColdStart) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fnLocked(key)
	f.coldStarts++
	f.starts = keep(f.starts, cs, boardRecent)
	text := fmt.Sprintf("instance %d started in %s (load %s)", cs.Pid, (cs.Start + cs.Load).Round(time.Millisecond), cs.Load.Round(100*time.Microsecond))
	if cs.FromZero {
		text += ", from zero"
	}
	f.events = keep(f.events, api.BoardEvent{Time: cs.Time, Kind: "start", Text: text}, boardEvents)
}

// firstInference records the first request served by instance pid of key.
func (b *board) firstInference(key string, pid int, took time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fns[key]
	if f == nil {
		return
	}
	for i := len(f.starts) - 1; i >= 0; i-- {
		if f.starts[i].Pid == pid {
			f.starts[i].FirstInference = took
			return
		}
	}
}

// sample adds key's sample for this second. Idle seconds after the first are
// not kept: the page draws a missing second as idle, and a thousand idle
// functions cost nothing.
func (b *board) sample(key string, s api.Sample) {
	idle := s.Instances == 0 && s.Rate == 0 && s.Waiting == 0 && s.P99 == 0
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fnLocked(key)
	if idle && f.idle {
		return
	}
	f.idle = idle
	if len(f.samples) < boardHistory {
		f.samples = append(f.samples, s)
		return
	}
	f.samples[f.next] = s
	f.next = (f.next + 1) % boardHistory
}

// history returns key's samples, oldest first.
func (b *board) history(key string) []api.Sample {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fns[key]
	if f == nil {
		return nil
	}
	return append(slices.Clone(f.samples[f.next:]), f.samples[:f.next]...)
}

// newest returns key's newest sample, zero if none.
func (b *board) newest(key string) api.Sample {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fns[key]
	if f == nil || len(f.samples) == 0 {
		return api.Sample{}
	}
	i := f.next - 1
	if i < 0 {
		i = len(f.samples) - 1
	}
	return f.samples[i]
}

// counts returns key's errors by status and its instance starts.
func (b *board) counts(key string) (map[int]int64, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fns[key]
	if f == nil {
		return map[int]int64{}, 0
	}
	errs := make(map[int]int64, len(f.errors))
	for k, v := range f.errors {
		errs[k] = v
	}
	return errs, f.coldStarts
}

// recent returns copies of key's timeline, cold starts and failed requests.
func (b *board) recent(key string) (events []api.BoardEvent, starts []api.ColdStart, errs []api.RequestError) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fns[key]
	if f == nil {
		return nil, nil, nil
	}
	return slices.Clone(f.events), slices.Clone(f.starts), slices.Clone(f.recentErrs)
}

// forget drops key's memory (the function was removed).
func (b *board) forget(key string) {
	b.mu.Lock()
	delete(b.fns, key)
	b.mu.Unlock()
	b.short.Forget(key)
}

// runBoard takes the dashboard's samples every second until ctx ends.
func (g *Gateway) runBoard(ctx context.Context) {
	t := g.clock.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			g.sampleBoard(g.clock.Now())
		}
	}
}

// sampleBoard samples every function with live state or recent requests.
func (g *Gateway) sampleBoard(now time.Time) {
	stats := g.board.short.All(now)
	g.mu.Lock()
	live := make(map[string]*function, len(g.fns))
	for k, f := range g.fns {
		live[k] = f
	}
	g.mu.Unlock()
	keys := make(map[string]bool, len(live)+len(stats))
	for k := range live {
		keys[k] = true
	}
	for k := range stats {
		keys[k] = true
	}
	for key := range keys {
		st := stats[key]
		s := api.Sample{
			Time:   now.Unix(),
			Rate:   float32(st.ArrivalRate),
			P50:    ms(st.P50),
			P95:    ms(st.P95),
			P99:    ms(st.P99),
			Errors: float32(float64(st.Errors) / boardShortSpan.Seconds()),
		}
		if f := live[key]; f != nil {
			f.mu.Lock()
			f.pruneLocked()
			s.Instances = uint16(min(len(f.replicas), math.MaxUint16))
			s.Waiting = uint16(min(f.waiting, math.MaxUint16))
			s.VCPUs = float32(f.vcpu * float64(len(f.replicas)))
			s.RSS, s.PSS = float32(f.usage.RSS)/(1<<20), float32(f.usage.PSS)/(1<<20)
			f.mu.Unlock()
		}
		g.board.sample(key, s)
	}
}

func ms(d time.Duration) float32 { return float32(d.Seconds() * 1000) }

// boardStream serves GET /admin/v1/dashboard/stream[?function=TENANT/NAME]:
// server-sent events, a Board first, then a BoardUpdate every second, until
// the client goes or the gateway shuts down. A tenant key sees its
// functions; the admin key sees every tenant's and manages none.
func (g *Gateway) boardStream(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	detail := r.URL.Query().Get("function")
	if detail != "" {
		owner, name, ok := strings.Cut(detail, "/")
		if !ok || registry.ValidateName(name) != nil || owner == "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("function %q: want TENANT/NAME", detail))
			return
		}
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			g.cfg.Logger.Error("dashboard: encode", "err", err)
			return false
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	up := g.boardUpdate(p.Tenant, detail)
	first := api.Board{BoardUpdate: up, History: map[string][]api.Sample{}}
	for _, f := range up.Functions {
		if h := g.board.history(f.Key); len(h) > 0 {
			first.History[f.Key] = h
		}
	}
	if !send("board", first) {
		return
	}
	t := g.clock.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-g.closing:
			return
		case <-t.C():
			if !send("update", g.boardUpdate(p.Tenant, detail)) {
				return
			}
		}
	}
}

// boardUpdate is what tenant ("" for all) sees now, with the detail of
// function key detail when it is one of them.
func (g *Gateway) boardUpdate(tenant, detail string) api.BoardUpdate {
	up := api.BoardUpdate{Time: g.clock.Now().UTC(), Tenant: tenant, CanManage: tenant != "", Node: g.nodeView(), Functions: []api.FunctionRow{}}
	if g.cfg.Autoscale != nil {
		up.SLO = g.cfg.Autoscale.SLO
	}
	fs, err := g.reg.List(tenant)
	if err != nil {
		g.cfg.Logger.Error("dashboard: list functions", "err", err)
		return up
	}
	for _, spec := range fs {
		row, fn := g.functionRow(spec)
		up.Functions = append(up.Functions, row)
		if row.Key == detail {
			d := g.functionDetail(spec, row, fn)
			up.Detail = &d
		}
	}
	return up
}

// functionRow is spec's overview row, and its live state (nil for none).
func (g *Gateway) functionRow(spec registry.Function) (api.FunctionRow, *function) {
	key := fnKey(spec.Owner, spec.Name)
	row := api.FunctionRow{Key: key, Name: spec.Name, Owner: spec.Owner, Task: spec.Task, State: "idle", VCPU: g.vcpuOf(spec), ModelBytes: spec.ModelBytes, Sample: g.board.newest(key)}
	row.Errors, row.ColdStarts = g.board.counts(key)
	g.mu.Lock()
	fn := g.fns[key]
	g.mu.Unlock()
	if fn != nil {
		fn.mu.Lock()
		fn.pruneLocked()
		row.Instances, row.VCPU, row.RSS, row.PSS = len(fn.replicas), fn.vcpu, fn.usage.RSS, fn.usage.PSS
		switch {
		case len(fn.replicas) > 0:
			row.State = "ready"
		case fn.starting > 0:
			row.State = "starting"
		}
		fn.mu.Unlock()
	}
	return row, fn
}

// functionDetail is the function page's data for spec.
func (g *Gateway) functionDetail(spec registry.Function, row api.FunctionRow, fn *function) api.FunctionDetail {
	key := row.Key
	d := api.FunctionDetail{FunctionRow: row, Batch: spec.Batch, MemoryLimit: spec.MemoryLimit, Created: spec.Created, Metadata: spec.Metadata, Instances: []api.InstanceInfo{}}
	if fn != nil {
		fn.mu.Lock()
		for _, r := range fn.replicas {
			d.Instances = append(d.Instances, api.InstanceInfo{Pid: r.proc.Pid, Addr: r.proc.Addr, InFlight: r.inflight.Load(), VCPU: fn.vcpu})
		}
		fn.mu.Unlock()
	}
	for i := range d.Instances {
		u, _ := metrics.ReadUsage(d.Instances[i].Pid)
		d.Instances[i].RSS, d.Instances[i].PSS = u.RSS, u.PSS
		d.Private += u.Private
	}
	if len(d.Instances) > 0 {
		d.Shared = spec.ModelBytes
	}
	events, starts, errs := g.board.recent(key)
	for _, rec := range g.decisions(key) {
		if e, ok := api.DecisionEvent(rec); ok {
			events = append(events, e)
		}
	}
	slices.SortStableFunc(events, func(a, b api.BoardEvent) int { return a.Time.Compare(b.Time) })
	if len(events) > boardEvents {
		events = events[len(events)-boardEvents:]
	}
	d.Timeline, d.ColdStarts, d.Errors = nonNil(events), nonNil(starts), nonNil(errs)
	d.Log = g.logTail(spec, boardLogLines)
	return d
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// logTail returns the last n lines of spec's log, at most 16 KiB of them.
func (g *Gateway) logTail(spec registry.Function, n int) []string {
	f, err := os.Open(g.logPath(spec))
	if err != nil {
		return []string{}
	}
	defer f.Close()
	const most = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > most {
		f.Seek(st.Size()-most, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, most))
	lines := strings.Split(string(bytes.TrimRight(b, "\n")), "\n")
	if len(b) == most && len(lines) > 1 {
		lines = lines[1:] // the first may be cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return []string{}
	}
	return lines
}

// nodeView is the machine now: CPUs and memory, and the model bytes running
// instances share against what private copies would take.
func (g *Gateway) nodeView() api.NodeView {
	n := api.NodeView{CPUs: runtime.NumCPU()}
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if mi, err := fs.Meminfo(); err == nil && mi.MemTotalBytes != nil && mi.MemAvailableBytes != nil {
			n.MemoryTotal, n.MemoryAvail = *mi.MemTotalBytes, *mi.MemAvailableBytes
		}
	}
	g.mu.Lock()
	fns := make([]*function, 0, len(g.fns))
	for _, f := range g.fns {
		fns = append(fns, f)
	}
	g.mu.Unlock()
	models := map[string]int64{}
	for _, f := range fns {
		f.mu.Lock()
		f.pruneLocked()
		k := len(f.replicas)
		n.Instances += k
		n.VCPUs += f.vcpu * float64(k)
		n.Private += f.usage.Private
		if k > 0 && f.spec.ModelDigest != "" {
			models[f.spec.ModelDigest] = f.spec.ModelBytes
			n.ModelIfCopied += f.spec.ModelBytes * int64(k)
		}
		f.mu.Unlock()
	}
	for _, b := range models {
		n.ModelShared += b
	}
	return n
}
