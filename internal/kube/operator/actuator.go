package operator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/kube/podres"
)

// apiTimeout bounds one call of the loop to the API server.
const apiTimeout = 10 * time.Second

// Nodes lists the Ready, schedulable nodes with the CPU every live pod on
// them asks for (autoscale.Nodes).
func (o *Operator) Nodes() []autoscale.Node {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	var nodes corev1.NodeList
	if err := o.c.List(ctx, &nodes); err != nil {
		o.cfg.Log.Warn("list nodes", "error", err)
		return nil
	}
	expected := o.expectedPods()
	out := make([]autoscale.Node, 0, len(nodes.Items))
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !nodeReady(n) {
			continue
		}
		var pods corev1.PodList
		if err := o.c.List(ctx, &pods, client.MatchingFields{indexNode: n.Name}); err != nil {
			o.cfg.Log.Warn("list pods", "node", n.Name, "error", err)
			continue
		}
		var used int64
		seen := map[string]bool{}
		for j := range pods.Items {
			p := &pods.Items[j]
			seen[p.Namespace+"/"+p.Name] = true
			if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			used += max(podres.RequestedCPU(p), podres.GrantedCPU(p))
		}
		for name, p := range expected {
			if p.Spec.NodeName == n.Name && !seen[name] {
				used += podres.RequestedCPU(p)
			}
		}
		out = append(out, autoscale.Node{
			Name: n.Name,
			CPUs: float64(n.Status.Allocatable.Cpu().MilliValue()) / 1000,
			Used: float64(used) / 1000,
		})
	}
	// By name: placement among equals does not depend on the cache's order.
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// expectedPods returns the pods the operator created that may not be in its
// cache yet, by namespace/name.
func (o *Operator) expectedPods() map[string]*corev1.Pod {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]*corev1.Pod{}
	for _, fn := range o.fns {
		for name, p := range fn.created {
			out[fn.key.Namespace+"/"+name] = p
		}
	}
	return out
}

// Instances lists the function's pods as instances (autoscale.Actuator): the
// cache's live pods, those just created that it does not show yet, less
// those just deleted. A pod on a node that is gone or not Ready is deleted
// here and left out, so that the decision replaces it.
func (o *Operator) Instances(key string) ([]autoscale.Instance, error) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	o.mu.Lock()
	fn := o.fns[key]
	o.mu.Unlock()
	if fn == nil {
		return nil, fmt.Errorf("function %s: unknown", key)
	}
	pods, err := o.pods(ctx, fn.key)
	if err != nil {
		return nil, err
	}
	// A pod's node is healthy while it exists and is Ready (a cordoned node
	// keeps its pods).
	healthy := map[string]bool{}
	for _, p := range pods {
		n := p.Spec.NodeName
		if _, ok := healthy[n]; ok {
			continue
		}
		var node corev1.Node
		switch err := o.c.Get(ctx, types.NamespacedName{Name: n}, &node); {
		case err == nil:
			healthy[n] = readyCondition(&node)
		case apierrors.IsNotFound(err):
			healthy[n] = false
		default:
			return nil, err
		}
	}
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := map[string]bool{}
	var out []autoscale.Instance
	for _, p := range pods {
		seen[p.Name] = true
		delete(fn.created, p.Name)
		delete(fn.madeAt, p.Name)
		if _, gone := fn.deleted[p.Name]; gone {
			continue
		}
		if !healthy[p.Spec.NodeName] {
			o.cfg.Log.Warn("pod lost with its node", "function", key, "pod", p.Name, "node", p.Spec.NodeName)
			if err := o.c.Delete(ctx, p, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
				return nil, fmt.Errorf("delete pod %s of lost node %s: %w", p.Name, p.Spec.NodeName, err)
			}
			fn.deleted[p.Name] = now
			continue
		}
		ready := podres.Ready(p)
		if ready {
			clear(fn.failed) // pods run again: no backoff
		}
		out = append(out, autoscale.Instance{ID: p.Name, Node: p.Spec.NodeName, VCPUs: float64(podres.RequestedCPU(p)) / 1000, Ready: ready})
	}
	for name, p := range fn.created {
		if now.Sub(fn.madeAt[name]) > expectTTL {
			delete(fn.created, name)
			delete(fn.madeAt, name)
			continue
		}
		if !seen[name] {
			out = append(out, autoscale.Instance{ID: name, Node: p.Spec.NodeName, VCPUs: float64(podres.RequestedCPU(p)) / 1000})
		}
	}
	for name, at := range fn.deleted {
		if now.Sub(at) > expectTTL || !seen[name] {
			delete(fn.deleted, name)
		}
	}
	return out, nil
}

func readyCondition(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Apply carries out a decision (autoscale.Actuator): pods stop, resize in
// place through pods/resize, and start on the nodes the decision chose.
func (o *Operator) Apply(key string, d autoscale.Decision) error {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	ins, err := o.Instances(key)
	if err != nil {
		return err
	}
	o.mu.Lock()
	fn := o.fns[key]
	o.mu.Unlock()
	if fn == nil {
		return fmt.Errorf("function %s: unknown", key)
	}
	var errs []error
	for _, ch := range autoscale.Plan(autoscale.State{Function: key, Instances: ins}, d) {
		var err error
		switch ch.Op {
		case autoscale.Stop:
			err = o.stopPod(ctx, fn, ch.Instance.ID)
		case autoscale.Resize:
			err = o.resizePod(ctx, fn, ch.Instance.ID, ch.Instance.VCPUs)
		case autoscale.Start:
			err = o.startPod(ctx, fn, ch.Instance.Node, ch.Instance.VCPUs)
		}
		if err != nil {
			what := ch.Instance.ID
			if what == "" {
				what = "a pod on " + ch.Instance.Node
			}
			errs = append(errs, fmt.Errorf("%s %s: %w", ch.Op, what, err))
		}
	}
	return errors.Join(errs...)
}

func (o *Operator) stopPod(ctx context.Context, fn *function, name string) error {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: fn.key.Namespace, Name: name}}
	if err := o.c.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
		return err
	}
	o.mu.Lock()
	fn.deleted[name] = time.Now()
	delete(fn.created, name)
	o.mu.Unlock()
	return nil
}

// resizePod sets the pod's CPU request and limit through the pods/resize
// subresource: the pod keeps running and its kubelet grows or shrinks the
// container's cgroup.
func (o *Operator) resizePod(ctx context.Context, fn *function, name string, vcpus float64) error {
	var p corev1.Pod
	if err := o.c.Get(ctx, types.NamespacedName{Namespace: fn.key.Namespace, Name: name}, &p); err != nil {
		return err
	}
	patch := client.StrategicMergeFrom(p.DeepCopy())
	cpu := cpuQuantity(vcpus)
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		if c.Name != ContainerName {
			continue
		}
		if c.Resources.Requests == nil {
			c.Resources.Requests = corev1.ResourceList{}
		}
		if c.Resources.Limits == nil {
			c.Resources.Limits = corev1.ResourceList{}
		}
		c.Resources.Requests[corev1.ResourceCPU] = cpu
		c.Resources.Limits[corev1.ResourceCPU] = cpu
	}
	return o.c.SubResource("resize").Patch(ctx, &p, patch)
}

func cpuQuantity(vcpus float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(math.Round(vcpus*1000)), resource.DecimalSI)
}

func (o *Operator) startPod(ctx context.Context, fn *function, node string, vcpus float64) error {
	o.mu.Lock()
	obj := fn.obj
	var last time.Time
	for _, at := range fn.failed {
		if at.After(last) {
			last = at
		}
	}
	n := len(fn.failed)
	o.mu.Unlock()
	if wait := time.Until(last.Add(backoff(n))); n > 0 && wait > 0 {
		return fmt.Errorf("%d pods failed in a row (see the PodFailed events): the next starts in %v", n, wait.Round(100*time.Millisecond))
	}
	p, err := o.podFor(obj, node, vcpus)
	if err != nil {
		return err
	}
	// The decision placed the pod by CPU; its memory must fit too, or the
	// kubelet would refuse it. Another node with room for both, and none of
	// the function's pods, takes it then.
	if p.Spec.NodeName, err = o.nodeWithMemory(ctx, fn, node, vcpus, p.Spec.Containers[0].Resources.Requests.Memory().Value()); err != nil {
		return err
	}
	if err := o.c.Create(ctx, p); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	o.mu.Lock()
	fn.created[p.Name] = p
	fn.madeAt[p.Name] = time.Now()
	o.mu.Unlock()
	return nil
}

// nodeWithMemory returns want if it has mem bytes of memory free, else the
// Ready node with the most free CPU among those with vcpus and mem free that
// run none of the function's pods.
func (o *Operator) nodeWithMemory(ctx context.Context, fn *function, want string, vcpus float64, mem int64) (string, error) {
	var nodes corev1.NodeList
	if err := o.c.List(ctx, &nodes); err != nil {
		return "", err
	}
	taken := map[string]bool{}
	if pods, err := o.pods(ctx, fn.key); err == nil {
		for _, p := range pods {
			taken[p.Spec.NodeName] = true
		}
	}
	best, bestCPU := "", -1.0
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !nodeReady(n) {
			continue
		}
		freeCPU, freeMem, err := o.free(ctx, n)
		if err != nil {
			return "", err
		}
		if n.Name == want && freeMem >= mem {
			return want, nil
		}
		if n.Name != want && !taken[n.Name] && freeMem >= mem && freeCPU >= vcpus-1e-9 && freeCPU > bestCPU {
			best, bestCPU = n.Name, freeCPU
		}
	}
	if best == "" {
		return "", fmt.Errorf("no node has %g vCPUs and %s of memory free for a pod (node %s lacks the memory)", vcpus, resource.NewQuantity(mem, resource.BinarySI), want)
	}
	o.cfg.Log.Info("pod placed by memory", "function", fn.key.String(), "wanted", want, "node", best)
	return best, nil
}

// free returns a node's CPU (vCPUs) and memory (bytes) that live pods do not
// ask for.
func (o *Operator) free(ctx context.Context, n *corev1.Node) (float64, int64, error) {
	var pods corev1.PodList
	if err := o.c.List(ctx, &pods, client.MatchingFields{indexNode: n.Name}); err != nil {
		return 0, 0, err
	}
	cpu, mem := n.Status.Allocatable.Cpu().MilliValue(), n.Status.Allocatable.Memory().Value()
	for j := range pods.Items {
		p := &pods.Items[j]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		cpu -= max(podres.RequestedCPU(p), podres.GrantedCPU(p))
		for _, c := range p.Spec.Containers {
			mem -= c.Resources.Requests.Memory().Value()
		}
	}
	return float64(cpu) / 1000, mem, nil
}
