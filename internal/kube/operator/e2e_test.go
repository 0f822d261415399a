package operator_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kubemanifests "github.com/spindleml/spindle/deploy/kubernetes"
	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
	"github.com/spindleml/spindle/internal/kube/devcluster"
	"github.com/spindleml/spindle/internal/kube/kubesim"
	"github.com/spindleml/spindle/internal/kube/operator"
)

// TestMain quiets controller-runtime's own log (the operator's decisions are
// logged through the test).
func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// env is a real API server with simulated nodes, the simulated kubelet and
// traffic, and the operator under test.
type env struct {
	t       *testing.T
	ctx     context.Context
	cl      *devcluster.Cluster
	c       client.Client
	traffic *kubesim.Traffic
	opRest  *rest.Config // the operator's service account
	stopOp  func()
}

func start(t *testing.T, nodes int) *env { return startWith(t, nodes, false) }

// startWith starts the env; fromAnnotation reads each function's simulated
// load from its annotation, as `spindle kube dev` does.
func startWith(t *testing.T, nodes int, fromAnnotation bool) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	cl, err := devcluster.Start(ctx, devcluster.Config{Dir: t.TempDir(), Nodes: nodes, NodeCPUs: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	e := &env{t: t, ctx: ctx, cl: cl, c: cl.Client, traffic: &kubesim.Traffic{Client: cl.Client, Label: operator.LabelFunction, FromAnnotation: fromAnnotation}}
	t.Cleanup(func() {
		if t.Failed() {
			var pods corev1.PodList
			cl.Client.List(context.Background(), &pods)
			for _, p := range pods.Items {
				t.Logf("pod %s on %s: spec %s status %s conditions %v", p.Name, p.Spec.NodeName,
					p.Spec.Containers[0].Resources.Requests.Cpu(), grantedOf(&p), p.Status.Conditions)
			}
		}
	})
	// The simulated kubelet runs beside the cluster, as kwok does.
	mgr, err := ctrl.NewManager(cl.Rest, ctrl.Options{Scheme: devcluster.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&kubesim.Kubelet{NodeAnnotation: devcluster.NodeAnnotation}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(kctx) }()
	t.Cleanup(func() { kcancel(); <-done })
	waitFor(t, 30*time.Second, "nodes Ready", func() (bool, string) {
		var list corev1.NodeList
		if err := cl.Client.List(ctx, &list); err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range list.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == nodes, fmt.Sprintf("%d of %d", ready, nodes)
	})
	// The operator runs as its service account, with the RBAC of
	// deploy/kubernetes/operator.yaml and nothing more.
	if err := cl.Apply(ctx, kubemanifests.Operator); err != nil {
		t.Fatal(err)
	}
	if e.opRest, err = cl.ServiceAccountConfig(ctx, "spindle-system", "spindle-operator"); err != nil {
		t.Fatal(err)
	}
	e.startOperator()
	return e
}

// startOperator runs the operator with leader election, as a Deployment does.
func (e *env) startOperator() {
	t := e.t
	op, err := operator.New(operator.Config{Image: "spindle:test", Stats: e.traffic, Resolution: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(e.opRest, ctrl.Options{
		Scheme:                        devcluster.Scheme(),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		LeaderElection:                true,
		LeaderElectionID:              "spindle-operator",
		LeaderElectionNamespace:       "spindle-system",
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	e.stopOp = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("operator: %v", err)
			}
		}
	}
	t.Cleanup(e.stopOp)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *env) create(name string, params map[string]string) *v1alpha1.InferenceFunction {
	f := &v1alpha1.InferenceFunction{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1alpha1.InferenceFunctionSpec{
			Model:   v1alpha1.ModelSource{Path: "/var/lib/spindle/models/bert-base.onnx"},
			Scaling: v1alpha1.Scaling{Policy: "hybrid", Params: params},
		},
	}
	if err := e.c.Create(e.ctx, f); err != nil {
		e.t.Fatal(err)
	}
	return f
}

// podsOf returns the function's pods that are not being deleted.
func (e *env) podsOf(name string) []corev1.Pod {
	var list corev1.PodList
	if err := e.c.List(e.ctx, &list, client.InNamespace("default"), client.MatchingLabels{operator.LabelFunction: name}); err != nil {
		e.t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func grantedOf(p *corev1.Pod) string {
	if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].Resources == nil {
		return "-"
	}
	return p.Status.ContainerStatuses[0].Resources.Requests.Cpu().String()
}

// layout describes pods as "node:spec/granted" sorted by node, e.g.
// "node-1:2/2 node-2:4/4".
func layout(pods []corev1.Pod) string {
	var parts []string
	for _, p := range pods {
		parts = append(parts, fmt.Sprintf("%s:%s/%s", p.Spec.NodeName, p.Spec.Containers[0].Resources.Requests.Cpu(), grantedOf(&p)))
	}
	sortStrings(parts)
	return strings.Join(parts, " ")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// waitLayout waits until the function's pods are laid out as want.
func (e *env) waitLayout(name, want string, d time.Duration) []corev1.Pod {
	e.t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		pods := e.podsOf(name)
		if last = layout(pods); last == want {
			return pods
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("%s: pods %q after %v, want %q", name, last, d, want)
	return nil
}

func (e *env) get(name string) *v1alpha1.InferenceFunction {
	var f v1alpha1.InferenceFunction
	if err := e.c.Get(e.ctx, types.NamespacedName{Namespace: "default", Name: name}, &f); err != nil {
		e.t.Fatal(err)
	}
	return &f
}

// fastHybrid is the thesis's hybrid policy on a test's time scale.
var fastHybrid = map[string]string{
	"slo": "500ms", "interval": "1s", "window": "2s", "stabilization": "2s", "idle-to-zero": "4s", "min-vcpus": "1",
}

// TestVerticalThenOutThenZero is the thesis's scenario on the real API
// server: one pod on one node; load breaks the SLO and the same pod is
// resized in place (spec and status, same UID, no restart) until its node is
// full; then a second pod lands on the other node; idle, the function scales
// to zero. Nodes and traffic are simulated (no container runs here).
func TestVerticalThenOutThenZero(t *testing.T) {
	e := start(t, 2)
	e.create("bert", fastHybrid)
	key := "default/bert"

	// 8 requests/s of 100 ms: 1 vCPU is 80% busy (p99 1.9 s), 2 are 40%
	// (p99 0.41 s, under the 500 ms SLO).
	e.traffic.Set(key, 8, 100*time.Millisecond)
	first := e.waitLayout("bert", "node-1:1/1", 20*time.Second)
	if len(first) != 1 {
		t.Fatal(first)
	}
	uid := first[0].UID
	grown := e.waitLayout("bert", "node-1:2/2", 20*time.Second)
	grantedAt := time.Now()
	if grown[0].UID != uid || grown[0].Status.ContainerStatuses[0].RestartCount != 0 {
		t.Fatalf("resize replaced the pod: uid %s -> %s", uid, grown[0].UID)
	}
	// The vertical step is visible in the pod's status within 2 s of the
	// decision.
	var f *v1alpha1.InferenceFunction
	waitFor(t, 5*time.Second, "status shows the scale-up", func() (bool, string) {
		f = e.get("bert")
		d := f.Status.LastDecision
		return d != nil && d.Action == "scale-up", fmt.Sprintf("%+v", d)
	})
	lag := grantedAt.Sub(f.Status.LastDecision.Time.Time)
	t.Logf("vertical step: decided %s, granted in the pod's status %v later", f.Status.LastDecision.Time.Format("15:04:05.000"), lag.Round(time.Millisecond))
	if lag > 2*time.Second {
		t.Errorf("resize granted %v after the decision, want <= 2s", lag)
	}

	// 30 requests/s: 2 vCPUs are saturated; the pod grows to its node's 4,
	// still too little (75%), so a pod starts on the other node.
	e.traffic.Set(key, 30, 100*time.Millisecond)
	e.waitLayout("bert", "node-1:4/4", 20*time.Second)
	pods := e.waitLayout("bert", "node-1:4/4 node-2:4/4", 20*time.Second)
	for _, p := range pods {
		if p.Spec.NodeName == "node-1" && p.UID != uid {
			t.Fatalf("node-1's pod was replaced: %s", p.UID)
		}
	}
	waitFor(t, 5*time.Second, "status of 2 pods, 8 vCPUs", func() (bool, string) {
		f = e.get("bert")
		return f.Status.Pods == 2 && f.Status.VCPUs == "8", fmt.Sprintf("pods %d vcpus %q", f.Status.Pods, f.Status.VCPUs)
	})
	if c := cond(f, "Ready"); c == nil || c.Status != metav1.ConditionTrue || c.Reason != "Serving" {
		t.Errorf("Ready condition %+v", c)
	}

	// kubectl shows it (a client not ours).
	if kubectl, err := exec.LookPath("kubectl"); err != nil {
		t.Errorf("kubectl not installed (scripts/testdeps.sh installs it): %v", err)
	} else {
		out, err := exec.Command(kubectl, "--kubeconfig", e.cl.Kubeconfig, "get", "inferencefunctions").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "bert") || !strings.Contains(string(out), "hybrid") {
			t.Errorf("kubectl get inferencefunctions: %v\n%s", err, out)
		}
		t.Logf("kubectl get inferencefunctions:\n%s", out)
	}

	// Idle: down to zero.
	e.traffic.Set(key, 0, 100*time.Millisecond)
	e.waitLayout("bert", "", 30*time.Second)
	waitFor(t, 10*time.Second, "status at zero", func() (bool, string) {
		f := e.get("bert")
		c := cond(f, "Ready")
		return f.Status.Pods == 0 && c != nil && c.Reason == "ScaledToZero", fmt.Sprintf("pods %d ready %+v", f.Status.Pods, c)
	})
	if f := e.get("bert"); len(f.Status.Decisions) < 4 {
		t.Errorf("decisions %+v", f.Status.Decisions)
	}
	// Each decision is an event of the function, as kubectl describe shows.
	waitFor(t, 10*time.Second, "events of every kind of step", func() (bool, string) {
		var evs eventsv1.EventList
		if err := e.c.List(e.ctx, &evs, client.InNamespace("default")); err != nil {
			return false, err.Error()
		}
		seen := map[string]bool{}
		for _, ev := range evs.Items {
			if ev.Regarding.Kind == "InferenceFunction" && ev.Regarding.Name == "bert" {
				seen[ev.Reason] = true
			}
		}
		return seen["ScaledFromZero"] && seen["ScaledUp"] && seen["ScaledToZero"], fmt.Sprint(seen)
	})
}

func cond(f *v1alpha1.InferenceFunction, typ string) *metav1.Condition {
	for i := range f.Status.Conditions {
		if f.Status.Conditions[i].Type == typ {
			return &f.Status.Conditions[i]
		}
	}
	return nil
}

func waitFor(t *testing.T, d time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = f(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not after %v (last: %s)", what, d, last)
}

// TestPodTemplate checks the pod an instance runs in: Guaranteed QoS (CPU
// and memory requests equal limits), CPU resizable without a restart, the
// instance following its cgroup, the node's model cache mounted read-only,
// and owned by its function.
func TestPodTemplate(t *testing.T) {
	e := start(t, 1)
	e.create("tc", map[string]string{"slo": "500ms"})
	// The operator writes the status meanwhile: retry on its resourceVersion.
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		f := e.get("tc")
		f.Spec.Task = "text-classification"
		f.Spec.Config = map[string]string{"labels": "neg,pos"}
		return e.c.Update(e.ctx, f)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.traffic.Set("default/tc", 1, 100*time.Millisecond)
	pods := e.waitLayout("tc", "node-1:1/1", 20*time.Second)
	p := pods[0]
	c := p.Spec.Containers[0]
	if p.Status.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("QoS %s, want Guaranteed", p.Status.QOSClass)
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"instance --name tc", "--follow-cgroup", "--load mmap", "--task text-classification", `--task-config {"labels":"neg,pos"}`, "--model /var/lib/spindle/models/bert-base.onnx"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	var cpuPolicy corev1.ResourceResizeRestartPolicy
	for _, rp := range c.ResizePolicy {
		if rp.ResourceName == corev1.ResourceCPU {
			cpuPolicy = rp.RestartPolicy
		}
	}
	if cpuPolicy != corev1.NotRequired {
		t.Errorf("CPU resize policy %q, want NotRequired", cpuPolicy)
	}
	if len(c.VolumeMounts) != 1 || !c.VolumeMounts[0].ReadOnly || c.VolumeMounts[0].MountPath != operator.ModelCache {
		t.Errorf("mounts %+v", c.VolumeMounts)
	}
	if ref := metav1.GetControllerOf(&p); ref == nil || ref.Kind != "InferenceFunction" || ref.Name != "tc" {
		t.Errorf("controller %+v", ref)
	}
}

// TestLoadChangeWakes: with a 30 s interval, a change of the function's load
// annotation is decided on within a second or two, not at the next interval.
func TestLoadChangeWakes(t *testing.T) {
	e := startWith(t, 1, true)
	f := e.create("slowtick", map[string]string{"slo": "500ms", "interval": "30s", "window": "30s", "min-vcpus": "1"})
	annotate := func(v string) time.Time {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			cur := e.get(f.Name)
			if cur.Annotations == nil {
				cur.Annotations = map[string]string{}
			}
			cur.Annotations[kubesim.LoadAnnotation] = v
			return e.c.Update(e.ctx, cur)
		})
		if err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	at := annotate("8/s,100ms")
	e.waitLayout("slowtick", "node-1:1/1", 10*time.Second)
	if took := time.Since(at); took > 5*time.Second {
		t.Errorf("from zero %v after the annotation", took)
	}
	// The next interval is ~30 s away; the new load is decided on now.
	at = annotate("16/s,100ms")
	e.waitLayout("slowtick", "node-1:2/2", 10*time.Second)
	took := time.Since(at)
	t.Logf("load change decided and granted %v after the annotation (interval 30s)", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("scale-up %v after the annotation, want well under the 30 s interval", took)
	}
}
