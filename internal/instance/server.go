package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/spindleml/spindle/internal/admit"
	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/task"
	"github.com/spindleml/spindle/internal/tensor"
)

// Config is what an instance serves and how. Zero values take the defaults noted.
type Config struct {
	// Name is the function name; requests for other model names get 404.
	Name string
	// ModelPath is the .onnx file to serve; "" only for a cpu-burn task,
	// which has no model (its /v2 model endpoints answer 404).
	ModelPath string
	// Task is the kind of the task endpoint POST /v1/tasks/{name} (package
	// task); "" or "infer" means none: raw OIP v2 inference only.
	Task string
	// TaskConfig is the task's JSON config (task.ParseConfig); nil means the
	// defaults.
	TaskConfig json.RawMessage
	// TaskDir is the folder holding the task's extra files (tokenizer.json,
	// labels.txt); "" means the model's folder.
	TaskDir string
	// Load is the load mode; "" means Mmap.
	Load onnx.LoadMode
	// Workers is how many inferences run at once; 0 means GOMAXPROCS.
	Workers int
	// Queue is how many requests may wait for a worker; 0 means 64 per worker.
	Queue int
	// Clock drives the idle memory shrink; nil means the real clock.
	Clock clock.WithTicker
	// Batch is the dynamic batching policy; the zero value is off. A model
	// whose inputs and outputs do not all have a dynamic first dimension
	// is never batched.
	Batch api.BatchPolicy
	// MaxBodyBytes caps a request body; 0 means 64 MiB.
	MaxBodyBytes int64
	// MaxRunBytes caps the intermediate tensors one inference holds at once
	// (engine.RunOptions.MaxBytes): a request that would need more gets 400
	// before the memory is allocated. 0 means engine.DefaultMaxBytes; lower
	// it to fit the instance's memory limit.
	MaxRunBytes int64
	// MemoryLimit is the memory limit the instance runs under (its cgroup's),
	// 0 for none. Each request's budget is then its share of what the limit
	// leaves after the loaded model: (limit - memory in use after Load) /
	// workers, so that requests are refused with 400 before the kernel kills
	// the instance, and every request in it, for the limit.
	MemoryLimit int64
	// Logger receives operational messages; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Load == "" {
		c.Load = onnx.Mmap
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Queue <= 0 {
		c.Queue = 64 * c.Workers
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
}

// Server serves one model. Create it with New, then Load, then Serve.
type Server struct {
	cfg   Config
	src   *onnx.Model
	model *engine.Model // nil for a function without a model (cpu-burn)
	task  task.Task     // nil without a task endpoint
	pool  *admit.Limiter
	ready atomic.Bool

	inflight atomic.Int64
	served   atomic.Int64
	shrinks  atomic.Int64 // times idle memory was given back
	arrived  atomic.Int64 // requests that reached a handler
	// idleTicks counts the ticks shrinkWhenIdle has handled, so that a
	// test stepping a fake clock knows when the loop has seen a step.
	idleTicks atomic.Int64

	// loaded is the resident memory after Load; runBytes each request's
	// memory budget (see Config.MemoryLimit), memLimit the limit it was
	// worked out from.
	loaded   int64
	runBytes atomic.Int64
	memLimit atomic.Int64

	// batch joins compatible requests into one run (Config.Batch); nil
	// when batching is off or the model has no dynamic first dimension.
	batch *batcher
}

// New returns a server for cfg; it loads nothing yet.
func New(cfg Config) *Server {
	cfg.setDefaults()
	return &Server{cfg: cfg, pool: admit.New(cfg.Workers, cfg.Queue)}
}

// Load loads and compiles the model and builds the task. The server reports
// ready only after it.
func (s *Server) Load() (onnx.Report, error) {
	hasTask := s.cfg.Task != "" && s.cfg.Task != task.Infer
	if s.cfg.ModelPath == "" {
		if !hasTask || task.NeedsModel(s.cfg.Task) {
			return onnx.Report{}, errors.New("model: required (only a cpu-burn task runs without one)")
		}
	} else {
		src, err := onnx.Load(s.cfg.ModelPath, s.cfg.Load)
		if err != nil {
			return onnx.Report{}, fmt.Errorf("model %q: %w", s.cfg.ModelPath, err)
		}
		m, err := engine.Compile(src)
		if err != nil {
			src.Close()
			return onnx.Report{}, fmt.Errorf("model %q: %w", s.cfg.ModelPath, err)
		}
		s.src, s.model = src, m
		if s.cfg.Batch.Enabled() && batchable(m, s.cfg.Batch.Pad) {
			s.batch = newBatcher(s, s.cfg.Batch)
		}
	}
	if hasTask {
		cfg, err := task.ParseConfig(s.cfg.TaskConfig)
		if err == nil {
			dir := s.cfg.TaskDir
			if dir == "" && s.cfg.ModelPath != "" {
				dir = filepath.Dir(s.cfg.ModelPath)
			}
			s.task, err = task.New(s.cfg.Task, cfg, dir, s.model)
		}
		if err != nil {
			s.Close()
			return onnx.Report{}, err
		}
	}
	if rss, _, err := metrics.ReadMemory(os.Getpid()); err == nil {
		s.loaded = int64(rss)
	}
	s.memLimit.Store(s.cfg.MemoryLimit)
	s.setRunBudget()
	s.ready.Store(true)
	if s.src == nil {
		return onnx.Report{}, nil
	}
	return s.src.Report, nil
}

// minRunBytes is the least budget a request gets, whatever the limit says.
const minRunBytes = 4 << 20

// setRunBudget works out each request's memory budget from the memory limit
// and the worker count (see Config.MemoryLimit).
//
// It also tells the Go runtime the limit (GOMEMLIMIT), so that the garbage
// collector runs harder as the heap nears it instead of letting garbage
// grow the heap to twice what is live and past the limit.
func (s *Server) setRunBudget() {
	budget := s.cfg.MaxRunBytes
	limit := s.memLimit.Load()
	if limit > 0 {
		debug.SetMemoryLimit(limit - limit/16)
	} else {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	if limit > 0 {
		// Headroom for the request's body, its decoded inputs and the
		// runtime's own slack.
		const headroom = 16 << 20
		workers := int64(max(1, s.pool.Stats().Concurrency))
		share := max((limit-s.loaded-headroom)/workers, minRunBytes)
		if budget <= 0 || share < budget {
			budget = share
		}
	}
	s.runBytes.Store(budget)
}

// Close releases the model. Call it after Serve has returned.
func (s *Server) Close() error {
	s.ready.Store(false)
	if s.src == nil {
		return nil
	}
	return s.src.Close()
}

// SetWorkers changes how many inferences run at once, live: waiting requests
// start as soon as slots open, running ones are never interrupted.
func (s *Server) SetWorkers(n int) {
	st := s.pool.Stats()
	q := st.Queue
	if st.Concurrency > 0 {
		q = st.Queue / st.Concurrency * max(n, 1)
	}
	s.pool.Resize(n, q)
}

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, oip.ServerMetadata())
	})
	ready := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"name": s.cfg.Name, "ready": true})
	}
	for _, prefix := range []string{"/v2/models/{model}", "/v2/models/{model}/versions/{version}"} {
		mux.HandleFunc("GET "+prefix, s.withModel(s.metadata))
		mux.HandleFunc("GET "+prefix+"/ready", s.withModel(ready))
		mux.HandleFunc("POST "+prefix+"/infer", s.withModel(s.infer))
	}
	mux.HandleFunc("POST /v1/tasks/{model}", s.withTask(s.runTask))
	mux.HandleFunc("GET /_spindle/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("POST /_spindle/resize", s.resize)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s %s: no such endpoint", r.Method, r.URL.Path))
	})
	return mux
}

// Stats is a snapshot of the instance's load.
type Stats struct {
	Pool       admit.Stats `json:"pool"`
	InFlight   int64       `json:"in_flight"`
	Served     int64       `json:"served"`
	GOMAXPROCS int         `json:"gomaxprocs"`
	// RunBudget is each request's memory budget in bytes (0: the engine's
	// default).
	RunBudget int64 `json:"run_budget_bytes"`
	// Batch says how requests were batched; nil when batching is off.
	Batch *BatchStats `json:"batch,omitempty"`
	// IdleShrinks counts the times the instance, idle, gave its free
	// memory back to the system.
	IdleShrinks int64 `json:"idle_shrinks"`
}

// Stats returns the instance's current load.
func (s *Server) Stats() Stats {
	st := Stats{Pool: s.pool.Stats(), InFlight: s.inflight.Load(), Served: s.served.Load(), GOMAXPROCS: runtime.GOMAXPROCS(0), RunBudget: s.runBytes.Load(), IdleShrinks: s.shrinks.Load()}
	if s.batch != nil {
		b := s.batch.stats()
		st.Batch = &b
	}
	return st
}

func (s *Server) resize(w http.ResponseWriter, r *http.Request) {
	var req api.Resize
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body: %v", err))
		return
	}
	if req.Workers < 1 || req.Workers > 4096 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("workers: %d must be between 1 and 4096", req.Workers))
		return
	}
	if req.GOMAXPROCS < 0 || req.GOMAXPROCS > 4096 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("gomaxprocs: %d must be between 0 (unchanged) and 4096", req.GOMAXPROCS))
		return
	}
	if req.MemoryLimit != nil && *req.MemoryLimit < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("memory_limit: %d must be 0 (none) or positive", *req.MemoryLimit))
		return
	}
	s.SetWorkers(req.Workers)
	if req.GOMAXPROCS > 0 {
		runtime.GOMAXPROCS(req.GOMAXPROCS)
	}
	if req.MemoryLimit != nil {
		s.memLimit.Store(*req.MemoryLimit)
	}
	s.setRunBudget()
	writeJSON(w, http.StatusOK, s.Stats())
}

// withModel rejects requests for a model this instance does not serve, or before
// it is ready.
func (s *Server) withModel(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if m := r.PathValue("model"); m != s.cfg.Name {
			writeError(w, http.StatusNotFound, fmt.Sprintf("model %q: not served here (this instance serves %q)", m, s.cfg.Name))
			return
		}
		if v := r.PathValue("version"); v != "" && v != oip.ModelVersion {
			writeError(w, http.StatusNotFound, fmt.Sprintf("model %q has no version %q (versions: %s)", s.cfg.Name, v, oip.ModelVersion))
			return
		}
		if !s.ready.Load() {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("model %q: not loaded yet", s.cfg.Name))
			return
		}
		if s.model == nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("function %q has no model (task %s): use POST /v1/tasks/%s", s.cfg.Name, s.cfg.Task, s.cfg.Name))
			return
		}
		h(w, r)
	}
}

// withTask rejects task requests for another function, before the task is
// ready, or for a function without a task endpoint.
func (s *Server) withTask(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if m := r.PathValue("model"); m != s.cfg.Name {
			writeError(w, http.StatusNotFound, fmt.Sprintf("function %q: not served here (this instance serves %q)", m, s.cfg.Name))
			return
		}
		if !s.ready.Load() {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("function %q: not loaded yet", s.cfg.Name))
			return
		}
		if s.task == nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("function %q has no task endpoint (it serves raw OIP v2 inference: POST /v2/models/%s/infer)", s.cfg.Name, s.cfg.Name))
			return
		}
		h(w, r)
	}
}

// outputDType is the dtype the model declares for output name (Invalid
// when it declares none).
func (s *Server) outputDType(name string) tensor.DType {
	for _, o := range s.model.Outputs {
		if o.Name == name {
			return o.DType
		}
	}
	return tensor.Invalid
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Metadata(s.cfg.Name, s.model))
}

// Metadata describes a compiled model in OIP v2 form; dynamic dimensions are -1.
func Metadata(name string, m *engine.Model) oip.ModelMetadata {
	md := oip.ModelMetadata{Name: name, Versions: []string{oip.ModelVersion}, Platform: "onnx"}
	conv := func(vs []engine.ValueInfo) []oip.TensorMetadata {
		out := make([]oip.TensorMetadata, 0, len(vs))
		for _, v := range vs {
			shape := make([]int64, len(v.Shape))
			for i, d := range v.Shape {
				shape[i] = int64(d)
			}
			out = append(out, oip.TensorMetadata{Name: v.Name, Datatype: oip.DatatypeOf(v.DType), Shape: shape})
		}
		return out
	}
	md.Inputs, md.Outputs = conv(m.Inputs), conv(m.Outputs)
	return md
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	s.arrived.Add(1)
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	// MaxBytesReader marks an oversized body (413) apart from a malformed one.
	headerLen := int64(-1) // the whole body is JSON
	if h := r.Header.Get(oip.HeaderLength); h != "" {
		n, err := strconv.ParseInt(h, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("header %s: %q, must be a non-negative integer", oip.HeaderLength, h))
			return
		}
		headerLen = n
	}
	req, inputs, err := oip.DecodeRequestBinary(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), s.cfg.MaxBodyBytes, headerLen)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	if err := s.model.CheckInputs(inputs); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	want, err := s.requestedOutputs(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var outs map[string]*tensor.Tensor
	release := func() {}
	if s.batch != nil {
		var served int
		outs, release, served, err = s.batch.run(r.Context(), inputs)
		w.Header().Set(BatchSizeHeader, strconv.Itoa(served))
	} else {
		err = s.pool.Do(r.Context(), func() error {
			var err error
			outs, release, err = s.runOwned(r.Context(), inputs)
			return err
		})
	}
	// The answer is written from the outputs; then their memory serves the
	// next request's.
	defer release()
	if err != nil {
		s.writeRunError(w, err)
		return
	}
	s.served.Add(1)
	s.writeInferResponse(w, req, want, outs)
}

// writeInferResponse answers with the outputs want of a run: as JSON, or,
// where the request asks for binary outputs, as the JSON header followed by
// their raw data (the binary tensor data extension).
func (s *Server) writeInferResponse(w http.ResponseWriter, req *oip.InferRequest, want []requested, outs map[string]*tensor.Tensor) {
	resp := &oip.InferResponse{ModelName: s.cfg.Name, ModelVersion: oip.ModelVersion, ID: req.ID}
	var raws [][]byte
	for _, o := range want {
		if o.binary {
			out, raw := oip.OutputBinary(o.name, outs[o.name], s.outputDType(o.name))
			resp.Outputs = append(resp.Outputs, out)
			raws = append(raws, raw)
			continue
		}
		resp.Outputs = append(resp.Outputs, oip.OutputAs(o.name, outs[o.name], s.outputDType(o.name)))
	}
	if raws == nil {
		w.Header().Set("Content-Type", "application/json")
		if err := oip.EncodeResponse(w, resp); err != nil {
			s.cfg.Logger.Warn("write response", "model", s.cfg.Name, "err", err)
		}
		return
	}
	header, err := oip.MarshalResponse(resp)
	if err != nil {
		s.cfg.Logger.Warn("write response", "model", s.cfg.Name, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	size := len(header)
	for _, raw := range raws {
		size += len(raw)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(oip.HeaderLength, strconv.Itoa(len(header)))
	w.Header().Set("Content-Length", strconv.Itoa(size))
	w.WriteHeader(http.StatusOK)
	w.Write(header)
	for _, raw := range raws {
		w.Write(raw)
	}
}

// writeRunError answers a request whose run (in the worker pool) failed.
func (s *Server) writeRunError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, admit.ErrQueueFull):
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("model %q: all %d workers busy and the queue is full", s.cfg.Name, s.pool.Stats().Concurrency))
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("model %q: request deadline exceeded", s.cfg.Name))
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "client closed the request")
	case errors.Is(err, engine.ErrBadInput), task.IsInputError(err):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.cfg.Logger.Error("inference failed", "model", s.cfg.Name, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// runOwned executes the model for one request already holding a worker slot, with
// its share of the instance's CPUs for intra-op parallelism: all of them when
// it runs alone (latency at low load), one each when every worker is busy
// (throughput at high load). It also returns the function that gives the
// outputs' memory back once the answer is written (engine.Model.RunOwned).
func (s *Server) runOwned(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, func(), error) {
	running := max(1, s.pool.Stats().Running)
	threads := max(1, runtime.GOMAXPROCS(0)/running)
	return s.model.RunOwned(ctx, inputs, engine.RunOptions{Threads: threads, MaxBytes: s.runBytes.Load()})
}

// runTask serves POST /v1/tasks/{name}. The whole task (decoding, tokenizing
// or resizing, the model, ranking) runs in one worker slot, so the worker
// count bounds its CPU use as it does inference's.
func (s *Server) runTask(w http.ResponseWriter, r *http.Request) {
	s.arrived.Add(1)
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		writeBodyError(w, fmt.Errorf("body: %w", err))
		return
	}
	req := task.Request{ContentType: r.Header.Get("Content-Type"), Body: body}
	var run task.RunFunc
	if s.model != nil {
		run = func(ctx context.Context, inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
			// A task keeps the outputs it gets: nothing is given back.
			outs, _, err := s.runOwned(ctx, inputs)
			return outs, err
		}
	}
	var res any
	err = s.pool.Do(r.Context(), func() (err error) {
		// A bug in a task must cost one request, not a leaked worker slot
		// or the instance.
		defer func() {
			if p := recover(); p != nil {
				s.cfg.Logger.Error("task panicked", "function", s.cfg.Name, "panic", p, "stack", string(debug.Stack()))
				err = fmt.Errorf("task %s: internal error: %v", s.cfg.Task, p)
			}
		}()
		res, err = s.task.Handle(r.Context(), req, run)
		return err
	})
	if err != nil {
		s.writeRunError(w, err)
		return
	}
	b, err := json.Marshal(res)
	if err != nil { // a NaN from the model, say
		s.cfg.Logger.Error("encode task answer", "function", s.cfg.Name, "err", err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("task %s: encode answer: %v", s.cfg.Task, err))
		return
	}
	s.served.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// requestedOutputs returns the outputs a request asked for (all when it names none).
// requested is an output a request asks for, and whether in binary.
type requested struct {
	name   string
	binary bool
}

// requestedOutputs returns the outputs req asks for (all of the model's
// when it names none), each with the form it wants.
func (s *Server) requestedOutputs(req *oip.InferRequest) ([]requested, error) {
	if len(req.Outputs) == 0 {
		out := make([]requested, len(s.model.Outputs))
		for i, o := range s.model.Outputs {
			out[i] = requested{o.Name, req.WantsBinary(nil)}
		}
		return out, nil
	}
	var out []requested
	for i, o := range req.Outputs {
		found := false
		for _, mo := range s.model.Outputs {
			found = found || mo.Name == o.Name
		}
		if !found {
			return nil, fmt.Errorf("outputs[%d].name: model %q has no output %q", i, s.cfg.Name, o.Name)
		}
		out = append(out, requested{o.Name, req.WantsBinary(&req.Outputs[i])})
	}
	return out, nil
}

// Serve serves HTTP on ln until ctx ends, then stops taking new requests, lets
// in-flight ones finish (up to drain), and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	return serve(ctx, ln, drain, s.Handler(), func(ictx context.Context) {
		s.shrinkWhenIdle(ictx, idleCheck, idleAfter)
	}, func() { s.ready.Store(false) })
}

// serve serves h on ln until ctx ends, with idle running beside it, then
// calls stopping and drains in-flight requests for up to drain.
func serve(ctx context.Context, ln net.Listener, drain time.Duration, h http.Handler, idle func(context.Context), stopping func()) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	ictx, stopIdle := context.WithCancel(ctx)
	defer stopIdle()
	go idle(ictx)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stopping()
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// An instance idle for idleAfter (checked every idleCheck) gives its free
// memory back: the heap a burst of requests grew, the engine's scratch
// buffers (sync.Pools, emptied by two collections). Only the model and
// what it keeps between requests stay private.
const (
	idleCheck = 5 * time.Second
	idleAfter = 10 * time.Second
)

// shrinkWhenIdle returns free memory to the system once per idle period:
// when no request arrived for after and none is in flight.
func (s *Server) shrinkWhenIdle(ctx context.Context, every, after time.Duration) {
	t := s.cfg.Clock.NewTicker(every)
	defer t.Stop()
	seen, since, shrunk := s.arrived.Load(), s.cfg.Clock.Now(), true
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C():
			if n := s.arrived.Load(); n != seen || s.inflight.Load() > 0 {
				seen, since, shrunk = n, now, false
			} else if !shrunk && now.Sub(since) >= after {
				// Two collections: the first moves sync.Pool contents to
				// their victim caches, the second frees them.
				runtime.GC()
				debug.FreeOSMemory()
				s.shrinks.Add(1)
				shrunk = true
			}
			s.idleTicks.Add(1)
		}
	}
}

// writeBodyError answers a request whose body could not be read or decoded:
// 413 naming the limit for an oversized body, else 400 with err.
func writeBodyError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: exceeds %d bytes", mbe.Limit))
		return
	}
	writeError(w, http.StatusBadRequest, err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, oip.ErrorResponse{Error: msg})
}
