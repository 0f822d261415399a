package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spindleml/spindle/internal/modelstore"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/sandbox"
)

// Config configures a Gateway. Zero values take the defaults noted.
type Config struct {
	// Home is the data directory (registry, model store, logs).
	Home string
	// Exe is the spindle binary that runs instances (`Exe instance ...`).
	Exe string
	// StartTimeout bounds an instance's start (process start plus model load);
	// 0 means 60 s.
	StartTimeout time.Duration
	// MaxUploadBytes caps a deploy upload; 0 means 8 GiB.
	MaxUploadBytes int64
	// StopGrace is how long an instance may drain when stopped; 0 means 10 s.
	StopGrace time.Duration
	Logger    *slog.Logger
}

func (c *Config) setDefaults() {
	if c.StartTimeout <= 0 {
		c.StartTimeout = 60 * time.Second
	}
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = 8 << 30
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Gateway routes requests to instances. Create it with New; Close stops its
// instances.
type Gateway struct {
	cfg   Config
	reg   *registry.Registry
	store *modelstore.Store
	proxy *httputil.ReverseProxy

	mu  sync.Mutex
	fns map[string]*function
}

// function is the gateway's live state for one deployed function.
type function struct {
	mu       sync.Mutex
	proc     *sandbox.Process
	starting chan struct{} // non-nil while a start is in progress; closed when it ends
	startErr error         // result of the last start, valid once starting is closed
}

// New opens the data directory and returns a gateway.
func New(cfg Config) (*Gateway, error) {
	cfg.setDefaults()
	if cfg.Home == "" || cfg.Exe == "" {
		return nil, errors.New("gateway: Home and Exe are required")
	}
	for _, d := range []string{cfg.Home, filepath.Join(cfg.Home, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	reg, err := registry.Open(filepath.Join(cfg.Home, "spindle.db"))
	if err != nil {
		return nil, err
	}
	store, err := modelstore.Open(filepath.Join(cfg.Home, "models"))
	if err != nil {
		reg.Close()
		return nil, err
	}
	g := &Gateway{cfg: cfg, reg: reg, store: store, fns: map[string]*function{}}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(r.In.Context().Value(upstreamKey{}).(*url.URL))
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				writeError(w, http.StatusGatewayTimeout, "request deadline exceeded while waiting for the instance")
			case errors.Is(err, context.Canceled):
				writeError(w, 499, "client closed the request")
			default:
				writeError(w, http.StatusBadGateway, fmt.Sprintf("instance failed: %v", err))
			}
		},
	}
	return g, nil
}

type upstreamKey struct{}

// Registry returns the gateway's function registry.
func (g *Gateway) Registry() *registry.Registry { return g.reg }

// Handler returns the gateway's HTTP API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
	mux.HandleFunc("GET /v2/models/{name}", g.metadata)
	mux.HandleFunc("GET /v2/models/{name}/ready", g.modelReady)
	mux.HandleFunc("POST /v2/models/{name}/infer", g.infer)
	mux.HandleFunc("POST /admin/v1/functions", g.deploy)
	mux.HandleFunc("GET /admin/v1/functions", g.list)
	mux.HandleFunc("GET /admin/v1/functions/{name}", g.describe)
	mux.HandleFunc("DELETE /admin/v1/functions/{name}", g.remove)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s %s: no such endpoint", r.Method, r.URL.Path))
	})
	return mux
}

// lookup returns the registered function or writes a 404.
func (g *Gateway) lookup(w http.ResponseWriter, r *http.Request) (registry.Function, bool) {
	name := r.PathValue("name")
	f, err := g.reg.Get(name)
	if errors.Is(err, registry.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("function %q is not deployed", name))
		return f, false
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return f, false
	}
	return f, true
}

func (g *Gateway) metadata(w http.ResponseWriter, r *http.Request) {
	if f, ok := g.lookup(w, r); ok {
		writeJSON(w, http.StatusOK, f.Metadata)
	}
}

// modelReady answers 200 for any deployed function: with scale from zero, a
// function with no instance is still ready to serve.
func (g *Gateway) modelReady(w http.ResponseWriter, r *http.Request) {
	if f, ok := g.lookup(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"name": f.Name, "ready": true})
	}
}

func (g *Gateway) infer(w http.ResponseWriter, r *http.Request) {
	f, ok := g.lookup(w, r)
	if !ok {
		return
	}
	p, err := g.ensure(r.Context(), f)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("function %q: request deadline exceeded while the instance starts", f.Name))
		case errors.Is(err, context.Canceled):
			writeError(w, 499, "client closed the request")
		default:
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("function %q: %v", f.Name, err))
		}
		return
	}
	u := &url.URL{Scheme: "http", Host: p.Addr}
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), upstreamKey{}, u)))
}

// ensure returns a running instance of f, starting one if none runs. Concurrent
// callers share one start; each waits only as long as its own ctx allows, while
// the start itself is bounded by StartTimeout, not by any one request.
func (g *Gateway) ensure(ctx context.Context, f registry.Function) (*sandbox.Process, error) {
	g.mu.Lock()
	fn := g.fns[f.Name]
	if fn == nil {
		fn = &function{}
		g.fns[f.Name] = fn
	}
	g.mu.Unlock()

	for {
		fn.mu.Lock()
		if fn.proc != nil && !fn.proc.Exited() {
			p := fn.proc
			fn.mu.Unlock()
			return p, nil
		}
		if fn.starting == nil {
			fn.starting = make(chan struct{})
			go g.start(fn, f)
		}
		starting := fn.starting
		fn.mu.Unlock()

		select {
		case <-starting:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		fn.mu.Lock()
		err := fn.startErr
		fn.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// start launches an instance of f and publishes the result on fn.
func (g *Gateway) start(fn *function, f registry.Function) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.StartTimeout)
	defer cancel()
	logf, err := os.OpenFile(filepath.Join(g.cfg.Home, "logs", f.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	var p *sandbox.Process
	if err == nil {
		began := time.Now()
		p, err = sandbox.Start(ctx, sandbox.Spec{
			Path: g.cfg.Exe,
			Args: []string{"instance", "--name", f.Name, "--model", g.store.Path(f.ModelDigest, f.ModelFile), "--listen", "127.0.0.1:0"},
			Log:  logf,
		})
		if err == nil {
			g.cfg.Logger.Info("instance started", "function", f.Name, "pid", p.Pid, "addr", p.Addr, "elapsed", time.Since(began).Round(time.Millisecond))
			go func() {
				<-p.Done()
				logf.Close()
				g.cfg.Logger.Info("instance exited", "function", f.Name, "pid", p.Pid, "err", p.Err())
			}()
		} else {
			logf.Close()
			g.cfg.Logger.Warn("instance start failed", "function", f.Name, "err", err)
		}
	}
	fn.mu.Lock()
	fn.proc, fn.startErr = p, err
	close(fn.starting)
	fn.starting = nil
	fn.mu.Unlock()
}

// stopInstance stops f's instance, if any, letting it drain.
func (g *Gateway) stopInstance(name string) {
	g.mu.Lock()
	fn := g.fns[name]
	delete(g.fns, name)
	g.mu.Unlock()
	if fn == nil {
		return
	}
	fn.mu.Lock()
	p := fn.proc
	fn.proc = nil
	fn.mu.Unlock()
	if p != nil {
		p.Stop(g.cfg.StopGrace)
	}
}

// Close stops every instance and closes the registry.
func (g *Gateway) Close() error {
	g.mu.Lock()
	names := make([]string, 0, len(g.fns))
	for n := range g.fns {
		names = append(names, n)
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() { defer wg.Done(); g.stopInstance(n) }()
	}
	wg.Wait()
	return g.reg.Close()
}

// Serve serves the gateway on ln until ctx ends, then drains in-flight requests
// and stops the instances.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: g.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		g.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.StopGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	return errors.Join(err, g.Close())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, oip.ErrorResponse{Error: msg})
}
