// Package router is Spindle's gateway on Kubernetes: the data plane in front
// of the InferenceFunctions of one namespace. It serves the OIP v2 routes and
// the task endpoints, sends each request to the least-loaded Ready pod of its
// function, and holds requests for a function at zero (bounded in number and
// by their deadlines) while it asks the operator for a pod, through the
// function's spindle.dev/wake annotation. It measures what the operator's
// autoscaler decides on (arrivals, latency percentiles, queue) over each
// function's own policy windows, and serves them on its admin address
// (GET /internal/v1/stats; Gateways reads them for the operator).
//
// Any number of replicas may run (a Deployment behind a Service): each keeps
// its own windows, and Gateways merges them.
package router

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sync/semaphore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
	"github.com/spindleml/spindle/internal/kube/operator"
	"github.com/spindleml/spindle/internal/kube/podres"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/oip"
)

// WakeAnnotation is set (to the time, RFC 3339) on a function while requests
// wait for it and none of its pods is Ready: the operator decides on the
// function at once, and its policy starts a pod for the queue.
const WakeAnnotation = operator.WakeAnnotation

// ErrQueueFull is the answer (429) when too many requests already wait for a
// function's first pod.
var ErrQueueFull = errors.New("too many requests waiting for a pod")

// errRemoved is acquire's answer once a function was deleted while its
// request waited.
var errRemoved = errors.New("function deleted")

// Config configures a Router. Zero values take the defaults noted.
type Config struct {
	// Namespace is where the functions it serves live; required.
	Namespace string
	// MaxWaiting bounds the requests per function that wait for a pod; more
	// get 429. 0 means 1024.
	MaxWaiting int
	// DefaultTimeout is a request's deadline when it sets no Spindle-Timeout
	// header; MaxTimeout caps the header. 0 means 60 s and 10 min.
	DefaultTimeout, MaxTimeout time.Duration
	// MaxBodyBytes caps a request body; 0 means 64 MiB.
	MaxBodyBytes int64
	// MaxBodyBytesInFlight bounds the request bodies held at once, over all
	// requests (each reserves its declared length, or MaxBodyBytes, before it
	// is read; a body is held until its pod answered, for the retry); a
	// request that finds no room within a few seconds gets 503. 0 means
	// 512 MiB.
	MaxBodyBytesInFlight int64
	// WakeEvery is the least time between two wake annotations of one
	// function while its requests wait; 0 means 1 s.
	WakeEvery time.Duration
	// Keys, when set, are the tenants' API keys (key -> tenant, see
	// LoadKeys): every request but the health checks then needs
	// `Authorization: Bearer KEY`, and a function is served only to its
	// spec.tenant (DefaultTenant when it names none); another tenant's
	// function is as missing as one never deployed. Without keys the
	// gateway is open: the cluster's network decides who reaches it.
	Keys map[string]string
	// Log receives the router's own lines; nil discards.
	Log *slog.Logger
}

func (c *Config) setDefaults() {
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
	if c.WakeEvery <= 0 {
		c.WakeEvery = time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Router is the gateway on a cluster. Build it with New, register it with
// SetupWithManager, and serve Handler (requests) and AdminHandler (metrics
// and the autoscaler's statistics).
type Router struct {
	cfg     Config
	keys    map[[sha256.Size]byte]string // sha256 of a key -> its tenant
	c       client.Client
	metrics *metrics.Metrics
	proxy   *httputil.ReverseProxy
	bodies  *semaphore.Weighted
	synced  atomic.Bool

	mu  sync.Mutex
	fns map[string]*function // by name
}

// New returns a router for cfg.Namespace.
func New(cfg Config) (*Router, error) {
	cfg.setDefaults()
	if cfg.Namespace == "" {
		return nil, errors.New("router: a namespace is required")
	}
	r := &Router{cfg: cfg, metrics: metrics.New(), fns: map[string]*function{},
		bodies: semaphore.NewWeighted(cfg.MaxBodyBytesInFlight)}
	if len(cfg.Keys) > 0 {
		r.keys = map[[sha256.Size]byte]string{}
		for k, tenant := range cfg.Keys {
			r.keys[sha256.Sum256([]byte(k))] = tenant
		}
	}
	r.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pr.In.Context().Value(callKey{}).(*call).upstream)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			WriteBufferSize:     16 << 10,
			ReadBufferSize:      16 << 10,
		},
		// Nothing was written when the transport fails: the handler decides
		// between a retry and an answer.
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			req.Context().Value(callKey{}).(*call).err = err
		},
	}
	return r, nil
}

type callKey struct{}

// call carries a proxied request's upstream in and its transport error out.
type call struct {
	upstream *url.URL
	err      error
}

// SetupWithManager registers the router's view of functions and pods with
// mgr (whose cache should be limited to the router's namespace).
func (r *Router) SetupWithManager(mgr manager.Manager) error {
	r.c = mgr.GetClient()
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if mgr.GetCache().WaitForCacheSync(ctx) {
			r.synced.Store(true)
		}
		<-ctx.Done()
		return nil
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("gateway").
		WithOptions(controller.Options{SkipNameValidation: new(true), NeedLeaderElection: new(false)}).
		For(&v1alpha1.InferenceFunction{}).
		Owns(&corev1.Pod{}).
		Complete(r)
}

// Reconcile brings one function's routing in line with the API: its policy
// windows and its Ready pods.
func (r *Router) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if req.Namespace != r.cfg.Namespace {
		return ctrl.Result{}, nil
	}
	_, err := r.sync(ctx, req.Name)
	return ctrl.Result{}, err
}

// sync reads function name and its pods from the cache into its routing
// state, and returns the state; nil when the function does not exist.
func (r *Router) sync(ctx context.Context, name string) (*function, error) {
	key := types.NamespacedName{Namespace: r.cfg.Namespace, Name: name}
	var f v1alpha1.InferenceFunction
	if err := r.c.Get(ctx, key, &f); err != nil {
		if apierrors.IsNotFound(err) {
			r.drop(name)
			return nil, nil
		}
		return nil, err
	}
	if !f.DeletionTimestamp.IsZero() {
		r.drop(name)
		return nil, nil
	}
	var pods corev1.PodList
	if err := r.c.List(ctx, &pods, client.InNamespace(r.cfg.Namespace), client.MatchingLabels{operator.LabelFunction: name}); err != nil {
		return nil, err
	}
	var eps []*endpoint
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || !podres.Ready(p) {
			continue
		}
		milli := podres.GrantedCPU(p)
		if milli < 0 { // no kubelet report yet: what it asked for
			milli = podres.RequestedCPU(p)
		}
		vcpu := float64(milli) / 1000
		eps = append(eps, &endpoint{pod: p.Name, url: &url.URL{Scheme: "http",
			Host: net.JoinHostPort(p.Status.PodIP, strconv.Itoa(operator.InstancePort))}, vcpu: vcpu})
	}
	spec, specErr := operator.SpecOf(&f)
	tenant := f.Spec.Tenant
	if tenant == "" {
		tenant = DefaultTenant
	}
	r.mu.Lock()
	fn := r.fns[name]
	if fn == nil {
		fn = newFunction(key.String(), time.Now())
		r.fns[name] = fn
	}
	r.mu.Unlock()
	fn.update(tenant, spec, specErr, eps)
	return fn, nil
}

// drop forgets a deleted function: its waiting requests get 404.
func (r *Router) drop(name string) {
	r.mu.Lock()
	fn := r.fns[name]
	delete(r.fns, name)
	r.mu.Unlock()
	if fn != nil {
		fn.remove()
		r.metrics.Forget(fn.key)
	}
}

// lookup returns function name's routing state, reading it from the cache
// if no reconcile made it yet (a function created a moment ago); nil, after
// answering 404 or 503, when there is none.
func (r *Router) lookup(w http.ResponseWriter, req *http.Request) *function {
	tenant, ok := r.authenticate(w, req)
	if !ok {
		return nil
	}
	name := req.PathValue("name")
	if v := req.PathValue("version"); v != "" && v != oip.ModelVersion {
		writeError(w, http.StatusNotFound, fmt.Sprintf("function %q has no version %q (versions: %s)", name, v, oip.ModelVersion))
		return nil
	}
	if !r.synced.Load() {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the gateway has not read the cluster's functions yet; retry")
		return nil
	}
	r.mu.Lock()
	fn := r.fns[name]
	r.mu.Unlock()
	if fn == nil {
		var err error
		if fn, err = r.sync(req.Context(), name); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return nil
		}
	}
	if fn == nil || (r.keys != nil && fn.owner() != tenant) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("function %q is not deployed in namespace %s", name, r.cfg.Namespace))
		return nil
	}
	if err := fn.invalid(); err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("function %q cannot run: %v", name, err))
		return nil
	}
	return fn
}

// authenticate returns the caller's tenant ("" when the gateway has no
// keys), or answers 401.
func (r *Router) authenticate(w http.ResponseWriter, req *http.Request) (string, bool) {
	if r.keys == nil {
		return "", true
	}
	scheme, key, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	key = strings.TrimSpace(key)
	if !strings.EqualFold(scheme, "Bearer") || key == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="spindle"`)
		writeError(w, http.StatusUnauthorized, "authorization: want 'Authorization: Bearer KEY' (a tenant's key)")
		return "", false
	}
	tenant, ok := r.keys[sha256.Sum256([]byte(key))]
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="spindle"`)
		writeError(w, http.StatusUnauthorized, "authorization: unknown key")
		return "", false
	}
	return tenant, true
}

// Handler serves the OIP v2 routes and the task endpoints.
func (r *Router) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", r.ready)
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, oip.ServerMetadata())
	})
	for _, prefix := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		mux.HandleFunc("GET "+prefix, r.forward)
		mux.HandleFunc("GET "+prefix+"/ready", r.modelReady)
		mux.HandleFunc("POST "+prefix+"/infer", r.forward)
	}
	mux.HandleFunc("POST /v1/tasks/{name}", r.forward)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s %s: no such endpoint", req.Method, req.URL.Path))
	})
	return mux
}

// AdminHandler serves GET /metrics (Prometheus) and GET /internal/v1/stats
// (the functions' window statistics, a Report), for the cluster's inside
// only.
func (r *Router) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", r.metrics.Handler())
	mux.HandleFunc("GET "+StatsPath, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, r.Report(time.Now()))
	})
	mux.HandleFunc("GET /readyz", r.ready)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	return mux
}

func (r *Router) ready(w http.ResponseWriter, _ *http.Request) {
	if !r.synced.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

// modelReady answers 200 for a function that can run: at zero it is ready
// to serve (the request starts a pod).
func (r *Router) modelReady(w http.ResponseWriter, req *http.Request) {
	if fn := r.lookup(w, req); fn != nil {
		writeJSON(w, http.StatusOK, map[string]any{"name": req.PathValue("name"), "ready": true})
	}
}

// forward sends a request to a Ready pod of its function, waiting for one
// (and waking the function) when none is, under the request's deadline. A
// pod that cannot be reached (it went away between the watch and the
// request) gets the request retried once on another.
func (r *Router) forward(w http.ResponseWriter, req *http.Request) {
	fn := r.lookup(w, req)
	if fn == nil {
		return
	}
	timeout, err := api.RequestTimeout(req.Header.Get(api.TimeoutHeader), r.cfg.DefaultTimeout, r.cfg.MaxTimeout)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	began := time.Now()
	r.metrics.Arrive(fn.key)
	fn.arrive(began)
	sw := &statusWriter{ResponseWriter: w}
	var cold time.Duration
	defer func() {
		// Prometheus sees what the client saw; the autoscaler's windows
		// leave out a wait for a start from zero (a cold start is the
		// policy's FromZero, not a reason to grow the pod it waited for).
		d := time.Since(began)
		r.metrics.Observe(fn.key, sw.code, d)
		fn.record(time.Now(), d-cold, metrics.Succeeded(sw.code))
	}()
	body, release, ok := r.readBody(ctx, sw, req)
	if !ok {
		return
	}
	defer release()
	for attempt := 0; ; attempt++ {
		ep, waited, err := fn.acquire(ctx, r.cfg.MaxWaiting, func() { r.wake(fn) })
		cold += waited
		if err != nil {
			switch {
			case errors.Is(err, errRemoved):
				writeError(sw, http.StatusNotFound, fmt.Sprintf("function %q was deleted while the request waited", req.PathValue("name")))
			case errors.Is(err, context.DeadlineExceeded):
				writeError(sw, http.StatusGatewayTimeout, fmt.Sprintf("function %q: deadline %s exceeded while waiting for a pod", req.PathValue("name"), timeout))
			case errors.Is(err, context.Canceled):
				writeError(sw, 499, "client closed the request")
			case errors.Is(err, ErrQueueFull):
				writeError(sw, http.StatusTooManyRequests, err.Error())
			default:
				writeError(sw, http.StatusServiceUnavailable, err.Error())
			}
			return
		}
		c := &call{upstream: ep.url}
		out := req.Clone(context.WithValue(ctx, callKey{}, c))
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		r.proxy.ServeHTTP(sw, out)
		fn.release(ep)
		if c.err == nil {
			return
		}
		switch {
		case errors.Is(c.err, context.DeadlineExceeded):
			writeError(sw, http.StatusGatewayTimeout, fmt.Sprintf("function %q: deadline %s exceeded while the pod was computing", req.PathValue("name"), timeout))
			return
		case errors.Is(c.err, context.Canceled):
			writeError(sw, 499, "client closed the request")
			return
		}
		ep.fail(time.Now())
		if attempt > 0 || ctx.Err() != nil {
			writeError(sw, http.StatusBadGateway, fmt.Sprintf("function %q: pod %s failed (%v), and the retry failed too", req.PathValue("name"), ep.pod, c.err))
			return
		}
		r.cfg.Log.Warn("pod unreachable; retrying", "function", fn.key, "pod", ep.pod, "err", c.err)
	}
}

// readBody reads req's body within the router's body budget, by its
// deadline; on failure it has answered (413, 503, 400).
func (r *Router) readBody(ctx context.Context, w http.ResponseWriter, req *http.Request) ([]byte, func(), bool) {
	n := req.ContentLength
	if n > r.cfg.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: %d bytes, more than the limit of %d", n, r.cfg.MaxBodyBytes))
		return nil, nil, false
	}
	if n < 0 {
		n = r.cfg.MaxBodyBytes
	}
	n = min(n, r.cfg.MaxBodyBytesInFlight) // a body larger than the budget has it all
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := r.bodies.Acquire(wctx, n)
	cancel()
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the gateway holds as many request bodies as it may (%s); retry", humanize.IBytes(uint64(r.cfg.MaxBodyBytesInFlight))))
		return nil, nil, false
	}
	release := func() { r.bodies.Release(n) }
	if d, ok := ctx.Deadline(); ok {
		http.NewResponseController(w).SetReadDeadline(d)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.cfg.MaxBodyBytes))
	if err != nil {
		release()
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: more than the limit of %d bytes", r.cfg.MaxBodyBytes))
		} else {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("body: %v", err))
		}
		return nil, nil, false
	}
	return body, release, true
}

// wake sets the function's WakeAnnotation, at most once per WakeEvery; the
// patch runs beside the waiting request.
func (r *Router) wake(fn *function) {
	now := time.Now()
	if !fn.wakeDue(now, r.cfg.WakeEvery) {
		return
	}
	name := fn.key[len(r.cfg.Namespace)+1:]
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{WakeAnnotation: now.UTC().Format(time.RFC3339Nano)}}})
		obj := &v1alpha1.InferenceFunction{}
		obj.Namespace, obj.Name = r.cfg.Namespace, name
		if err := r.c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
			r.cfg.Log.Warn("wake", "function", fn.key, "err", err)
			return
		}
		r.cfg.Log.Info("woke function at zero", "function", fn.key)
	}()
}

// statusWriter remembers the status code of the answer.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func writeJSON(w http.ResponseWriter, code int, v any) {
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
