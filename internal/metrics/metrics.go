package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "spindle"

// Label names.
const (
	LabelFunction = "function"
	LabelCode     = "code"
	LabelReason   = "reason"
	LabelPolicy   = "policy"
	LabelAction   = "action"
)

// DurationBuckets are the request latency histogram's upper bounds in
// seconds: 1 ms to 60 s, about three per decade, covering a small model's
// millisecond answers up to a deadline-bound batch.
var DurationBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

// ColdStartBuckets are the instance start histogram's upper bounds in seconds:
// 10 ms (a process mapping an already cached model) to 2 minutes (a large
// model read from disk).
var ColdStartBuckets = []float64{
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
}

// Metrics holds the platform's Prometheus metrics on a registry of its own
// (never the global default one, so tests and several gateways in one process
// do not share series). Its methods are safe for concurrent use. Create it with
// New; the zero value is not usable.
type Metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	inFlight       *prometheus.GaugeVec
	queueDepth     *prometheus.GaugeVec
	instances      *prometheus.GaugeVec
	vcpus          *prometheus.GaugeVec
	rss            *prometheus.GaugeVec
	pss            *prometheus.GaugeVec
	instanceStarts *prometheus.CounterVec
	coldStart      *prometheus.HistogramVec
	batchSize      *prometheus.HistogramVec
	decisions      *prometheus.CounterVec

	perFunction []*prometheus.MetricVec
}

// New returns Metrics registered on a new registry, together with the Go
// runtime and process collectors for the process that serves them.
func New() *Metrics {
	fn := []string{LabelFunction}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "requests_total",
			Help: "Inference requests answered, by function and HTTP status code.",
		}, []string{LabelFunction, LabelCode}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "request_duration_seconds",
			Help:    "Time from a request's arrival at the gateway to its answer, including any wait for an instance.",
			Buckets: DurationBuckets,
		}, fn),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "in_flight",
			Help: "Requests arrived and not yet answered, queued or running.",
		}, fn),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "queue_depth",
			Help: "Requests waiting for an instance slot.",
		}, fn),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "instances",
			Help: "Running instances.",
		}, fn),
		vcpus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "vcpus",
			Help: "vCPUs allotted, summed over the function's instances.",
		}, fn),
		rss: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "memory_rss_bytes",
			Help: "Resident set size summed over the function's instances; pages shared between instances are counted once per instance.",
		}, fn),
		pss: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "memory_pss_bytes",
			Help: "Proportional set size summed over the function's instances; a page shared by n processes counts 1/n in each.",
		}, fn),
		instanceStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "instance_starts_total",
			Help: "Instances started, by reason.",
		}, []string{LabelFunction, LabelReason}),
		coldStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "cold_start_seconds",
			Help:    "Time from an instance's start to its readiness (process start plus model load).",
			Buckets: ColdStartBuckets,
		}, fn),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "scaling_decisions_total",
			Help: "Autoscaler decisions, by policy and action.",
		}, []string{LabelFunction, LabelPolicy, LabelAction}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "batch_size",
			Help:    "Requests in the engine run that served each request, for functions deployed with batching.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}, fn),
	}
	m.perFunction = []*prometheus.MetricVec{
		m.requests.MetricVec, m.duration.MetricVec, m.inFlight.MetricVec, m.queueDepth.MetricVec,
		m.instances.MetricVec, m.vcpus.MetricVec, m.rss.MetricVec, m.pss.MetricVec,
		m.instanceStarts.MetricVec, m.coldStart.MetricVec, m.decisions.MetricVec, m.batchSize.MetricVec,
	}
	m.reg.MustRegister(
		m.requests, m.duration, m.inFlight, m.queueDepth, m.instances, m.vcpus,
		m.rss, m.pss, m.instanceStarts, m.coldStart, m.decisions, m.batchSize,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry returns the registry the metrics are on, for registering more
// collectors or gathering in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats, for /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Arrive counts a request in flight.
func (m *Metrics) Arrive(function string) {
	m.inFlight.WithLabelValues(function).Inc()
}

// Observe counts an answered request and its duration, and takes it out of
// flight.
func (m *Metrics) Observe(function string, code int, d time.Duration) {
	m.inFlight.WithLabelValues(function).Dec()
	m.requests.WithLabelValues(function, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(function).Observe(d.Seconds())
}

// SetQueueDepth sets how many requests for function wait for a slot.
func (m *Metrics) SetQueueDepth(function string, n int) {
	m.queueDepth.WithLabelValues(function).Set(float64(n))
}

// SetInstances sets how many instances of function run.
func (m *Metrics) SetInstances(function string, n int) {
	m.instances.WithLabelValues(function).Set(float64(n))
}

// SetVCPUs sets the vCPUs allotted to function's instances in all.
func (m *Metrics) SetVCPUs(function string, vcpus float64) {
	m.vcpus.WithLabelValues(function).Set(vcpus)
}

// SetMemory sets function's memory, RSS and PSS in bytes summed over its
// instances (see ReadMemory).
func (m *Metrics) SetMemory(function string, rss, pss uint64) {
	m.rss.WithLabelValues(function).Set(float64(rss))
	m.pss.WithLabelValues(function).Set(float64(pss))
}

// ObserveBatch records that a request of function was served by an engine
// run of n requests (dynamic batching).
func (m *Metrics) ObserveBatch(function string, n int) {
	m.batchSize.WithLabelValues(function).Observe(float64(n))
}

// InstanceStarted counts an instance of function that became ready took after
// it was started, for reason (for example "cold" for a start from zero,
// "scale_up", "replace" after a crash).
func (m *Metrics) InstanceStarted(function, reason string, took time.Duration) {
	m.instanceStarts.WithLabelValues(function, reason).Inc()
	m.coldStart.WithLabelValues(function).Observe(took.Seconds())
}

// ScalingDecision counts a decision of the autoscaler's policy for function
// (for example policy "concurrency", action "scale_up", "scale_down", "hold",
// "resize").
func (m *Metrics) ScalingDecision(function, policy, action string) {
	m.decisions.WithLabelValues(function, policy, action).Inc()
}

// Forget deletes every series of function, for when it is removed. A request
// still in flight that is observed afterwards brings its series back, so call
// it once the function's requests have drained.
func (m *Metrics) Forget(function string) {
	for _, v := range m.perFunction {
		v.DeletePartialMatch(prometheus.Labels{LabelFunction: function})
	}
}
