package kubesim

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
	"github.com/spindleml/spindle/internal/kube/podres"
)

// Traffic is a simulated load on functions whose pods run no instance: a
// StatsSource whose latency comes from a queueing approximation over the CPU
// the function's ready pods were granted (their status, not their spec, so
// a resize helps only once the kubelet grants it).
//
// Each request needs ServiceTime of one CPU. With arrival rate r and granted
// CPU C, utilisation is u = r x ServiceTime / C; below 1, p99 is
// ServiceTime x (1 + ln(100) x u / (1 - u)) (the tail of an M/M/1 wait, a
// fair shape for one shared queue); at or above 1 the queue grows and p99 is
// reported as 100 x ServiceTime. With no CPU, requests wait (Queued > 0),
// which is what makes a policy start a pod from zero.
type Traffic struct {
	// Client reads the function's pods; Label is the pods' function label.
	Client client.Reader
	Label  string
	// FromAnnotation, if set, reads each function's load from its
	// LoadAnnotation at every Stats (what `spindle kube dev` does, so that a
	// user sets the load with kubectl annotate); Set still works without it.
	FromAnnotation bool

	mu   sync.Mutex
	fns  map[string]*load
	zero time.Time
}

type load struct {
	rate     float64
	service  time.Duration
	lastBusy time.Time
}

// Set offers rate requests a second of service each to the function
// "namespace/name"; rate 0 stops the load (and starts its idle time).
func (t *Traffic) Set(key string, rate float64, service time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fns == nil {
		t.fns = map[string]*load{}
	}
	l := t.fns[key]
	if l == nil {
		l = &load{lastBusy: time.Now()}
		t.fns[key] = l
	}
	if l.rate > 0 || rate > 0 {
		l.lastBusy = time.Now()
	}
	l.rate, l.service = rate, service
}

// LoadAnnotation sets a function's simulated load: "RATE/s" or
// "RATE/s,SERVICE" (requests a second, and the CPU time one request needs,
// default 100ms), e.g. "30/s,100ms"; "0/s" or removing it stops the load.
const LoadAnnotation = "spindle.dev/simulated-load"

// ParseLoad reads a LoadAnnotation value.
func ParseLoad(v string) (rate float64, service time.Duration, err error) {
	service = 100 * time.Millisecond
	r, s, hasService := strings.Cut(strings.TrimSpace(v), ",")
	r = strings.TrimSuffix(strings.TrimSpace(r), "/s")
	rate, err = strconv.ParseFloat(r, 64)
	if err != nil || rate < 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return 0, 0, fmt.Errorf("%s: %q: want RATE/s[,SERVICE] with RATE a number >= 0, e.g. 30/s,100ms", LoadAnnotation, v)
	}
	if hasService {
		service, err = time.ParseDuration(strings.TrimSpace(s))
		if err != nil || service <= 0 {
			return 0, 0, fmt.Errorf("%s: %q: SERVICE must be a duration > 0, e.g. 100ms", LoadAnnotation, v)
		}
	}
	return rate, service, nil
}

// readAnnotation sets the function's load from its annotation.
func (t *Traffic) readAnnotation(key string) error {
	ns, name := splitKey(key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var f v1alpha1.InferenceFunction
	if err := t.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &f); err != nil {
		return client.IgnoreNotFound(err)
	}
	v, ok := f.Annotations[LoadAnnotation]
	if !ok {
		v = "0/s"
	}
	rate, service, err := ParseLoad(v)
	if err != nil {
		return err
	}
	t.Set(key, rate, service)
	return nil
}

// Stats implements autoscale.StatsSource.
func (t *Traffic) Stats(key string, q autoscale.Query) (autoscale.Stats, error) {
	if t.FromAnnotation {
		if err := t.readAnnotation(key); err != nil {
			return autoscale.Stats{}, err
		}
	}
	t.mu.Lock()
	l := t.fns[key]
	var rate float64
	var service time.Duration
	var lastBusy time.Time
	if l != nil {
		if l.rate > 0 {
			l.lastBusy = q.Now
		}
		rate, service, lastBusy = l.rate, l.service, l.lastBusy
	}
	t.mu.Unlock()
	s := autoscale.Stats{Window: q.Window, Rate: rate, ShortRate: rate, ServiceTime: service}
	if l == nil || lastBusy.IsZero() {
		return s, nil
	}
	s.Idle = max(0, q.Now.Sub(lastBusy))
	if rate == 0 {
		return s, nil
	}
	cpu, err := t.grantedCPU(key)
	if err != nil {
		return s, err
	}
	s.Arrivals = int(math.Round(rate * q.Window.Seconds()))
	work := rate * service.Seconds()
	if cpu == 0 {
		s.Queued, s.QueueAge = max(1, int(math.Ceil(rate))), time.Second
		return s, nil
	}
	s.Completions = s.Arrivals
	s.InFlight = int(math.Ceil(work))
	u := work / cpu
	if u >= 1 {
		s.P50, s.P95, s.P99 = 50*service, 90*service, 100*service
		s.Queued = int(math.Ceil((u - 1) * cpu / service.Seconds()))
		return s, nil
	}
	p99 := service.Seconds() * (1 + math.Log(100)*u/(1-u))
	s.P99 = time.Duration(p99 * float64(time.Second))
	s.P95 = time.Duration(service.Seconds() * (1 + math.Log(20)*u/(1-u)) * float64(time.Second))
	s.P50 = time.Duration(service.Seconds() * (1 + math.Log(2)*u/(1-u)) * float64(time.Second))
	return s, nil
}

// grantedCPU sums the CPU the function's ready pods were granted, in vCPUs.
func (t *Traffic) grantedCPU(key string) (float64, error) {
	ns, name := splitKey(key)
	var pods corev1.PodList
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := t.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{t.Label: name}); err != nil {
		return 0, err
	}
	var milli int64
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !podres.Ready(p) {
			continue
		}
		milli += max(podres.GrantedCPU(p), 0)
	}
	return float64(milli) / 1000, nil
}

func splitKey(key string) (string, string) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}
