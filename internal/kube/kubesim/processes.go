package kubesim

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/spindleml/spindle/internal/sandbox"
)

// ProcessNodeLabel marks a process node: a node of the API whose pods
// Processes runs as real processes on this machine.
const ProcessNodeLabel = "spindle.dev/process-node"

// IsProcessNode reports whether n is a process node.
func IsProcessNode(n *corev1.Node) bool { return n.Labels[ProcessNodeLabel] == "true" }

// AddProcessNode creates process node name: Ready, with cpus and memory
// allocatable, its pods addressed from podCIDR, a /24 of the loopback
// network (127.0.0.0/8: real addresses on this machine, one per pod, so that
// every pod serves on the same port as in a cluster). The node's own address
// is the CIDR's .1, its pods' .2 to .254. Callers that may run at the same
// time (tests of different packages) give disjoint CIDRs.
func AddProcessNode(ctx context.Context, c client.Client, name, podCIDR string, cpus float64, memory string) error {
	ip, cidr, err := net.ParseCIDR(podCIDR)
	if err != nil || !ip.IsLoopback() || cidr.IP.To4() == nil {
		return fmt.Errorf("kubesim: process node %s: pod CIDR %q: want a /24 of 127.0.0.0/8", name, podCIDR)
	}
	if ones, _ := cidr.Mask.Size(); ones != 24 {
		return fmt.Errorf("kubesim: process node %s: pod CIDR %q: want a /24", name, podCIDR)
	}
	base := cidr.IP.To4()
	mem, err := resource.ParseQuantity(memory)
	if err != nil {
		return fmt.Errorf("kubesim: node memory: %w", err)
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU: *resource.NewMilliQuantity(int64(cpus*1000), resource.DecimalSI), corev1.ResourceMemory: mem,
		corev1.ResourcePods: resource.MustParse("110"),
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{ProcessNodeLabel: "true", corev1.LabelHostname: name}},
		Spec:       corev1.NodeSpec{PodCIDR: cidr.String()},
	}
	if err := c.Create(ctx, n); err != nil {
		return fmt.Errorf("kubesim: create node %s: %w", name, err)
	}
	now := metav1.Now()
	n.Status = corev1.NodeStatus{
		Capacity: res, Allocatable: res, Phase: corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "process node (kubesim)", LastHeartbeatTime: now, LastTransitionTime: now}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: net.IPv4(base[0], base[1], base[2], 1).String()}, {Type: corev1.NodeHostName, Address: name}},
	}
	if err := c.Status().Update(ctx, n); err != nil {
		return fmt.Errorf("kubesim: node %s status: %w", name, err)
	}
	return nil
}

// Processes is a kubelet for process nodes: each pod bound to one runs its
// container's arguments as a real process of Exe (the spindle binary: the
// operator's pods run `spindle instance ...`), in a real cgroup with the
// pod's CPU and memory limits, serving on the pod's own address. It reports
// what a kubelet does: Running with the pod's IP and granted resources once
// the instance is ready, Failed if it cannot start or exits, and it removes a
// deleted pod after its process has drained. Grant is the resize half (see
// Kubelet.Grant): it sets the cgroup's quota, which the instance follows.
//
// It is a simulation of the kubelet, not of the pods: the instances, their
// cgroups, their addresses and the requests they serve are real.
type Processes struct {
	// Exe runs each pod's container: its arguments are the container's args.
	Exe string
	// Sandbox makes each pod's cgroup (its Controller).
	Sandbox sandbox.Capabilities
	// Log receives the instances' output; nil discards it.
	Log io.Writer
	// StopGrace is how long a deleted pod's instance may drain; 0 means 5 s.
	StopGrace time.Duration

	c    client.Client
	mu   sync.Mutex
	pods map[string]*podProc // by namespace/name
}

// podProc is one pod's process.
type podProc struct {
	node, ip string
	proc     *sandbox.Process // nil while it starts
	stopping bool
}

// SetupWithManager registers the process kubelet with mgr.
func (k *Processes) SetupWithManager(mgr manager.Manager) error {
	k.c = mgr.GetClient()
	k.pods = map[string]*podProc{}
	return ctrl.NewControllerManagedBy(mgr).Named("process-kubelet").
		WithOptions(controller.Options{SkipNameValidation: new(true), MaxConcurrentReconciles: 4}).
		For(&corev1.Pod{}).Complete(k)
}

// Reconcile starts a pending pod's process, or stops a deleted pod's.
func (k *Processes) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := req.NamespacedName.String()
	var p corev1.Pod
	if err := k.c.Get(ctx, req.NamespacedName, &p); err != nil {
		if apierrors.IsNotFound(err) {
			k.stop(key)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if p.Spec.NodeName == "" {
		return ctrl.Result{}, nil
	}
	var node corev1.Node
	if err := k.c.Get(ctx, types.NamespacedName{Name: p.Spec.NodeName}, &node); err != nil || !IsProcessNode(&node) {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	k.mu.Lock()
	pp := k.pods[key]
	k.mu.Unlock()
	switch {
	case p.DeletionTimestamp != nil:
		// As a kubelet: stop the container (it drains), then remove the pod.
		go func() {
			k.stop(key)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			k.c.Delete(ctx, &p, client.GracePeriodSeconds(0), client.Preconditions{UID: &p.UID})
		}()
	case p.Status.Phase == corev1.PodRunning && pp == nil:
		// Running by an earlier kubelet (a restarted `spindle kube dev` on
		// the same data): its process is gone, so is the pod.
		return ctrl.Result{}, k.setFailed(ctx, req.NamespacedName, "Error", "the node's kubelet restarted: no process runs this pod")
	case p.Status.Phase == corev1.PodPending && pp == nil:
		ip, err := k.allocate(key, &node)
		if err != nil {
			return ctrl.Result{}, k.setFailed(ctx, req.NamespacedName, "NoAddress", err.Error())
		}
		go k.run(req.NamespacedName, p.DeepCopy(), ip)
	}
	return ctrl.Result{}, nil
}

// allocate reserves the lowest free pod address of node for pod key.
func (k *Processes) allocate(key string, node *corev1.Node) (string, error) {
	_, cidr, err := net.ParseCIDR(node.Spec.PodCIDR)
	if err != nil {
		return "", fmt.Errorf("node %s: pod CIDR %q: %w", node.Name, node.Spec.PodCIDR, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	used := map[string]bool{}
	for _, pp := range k.pods {
		used[pp.ip] = true
	}
	base := cidr.IP.To4()
	for host := 2; host < 255; host++ {
		ip := net.IPv4(base[0], base[1], base[2], byte(host)).String()
		if !used[ip] && free(ip) {
			k.pods[key] = &podProc{node: node.Name, ip: ip}
			return ip, nil
		}
	}
	return "", fmt.Errorf("node %s: no free pod address", node.Name)
}

// free reports whether nothing on this machine serves on ip's instance port
// (a process another kubelet, or a test, left there).
func free(ip string) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "8080"))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// run starts pod p's process on ip and reports it Running, or Failed.
func (k *Processes) run(key types.NamespacedName, p *corev1.Pod, ip string) {
	fail := func(reason, msg string) {
		k.mu.Lock()
		delete(k.pods, key.String())
		k.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		k.setFailed(ctx, key, reason, msg)
	}
	c := p.Spec.Containers[0]
	limits := sandbox.Limits{CPU: cpuLimit(c.Resources.Limits.Cpu().MilliValue()), Memory: c.Resources.Limits.Memory().Value()}
	if !k.Sandbox.CPU {
		limits.CPU = 0
	}
	if !k.Sandbox.Memory {
		limits.Memory = 0
	}
	cg, err := k.Sandbox.Controller.New("pod", limits)
	if err != nil {
		fail("CreateContainerError", err.Error())
		return
	}
	args := append([]string(nil), c.Args...)
	port := "8080"
	for i := range args {
		if args[i] == "--listen" && i+1 < len(args) {
			if _, pt, err := net.SplitHostPort(args[i+1]); err == nil {
				port = pt
			}
			args[i+1] = net.JoinHostPort(ip, port)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	proc, err := sandbox.Start(ctx, sandbox.Spec{Path: k.Exe, Args: args, Log: k.Log, Cgroup: cg, Caps: k.Sandbox})
	if err != nil {
		fail("StartError", err.Error())
		return
	}
	k.mu.Lock()
	pp := k.pods[key.String()]
	if pp == nil || pp.stopping {
		k.mu.Unlock()
		proc.Stop(k.grace())
		return
	}
	pp.proc = proc
	k.mu.Unlock()
	now := metav1.Now()
	err = k.updateStatus(key, func(p *corev1.Pod) {
		st := &p.Status
		st.Phase, st.PodIP, st.PodIPs, st.StartTime = corev1.PodRunning, ip, []corev1.PodIP{{IP: ip}}, &now
		st.HostIP = ip[:strings.LastIndex(ip, ".")] + ".1" // the node's address
		st.Conditions = nil
		for _, t := range []corev1.PodConditionType{corev1.PodInitialized, corev1.PodScheduled, corev1.ContainersReady, corev1.PodReady} {
			st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
		}
		// A resize asked for while the instance started is granted now.
		if m := p.Spec.Containers[0].Resources.Limits.Cpu().MilliValue(); limits.CPU > 0 && cpuLimit(m) != limits.CPU {
			proc.Cgroup.SetCPU(cpuLimit(m))
		}
		st.ContainerStatuses = nil
		for _, c := range p.Spec.Containers {
			res := c.Resources.DeepCopy()
			st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, Ready: true, Started: new(true),
				Resources: res, AllocatedResources: res.Requests.DeepCopy(),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
	})
	if err != nil {
		proc.Stop(k.grace())
		return
	}
	<-proc.Done()
	k.mu.Lock()
	stopping := pp.stopping
	k.mu.Unlock()
	if !stopping {
		// An instance that exits on its own fails its pod (the operator
		// replaces it).
		msg := "instance exited"
		if err := proc.Err(); err != nil {
			msg = fmt.Sprintf("instance exited: %v", err)
		}
		fail("Error", msg)
	}
}

// Grant applies a granted CPU resize of pod p to its process's cgroup; the
// instance follows its quota itself. Pods it does not run are left alone.
func (k *Processes) Grant(_ context.Context, p *corev1.Pod, milliCPU int64) error {
	k.mu.Lock()
	pp := k.pods[p.Namespace+"/"+p.Name]
	k.mu.Unlock()
	if pp == nil {
		return nil
	}
	if pp.proc == nil {
		return fmt.Errorf("pod %s/%s: its instance is still starting", p.Namespace, p.Name)
	}
	if !k.Sandbox.CPU {
		return nil
	}
	return pp.proc.Cgroup.SetCPU(cpuLimit(milliCPU))
}

// stop stops pod key's process, if it runs, and frees its address.
func (k *Processes) stop(key string) {
	k.mu.Lock()
	pp := k.pods[key]
	if pp == nil || pp.stopping {
		k.mu.Unlock()
		return
	}
	pp.stopping = true
	proc := pp.proc
	k.mu.Unlock()
	if proc != nil {
		proc.Stop(k.grace())
	}
	k.mu.Lock()
	delete(k.pods, key)
	k.mu.Unlock()
}

// Close stops every process (the end of a test or of `spindle kube dev`).
func (k *Processes) Close() {
	k.mu.Lock()
	keys := slices.Collect(maps.Keys(k.pods))
	k.mu.Unlock()
	var wg sync.WaitGroup
	for _, key := range keys {
		wg.Go(func() { k.stop(key) })
	}
	wg.Wait()
}

func (k *Processes) grace() time.Duration {
	if k.StopGrace <= 0 {
		return 5 * time.Second
	}
	return k.StopGrace
}

func (k *Processes) setFailed(ctx context.Context, key types.NamespacedName, reason, msg string) error {
	return k.updateStatus(key, func(p *corev1.Pod) {
		p.Status.Phase, p.Status.Reason, p.Status.Message = corev1.PodFailed, reason, msg
	})
}

// updateStatus applies change to the pod's status, retrying on conflicts;
// a pod that is gone is not an error.
func (k *Processes) updateStatus(key types.NamespacedName, change func(*corev1.Pod)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return client.IgnoreNotFound(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p corev1.Pod
		if err := k.c.Get(ctx, key, &p); err != nil {
			return err
		}
		change(&p)
		return k.c.Status().Update(ctx, &p)
	}))
}

// cpuLimit is a pod's CPU in millicores as a cgroup quota: rounded up to the
// sandbox's step.
func cpuLimit(milli int64) float64 {
	if milli <= 0 {
		return 0
	}
	return math.Ceil(float64(milli)/1000/sandbox.CPUStep) * sandbox.CPUStep
}

// Process returns the pid and address of pod namespace/name's process, once
// it runs.
func (k *Processes) Process(namespace, name string) (pid int, ip string, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	pp := k.pods[namespace+"/"+name]
	if pp == nil || pp.proc == nil {
		return 0, "", false
	}
	return pp.proc.Pid, pp.ip, true
}
