package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/kube/podres"
)

// StatsPath is where a router's admin address serves its Report.
const StatsPath = "/internal/v1/stats"

// Report is a router's statistics of every function it routes, over each
// function's policy windows, keyed "namespace/name".
type Report struct {
	Time      time.Time                  `json:"time"`
	Functions map[string]autoscale.Stats `json:"functions"`
}

// Report returns the statistics of every function at now.
func (r *Router) Report(now time.Time) Report {
	r.mu.Lock()
	fns := make([]*function, 0, len(r.fns))
	for _, f := range r.fns {
		fns = append(fns, f)
	}
	r.mu.Unlock()
	rep := Report{Time: now.UTC(), Functions: make(map[string]autoscale.Stats, len(fns))}
	for _, f := range fns {
		if st, ok := f.stats(now); ok {
			rep.Functions[f.key] = st
		}
	}
	return rep
}

// Gateways is the operator's autoscale.StatsSource on a cluster: the merged
// Reports of every router. It fetches them at most once per MaxAge (one
// request per router for all functions, however many there are), or at once
// after Expire.
//
// Merging: counts, rates, requests in flight and queued add up; the latency
// percentiles, the oldest wait and the service time are the largest any
// router saw (a conservative reading: replicas' windows are not pooled);
// idle is the shortest. A function no router knows reads as idle for its
// whole window. When some routers cannot be read the others' reports are
// used; when none can, Stats fails, and the loop decides nothing.
type Gateways struct {
	// URLs are the routers' admin base URLs ("http://10.0.0.5:9090"); when
	// empty, the Ready pods that Selector picks in Namespace are read on
	// Port.
	URLs      []string
	Client    client.Reader
	Namespace string
	Selector  labels.Selector
	Port      int
	// MaxAge is how long a fetch serves; 0 means 500 ms.
	MaxAge time.Duration
	// HTTP is the client for the routers; nil means one with a 2 s timeout.
	HTTP *http.Client

	mu      sync.Mutex
	fetched time.Time
	merged  map[string]autoscale.Stats
	err     error
}

var _ autoscale.StatsSource = (*Gateways)(nil)

// Stats returns function fn's merged statistics.
func (g *Gateways) Stats(fn string, q autoscale.Query) (autoscale.Stats, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	maxAge := g.MaxAge
	if maxAge <= 0 {
		maxAge = 500 * time.Millisecond
	}
	if g.merged == nil || time.Since(g.fetched) >= maxAge {
		g.merged, g.err = g.fetch()
		g.fetched = time.Now()
	}
	if g.err != nil {
		return autoscale.Stats{}, g.err
	}
	st, ok := g.merged[fn]
	if !ok {
		return autoscale.Stats{Window: q.Window, Idle: q.Window}, nil
	}
	return st, nil
}

// Expire makes the next Stats fetch again: a wake means a router has
// requests waiting that the last fetch did not see.
func (g *Gateways) Expire() {
	g.mu.Lock()
	g.merged = nil
	g.mu.Unlock()
}

// fetch reads every router's Report and merges them.
func (g *Gateways) fetch() (map[string]autoscale.Stats, error) {
	urls, err := g.urls()
	if err != nil {
		return nil, err
	}
	if len(urls) == 0 {
		return nil, errors.New("gateway statistics: no gateway is running")
	}
	hc := g.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	reports := make([]Report, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i], errs[i] = getReport(hc, u)
		}()
	}
	wg.Wait()
	merged := map[string]autoscale.Stats{}
	read := 0
	for i, rep := range reports {
		if errs[i] != nil {
			continue
		}
		read++
		for key, st := range rep.Functions {
			if m, ok := merged[key]; ok {
				merged[key] = mergeStats(m, st)
			} else {
				merged[key] = st
			}
		}
	}
	if read == 0 {
		return nil, fmt.Errorf("gateway statistics: %w", errors.Join(errs...))
	}
	return merged, nil
}

func getReport(hc *http.Client, base string) (Report, error) {
	var rep Report
	resp, err := hc.Get(base + StatsPath)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("%s: HTTP %d", base, resp.StatusCode)
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<20)).Decode(&rep); err != nil {
		return rep, fmt.Errorf("%s: %w", base, err)
	}
	return rep, nil
}

// urls returns the routers to read: the fixed URLs, or the Ready router
// pods.
func (g *Gateways) urls() ([]string, error) {
	if len(g.URLs) > 0 {
		return g.URLs, nil
	}
	if g.Client == nil {
		return nil, errors.New("gateway statistics: neither URLs nor a client to find the gateways")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var pods corev1.PodList
	if err := g.Client.List(ctx, &pods, client.InNamespace(g.Namespace), client.MatchingLabelsSelector{Selector: g.Selector}); err != nil {
		return nil, fmt.Errorf("gateway statistics: list gateway pods: %w", err)
	}
	var out []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" && podres.Ready(p) {
			out = append(out, "http://"+net.JoinHostPort(p.Status.PodIP, strconv.Itoa(g.Port)))
		}
	}
	return out, nil
}

func mergeStats(a, b autoscale.Stats) autoscale.Stats {
	a.Window = max(a.Window, b.Window)
	a.Arrivals += b.Arrivals
	a.Rate += b.Rate
	a.ShortRate += b.ShortRate
	a.Completions += b.Completions
	a.P50, a.P95, a.P99 = max(a.P50, b.P50), max(a.P95, b.P95), max(a.P99, b.P99)
	a.ServiceTime = max(a.ServiceTime, b.ServiceTime)
	a.InFlight += b.InFlight
	a.Queued += b.Queued
	a.QueueAge = max(a.QueueAge, b.QueueAge)
	a.Idle = min(a.Idle, b.Idle)
	return a
}
