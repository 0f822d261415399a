// Package kubesim simulates what a cluster without containers lacks, for the
// operator's tests and `spindle kube dev`: the kubelet's side of in-place
// resize (kwok moves pods through their phases but does not resize them) and
// the traffic that makes a function's p99 (no instance runs in a simulated
// pod). Both are simulations and are named so wherever they are used; the
// API server they talk to is real.
package kubesim

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/spindleml/spindle/internal/kube/podres"
)

// Kubelet grants in-place resizes of pods on simulated nodes as a kubelet
// does: when a pod's spec asks for CPU other than what its status reports,
// the new amount is granted (containerStatuses[].resources and
// allocatedResources follow the spec) if the node's allocatable CPU holds it
// beside what the node's other pods were granted; otherwise the pod gets the
// PodResizePending condition, reason Infeasible (more than the node has) or
// Deferred (more than is free now), and is granted once room appears.
type Kubelet struct {
	// NodeAnnotation selects the simulated nodes (kwok's annotation), unless
	// Manages is set.
	NodeAnnotation string
	// Manages, when set, selects the nodes whose pods it resizes.
	Manages func(*corev1.Node) bool
	// Grant, when set, applies a granted resize (the pod and its new CPU in
	// millicores) before the status says so, as a kubelet changes the
	// container's cgroup first; Processes.Grant does for process nodes. An
	// error leaves the resize to a retry.
	Grant func(ctx context.Context, p *corev1.Pod, milliCPU int64) error
	c     client.Client
}

func (k *Kubelet) manages(n *corev1.Node) bool {
	if k.Manages != nil {
		return k.Manages(n)
	}
	_, ok := n.Annotations[k.NodeAnnotation]
	return ok
}

const indexNode = "kubesim.spec.nodeName"

// SetupWithManager registers the simulated kubelet with mgr.
func (k *Kubelet) SetupWithManager(mgr manager.Manager) error {
	k.c = mgr.GetClient()
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, indexNode, func(obj client.Object) []string {
		if n := obj.(*corev1.Pod).Spec.NodeName; n != "" {
			return []string{n}
		}
		return nil
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("simulated-kubelet").
		WithOptions(controller.Options{SkipNameValidation: new(true)}).For(&corev1.Pod{}).Complete(k)
}

// Reconcile grants or defers one pod's resize.
func (k *Kubelet) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p corev1.Pod
	if err := k.c.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if p.Spec.NodeName == "" || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return ctrl.Result{}, nil
	}
	var node corev1.Node
	if err := k.c.Get(ctx, types.NamespacedName{Name: p.Spec.NodeName}, &node); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !k.manages(&node) {
		return ctrl.Result{}, nil // a real kubelet's pod
	}
	want, have := podres.RequestedCPU(&p), podres.GrantedCPU(&p)
	if want == have {
		return ctrl.Result{}, nil
	}
	alloc := node.Status.Allocatable.Cpu().MilliValue()
	var others corev1.PodList
	if err := k.c.List(ctx, &others, client.MatchingFields{indexNode: node.Name}); err != nil {
		return ctrl.Result{}, err
	}
	var used int64
	for i := range others.Items {
		o := &others.Items[i]
		if o.UID == p.UID || o.Status.Phase == corev1.PodSucceeded || o.Status.Phase == corev1.PodFailed {
			continue
		}
		used += max(podres.GrantedCPU(o), 0)
	}
	switch {
	case want > alloc:
		return ctrl.Result{}, k.pending(ctx, &p, "Infeasible", fmt.Sprintf("Node didn't have enough capacity: cpu, requested: %d, capacity: %d", want, alloc))
	case used+want > alloc:
		// Retried when another pod of the node changes.
		return ctrl.Result{}, k.pending(ctx, &p, "Deferred", fmt.Sprintf("Node didn't have enough resource: cpu, requested: %d, used: %d, capacity: %d", want, used, alloc))
	}
	if k.Grant != nil {
		if err := k.Grant(ctx, &p, want); err != nil {
			return ctrl.Result{}, err
		}
	}
	for i := range p.Status.ContainerStatuses {
		cs := &p.Status.ContainerStatuses[i]
		for _, c := range p.Spec.Containers {
			if c.Name == cs.Name {
				res := c.Resources.DeepCopy()
				cs.Resources = res
				cs.AllocatedResources = res.Requests.DeepCopy()
			}
		}
	}
	removeCondition(&p, corev1.PodResizePending)
	removeCondition(&p, corev1.PodResizeInProgress)
	if err := k.c.Status().Update(ctx, &p); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, err
	}
	// Deferred resizes of the node's other pods may fit now.
	return ctrl.Result{}, nil
}

func (k *Kubelet) pending(ctx context.Context, p *corev1.Pod, reason, msg string) error {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodResizePending && c.Reason == reason && c.Message == msg {
			return nil
		}
	}
	removeCondition(p, corev1.PodResizePending)
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodResizePending, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
		LastTransitionTime: metav1.Now(),
	})
	err := k.c.Status().Update(ctx, p)
	if apierrors.IsConflict(err) {
		return nil // the newer pod comes back through the watch
	}
	return err
}

func removeCondition(p *corev1.Pod, t corev1.PodConditionType) {
	out := p.Status.Conditions[:0]
	for _, c := range p.Status.Conditions {
		if c.Type != t {
			out = append(out, c)
		}
	}
	p.Status.Conditions = out
}
