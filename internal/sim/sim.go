package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/spindleml/spindle/internal/autoscale"
)

// epoch is virtual time zero, as the autoscaler sees it.
var epoch = time.Date(2023, 6, 26, 0, 0, 0, 0, time.UTC)

// Point is one step of the time series, all functions together.
type Point struct {
	T         float64 `json:"t_s"`       // end of the step, seconds
	RPS       float64 `json:"rps"`       // arrivals per second in the step
	Completed int     `json:"completed"` // requests finished in the step
	P50       float64 `json:"p50_s"`     // latency of those, seconds
	P99       float64 `json:"p99_s"`
	VCPUs     float64 `json:"vcpus"`    // allocated at the end of the step
	Replicas  int     `json:"replicas"` // instances, starting and stopping included
	Memory    int64   `json:"memory_bytes"`
	Users     int     `json:"users"`  // closed-loop users
	Queued    int     `json:"queued"` // requests waiting at the gateway
}

// Summary is a run's outcome.
type Summary struct {
	Policy string `json:"policy"`
	// Requests arrived before the end of the offered load; each one is
	// Completed, Dropped (queue full) or Unfinished when the drain ran out.
	Requests   int64 `json:"requests"`
	Completed  int64 `json:"completed"`
	Dropped    int64 `json:"dropped"`
	Unfinished int64 `json:"unfinished"`
	// Latencies of completed requests, seconds: queueing, cold starts and
	// service.
	P50  float64 `json:"p50_s"`
	P95  float64 `json:"p95_s"`
	P99  float64 `json:"p99_s"`
	Max  float64 `json:"max_s"`
	Mean float64 `json:"mean_s"`
	// SLOViolations counts completed requests slower than their SLO.
	SLOViolations int64 `json:"slo_violations"`
	// Memory, bytes, and vCPUs allocated, over the offered load's duration.
	PeakMemory   int64   `json:"peak_memory_bytes"`
	MeanMemory   int64   `json:"mean_memory_bytes"`
	VCPUSeconds  float64 `json:"vcpu_seconds"`
	PeakVCPUs    float64 `json:"peak_vcpus"`
	MeanVCPUs    float64 `json:"mean_vcpus"`
	PeakReplicas int     `json:"peak_replicas"`
	// Decisions made, and Changes applied; ColdStarts counts instances
	// started; ApplyErrors counts decisions the simulated platform refused.
	Decisions   int64 `json:"decisions"`
	Changes     int64 `json:"changes"`
	ColdStarts  int64 `json:"cold_starts"`
	ApplyErrors int64 `json:"apply_errors"`
	// Events is the number of simulation events processed; End is the
	// virtual time the run ended, seconds.
	Events uint64  `json:"events"`
	End    float64 `json:"end_s"`
}

// Result is a run's summary and time series.
type Result struct {
	Summary Summary `json:"summary"`
	Series  []Point `json:"series"`
	// Loop is the autoscaler loop the run used, for its decision history.
	Loop *autoscale.Loop `json:"-"`
}

type request struct {
	fn     int32
	user   int32 // -1: open loop
	arrive float64
	work   float64
}

type instance struct {
	id       string
	serial   uint32
	fn, node int32
	vcpus    float64
	workers  int
	mem      float64 // own bytes; a shared model is counted per node
	alive    bool
	ready    bool
	stopping bool
	running  runHeap
	vclock   float64 // work each running request has received since the instance started
	last     float64 // when vclock was last brought up to date
	rate     float64 // vclock speed: min(1, vcpus/running)
}

type doneRec struct {
	t, lat, work float64
}

type fnState struct {
	idx      int32
	cfg      *Function
	slo      float64
	shared   bool // model in the node's page cache, one copy per node
	loadTime float64
	live     []int32 // instances not stopping, oldest first
	view     []autoscale.Instance
	dirty    bool
	queue    fifo
	running  int
	arr      []float64
	arrHead  int
	done     []doneRec
	doneHead int
	scratch  []float64
	last     float64 // last arrival, or 0
	perNode  map[int32]int32

	rate     float64
	stepIdx  int
	arrGen   uint32
	spawned  int
	arrRng   *rand.Rand
	svcRng   *rand.Rand
	thinkRng *rand.Rand
}

type nodeState struct {
	name string
	cpus float64
	used float64 // vCPUs of instances not stopping
}

type engine struct {
	cfg    Config
	now    float64
	end    float64
	stop   float64
	seq    uint64
	events eventHeap
	fns    []*fnState
	byName map[string]int32
	nodes  []nodeState
	nodeIx map[string]int32
	insts  []instance
	free   []int32
	byID   map[string]int32
	serial uint32
	reqs   []request
	freeRq []int32
	users  []int32 // user -> function
	loop   *autoscale.Loop
	warmup bool

	inflight int
	acctT    float64
	vcpus    float64
	mem      float64
	replicas int
	vcpuInt  float64
	memInt   float64
	all      hist
	step     hist
	stepArr  int
	series   []Point
	sum      Summary
}

// Run simulates cfg and returns its result. The config is validated first.
func Run(cfg Config) (*Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &engine{
		cfg:    cfg,
		end:    cfg.Duration.Seconds(),
		byName: map[string]int32{},
		nodeIx: map[string]int32{},
		byID:   map[string]int32{},
	}
	e.stop = e.end + cfg.Drain.Seconds()
	for i := range cfg.Nodes {
		name := "n" + strconv.Itoa(i)
		e.nodes = append(e.nodes, nodeState{name: name, cpus: cfg.Cores})
		e.nodeIx[name] = int32(i)
	}
	h := hooks{e}
	loop, err := autoscale.NewLoop(autoscale.LoopConfig{
		Stats: h, Actuator: h, Nodes: h, Resolution: cfg.Resolution, History: cfg.History,
		Clock: stoppedClock{},
	})
	if err != nil {
		return nil, err
	}
	e.loop = loop
	policy := ""
	for i := range e.cfg.Functions {
		f := &e.cfg.Functions[i]
		if i == 0 {
			policy = string(f.Spec.Policy)
		} else if policy != string(f.Spec.Policy) {
			policy = "mixed"
		}
		fs := &fnState{
			idx:      int32(i),
			cfg:      f,
			slo:      f.Spec.SLO.Seconds(),
			shared:   f.Spec.Load == autoscale.LoadMmap,
			loadTime: (f.Boot + f.Load.of(f.Spec.Load)).Seconds(),
			perNode:  map[int32]int32{},
			stepIdx:  -1,
			arrRng:   rand.New(rand.NewPCG(cfg.Seed, uint64(i)*4+1)),
			svcRng:   rand.New(rand.NewPCG(cfg.Seed, uint64(i)*4+2)),
			thinkRng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)*4+3)),
		}
		e.fns = append(e.fns, fs)
		e.byName[f.Name] = int32(i)
		if err := loop.Set(f.Name, f.Spec); err != nil {
			return nil, err
		}
	}
	e.sum.Policy = policy

	// The first tick comes first: with Warm, what it starts is deployed
	// before any load arrives.
	e.schedule(0, evTick, 0, 0)
	e.schedule(cfg.Step.Seconds(), evSample, 0, 0)
	for i, f := range e.fns {
		w := f.cfg.Workload
		if w.Users > 0 {
			e.schedule(0, evSpawn, int32(i), 0)
		}
		if len(w.Steps) > 0 {
			e.schedule(w.Steps[0].At.Seconds(), evRate, int32(i), 0)
		}
	}
	e.run()
	e.finish()
	return &Result{Summary: e.sum, Series: e.series, Loop: loop}, nil
}

func (e *engine) schedule(t float64, k evKind, a int32, gen uint32) {
	e.seq++
	e.events.push(event{t: t, seq: e.seq, kind: k, a: a, gen: gen})
}

// scheduleDone sets instance i's one completion event to time t.
func (e *engine) scheduleDone(i int32, t float64) {
	e.seq++
	e.events.setDone(i, t, e.seq)
}

func (e *engine) run() {
	for e.events.len() > 0 {
		if e.now >= e.end && e.inflight == 0 {
			break
		}
		ev := e.events.pop()
		if ev.t > e.stop {
			e.now = e.stop
			break
		}
		e.now = ev.t
		e.sum.Events++
		switch ev.kind {
		case evArrival:
			e.onArrival(ev)
		case evRate:
			e.onRate(ev)
		case evSpawn:
			e.onSpawn(ev)
		case evSend:
			e.onSend(ev)
		case evDone:
			e.onDone(ev)
		case evReady:
			e.onReady(ev)
		case evTick:
			e.warmup = e.cfg.Warm && e.now == 0
			if err := e.loop.Tick(e.at(e.now)); err != nil {
				e.sum.ApplyErrors += int64(countErrs(err))
			}
			e.warmup = false
			e.schedule(e.now+e.cfg.Resolution.Seconds(), evTick, 0, 0)
		case evSample:
			e.onSample()
		}
	}
}

func countErrs(err error) int {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return len(j.Unwrap())
	}
	return 1
}

func (e *engine) at(t float64) time.Time {
	return epoch.Add(time.Duration(math.Round(t * 1e9)))
}

// --- workload ---

func (e *engine) onRate(ev event) {
	f := e.fns[ev.a]
	steps := f.cfg.Workload.Steps
	f.stepIdx++
	f.rate = steps[f.stepIdx].Rate
	f.arrGen++
	if f.rate > 0 {
		e.schedule(e.now+f.arrRng.ExpFloat64()/f.rate, evArrival, f.idx, f.arrGen)
	}
	if next := f.stepIdx + 1; next < len(steps) && steps[next].At.Seconds() < e.end {
		e.schedule(steps[next].At.Seconds(), evRate, f.idx, 0)
	}
}

func (e *engine) onArrival(ev event) {
	f := e.fns[ev.a]
	if ev.gen != f.arrGen || e.now >= e.end {
		return
	}
	e.newRequest(f, -1)
	e.schedule(e.now+f.arrRng.ExpFloat64()/f.rate, evArrival, f.idx, f.arrGen)
}

func (e *engine) onSpawn(ev event) {
	f := e.fns[ev.a]
	if e.now >= e.end {
		return
	}
	f.spawned++
	u := int32(len(e.users))
	e.users = append(e.users, f.idx)
	e.schedule(e.now, evSend, u, 0)
	if w := f.cfg.Workload; f.spawned < w.Users {
		e.schedule(e.now+1/w.SpawnRate, evSpawn, f.idx, 0)
	}
}

func (e *engine) onSend(ev event) {
	if e.now >= e.end {
		return // the user retires
	}
	e.newRequest(e.fns[e.users[ev.a]], ev.a)
}

// think schedules a closed-loop user's next request.
func (e *engine) think(f *fnState, user int32) {
	w := f.cfg.Workload
	d := w.ThinkMin.Seconds() + f.thinkRng.Float64()*(w.ThinkMax-w.ThinkMin).Seconds()
	e.schedule(e.now+d, evSend, user, 0)
}

// --- requests ---

func (e *engine) newRequest(f *fnState, user int32) {
	var r int32
	if n := len(e.freeRq); n > 0 {
		r = e.freeRq[n-1]
		e.freeRq = e.freeRq[:n-1]
	} else {
		r = int32(len(e.reqs))
		e.reqs = append(e.reqs, request{})
	}
	e.reqs[r] = request{fn: f.idx, user: user, arrive: e.now, work: f.cfg.Service.Sample(f.svcRng)}
	e.sum.Requests++
	e.inflight++
	e.stepArr++
	f.arr = append(f.arr, e.now)
	f.last = e.now

	if i := e.pick(f); i >= 0 {
		e.startOn(i, r)
		return
	}
	if f.queue.len() >= f.cfg.MaxQueue {
		e.sum.Dropped++
		e.inflight--
		e.release(r)
		if user >= 0 {
			e.think(f, user)
		}
		return
	}
	f.queue.push(r)
	if len(f.live) == 0 {
		// Scale from zero: the gateway wakes the autoscaler at once
		// rather than at its next interval.
		e.loop.Wake(f.cfg.Name)
		if err := e.loop.Tick(e.at(e.now)); err != nil {
			e.sum.ApplyErrors += int64(countErrs(err))
		}
	}
}

func (e *engine) release(r int32) { e.freeRq = append(e.freeRq, r) }

// pick chooses the ready instance with a free worker and the least load per
// vCPU; -1 when none has a free worker.
func (e *engine) pick(f *fnState) int32 {
	best, bestLoad := int32(-1), math.Inf(1)
	for _, i := range f.live {
		in := &e.insts[i]
		if !in.ready || len(in.running) >= in.workers {
			continue
		}
		if load := float64(len(in.running)) / in.vcpus; load < bestLoad {
			best, bestLoad = i, load
		}
	}
	return best
}

// advance brings an instance's virtual clock up to now.
func (e *engine) advance(in *instance) {
	in.vclock += in.rate * (e.now - in.last)
	in.last = e.now
}

// reschedule recomputes an instance's speed and its next completion. Every
// running request runs at min(1, vCPUs/running) of a CPU: a request is one
// thread and cannot use more than one CPU; more requests than vCPUs share
// them equally (processor sharing, as CFS does under a quota).
func (e *engine) reschedule(i int32) {
	in := &e.insts[i]
	if len(in.running) == 0 {
		in.rate = 0
		e.events.clearDone(i)
		return
	}
	in.rate = min(1, in.vcpus/float64(len(in.running)))
	dt := max(0, (in.running[0].tag-in.vclock)/in.rate)
	e.scheduleDone(i, e.now+dt)
}

func (e *engine) startOn(i int32, r int32) {
	in := &e.insts[i]
	e.advance(in)
	in.running.push(runItem{tag: in.vclock + e.reqs[r].work, req: r})
	e.fns[in.fn].running++
	e.reschedule(i)
}

// dispatch starts queued requests on an instance while it has free workers.
func (e *engine) dispatch(i int32) {
	in := &e.insts[i]
	if !in.ready || in.stopping {
		return
	}
	f := e.fns[in.fn]
	if f.queue.len() == 0 || len(in.running) >= in.workers {
		return
	}
	e.advance(in)
	for f.queue.len() > 0 && len(in.running) < in.workers {
		r := f.queue.pop()
		in.running.push(runItem{tag: in.vclock + e.reqs[r].work, req: r})
		f.running++
	}
	e.reschedule(i)
}

func (e *engine) onDone(ev event) {
	i := ev.a
	in := &e.insts[i]
	if !in.alive {
		return
	}
	e.advance(in)
	f := e.fns[in.fn]
	for len(in.running) > 0 && in.running[0].tag <= in.vclock+1e-9 {
		it := in.running.pop()
		f.running--
		e.complete(f, it.req)
	}
	if in.stopping && len(in.running) == 0 {
		e.remove(i)
		return
	}
	e.reschedule(i)
	e.dispatch(i)
}

func (e *engine) complete(f *fnState, r int32) {
	rq := e.reqs[r]
	lat := e.now - rq.arrive
	e.all.add(lat)
	e.step.add(lat)
	e.sum.Completed++
	e.inflight--
	if lat > f.slo {
		e.sum.SLOViolations++
	}
	f.done = append(f.done, doneRec{t: e.now, lat: lat, work: rq.work})
	e.release(r)
	if rq.user >= 0 {
		e.think(f, rq.user)
	}
}

// --- instances ---

func (e *engine) workersFor(f *fnState, v float64) int {
	return max(1, int(math.Ceil(v*f.cfg.WorkersPerVCPU-1e-9)))
}

func (e *engine) instMem(f *fnState, workers int) float64 {
	m := float64(f.cfg.InstanceBytes) + float64(workers)*float64(f.cfg.ActivationBytes)
	if !f.shared {
		m += float64(f.cfg.ModelBytes)
	}
	return m
}

// acct integrates vCPUs and memory up to now (within the offered load's
// duration) before they change.
func (e *engine) acct() {
	t := min(e.now, e.end)
	if t > e.acctT {
		dt := t - e.acctT
		e.vcpuInt += e.vcpus * dt
		e.memInt += e.mem * dt
		e.acctT = t
	}
}

func (e *engine) peaks() {
	if e.now > e.end {
		return
	}
	e.sum.PeakMemory = max(e.sum.PeakMemory, int64(e.mem))
	e.sum.PeakVCPUs = max(e.sum.PeakVCPUs, e.vcpus)
	e.sum.PeakReplicas = max(e.sum.PeakReplicas, e.replicas)
}

func (e *engine) start(f *fnState, node int32, v float64) {
	e.acct()
	var i int32
	if n := len(e.free); n > 0 {
		i = e.free[n-1]
		e.free = e.free[:n-1]
	} else {
		i = int32(len(e.insts))
		e.insts = append(e.insts, instance{})
	}
	e.serial++
	in := &e.insts[i]
	*in = instance{
		id: "i" + strconv.FormatUint(uint64(e.serial), 10), serial: e.serial,
		fn: f.idx, node: node, vcpus: v, workers: e.workersFor(f, v),
		alive: true, last: e.now, running: in.running[:0],
	}
	in.mem = e.instMem(f, in.workers)
	e.byID[in.id] = i
	f.live = append(f.live, i)
	f.dirty = true
	e.nodes[node].used += v
	e.vcpus += v
	e.mem += in.mem
	e.replicas++
	if f.perNode[node]++; f.perNode[node] == 1 && f.shared {
		e.mem += float64(f.cfg.ModelBytes)
	}
	e.peaks()
	e.sum.ColdStarts++
	if e.warmup {
		in.ready = true
		return
	}
	e.schedule(e.now+f.loadTime, evReady, i, in.serial)
}

func (e *engine) onReady(ev event) {
	in := &e.insts[ev.a]
	if !in.alive || in.serial != ev.gen || in.stopping {
		return
	}
	in.ready = true
	e.fns[in.fn].dirty = true
	e.dispatch(ev.a)
}

func (e *engine) resize(i int32, v float64) {
	e.acct()
	in := &e.insts[i]
	f := e.fns[in.fn]
	e.advance(in)
	e.nodes[in.node].used += v - in.vcpus
	e.vcpus += v - in.vcpus
	in.vcpus = v
	in.workers = e.workersFor(f, v)
	m := e.instMem(f, in.workers)
	e.mem += m - in.mem
	in.mem = m
	e.peaks()
	f.dirty = true
	e.reschedule(i)
	e.dispatch(i)
}

// stopInstance takes an instance out of service: it gets no new requests,
// its CPUs count as free at once, and it goes away when its running requests
// are done (at once if it was still starting).
func (e *engine) stopInstance(i int32) {
	in := &e.insts[i]
	f := e.fns[in.fn]
	in.stopping = true
	e.nodes[in.node].used -= in.vcpus
	for k, j := range f.live {
		if j == i {
			f.live = append(f.live[:k], f.live[k+1:]...)
			break
		}
	}
	f.dirty = true
	if len(in.running) == 0 {
		e.remove(i)
	}
}

func (e *engine) remove(i int32) {
	e.acct()
	in := &e.insts[i]
	f := e.fns[in.fn]
	e.vcpus -= in.vcpus
	e.mem -= in.mem
	e.replicas--
	if f.perNode[in.node]--; f.perNode[in.node] == 0 {
		delete(f.perNode, in.node)
		if f.shared {
			e.mem -= float64(f.cfg.ModelBytes)
		}
	}
	in.alive = false
	e.events.clearDone(i)
	delete(e.byID, in.id)
	e.free = append(e.free, i)
}

// --- output ---

func (e *engine) onSample() {
	step := e.cfg.Step.Seconds()
	p := Point{
		T: e.now, RPS: float64(e.stepArr) / step, Completed: int(e.step.n),
		P50: e.step.quantile(0.5), P99: e.step.quantile(0.99),
		VCPUs: e.vcpus, Replicas: e.replicas, Memory: int64(e.mem), Users: len(e.users),
	}
	if e.now > e.end {
		p.Users = 0
	}
	for _, f := range e.fns {
		p.Queued += f.queue.len()
	}
	e.series = append(e.series, p)
	e.step.reset()
	e.stepArr = 0
	e.schedule(e.now+step, evSample, 0, 0)
}

func (e *engine) finish() {
	e.acct()
	e.sum.Unfinished = int64(e.inflight)
	e.sum.P50 = e.all.quantile(0.5)
	e.sum.P95 = e.all.quantile(0.95)
	e.sum.P99 = e.all.quantile(0.99)
	e.sum.Max = e.all.max
	e.sum.Mean = e.all.mean()
	e.sum.VCPUSeconds = e.vcpuInt
	e.sum.MeanVCPUs = e.vcpuInt / e.end
	e.sum.MeanMemory = int64(e.memInt / e.end)
	e.sum.End = e.now
}

// --- the autoscaler's view ---

// hooks gives the autoscaler loop the simulated platform: stats from the
// simulated window, instances, nodes, and the actuator.
type hooks struct{ e *engine }

var (
	_ autoscale.StatsSource = hooks{}
	_ autoscale.Actuator    = hooks{}
	_ autoscale.Nodes       = hooks{}
)

func (h hooks) fn(name string) (*fnState, error) {
	i, ok := h.e.byName[name]
	if !ok {
		return nil, fmt.Errorf("no function %q", name)
	}
	return h.e.fns[i], nil
}

func (h hooks) Nodes() []autoscale.Node {
	out := make([]autoscale.Node, len(h.e.nodes))
	for i, n := range h.e.nodes {
		out[i] = autoscale.Node{Name: n.name, CPUs: n.cpus, Used: n.used}
	}
	return out
}

func (h hooks) Instances(name string) ([]autoscale.Instance, error) {
	f, err := h.fn(name)
	if err != nil {
		return nil, err
	}
	if f.dirty || len(f.view) != len(f.live) {
		f.view = f.view[:0]
		for _, i := range f.live {
			in := &h.e.insts[i]
			f.view = append(f.view, autoscale.Instance{ID: in.id, Node: h.e.nodes[in.node].name, VCPUs: in.vcpus, Ready: in.ready})
		}
		f.dirty = false
	}
	return f.view, nil
}

func (h hooks) Stats(name string, q autoscale.Query) (autoscale.Stats, error) {
	e := h.e
	f, err := h.fn(name)
	if err != nil {
		return autoscale.Stats{}, err
	}
	e.sum.Decisions++
	now, w := e.now, q.Window.Seconds()
	from := now - w
	for f.arrHead < len(f.arr) && f.arr[f.arrHead] <= from {
		f.arrHead++
	}
	for f.doneHead < len(f.done) && f.done[f.doneHead].t <= from {
		f.doneHead++
	}
	compact(&f.arr, &f.arrHead)
	compact(&f.done, &f.doneHead)

	span := min(w, max(now, e.cfg.Resolution.Seconds()))
	s := autoscale.Stats{Window: q.Window, Arrivals: len(f.arr) - f.arrHead}
	s.Rate = float64(s.Arrivals) / span
	if q.ShortWindow > 0 {
		sw := q.ShortWindow.Seconds()
		n := 0
		for k := len(f.arr) - 1; k >= f.arrHead && f.arr[k] > now-sw; k-- {
			n++
		}
		s.ShortRate = float64(n) / min(sw, span)
	}
	done := f.done[f.doneHead:]
	s.Completions = len(done)
	if len(done) > 0 {
		f.scratch = f.scratch[:0]
		var work float64
		for _, d := range done {
			f.scratch = append(f.scratch, d.lat)
			work += d.work
		}
		p50, k := quantileOf(f.scratch, 0.5, 0)
		p95, k := quantileOf(f.scratch, 0.95, k)
		p99, _ := quantileOf(f.scratch, 0.99, k)
		s.P50, s.P95, s.P99 = dur(p50), dur(p95), dur(p99)
		s.ServiceTime = dur(work / float64(len(done)))
	}
	s.InFlight = f.running
	s.Queued = f.queue.len()
	if s.Queued > 0 {
		s.QueueAge = dur(now - e.reqs[f.queue.peek()].arrive)
	}
	s.Idle = dur(now - f.last)
	return s, nil
}

// quantileOf returns the q-quantile (nearest rank) of xs, reordering xs. It
// selects rather than sorts (Hoare's quickselect, expected O(n)); asking for
// ascending q reuses the order the previous call left.
func quantileOf(xs []float64, q float64, from int) (float64, int) {
	k := int(math.Ceil(q*float64(len(xs)))) - 1
	k = max(from, min(k, len(xs)-1))
	lo, hi := from, len(xs)-1
	for lo < hi {
		pivot := xs[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k], k
		}
	}
	return xs[k], k
}

func compact[T any](s *[]T, head *int) {
	if *head >= 1024 && *head*2 >= len(*s) {
		n := copy(*s, (*s)[*head:])
		*s = (*s)[:n]
		*head = 0
	}
}

func dur(s float64) time.Duration { return time.Duration(math.Round(s * 1e9)) }

func (h hooks) Apply(name string, d autoscale.Decision) error {
	e := h.e
	f, err := h.fn(name)
	if err != nil {
		return err
	}
	cur, _ := h.Instances(name)
	plan := autoscale.Plan(autoscale.State{Instances: append([]autoscale.Instance(nil), cur...)}, d)
	// Check the whole plan before changing anything.
	used := map[int32]float64{}
	for _, c := range plan {
		ni, ok := e.nodeIx[c.Instance.Node]
		if !ok {
			return fmt.Errorf("%s: no node %q", c.Op, c.Instance.Node)
		}
		switch c.Op {
		case autoscale.Start:
			used[ni] += c.Instance.VCPUs
		case autoscale.Stop:
			used[ni] -= c.From
		case autoscale.Resize:
			if _, ok := e.byID[c.Instance.ID]; !ok {
				return fmt.Errorf("resize: no instance %q", c.Instance.ID)
			}
			used[ni] += c.Instance.VCPUs - c.From
		}
	}
	for ni, u := range used {
		if n := e.nodes[ni]; n.used+u > n.cpus+1e-9 {
			return fmt.Errorf("node %s: %g + %g vCPUs exceeds its %g CPUs", n.name, n.used, u, n.cpus)
		}
	}
	e.sum.Changes++
	for _, c := range plan {
		switch c.Op {
		case autoscale.Stop:
			if i, ok := e.byID[c.Instance.ID]; ok {
				e.stopInstance(i)
			}
		case autoscale.Resize:
			e.resize(e.byID[c.Instance.ID], c.Instance.VCPUs)
		case autoscale.Start:
			e.start(f, e.nodeIx[c.Instance.Node], c.Instance.VCPUs)
		}
	}
	// Queued requests go to whatever capacity was added; starting
	// instances take theirs when ready.
	for _, i := range f.live {
		e.dispatch(i)
	}
	return nil
}

// stoppedClock is the loop's clock in a simulation: the engine calls Tick
// itself in virtual time, so Run is never used.
type stoppedClock struct{}

func (stoppedClock) Now() time.Time { return epoch }
func (stoppedClock) NewTicker(time.Duration) autoscale.Ticker {
	return stoppedTicker{}
}

type stoppedTicker struct{}

func (stoppedTicker) C() <-chan time.Time { return nil }
func (stoppedTicker) Stop()               {}
