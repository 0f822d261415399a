package instance

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/onnx"
)

// Stem is a generic instance started before any function needs it (a "stem
// cell", issue 16): its process, sandbox and Go runtime are up and it
// listens, so that a cold start costs only the model's load. POST
// /_spindle/assign (an api.Assign) makes it one function's instance: it
// loads that model and from then on serves it as a Server does. It takes one
// assignment in its life; a failed one leaves it unusable, to be stopped.
type Stem struct {
	base Config

	mu       sync.Mutex // serialises assignments
	taken    bool
	srv      atomic.Pointer[assigned]
	assigned chan struct{} // closed once srv is set
}

type assigned struct {
	srv *Server
	h   http.Handler
}

// NewStem returns a stem cell whose assignments start from base (its
// logger, queue and clock); base's model and task fields are ignored.
func NewStem(base Config) *Stem {
	return &Stem{base: base, assigned: make(chan struct{})}
}

// ServeHTTP serves the assigned function's API, or, before an assignment,
// the health checks and POST /_spindle/assign.
func (st *Stem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := st.srv.Load()
	switch {
	case a != nil && r.URL.Path == "/_spindle/assign":
		writeError(w, http.StatusConflict, "this instance was assigned a function already")
	case a != nil:
		a.h.ServeHTTP(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/_spindle/assign":
		st.assign(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/v2/health/live":
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	default:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s %s: this instance serves no function yet", r.Method, r.URL.Path))
	}
}

// Serve serves on ln until ctx ends, then drains in-flight requests for up
// to drain. An assigned stem gives its idle memory back as a Server does.
func (st *Stem) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	return serve(ctx, ln, drain, st, func(ictx context.Context) {
		select {
		case <-st.assigned:
			st.srv.Load().srv.shrinkWhenIdle(ictx, idleCheck, idleAfter)
		case <-ictx.Done():
		}
	}, func() {
		if a := st.srv.Load(); a != nil {
			a.srv.ready.Store(false)
		}
	})
}

// Close closes the assigned function's model, if any.
func (st *Stem) Close() error {
	if a := st.srv.Load(); a != nil {
		return a.srv.Close()
	}
	return nil
}

// assign serves POST /_spindle/assign: it loads the function's model and
// answers how long that took.
func (st *Stem) assign(w http.ResponseWriter, r *http.Request) {
	var req api.Assign
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body: %v", err))
		return
	}
	cfg := st.base
	cfg.Name, cfg.ModelPath, cfg.TaskDir, cfg.Task, cfg.TaskConfig = req.Name, req.Model, req.TaskDir, req.Task, req.TaskConfig
	cfg.Workers, cfg.MemoryLimit = req.Workers, req.MemoryLimit
	var err error
	switch {
	case req.Name == "":
		err = fmt.Errorf("name: required")
	case req.Workers < 1 || req.Workers > 4096:
		err = fmt.Errorf("workers: %d must be between 1 and 4096", req.Workers)
	case req.MemoryLimit < 0:
		err = fmt.Errorf("memory_limit: %d must be 0 (none) or positive", req.MemoryLimit)
	}
	if err == nil && req.Load != "" {
		if cfg.Load, err = onnx.ParseLoadMode(req.Load); err != nil {
			err = fmt.Errorf("load: %w", err)
		}
	}
	if err == nil {
		if cfg.Batch, err = api.ParseBatchPolicy(req.Batch); err != nil {
			err = fmt.Errorf("batch: %w", err)
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.taken {
		writeError(w, http.StatusConflict, "this instance was assigned a function already")
		return
	}
	st.taken = true
	runtime.GOMAXPROCS(req.Workers)
	srv := New(cfg)
	began := time.Now()
	rep, err := srv.Load()
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("load: %v", err))
		return
	}
	took := time.Since(began)
	srv.cfg.Logger.Info("model loaded", "report", rep.String(), "took", took, "function", req.Name)
	st.srv.Store(&assigned{srv: srv, h: srv.Handler()})
	close(st.assigned)
	writeJSON(w, http.StatusOK, api.Assigned{Load: took})
}
