// Package metrics measures the platform per function: it exports Prometheus
// metrics, keeps the sliding-window statistics the autoscaler decides from, and
// reads the memory (RSS and PSS) of instance processes.
//
// The gateway reports each request through the Recorder hook (Arrive when it
// comes in, Observe when it is answered) rather than updating metrics inline in
// its handler (after OpenFaaS gateway/handlers/notifiers.go); Multi fans one
// call out to Metrics, which Prometheus scrapes, and to Stats, which the
// autoscaler reads.
package metrics
