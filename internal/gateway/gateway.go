package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"gopkg.in/natefinch/lumberjack.v2"
	"k8s.io/utils/clock"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/dashboard"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/modelstore"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/sandbox"
	"github.com/spindleml/spindle/internal/tenant"
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
	// CheckTimeout bounds the deploy-time check of an upload (load, compile,
	// build the task, in a sandboxed child); 0 means 2 min.
	CheckTimeout time.Duration
	// CheckMemory is the least memory the check of an upload may use when its
	// tenant sets no memory limit (it gets 4x the upload's size if that is
	// more); 0 means 2 GiB.
	CheckMemory int64
	// StopGrace is how long an instance may drain when stopped; 0 means 10 s.
	StopGrace time.Duration
	// IdleTimeout is how long a function may go without requests before its
	// instances are stopped (scale to zero); 0 means 5 min.
	IdleTimeout time.Duration
	// MaxWaiting bounds the requests per function that wait for an instance to
	// start; more get 429. 0 means 1024.
	MaxWaiting int
	// DefaultTimeout is a request's deadline when it sets no Spindle-Timeout
	// header; MaxTimeout caps the header. 0 means 60 s and 10 min.
	DefaultTimeout, MaxTimeout time.Duration
	// MaxBodyBytes caps an inference request body; 0 means 64 MiB.
	MaxBodyBytes int64
	// MaxBodyBytesInFlight bounds the request bodies the gateway holds in
	// memory at once, over all requests (each reserves its declared length,
	// or MaxBodyBytes when it declares none, before it is read); a request
	// that finds no room within a few seconds gets 503. 0 means 512 MiB.
	MaxBodyBytesInFlight int64
	// MaxConns caps the open client connections (see connLimiter); 0 means
	// half the file descriptors the process may open, less a reserve.
	MaxConns int
	// IdleConnTimeout closes a keep-alive connection idle that long; 0
	// means 60 s.
	IdleConnTimeout time.Duration
	// LogMaxMB is the size in MiB at which a function's log is rotated (one
	// older file is kept); 0 means 10.
	LogMaxMB int
	// Auth is AuthOpen (the default: no keys needed, loopback only) or AuthKeys.
	Auth string
	// AdminKey authorises the tenant admin API; required with AuthKeys. Make one
	// with tenant.NewAdminKey or tenant.LoadOrCreateAdminKey.
	AdminKey string
	// Sandbox is what the machine allows instances (from sandbox.Detect); the
	// zero value runs them unconfined, without namespaces.
	Sandbox sandbox.Capabilities
	// DefaultVCPU is each instance's CPU allotment unless a function sets its
	// own; 0 means 1 vCPU.
	DefaultVCPU float64
	// Autoscale, when set, is the scaling policy every function gets
	// (autoscale.DefaultSpec or ParseSpec); nil runs no autoscaler: instances
	// start on demand and stop when idle.
	Autoscale *autoscale.Spec
	// StemCells is the most pre-started instances ("stem cells", see
	// stem.go) Serve keeps ready for cold starts; 0 means none: every
	// instance is a new process.
	StemCells int
	// Clock drives idle scale-down; nil means the real clock.
	Clock  clock.WithTicker
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.StartTimeout <= 0 {
		c.StartTimeout = 60 * time.Second
	}
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = 8 << 30
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 2 * time.Minute
	}
	if c.CheckMemory <= 0 {
		c.CheckMemory = 2 << 30
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.DefaultVCPU <= 0 {
		c.DefaultVCPU = 1
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.MaxWaiting <= 0 {
		c.MaxWaiting = 1024
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 60 * time.Second
	}
	if c.MaxTimeout <= 0 {
		c.MaxTimeout = 10 * time.Minute
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 20
	}
	if c.MaxBodyBytesInFlight <= 0 {
		c.MaxBodyBytesInFlight = 512 << 20
	}
	if c.MaxConns <= 0 {
		c.MaxConns = defaultMaxConns()
	}
	if c.IdleConnTimeout <= 0 {
		c.IdleConnTimeout = 60 * time.Second
	}
	if c.LogMaxMB <= 0 {
		c.LogMaxMB = 10
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Auth == "" {
		c.Auth = AuthOpen
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Gateway routes requests to instances. Create it with New; Close stops its
// instances.
type Gateway struct {
	cfg     Config
	reg     *registry.Registry
	tenants *tenant.Store
	store   *modelstore.Store
	proxy   *httputil.ReverseProxy

	clock clock.WithTicker
	ready atomic.Bool

	metrics  *metrics.Metrics
	stats    *metrics.Stats
	recorder metrics.Recorder
	// inferStats counts inferences per function for the statistics
	// extension (GET /v2/models/{name}/stats).
	inferStats inferStats
	loop       *autoscale.Loop // nil without an autoscaler
	board      *board
	stems      *stemPool
	// closing is closed when the gateway shuts down: the dashboard's
	// streams end instead of holding Shutdown for its grace.
	closing   chan struct{}
	closeOnce sync.Once

	mu  sync.Mutex
	fns map[string]*function

	// storeMu orders commits of models and their registration with removals
	// of functions, which free models no function uses.
	storeMu sync.Mutex

	bodies  *bodyBudget
	gatesMu sync.Mutex
	gates   map[string]*tenantGate // by tenant
	// conns is the listener Serve serves on; nil before Serve.
	conns atomic.Pointer[connLimiter]

	logsMu     sync.Mutex
	logFiles   map[string]*lumberjack.Logger // by function key
	logsClosed bool                          // Close closed them: later lines are dropped
	// watchers counts the goroutines that log an instance's exit; Close
	// waits for them before it closes the logs.
	watchers sync.WaitGroup
}

// New opens the data directory and returns a gateway.
func New(cfg Config) (*Gateway, error) {
	cfg.setDefaults()
	if cfg.Home == "" || cfg.Exe == "" {
		return nil, errors.New("gateway: Home and Exe are required")
	}
	switch {
	case cfg.Auth != AuthOpen && cfg.Auth != AuthKeys:
		return nil, fmt.Errorf("auth %q: must be %s or %s", cfg.Auth, AuthOpen, AuthKeys)
	case cfg.Auth == AuthKeys && cfg.AdminKey == "":
		return nil, fmt.Errorf("auth %s: an admin key is required", AuthKeys)
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
	tenants, err := tenant.Open(reg.DB(), cfg.AdminKey)
	if err != nil {
		reg.Close()
		return nil, err
	}
	store, err := modelstore.Open(filepath.Join(cfg.Home, "models"))
	if err != nil {
		reg.Close()
		return nil, err
	}
	g := &Gateway{cfg: cfg, reg: reg, tenants: tenants, store: store, fns: map[string]*function{}, clock: cfg.Clock,
		bodies: &bodyBudget{sem: semaphore.NewWeighted(cfg.MaxBodyBytesInFlight), max: cfg.MaxBodyBytesInFlight},
		gates:  map[string]*tenantGate{}, logFiles: map[string]*lumberjack.Logger{}, closing: make(chan struct{})}
	if err := g.reconcile(); err != nil {
		reg.Close()
		return nil, err
	}
	g.ready.Store(true)
	g.metrics = metrics.New()
	// A 60 s window in 1 s buckets: the autoscaler's and dashboard's view of
	// recent latency (thesis ch. 5.2 triggers on p99 over such a window).
	g.stats, err = metrics.NewStats(time.Minute, time.Second, cfg.Clock)
	if err != nil {
		return nil, err
	}
	g.stems = newStemPool(g, cfg.StemCells)
	if g.board, err = newBoard(cfg.Clock); err != nil {
		return nil, err
	}
	g.recorder = metrics.Multi{g.metrics, g.stats, &g.inferStats, g.board.short}
	if cfg.Autoscale != nil {
		loop, sc, err := g.newScaler(*cfg.Autoscale)
		if err != nil {
			return nil, fmt.Errorf("autoscale: %w", err)
		}
		g.loop = loop
		g.recorder = metrics.Multi{g.metrics, g.stats, &g.inferStats, g.board.short, sc.window, sc.short}
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(r.In.Context().Value(proxyKey{}).(*proxyCall).upstream)
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			// A request goes to the instance in one write and its answer
			// comes back in one read where it fits: the default 4 KiB
			// buffers split a 28x28 JSON image (8 KiB) into three writes.
			// 16 KiB keeps an idle pooled connection small (density).
			WriteBufferSize: 16 << 10,
			ReadBufferSize:  16 << 10,
		},
		// Nothing has been written when the transport fails: record the error
		// and let infer decide between a retry and an error answer.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			*r.Context().Value(proxyKey{}).(*proxyCall).err = err
		},
	}
	return g, nil
}

// reconcile makes the home and the machine match the registry before the
// gateway serves (crash-only recovery: a gateway killed at any moment is
// cleaned up by the next start): it removes staging folders of deploys that
// never finished, model folders no function uses, and the cgroups of
// instances and checks a dead platform left behind.
func (g *Gateway) reconcile() error {
	fs, err := g.reg.List("")
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, f := range fs {
		used[f.ModelDigest] = true
	}
	removed, err := g.store.Reconcile(func(d string) bool { return used[d] })
	if len(removed) > 0 {
		g.cfg.Logger.Info("model store: removed what no function uses", "paths", removed)
	}
	if err != nil {
		return fmt.Errorf("model store: %w", err)
	}
	if g.cfg.Sandbox.Controller != nil {
		groups, err := g.cfg.Sandbox.Controller.Reap()
		if len(groups) > 0 {
			g.cfg.Logger.Info("sandbox: removed cgroups left by a stopped platform", "groups", groups)
		}
		if err != nil {
			g.cfg.Logger.Warn("sandbox: could not remove every leftover cgroup", "err", err)
		}
	}
	return nil
}

type proxyKey struct{}

// proxyCall carries a proxied request's upstream in, and its transport error
// out, so the handler can retry instead of answering.
type proxyCall struct {
	upstream *url.URL
	err      *error
}

// Registry returns the gateway's function registry.
func (g *Gateway) Registry() *registry.Registry { return g.reg }

// Handler returns the gateway's HTTP API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		if !g.ready.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
	mux.HandleFunc("GET /v2", g.serverMetadata)
	mux.HandleFunc("GET /v2/models/stats", g.modelStats)
	for _, prefix := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		mux.HandleFunc("GET "+prefix, g.metadata)
		mux.HandleFunc("GET "+prefix+"/ready", g.modelReady)
		mux.HandleFunc("POST "+prefix+"/infer", g.observed(g.infer))
		mux.HandleFunc("GET "+prefix+"/stats", g.modelStats)
		mux.HandleFunc("GET "+prefix+"/config", g.modelConfig)
	}
	mux.HandleFunc("POST /v1/tasks/{name}", g.observed(g.runTask))
	mux.HandleFunc("GET /admin/v1/functions/{name}/stats", g.functionStats)
	mux.HandleFunc("POST /admin/v1/functions/{name}/scale", g.scale)
	mux.Handle("GET /metrics", g.metrics.Handler())
	mux.HandleFunc("POST /admin/v1/functions", g.deploy)
	mux.HandleFunc("GET /admin/v1/functions", g.list)
	mux.HandleFunc("GET /admin/v1/functions/{name}", g.describe)
	mux.HandleFunc("DELETE /admin/v1/functions/{name}", g.remove)
	mux.HandleFunc("POST /admin/v1/tenants", g.createTenant)
	mux.HandleFunc("GET /admin/v1/tenants", g.listTenants)
	mux.HandleFunc("DELETE /admin/v1/tenants/{name}", g.deleteTenant)
	mux.HandleFunc("POST /admin/v1/tenants/{name}/keys", g.rotateKey)
	mux.HandleFunc("GET /admin/v1/functions/{name}/logs", g.logs)
	mux.HandleFunc("GET /admin/v1/dashboard/stream", g.boardStream)
	mux.Handle("GET /{$}", dashboard.Handler())
	mux.Handle("GET /ui/", dashboard.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s %s: no such endpoint", r.Method, r.URL.Path))
	})
	return g.paceBody(g.authenticate(mux))
}

// lookup returns the caller's function named in the path, or writes a 404:
// another tenant's function is indistinguishable from a missing one.
func (g *Gateway) lookup(w http.ResponseWriter, r *http.Request) (registry.Function, bool) {
	if !versionOK(w, r) {
		return registry.Function{}, false
	}
	name := r.PathValue("name")
	f, err := g.reg.Get(owner(r), name)
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
	if f, ok := g.lookup(w, r); ok && hasModel(w, f) {
		writeJSON(w, http.StatusOK, f.Metadata)
	}
}

// hasModel writes a 404 for a function without a model (cpu-burn).
func hasModel(w http.ResponseWriter, f registry.Function) bool {
	if f.ModelFile == "" {
		writeError(w, http.StatusNotFound, fmt.Sprintf("function %q has no model (task %s): use POST /v1/tasks/%s", f.Name, f.Task, f.Name))
		return false
	}
	return true
}

// modelReady answers 200 for any deployed function: with scale from zero, a
// function with no instance is still ready to serve.
func (g *Gateway) modelReady(w http.ResponseWriter, r *http.Request) {
	if f, ok := g.lookup(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"name": f.Name, "ready": true})
	}
}

// infer serves POST /v2/models/{name}/infer for spec, the caller's function.
func (g *Gateway) infer(w http.ResponseWriter, r *http.Request, spec registry.Function) {
	if hasModel(w, spec) {
		g.forward(w, r, spec)
	}
}

// runTask serves POST /v1/tasks/{name}, the task endpoint of spec, a function
// deployed with a task.
func (g *Gateway) runTask(w http.ResponseWriter, r *http.Request, spec registry.Function) {
	if spec.Task == "" || spec.Task == api.TaskInfer {
		writeError(w, http.StatusNotFound, fmt.Sprintf("function %q has no task endpoint (it serves raw OIP v2 inference: POST /v2/models/%s/infer)", spec.Name, spec.Name))
		return
	}
	g.forward(w, r, spec)
}

// forward proxies a data-path request to an instance of spec (starting one if
// none runs), under the request's deadline and the bound on waiting requests.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, spec registry.Function) {
	timeout, err := g.requestTimeout(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if ctx.Err() != nil {
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("function %q: deadline %s exceeded before the request was read", spec.Name, timeout))
		return
	}
	done, retryAfter, err := g.admitTenant(spec.Owner)
	if err != nil {
		var tle *tenantLimitError
		if errors.As(err, &tle) {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retryAfter.Round(time.Second)/time.Second))))
			writeError(w, http.StatusTooManyRequests, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer done()
	body, release, err := g.readBody(ctx, w, r, deadline)
	if err != nil {
		return // readBody answered
	}
	defer release()
	f := g.function(spec)
	// An instance that dies mid-request (killed, out of memory) gets the request
	// retried once on a healthy instance; inference and tasks are idempotent.
	for attempt := 0; ; attempt++ {
		rep, err := g.acquire(ctx, f)
		if errors.Is(err, errRemoved) {
			// Removed or redeployed while this request waited: it goes to
			// what is deployed now, if anything.
			var now registry.Function
			if now, err = g.reg.Get(spec.Owner, spec.Name); err == nil {
				spec, f = now, g.function(now)
				attempt-- // not a retry: no instance was tried
				continue
			}
		}
		if err != nil {
			switch {
			case errors.Is(err, registry.ErrNotFound):
				writeError(w, http.StatusNotFound, fmt.Sprintf("function %q was removed while the request waited", spec.Name))
			case errors.Is(err, context.DeadlineExceeded):
				writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("function %q: deadline %s exceeded while waiting for an instance to start", spec.Name, timeout))
			case errors.Is(err, context.Canceled):
				writeError(w, 499, "client closed the request")
			case errors.Is(err, ErrQueueFull):
				writeError(w, http.StatusTooManyRequests, err.Error())
			default:
				writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("function %q: %v", spec.Name, err))
			}
			return
		}
		var perr error
		out := r.Clone(context.WithValue(ctx, proxyKey{}, &proxyCall{upstream: rep.url, err: &perr}))
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		sent := time.Now()
		g.proxy.ServeHTTP(w, out)
		if perr == nil && rep.served.CompareAndSwap(false, true) {
			g.board.firstInference(f.key, rep.proc.Pid, time.Since(sent))
		}
		g.release(f, rep)
		if perr == nil {
			return
		}
		died := waitExit(ctx, rep, time.Second)
		switch {
		case died && attempt == 0 && ctx.Err() == nil:
			g.cfg.Logger.Warn("instance died mid-request; retrying", "function", spec.Name, "pid", rep.proc.Pid)
			continue
		case errors.Is(perr, context.DeadlineExceeded):
			writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("function %q: deadline %s exceeded while the instance was computing", spec.Name, timeout))
		case errors.Is(perr, context.Canceled):
			writeError(w, 499, "client closed the request")
		case died:
			writeError(w, http.StatusBadGateway, fmt.Sprintf("function %q: instance exited during the request (%v), and the retry failed too", spec.Name, rep.proc.Err()))
		default:
			writeError(w, http.StatusBadGateway, fmt.Sprintf("function %q: instance failed: %v", spec.Name, perr))
		}
		return
	}
}

// waitExit reports whether r's process exits within d, or before ctx ends:
// a reset connection is often seen a moment before the exit is, and a
// request past its deadline is answered at once.
func waitExit(ctx context.Context, r *replica, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.proc.Done():
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return r.proc.Exited()
	}
}

// readAll reads r to its end into a buffer of the declared size n, when
// known: io.ReadAll grows its buffer by doubling, up to twice the body.
func readAll(r io.Reader, n int64) ([]byte, error) {
	if n <= 0 {
		return io.ReadAll(r)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	// A body longer than it declared is the client's error; net/http reads
	// no further than Content-Length, so this sees EOF.
	return buf, nil
}

// readBody reads r's body within the gateway's body budget, by deadline and
// at the pace paceBody sets, and returns it with the function that gives
// its room back. On error it has answered: 413 over MaxBodyBytes, 503 when
// the budget had no room in time, 408 for a body too slow.
func (g *Gateway) readBody(ctx context.Context, w http.ResponseWriter, r *http.Request, deadline time.Time) ([]byte, func(), error) {
	n := r.ContentLength
	if n > g.cfg.MaxBodyBytes {
		err := fmt.Errorf("body: %d bytes, more than the limit of %d", n, g.cfg.MaxBodyBytes)
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		return nil, nil, err
	}
	if n < 0 {
		n = g.cfg.MaxBodyBytes
	}
	if err := g.bodies.reserve(ctx, n, min(time.Until(deadline), 5*time.Second)); err != nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return nil, nil, err
	}
	release := func() { g.bodies.release(n) }
	bodyDeadline(r, deadline)
	http.NewResponseController(w).SetWriteDeadline(deadline.Add(10 * time.Second))
	body, err := readAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes), r.ContentLength)
	switch {
	case errors.Is(err, errBodyTooSlow):
		writeError(w, http.StatusRequestTimeout, fmt.Sprintf("body: %v", err))
	case err != nil:
		writeError(w, statusForBody(err), fmt.Sprintf("body: %v", err))
	}
	if err != nil {
		release()
		return nil, nil, err
	}
	return body, release, nil
}

// TimeoutHeader carries a per-request deadline (see api.RequestTimeout);
// the gateway caps it at Config.MaxTimeout.
const TimeoutHeader = api.TimeoutHeader

func (g *Gateway) requestTimeout(r *http.Request) (time.Duration, error) {
	return api.RequestTimeout(r.Header.Get(TimeoutHeader), g.cfg.DefaultTimeout, g.cfg.MaxTimeout)
}

// function returns the live state for spec, creating it; a redeploy (new
// digest) replaces it and stops the old replicas.
func (g *Gateway) function(spec registry.Function) *function {
	key := fnKey(spec.Owner, spec.Name)
	g.mu.Lock()
	f := g.fns[key]
	if f != nil && f.spec.ModelDigest == spec.ModelDigest && f.spec.ModelFile == spec.ModelFile &&
		f.spec.Task == spec.Task && bytes.Equal(f.spec.TaskConfig, spec.TaskConfig) {
		g.mu.Unlock()
		return f
	}
	old := f
	f = newFunction(spec, g.clock.Now(), g.vcpuOf(spec))
	g.fns[key] = f
	g.mu.Unlock()
	if g.loop != nil {
		if _, ok := g.loop.Spec(key); !ok {
			// The platform's spec is valid (checked in New), so Set cannot fail.
			g.loop.Set(key, *g.cfg.Autoscale)
		}
	}
	if old != nil {
		go g.stopAll(old, true)
	}
	return f
}

// stopFunction stops and forgets the replicas of the function with key
// fnKey(owner, name).
func (g *Gateway) stopFunction(key string) {
	g.mu.Lock()
	f := g.fns[key]
	delete(g.fns, key)
	g.mu.Unlock()
	if g.loop != nil {
		g.loop.Remove(key)
	}
	if f != nil {
		g.stopAll(f, true)
	}
}

// Close stops every instance, letting each drain, and closes the registry.
func (g *Gateway) Close() error {
	g.endStreams()
	g.stems.close()
	g.mu.Lock()
	names := make([]string, 0, len(g.fns))
	for n := range g.fns {
		names = append(names, n)
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() { defer wg.Done(); g.stopFunction(n) }()
	}
	wg.Wait()
	g.watchers.Wait() // every instance has stopped: their exits are logged
	g.logsMu.Lock()
	for _, l := range g.logFiles {
		l.Close()
	}
	g.logsClosed = true // a late line must not open a file again
	g.logsMu.Unlock()
	return g.reg.Close()
}

// endStreams ends the dashboard's streams (shutdown).
func (g *Gateway) endStreams() { g.closeOnce.Do(func() { close(g.closing) }) }

// Serve serves the gateway on ln until ctx ends, then stops accepting requests,
// drains in-flight ones, and stops the instances (each draining its own).
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	if err := g.CheckListen(ln.Addr()); err != nil {
		g.Close()
		return err
	}
	limited := newConnLimiter(ln, g.cfg.MaxConns)
	g.conns.Store(limited)
	ln = limited
	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       g.cfg.IdleConnTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnState:         limited.track,
		ErrorLog:          slog.NewLogLogger(g.cfg.Logger.Handler(), slog.LevelWarn),
	}
	rctx, stopReaper := context.WithCancel(ctx)
	defer stopReaper()
	go g.runReaper(rctx)
	go g.runGauges(rctx, 2*time.Second)
	go g.runBoard(rctx)
	g.stems.fill()
	srv.RegisterOnShutdown(g.endStreams)
	if g.loop != nil {
		go g.loop.Run(rctx)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		g.Close()
		return err
	case <-ctx.Done():
	}
	g.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.StopGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	return errors.Join(err, g.Close())
}

// writeJSON answers v as JSON; "<", ">" and "&" stay as they are (the API
// is not HTML, and \u003c in an error message only puzzles its reader).
func writeJSON(w http.ResponseWriter, code int, v any) {
	// Encoded first, so the answer carries its length: a client reads it
	// whole even when the connection ends soon after (see paceBody).
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, oip.ErrorResponse{Error: msg})
}
