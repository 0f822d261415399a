package api

import (
	"encoding/json"
	"math"
	"time"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/registry"
)

// TaskInfer is the task kind of a function without a task endpoint: raw OIP
// v2 inference only (package task builds the others).
const TaskInfer = "infer"

// Resize is the body of an instance's POST /_spindle/resize, sent by the
// platform when it changes the instance's CPU allotment: the worker count and
// the Go scheduler's parallelism follow the new quota, live.
type Resize struct {
	Workers    int `json:"workers"`
	GOMAXPROCS int `json:"gomaxprocs"`
	// MemoryLimit, when set, is the instance's new memory limit in bytes (0:
	// none): its per-request memory budget follows.
	MemoryLimit *int64 `json:"memory_limit,omitempty"`
}

// Check is what `spindle instance --check` prints on stdout when the model
// and task it was given load, compile and build: the gateway runs it in a
// sandboxed child on every upload, so that nothing a tenant uploads is parsed
// or compiled in the gateway's own process.
type Check struct {
	// Metadata describes the model's inputs and outputs; nil for a function
	// without a model (cpu-burn).
	Metadata *oip.ModelMetadata `json:"metadata,omitempty"`
	// TaskConfig is the task's config as the registry keeps it (the fields
	// set, in a fixed order); nil for defaults or no task.
	TaskConfig json.RawMessage `json:"task_config,omitempty"`
	// Nodes, Steps, FoldedBytes and PackedBytes say what compiling did
	// (engine.Stats).
	Nodes       int   `json:"nodes,omitempty"`
	Steps       int   `json:"steps,omitempty"`
	FoldedBytes int64 `json:"folded_bytes,omitempty"`
	PackedBytes int64 `json:"packed_bytes,omitempty"`
	// Artifact is the compiled artifact the check wrote (--artifact), its
	// path relative to the upload; "" when none was asked for or the model
	// could not be compiled into one (instances then load the model).
	Artifact string `json:"artifact,omitempty"`
}

// CheckError is what `spindle instance --check` prints on stdout when the
// upload is at fault; its message names the file, field or node and the
// rule, with paths relative to the upload.
type CheckError struct {
	Error string `json:"error"`
}

// ScaleRequest is the body of POST /admin/v1/functions/{name}/scale. At least
// one field is set; an unset one keeps its value.
type ScaleRequest struct {
	// VCPU, when set, is the new per-instance CPU allotment, a positive
	// multiple of 0.25.
	VCPU *float64 `json:"vcpu,omitempty"`
	// Memory, when set, is the new per-instance memory limit in bytes (0:
	// none).
	Memory *int64 `json:"memory,omitempty"`
}

// ScaleResult says what a resize did.
type ScaleResult struct {
	VCPU    float64 `json:"vcpu"`
	Workers int     `json:"workers"`
	// Memory is the per-instance memory limit in bytes now in force (0: none).
	Memory    int64 `json:"memory"`
	Instances int   `json:"instances"`
	// Enforced is false when the machine cannot set CPU quotas (degraded
	// mode): only the worker count and GOMAXPROCS changed.
	Enforced bool `json:"enforced"`
}

// FunctionInfo is GET /admin/v1/functions/{name}: a function as deployed,
// and its live state. Durations are in nanoseconds, as Go encodes them;
// `spindle describe` shows them in units.
type FunctionInfo struct {
	registry.Function
	// CurrentVCPU is each instance's CPU allotment now (the autoscaler may
	// have changed it since deploy).
	CurrentVCPU float64        `json:"current_vcpu"`
	Instances   []InstanceInfo `json:"instances"`
	// Latency is the last minute's requests.
	Latency metrics.FunctionStats `json:"recent_latency"`
	// Decisions are the autoscaler's latest, newest last.
	Decisions []autoscale.Record `json:"recent_decisions"`
}

// InstanceInfo is one running instance of a function.
type InstanceInfo struct {
	Pid      int     `json:"pid"`
	Addr     string  `json:"addr"`
	InFlight int64   `json:"in_flight"`
	VCPU     float64 `json:"vcpu"`
	RSS      uint64  `json:"rss_bytes"`
	PSS      uint64  `json:"pss_bytes"`
}

// Assign is the body of a stem cell's POST /_spindle/assign (a generic
// instance started ahead of need, `spindle instance --stem`): the function it
// becomes, with the settings `spindle instance` otherwise takes as flags.
type Assign struct {
	Name string `json:"name"`
	// Model is the model file's path; "" for a function without one.
	Model   string `json:"model,omitempty"`
	TaskDir string `json:"task_dir,omitempty"`
	// Load is the load mode (onnx.LoadMode); "" means mmap.
	Load       string          `json:"load,omitempty"`
	Task       string          `json:"task,omitempty"`
	TaskConfig json.RawMessage `json:"task_config,omitempty"`
	// Batch is the batching policy (ParseBatchPolicy); "" is off.
	Batch string `json:"batch,omitempty"`
	// Workers is how many inferences run at once, and GOMAXPROCS.
	Workers int `json:"workers"`
	// MemoryLimit is the memory limit in bytes the instance runs under (0:
	// none), as --memory-limit.
	MemoryLimit int64 `json:"memory_limit,omitempty"`
}

// Assigned answers an Assign: how long the model's load took.
type Assigned struct {
	Load time.Duration `json:"load_ns"`
}

// WorkersFor is an instance's worker count for a CPU allotment: one worker
// per started vCPU (thesis ch. 5.1: the pool grows with the CPU it is given).
// The gateway sizes instances by it, and an instance that follows its own
// cgroup (a Kubernetes pod resized in place) does the same.
func WorkersFor(vcpu float64) int {
	return max(1, int(math.Ceil(vcpu)))
}
