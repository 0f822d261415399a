// Package admit bounds how many requests run at once and how many may wait, with
// both limits resizable while requests are in flight (after Knative's
// pkg/queue/breaker.go).
//
// The instance bounds its worker pool with it: when the autoscaler gives an
// instance more CPU, the instance raises its concurrency here, and waiting
// requests start at once; lowering it never cancels running work. (The gateway
// bounds the requests waiting for an instance to start by its own count.)
package admit
