// Package operator runs Spindle's autoscaling on Kubernetes: it watches
// InferenceFunctions and runs each one's pods under the same autoscale.Loop
// and autoscale.Decide as `spindle up`, with the cluster as the platform.
//
// The thesis's shape, on a cluster:
//   - at most one pod of a function per node: the operator places pods itself
//     (spec.nodeName), on nodes that run none of the function's pods, so the
//     model is mapped once per node and a node's pod is the one to grow;
//   - vertical first: a pod grows in place through the pods/resize
//     subresource (requests = limits, resizePolicy NotRequired: no restart),
//     and the instance inside follows its cgroup; only when the node cannot
//     grant more does a pod start on another node;
//   - to zero after idle-to-zero, as on one node.
//
// Node capacity is what a node's allocatable CPU leaves after every pod's CPU
// requests; nodes that are not Ready, or are cordoned, take no new pods, and
// a pod on a node that is gone or not Ready is deleted and counted as lost,
// so that the next decision replaces it elsewhere.
//
// State lives in the API: pods are found by label and owner, and what the
// policy remembers is kept in the function's status, so a restarted operator
// (or a new leader) goes on without starting pods twice.
package operator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
	"github.com/spindleml/spindle/internal/kube/podres"
)

// Labels and names on the pods the operator makes.
const (
	LabelFunction = "spindle.dev/function"
	ContainerName = "instance"
	// ModelCache is the node agent's content-addressed model cache, mounted
	// read-only into every pod of the node.
	ModelCache = "/var/lib/spindle/models"
	// InstancePort is where the instance in a pod serves.
	InstancePort = 8080
	// indexNode indexes pods by spec.nodeName in the operator's cache.
	indexNode = "spec.nodeName"
	// keptDecisions is how many decisions the status lists.
	keptDecisions = 10
	// expectTTL is how long a pod the operator created or deleted is assumed
	// to exist (or not) before its cache says so.
	expectTTL = 30 * time.Second
)

// WakeAnnotation is set (to the time) by the gateway on a function while
// requests wait for it and none of its pods is Ready.
const WakeAnnotation = "spindle.dev/wake"

// WakeAnnotations are the annotations whose change has a function decided on
// at once: the gateway's WakeAnnotation and the simulated load.
var WakeAnnotations = []string{WakeAnnotation, "spindle.dev/simulated-load"}

// Expirer is a StatsSource that caches: a wake makes it read again, so the
// decision sees the requests that woke the function.
type Expirer interface{ Expire() }

// Config configures an Operator.
type Config struct {
	// Image is the pods' container image when a function names none.
	Image string
	// Stats reports each function's latency and load, keyed "namespace/name".
	Stats autoscale.StatsSource
	// Clock drives the autoscaling loop; nil means the real clock.
	Clock autoscale.Clock
	// Resolution is how often the loop looks for due functions; 0 means 1 s.
	Resolution time.Duration
	// Log receives one line per applied decision; nil discards.
	Log *slog.Logger
}

// Operator is the controller. Build it with New and register it with
// SetupWithManager.
type Operator struct {
	cfg    Config
	c      client.Client
	loop   *autoscale.Loop
	events chan event.GenericEvent
	rec    recorder.EventRecorder

	mu  sync.Mutex
	fns map[string]*function
}

// function is what the operator keeps of one InferenceFunction.
type function struct {
	key  types.NamespacedName
	obj  *v1alpha1.InferenceFunction // last seen, for pod templates and owner refs
	spec autoscale.Spec
	// created and deleted are pods this operator made or deleted that its
	// cache may not show yet (name -> when).
	created map[string]*corev1.Pod
	madeAt  map[string]time.Time
	deleted map[string]time.Time
	// last is the newest record of the loop; changes the decisions that
	// changed something, newest last.
	last    *autoscale.Record
	changes []v1alpha1.Decision
	// wake is the last seen values of WakeAnnotations.
	wake string
	// failed are the function's pods that failed since one was last Ready,
	// by name, with when the operator saw it: each is reported once, and
	// new pods wait for backoff(len(failed)) after the last.
	failed map[string]time.Time
}

// backoff is how long after the last of n failed pods in a row a new pod
// may start: 1 s, doubling, at most 5 min (a model that cannot load does
// not make a pod a second).
func backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return min(5*time.Minute, time.Second<<min(n-1, 10))
}

// New returns an operator; cfg.Stats is required.
func New(cfg Config) (*Operator, error) {
	if cfg.Stats == nil {
		return nil, errors.New("operator: stats source is nil")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Operator{cfg: cfg, fns: map[string]*function{}, events: make(chan event.GenericEvent, 256)}, nil
}

// SetupWithManager registers the controller and the autoscaling loop (run
// only by the leader) with mgr.
func (o *Operator) SetupWithManager(mgr manager.Manager) error {
	o.c = mgr.GetClient()
	o.rec = mgr.GetEventRecorder("spindle-operator")
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, indexNode, func(obj client.Object) []string {
		if n := obj.(*corev1.Pod).Spec.NodeName; n != "" {
			return []string{n}
		}
		return nil
	}); err != nil {
		return err
	}
	loop, err := autoscale.NewLoop(autoscale.LoopConfig{
		Clock: o.cfg.Clock, Stats: o.cfg.Stats, Actuator: o, Nodes: o,
		Resolution: o.cfg.Resolution, Observe: o.observe,
	})
	if err != nil {
		return err
	}
	o.loop = loop
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if err := loop.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("inferencefunction").
		// A process may set up the controller again (a restarted operator
		// in tests); its metrics are the same either way.
		WithOptions(controller.Options{SkipNameValidation: new(true)}).
		For(&v1alpha1.InferenceFunction{}).
		Owns(&corev1.Pod{}).
		WatchesRawSource(source.Channel(o.events, &handler.EnqueueRequestForObject{})).
		Complete(o)
}

// Reconcile brings the loop's set of functions in line with the API and
// writes the function's status.
func (o *Operator) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := req.NamespacedName.String()
	var f v1alpha1.InferenceFunction
	if err := o.c.Get(ctx, req.NamespacedName, &f); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// Gone: stop deciding, and delete its pods (a cluster's garbage
		// collector would too, through the owner references; a control
		// plane without one must not keep them).
		o.loop.Remove(key)
		o.mu.Lock()
		delete(o.fns, key)
		o.mu.Unlock()
		return ctrl.Result{}, o.deletePods(ctx, req.NamespacedName)
	}
	if !f.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	spec, specErr := SpecOf(&f)
	o.mu.Lock()
	fn := o.fns[key]
	if fn == nil {
		fn = &function{key: req.NamespacedName, created: map[string]*corev1.Pod{}, madeAt: map[string]time.Time{}, deleted: map[string]time.Time{}, failed: map[string]time.Time{}}
		fn.changes = append(fn.changes, f.Status.Decisions...)
		o.fns[key] = fn
	}
	fn.obj = f.DeepCopy()
	fn.spec = spec
	// A change of what the function's load is read from, or an explicit
	// wake, is decided on now rather than at the function's next interval.
	wake := ""
	for _, a := range WakeAnnotations {
		wake += a + "=" + f.Annotations[a] + "\n"
	}
	woken := fn.wake != "" && fn.wake != wake
	fn.wake = wake
	o.mu.Unlock()

	if specErr != nil {
		o.loop.Remove(key)
	} else {
		_, known := o.loop.Spec(key)
		if err := o.loop.Set(key, spec); err != nil {
			specErr = err
		} else if !known && f.Status.Memory != nil {
			// A restarted operator goes on from what the status kept.
			if err := o.loop.Restore(key, memoryFrom(f.Status.Memory)); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	if woken && specErr == nil {
		if e, ok := o.cfg.Stats.(Expirer); ok {
			e.Expire()
		}
		o.loop.Wake(key)
	}
	return ctrl.Result{}, o.writeStatus(ctx, req.NamespacedName, specErr)
}

// SpecOf parses the function's scaling policy and parameters (hybrid when
// it names none); the error names the field.
func SpecOf(f *v1alpha1.InferenceFunction) (autoscale.Spec, error) {
	policy := f.Spec.Scaling.Policy
	if policy == "" {
		policy = string(autoscale.Hybrid)
	}
	spec, err := autoscale.ParseSpec(autoscale.Policy(policy), f.Spec.Scaling.Params)
	if err != nil {
		return spec, fmt.Errorf("spec.scaling: %w", err)
	}
	return spec, nil
}

// writeStatus computes the function's status from its pods and the loop's
// latest records and writes it, retrying on conflicts.
func (o *Operator) writeStatus(ctx context.Context, key types.NamespacedName, specErr error) error {
	pods, err := o.pods(ctx, key)
	if err != nil {
		return err
	}
	o.mu.Lock()
	fn := o.fns[key.String()]
	var last *autoscale.Record
	var changes []v1alpha1.Decision
	if fn != nil {
		last = fn.last
		changes = append(changes, fn.changes...)
		// A pod the cache shows is no longer only expected: if it goes
		// before the next decision (its instance died), it must not be
		// counted for the rest of expectTTL.
		for _, p := range pods {
			delete(fn.created, p.Name)
			delete(fn.madeAt, p.Name)
		}
	}
	o.mu.Unlock()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var f v1alpha1.InferenceFunction
		if err := o.c.Get(ctx, key, &f); err != nil {
			return client.IgnoreNotFound(err)
		}
		before := f.Status.DeepCopy()
		st := &f.Status
		st.ObservedGeneration = f.Generation
		st.Pods = len(pods)
		st.Placement = st.Placement[:0]
		var granted, ready, pending int64
		for _, p := range pods {
			req, got := podres.RequestedCPU(p), podres.GrantedCPU(p)
			pl := v1alpha1.PodPlacement{Pod: p.Name, Node: p.Spec.NodeName, Requested: vcpuText(req), Ready: podres.Ready(p)}
			if got >= 0 {
				pl.Granted = vcpuText(got)
				granted += got
			}
			if pl.Ready {
				ready++
			}
			if got != req || !pl.Ready {
				pending++
			}
			st.Placement = append(st.Placement, pl)
		}
		st.VCPUs = vcpuText(granted)
		if last != nil {
			st.P99 = max(last.Stats.P99, last.Stats.QueueAge).Round(time.Millisecond).String()
			st.Memory = memoryOf(last.Decision.Memory)
		}
		st.Decisions = changes
		if n := len(changes); n > 0 {
			d := changes[n-1]
			st.LastDecision = &d
		}
		setConditions(st, f.Generation, specErr, len(pods), ready, pending)
		if equality.Semantic.DeepEqual(*before, f.Status) {
			return nil // a steady function costs the API server nothing
		}
		return o.c.Status().Update(ctx, &f)
	})
}

func setConditions(st *v1alpha1.InferenceFunctionStatus, gen int64, specErr error, pods int, ready, pending int64) {
	readyCond := metav1.Condition{Type: "Ready", ObservedGeneration: gen}
	switch {
	case specErr != nil:
		readyCond.Status, readyCond.Reason, readyCond.Message = metav1.ConditionFalse, "InvalidSpec", specErr.Error()
	case pods == 0:
		readyCond.Status, readyCond.Reason, readyCond.Message = metav1.ConditionTrue, "ScaledToZero", "no pods; the first request starts one"
	case ready > 0:
		readyCond.Status, readyCond.Reason, readyCond.Message = metav1.ConditionTrue, "Serving", fmt.Sprintf("%d of %d pods ready", ready, pods)
	default:
		readyCond.Status, readyCond.Reason, readyCond.Message = metav1.ConditionFalse, "Starting", fmt.Sprintf("%d pods starting", pods)
	}
	meta.SetStatusCondition(&st.Conditions, readyCond)
	scaling := metav1.Condition{Type: "Scaling", ObservedGeneration: gen, Status: metav1.ConditionFalse, Reason: "Steady", Message: "every pod ready with the CPU it asked for"}
	if pending > 0 {
		scaling.Status, scaling.Reason, scaling.Message = metav1.ConditionTrue, "InProgress", fmt.Sprintf("%d pods starting or waiting for a resize", pending)
	}
	meta.SetStatusCondition(&st.Conditions, scaling)
}

// observe keeps the loop's records for the status and asks for a reconcile,
// which writes it.
func (o *Operator) observe(key string, r autoscale.Record) {
	o.mu.Lock()
	fn := o.fns[key]
	if fn == nil {
		o.mu.Unlock()
		return
	}
	rec := r
	fn.last = &rec
	if r.Applied {
		fn.changes = append(fn.changes, v1alpha1.Decision{
			Time:   metav1.NewMicroTime(r.Time.Truncate(time.Microsecond)), // as the API keeps it
			Action: string(r.Decision.Action),
			VCPUs:  strconv.FormatFloat(r.Decision.VCPUs(), 'f', -1, 64),
			Pods:   len(r.Decision.Instances),
			Reason: r.Decision.Reason,
		})
		if n := len(fn.changes); n > keptDecisions {
			fn.changes = append([]v1alpha1.Decision(nil), fn.changes[n-keptDecisions:]...)
		}
		o.cfg.Log.Info("decision", "function", key, "action", r.Decision.Action, "vcpus", r.Decision.VCPUs(), "pods", len(r.Decision.Instances), "reason", r.Decision.Reason)
	} else if r.Err != "" {
		o.cfg.Log.Warn("decision failed", "function", key, "error", r.Err)
	}
	obj := fn.obj
	o.mu.Unlock()
	// kubectl describe lists the function's decisions as events.
	if o.rec != nil && obj != nil {
		switch {
		case r.Applied:
			o.rec.Eventf(obj, nil, corev1.EventTypeNormal, eventReason[r.Decision.Action], string(r.Decision.Action), "%s", r.Decision.Reason)
		case r.Err != "":
			o.rec.Eventf(obj, nil, corev1.EventTypeWarning, "ScalingFailed", string(r.Decision.Action), "%s", r.Err)
		}
	}
	select {
	case o.events <- event.GenericEvent{Object: obj}:
	default: // a reconcile is already queued
	}
}

// eventReason names each action's event.
var eventReason = map[autoscale.Action]string{
	autoscale.ScaleUp:   "ScaledUp",
	autoscale.ScaleDown: "ScaledDown",
	autoscale.FromZero:  "ScaledFromZero",
	autoscale.ToZero:    "ScaledToZero",
	autoscale.Reconcile: "Reconciled",
	autoscale.Hold:      "Held",
}

func memoryOf(m autoscale.Memory) *v1alpha1.PolicyMemory {
	t := func(x time.Time) *metav1.Time {
		if x.IsZero() {
			return nil
		}
		// To the second, as the API keeps it: a status that did not
		// change is then equal to the one read back, and not written.
		v := metav1.NewTime(x).Rfc3339Copy()
		return &v
	}
	out := &v1alpha1.PolicyMemory{LastChange: t(m.LastChange), CalmSince: t(m.CalmSince), PanicUntil: t(m.PanicUntil)}
	if m.CalmNeed != 0 {
		out.CalmNeed = strconv.FormatFloat(m.CalmNeed, 'f', -1, 64)
	}
	return out
}

func memoryFrom(p *v1alpha1.PolicyMemory) autoscale.Memory {
	t := func(x *metav1.Time) time.Time {
		if x == nil {
			return time.Time{}
		}
		return x.Time
	}
	m := autoscale.Memory{LastChange: t(p.LastChange), CalmSince: t(p.CalmSince), PanicUntil: t(p.PanicUntil)}
	m.CalmNeed, _ = strconv.ParseFloat(p.CalmNeed, 64)
	return m
}

// vcpuText writes millicores as vCPUs: 2500 -> "2.5".
func vcpuText(milli int64) string {
	return strconv.FormatFloat(float64(milli)/1000, 'f', -1, 64)
}

func nodeReady(n *corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// pods lists the function's live pods from the cache, oldest first.
func (o *Operator) pods(ctx context.Context, key types.NamespacedName) ([]*corev1.Pod, error) {
	var list corev1.PodList
	if err := o.c.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingLabels{LabelFunction: key.Name}); err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			// An instance that exited (or a pod its kubelet refused) is not
			// restarted in place: remove it, the next decision replaces it,
			// and say why on the function (kubectl describe).
			if p.DeletionTimestamp == nil {
				if err := o.c.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
					return nil, err
				}
				o.podEnded(key, p)
			}
			continue
		}
		if p.DeletionTimestamp != nil {
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(a, b int) bool {
		ta, tb := out[a].CreationTimestamp, out[b].CreationTimestamp
		if !ta.Equal(&tb) {
			return ta.Before(&tb)
		}
		return out[a].Name < out[b].Name
	})
	return out, nil
}

// podEnded records, as an event of the function, why one of its pods
// ended.
func (o *Operator) podEnded(key types.NamespacedName, p *corev1.Pod) {
	o.mu.Lock()
	var obj *v1alpha1.InferenceFunction
	fn := o.fns[key.String()]
	if fn != nil {
		if _, seen := fn.failed[p.Name]; seen {
			o.mu.Unlock()
			return
		}
		fn.failed[p.Name] = time.Now()
		obj = fn.obj
	}
	o.mu.Unlock()
	if o.rec == nil || obj == nil {
		return
	}
	why := p.Status.Message
	if why == "" {
		why = p.Status.Reason
	}
	if why == "" {
		why = string(p.Status.Phase)
	}
	o.rec.Eventf(obj, p, corev1.EventTypeWarning, "PodFailed", "Replace", "pod %s on %s ended: %s", p.Name, p.Spec.NodeName, why)
}

func (o *Operator) deletePods(ctx context.Context, key types.NamespacedName) error {
	pods, err := o.pods(ctx, key)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		if err := o.c.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
