package gateway

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/registry"
)

// The Open Inference Protocol's routes beyond inference (issue 15): server
// metadata, the versioned model routes, the statistics extension and
// Triton's model configuration, which standard clients (tritonclient, KServe
// clients) call.

// inferCounts is one function's cumulative inference counts, as the
// statistics extension reports them.
type inferCounts struct {
	success, fail      int64
	successNs, failNs  int64
	lastInferenceMilli int64
}

// inferStats is a metrics.Recorder keeping inferCounts per function key.
type inferStats struct {
	mu sync.Mutex
	m  map[string]*inferCounts
}

var _ metrics.Recorder = (*inferStats)(nil)

func (s *inferStats) Arrive(string) {}

func (s *inferStats) Observe(fn string, code int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*inferCounts{}
	}
	c := s.m[fn]
	if c == nil {
		c = &inferCounts{}
		s.m[fn] = c
	}
	if metrics.Succeeded(code) {
		c.success++
		c.successNs += d.Nanoseconds()
	} else {
		c.fail++
		c.failNs += d.Nanoseconds()
	}
	c.lastInferenceMilli = time.Now().UnixMilli()
}

func (s *inferStats) get(fn string) inferCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.m[fn]; c != nil {
		return *c
	}
	return inferCounts{}
}

// forget drops a removed function's counts.
func (s *inferStats) forget(fn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, fn)
}

// statDuration is the statistics extension's {count, ns}.
type statDuration struct {
	Count int64 `json:"count"`
	Ns    int64 `json:"ns"`
}

// modelStatistics is one entry of the statistics extension's model_stats.
// The gateway sees whole requests: success and fail are their counts and
// total durations; queue and compute are not split out (zero).
type modelStatistics struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	LastInference  int64  `json:"last_inference"`
	InferenceCount int64  `json:"inference_count"`
	ExecutionCount int64  `json:"execution_count"`
	InferenceStats struct {
		Success       statDuration `json:"success"`
		Fail          statDuration `json:"fail"`
		Queue         statDuration `json:"queue"`
		ComputeInput  statDuration `json:"compute_input"`
		ComputeInfer  statDuration `json:"compute_infer"`
		ComputeOutput statDuration `json:"compute_output"`
	} `json:"inference_stats"`
	BatchStats []any `json:"batch_stats"`
}

func (g *Gateway) statisticsOf(f registry.Function) modelStatistics {
	c := g.inferStats.get(fnKey(f.Owner, f.Name))
	st := modelStatistics{Name: f.Name, Version: oip.ModelVersion, LastInference: c.lastInferenceMilli,
		InferenceCount: c.success, ExecutionCount: c.success, BatchStats: []any{}}
	st.InferenceStats.Success = statDuration{c.success, c.successNs}
	st.InferenceStats.Fail = statDuration{c.fail, c.failNs}
	return st
}

// serverMetadata answers GET /v2.
func (g *Gateway) serverMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, oip.ServerMetadata())
}

// modelStats answers GET /v2/models/{name}[/versions/{version}]/stats, and
// GET /v2/models/stats for all of the caller's functions.
func (g *Gateway) modelStats(w http.ResponseWriter, r *http.Request) {
	var out struct {
		ModelStats []modelStatistics `json:"model_stats"`
	}
	out.ModelStats = []modelStatistics{}
	if r.PathValue("name") == "" {
		fns, err := g.reg.List(owner(r))
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		for _, f := range fns {
			if f.ModelFile != "" {
				out.ModelStats = append(out.ModelStats, g.statisticsOf(f))
			}
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	f, ok := g.lookup(w, r)
	if !ok || !hasModel(w, f) {
		return
	}
	out.ModelStats = append(out.ModelStats, g.statisticsOf(f))
	writeJSON(w, http.StatusOK, out)
}

// tritonConfig is the part of Triton's model configuration its clients
// read: name, platform, batching and the tensors.
type tritonConfig struct {
	Name         string         `json:"name"`
	Platform     string         `json:"platform"`
	Backend      string         `json:"backend"`
	MaxBatchSize int            `json:"max_batch_size"`
	Input        []tritonTensor `json:"input"`
	Output       []tritonTensor `json:"output"`
}

type tritonTensor struct {
	Name     string  `json:"name"`
	DataType string  `json:"data_type"`
	Dims     []int64 `json:"dims"`
}

// modelConfig answers GET /v2/models/{name}[/versions/{version}]/config
// (Triton's model configuration extension) from the function's metadata.
// max_batch_size is 0: the shapes are the model's own, batch axis included.
func (g *Gateway) modelConfig(w http.ResponseWriter, r *http.Request) {
	f, ok := g.lookup(w, r)
	if !ok || !hasModel(w, f) {
		return
	}
	conv := func(ts []oip.TensorMetadata) []tritonTensor {
		out := make([]tritonTensor, len(ts))
		for i, t := range ts {
			dt := "TYPE_" + t.Datatype
			if t.Datatype == "BYTES" {
				dt = "TYPE_STRING"
			}
			out[i] = tritonTensor{Name: t.Name, DataType: dt, Dims: t.Shape}
		}
		return out
	}
	writeJSON(w, http.StatusOK, tritonConfig{Name: f.Name, Platform: "onnxruntime_onnx", Backend: "spindle",
		Input: conv(f.Metadata.Inputs), Output: conv(f.Metadata.Outputs)})
}

// versionOK answers 404 for a model version other than the one a function
// has, and reports whether the request may go on.
func versionOK(w http.ResponseWriter, r *http.Request) bool {
	if v := r.PathValue("version"); v != "" && v != oip.ModelVersion {
		writeError(w, http.StatusNotFound, fmt.Sprintf("function %q has no version %q (versions: %s)", r.PathValue("name"), v, oip.ModelVersion))
		return false
	}
	return true
}
