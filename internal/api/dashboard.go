package api

import (
	"time"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/oip"
)

// The dashboard's stream (GET /admin/v1/dashboard/stream) is a
// text/event-stream of these values, one JSON object per event: a Board
// when it opens, then a BoardUpdate every second.

// Board is the dashboard's opening event: the visible functions' history
// and everything an update carries.
type Board struct {
	BoardUpdate
	// History holds each visible function's samples of the last minutes,
	// oldest first, by function (tenant/name). A function with no sample
	// was idle with no instance for all of them.
	History map[string][]Sample `json:"history"`
}

// BoardUpdate is what changed in the last second: the node, every function
// the caller may see, the newest sample of each, and the detail of the
// function the stream was opened for.
type BoardUpdate struct {
	Time time.Time `json:"time"`
	// Tenant is whose functions the caller sees; "" for the admin: all.
	Tenant string `json:"tenant"`
	// CanManage says whether the caller's key may deploy, scale and remove
	// (a tenant key, or the open mode); the admin key only watches.
	CanManage bool `json:"can_manage"`
	// SLO is the autoscaler's p99 target; 0 when no autoscaler runs.
	SLO       time.Duration `json:"slo"`
	Node      NodeView      `json:"node"`
	Functions []FunctionRow `json:"functions"`
	// Detail is the function the stream was opened for (?function=); nil
	// when none was asked for or it is not deployed.
	Detail *FunctionDetail `json:"detail,omitempty"`
}

// NodeView is the machine the platform runs on.
type NodeView struct {
	CPUs int `json:"cpus"`
	// VCPUs is the CPU allotted to running instances, of every tenant.
	VCPUs       float64 `json:"vcpus"`
	MemoryTotal uint64  `json:"memory_total_bytes"`
	MemoryAvail uint64  `json:"memory_available_bytes"`
	Instances   int     `json:"instances"`
	// ModelShared is the bytes of the distinct models running instances map:
	// one copy each in the page cache. ModelIfCopied is what the same
	// instances would hold with a private copy each (the HPA baseline).
	ModelShared   int64 `json:"model_shared_bytes"`
	ModelIfCopied int64 `json:"model_if_copied_bytes"`
	// Private is the instances' private memory (their heaps, stacks and
	// activations), summed.
	Private uint64 `json:"private_bytes"`
}

// FunctionRow is one function in the overview.
type FunctionRow struct {
	Key   string `json:"key"` // tenant/name
	Name  string `json:"name"`
	Owner string `json:"owner"`
	Task  string `json:"task"`
	// State is "idle" (scaled to zero), "starting" or "ready".
	State      string  `json:"state"`
	Instances  int     `json:"instances"`
	VCPU       float64 `json:"vcpu"` // per instance
	RSS        uint64  `json:"rss_bytes"`
	PSS        uint64  `json:"pss_bytes"`
	ModelBytes int64   `json:"model_bytes"`
	// Sample is the function's newest one.
	Sample Sample `json:"sample"`
	// Errors counts the answers of status >= 400 since the platform
	// started, by status.
	Errors     map[int]int64 `json:"errors"`
	ColdStarts int64         `json:"cold_starts"`
}

// Sample is one function's state at one second. Latencies and rate are over
// the last 10 seconds, so that a chart moves with the load.
type Sample struct {
	Time      int64   `json:"t"` // Unix seconds
	Rate      float32 `json:"rate"`
	P50       float32 `json:"p50_ms"`
	P95       float32 `json:"p95_ms"`
	P99       float32 `json:"p99_ms"`
	Errors    float32 `json:"errors"` // answers >= 400 per second
	Instances uint16  `json:"instances"`
	VCPUs     float32 `json:"vcpus"` // all instances together
	RSS       float32 `json:"rss_mb"`
	PSS       float32 `json:"pss_mb"`
	Waiting   uint16  `json:"waiting"`
}

// FunctionDetail is the function page's data beyond its overview row.
type FunctionDetail struct {
	FunctionRow
	Batch       string            `json:"batch,omitempty"`
	MemoryLimit int64             `json:"memory_limit,omitempty"`
	Created     time.Time         `json:"created"`
	Metadata    oip.ModelMetadata `json:"metadata"`
	// Shared is the model bytes the instances map from the page cache;
	// Private their private memory, summed.
	Shared     int64          `json:"shared_bytes"`
	Private    uint64         `json:"private_bytes"`
	Instances  []InstanceInfo `json:"instance_list"`
	Timeline   []BoardEvent   `json:"timeline"`
	ColdStarts []ColdStart    `json:"recent_cold_starts"`
	Errors     []RequestError `json:"recent_errors"`
	Log        []string       `json:"log"` // the function log's last lines
}

// BoardEvent is one entry of a function's scaling timeline.
type BoardEvent struct {
	Time time.Time `json:"time"`
	// Kind is "autoscale" (a decision that changed something), "scale" (a
	// manual resize), "start" or "stop" (an instance).
	Kind string `json:"kind"`
	Text string `json:"text"`
}

// ColdStart is one instance start and its phases: Start is the process
// start to ready less the load (spawn, sandbox, runtime), Load the model
// load and compile, FirstInference the first request served on it (0 until
// one was).
type ColdStart struct {
	Time           time.Time     `json:"time"`
	Pid            int           `json:"pid"`
	FromZero       bool          `json:"from_zero"`
	Start          time.Duration `json:"start"`
	Load           time.Duration `json:"load"`
	FirstInference time.Duration `json:"first_inference"`
}

// RequestError is one request answered with status >= 400.
type RequestError struct {
	Time    time.Time `json:"time"`
	Status  int       `json:"status"`
	Message string    `json:"message"`
}

// DecisionEvent turns an autoscaler record that changed something into a
// timeline entry; ok is false for one that changed nothing.
func DecisionEvent(r autoscale.Record) (BoardEvent, bool) {
	if !r.Decision.Changed() {
		return BoardEvent{}, false
	}
	text := string(r.Decision.Action) + ": " + r.Decision.Reason
	if !r.Applied && r.Err != "" {
		text += " (not applied: " + r.Err + ")"
	}
	return BoardEvent{Time: r.Time, Kind: "autoscale", Text: text}, true
}
