package nodeagent

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
)

// Agent keeps one node's cache in line with the InferenceFunctions: it
// fetches every URL model a function names (once per digest), reports the
// outcome as events of the function, and removes models no function names
// any more.
type Agent struct {
	// Node is the node's name (the DaemonSet passes spec.nodeName).
	Node  string
	Cache *Cache
	// OCIOptions configure pulls of OCI model sources (credentials,
	// transport); none means anonymous pulls over HTTPS.
	OCIOptions []remote.Option

	c   client.Client
	rec recorder.EventRecorder
}

// SetupWithManager registers the agent with mgr. Every node's agent works
// (no leader election): each keeps its own node's cache.
func (a *Agent) SetupWithManager(mgr manager.Manager) error {
	a.c = mgr.GetClient()
	a.rec = mgr.GetEventRecorder("spindle-node-agent")
	return ctrl.NewControllerManagedBy(mgr).
		Named("node-agent").
		WithOptions(controller.Options{SkipNameValidation: new(true), NeedLeaderElection: new(false), MaxConcurrentReconciles: 4}).
		For(&v1alpha1.InferenceFunction{}).
		Complete(a)
}

// Reconcile fetches the function's model into the cache and prunes models
// that no function names.
func (a *Agent) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var f v1alpha1.InferenceFunction
	err := a.c.Get(ctx, req.NamespacedName, &f)
	if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	if err == nil && f.DeletionTimestamp.IsZero() {
		m := f.Spec.Model
		switch {
		case m.URL != "" && !a.Cache.Has(m.SHA256):
			began := time.Now()
			if _, err := a.Cache.Ensure(ctx, m.URL, m.SHA256); err != nil {
				a.rec.Eventf(&f, nil, corev1.EventTypeWarning, "ModelFetchFailed", "Fetch", "node %s: %v", a.Node, err)
				return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
			}
			a.rec.Eventf(&f, nil, corev1.EventTypeNormal, "ModelCached", "Fetch", "node %s: sha256 %s verified and cached in %s", a.Node, m.SHA256[:12], time.Since(began).Round(time.Millisecond))
		case m.OCI != "" && !a.Cache.Has(m.SHA256):
			began := time.Now()
			if _, err := a.Cache.EnsureOCI(ctx, m.OCI, m.SHA256, a.OCIOptions...); err != nil {
				a.rec.Eventf(&f, nil, corev1.EventTypeWarning, "ModelFetchFailed", "Fetch", "node %s: %v", a.Node, err)
				return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
			}
			a.rec.Eventf(&f, nil, corev1.EventTypeNormal, "ModelCached", "Fetch", "node %s: %s (sha256 %s) verified and cached in %s", a.Node, m.OCI, m.SHA256[:12], time.Since(began).Round(time.Millisecond))
		}
	}
	return ctrl.Result{}, a.prune(ctx)
}

// prune removes the models no function names.
func (a *Agent) prune(ctx context.Context) error {
	var list v1alpha1.InferenceFunctionList
	if err := a.c.List(ctx, &list); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, f := range list.Items {
		if d := f.Spec.Model.SHA256; d != "" {
			keep[d] = true
		}
	}
	_, err := a.Cache.Prune(keep)
	return err
}
