package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/sandbox"
)

// Stem cells (issue 16): a cold start used to be a process start (fork and
// exec of the binary, namespaces, cgroup, Go runtime and package init: about
// 50 ms here) plus the model's load (a few ms, mapped). The gateway keeps a
// few generic instances started ahead, `spindle instance --stem`, already in
// their cgroup and namespaces and listening. A cold start takes one, sets its
// cgroup's limits to the function's, and sends it the function's model
// (POST /_spindle/assign); a new one is started in the background. A stem
// cell serves one function for its life, as any instance does.

// stemCell is a pre-started instance waiting for a function.
type stemCell struct {
	proc *sandbox.Process
	log  *switchLog
}

// switchLog is where a stem cell's output goes: the gateway's log until
// it is assigned, its function's log from then on.
type switchLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *switchLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *switchLog) set(w io.Writer) {
	l.mu.Lock()
	l.w = w
	l.mu.Unlock()
}

// stemPool keeps stem cells ready: as many as cold starts took in the last
// minute, plus one, up to max. Its methods are safe for concurrent use; a
// nil or zero-max pool has no cells.
type stemPool struct {
	g   *Gateway
	max int

	mu       sync.Mutex
	ready    []*stemCell
	starting int
	takes    []time.Time // when cells were taken, the last minute's
	failedAt time.Time   // the last failed start: no retry within stemRetry
	closed   bool
	spawns   sync.WaitGroup
}

const (
	stemRateWindow = time.Minute
	stemRetry      = 5 * time.Second
)

func newStemPool(g *Gateway, max int) *stemPool { return &stemPool{g: g, max: max} }

// targetLocked is how many cells the pool keeps ready now.
func (p *stemPool) targetLocked(now time.Time) int {
	recent := p.takes[:0]
	for _, t := range p.takes {
		if now.Sub(t) < stemRateWindow {
			recent = append(recent, t)
		}
	}
	p.takes = recent
	return min(p.max, 1+len(recent))
}

// fill starts cells until the pool has its target, ready or starting.
func (p *stemPool) fill() {
	if p == nil || p.max <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.g.clock.Now()
	if p.closed || (!p.failedAt.IsZero() && now.Sub(p.failedAt) < stemRetry) {
		return
	}
	for n := p.targetLocked(now) - len(p.ready) - p.starting; n > 0; n-- {
		p.starting++
		p.spawns.Add(1)
		go p.spawn()
	}
}

// spawn starts one cell and adds it to the pool.
func (p *stemPool) spawn() {
	defer p.spawns.Done()
	cell, err := p.start()
	p.mu.Lock()
	p.starting--
	switch {
	case err != nil:
		p.failedAt = p.g.clock.Now()
		p.mu.Unlock()
		p.g.cfg.Logger.Warn("stem cell not started", "err", err)
		return
	case p.closed:
		p.mu.Unlock()
		cell.proc.Stop(p.g.cfg.StopGrace)
		return
	}
	p.ready = append(p.ready, cell)
	p.mu.Unlock()
	go func() {
		<-cell.proc.Done()
		p.drop(cell)
	}()
}

// start starts a stem cell process in a cgroup without limits (it runs
// only the platform's code until it is assigned).
func (p *stemPool) start() (*stemCell, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.g.cfg.StartTimeout)
	defer cancel()
	var cg *sandbox.Cgroup
	if c := p.g.cfg.Sandbox.Controller; c != nil {
		var err error
		if cg, err = c.New("stem", sandbox.Limits{}); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	log := &switchLog{w: io.Discard}
	proc, err := sandbox.Start(ctx, sandbox.Spec{
		Path:   p.g.cfg.Exe,
		Args:   []string{"instance", "--stem", "--listen", "127.0.0.1:0"},
		Log:    log,
		Cgroup: cg,
		Caps:   p.g.cfg.Sandbox,
	})
	if err != nil {
		return nil, err
	}
	return &stemCell{proc: proc, log: log}, nil
}

// drop removes cell from the ready cells (it exited).
func (p *stemPool) drop(cell *stemCell) {
	p.mu.Lock()
	for i, c := range p.ready {
		if c == cell {
			p.ready = append(p.ready[:i], p.ready[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
}

// take returns a ready cell, or nil when none is, and starts another.
func (p *stemPool) take() *stemCell {
	if p == nil || p.max <= 0 {
		return nil
	}
	p.mu.Lock()
	var cell *stemCell
	for len(p.ready) > 0 && cell == nil {
		c := p.ready[len(p.ready)-1]
		p.ready = p.ready[:len(p.ready)-1]
		if !c.proc.Exited() {
			cell = c
		}
	}
	if cell != nil {
		p.takes = append(p.takes, p.g.clock.Now())
	}
	p.mu.Unlock()
	p.fill()
	return cell
}

// size returns how many cells are ready and starting.
func (p *stemPool) size() (ready, starting int) {
	if p == nil {
		return 0, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready), p.starting
}

// close stops every cell and waits for starts in progress.
func (p *stemPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.closed = true
	cells := p.ready
	p.ready = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cells {
		wg.Add(1)
		go func() { defer wg.Done(); c.proc.Stop(p.g.cfg.StopGrace) }()
	}
	wg.Wait()
	p.spawns.Wait()
}

// assign makes cell an instance of spec with vcpu: its cgroup gets the
// function's limits first, then the cell loads the model. On failure the
// cell is killed.
func (g *Gateway) assign(spec registry.Function, vcpu float64, cell *stemCell) (*sandbox.Process, error) {
	p := cell.proc
	fail := func(err error) (*sandbox.Process, error) {
		p.Kill()
		return nil, err
	}
	mem := g.memoryFor(spec)
	if cg := p.Cgroup; cg != nil {
		if g.cfg.Sandbox.CPU {
			if err := cg.SetCPU(vcpu); err != nil {
				return fail(fmt.Errorf("sandbox: %w", err))
			}
		}
		if mem > 0 {
			if err := cg.SetMemory(mem); err != nil {
				return fail(fmt.Errorf("sandbox: %w", err))
			}
		}
		mem = cg.Limits().Memory
	} else {
		mem = 0
	}
	cell.log.set(g.funcLog(spec))
	body, err := json.Marshal(g.instanceSpec(spec, vcpu, mem))
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.StartTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.Addr+"/_spindle/assign", bytes.NewReader(body))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail(fmt.Errorf("assign: %w", err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("assign: %s: %s", resp.Status, bytes.TrimSpace(b)))
	}
	var res api.Assigned
	if err := json.Unmarshal(b, &res); err != nil {
		return fail(fmt.Errorf("assign: answer %q: %w", b, err))
	}
	p.LoadTime = res.Load
	return p, nil
}
