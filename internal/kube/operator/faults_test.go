package operator_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
)

// TestOperatorRestart stops the operator while a function runs two pods and
// starts a new one (a new leader): the pods stay as they are (none started
// twice, none restarted), and the status keeps its decisions and what the
// policy remembers.
func TestOperatorRestart(t *testing.T) {
	e := start(t, 2)
	e.create("bert", fastHybrid)
	e.traffic.Set("default/bert", 30, 100*time.Millisecond)
	before := e.waitLayout("bert", "node-1:4/4 node-2:4/4", 30*time.Second)
	var f *v1alpha1.InferenceFunction
	// The status of the last decision: its pods, and the memory it left (a
	// status written for the new pod before the decision's record is not).
	waitFor(t, 5*time.Second, "status of the 2-pod decision", func() (bool, string) {
		f = e.get("bert")
		st := f.Status
		if st.Pods != 2 || st.LastDecision == nil || st.LastDecision.Pods != 2 || st.Memory == nil || st.Memory.LastChange == nil {
			return false, fmt.Sprintf("%+v", st)
		}
		return st.Memory.LastChange.Time.Equal(st.LastDecision.Time.Truncate(time.Second)), fmt.Sprintf("last change %v, last decision %v", st.Memory.LastChange, st.LastDecision.Time)
	})
	decisions := len(f.Status.Decisions)
	lastChange := f.Status.Memory.LastChange.Time

	e.stopOp()
	e.startOperator()
	// Several intervals of the new leader: the same two pods, no more.
	time.Sleep(4 * time.Second)
	after := e.waitLayout("bert", "node-1:4/4 node-2:4/4", time.Second)
	uids := map[string]bool{}
	for _, p := range before {
		uids[string(p.UID)] = true
	}
	for _, p := range after {
		if !uids[string(p.UID)] {
			t.Errorf("pod %s (%s) is new after the restart", p.Name, p.UID)
		}
	}
	f = e.get("bert")
	if len(f.Status.Decisions) < decisions {
		t.Errorf("decisions after restart %d, before %d", len(f.Status.Decisions), decisions)
	}
	if f.Status.Memory == nil || f.Status.Memory.LastChange == nil || !f.Status.Memory.LastChange.Time.Equal(lastChange) {
		t.Errorf("policy memory after restart %+v, last change before %v", f.Status.Memory, lastChange)
	}
}

// TestNodeLost deletes a node under a running pod: the operator drops the
// lost pod and, the load still there, places its replacement on the node
// that is left.
func TestNodeLost(t *testing.T) {
	e := start(t, 3)
	e.create("bert", fastHybrid)
	e.traffic.Set("default/bert", 30, 100*time.Millisecond)
	e.waitLayout("bert", "node-1:4/4 node-2:4/4", 30*time.Second)
	if err := e.c.Delete(e.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-2"}}); err != nil {
		t.Fatal(err)
	}
	e.waitLayout("bert", "node-1:4/4 node-3:4/4", 30*time.Second)
}

// TestSpecUpdatesUnderLoad edits the function's spec many times while the
// operator writes its status: every write goes through (conflicts are
// retried on the newest resourceVersion), the status catches up with the
// last generation, and the last spec is the one the autoscaler follows.
func TestSpecUpdatesUnderLoad(t *testing.T) {
	e := start(t, 2)
	e.create("bert", fastHybrid)
	e.traffic.Set("default/bert", 30, 100*time.Millisecond)
	e.waitLayout("bert", "node-1:4/4 node-2:4/4", 30*time.Second)

	// Three writers and the operator's status writes race on one
	// resourceVersion: each writer retries until its edit lands.
	backoff := wait.Backoff{Steps: 100, Duration: 5 * time.Millisecond, Factor: 1.2, Jitter: 1, Cap: 200 * time.Millisecond}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				err := retry.RetryOnConflict(backoff, func() error {
					f := e.get("bert")
					f.Spec.Scaling.Params["down-below"] = fmt.Sprintf("0.%d", 1+(i+w)%4)
					return e.c.Update(e.ctx, f)
				})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("updates failed: %v", errs)
	}
	// The last edit: a 5 s SLO, under which 8 vCPUs are far too many.
	err := retry.RetryOnConflict(backoff, func() error {
		f := e.get("bert")
		f.Spec.Scaling.Params["slo"] = "5s"
		f.Spec.Scaling.Params["down-below"] = "0.5"
		return e.c.Update(e.ctx, f)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "status of the last generation", func() (bool, string) {
		f := e.get("bert")
		return f.Status.ObservedGeneration == f.Generation, fmt.Sprintf("observed %d of %d", f.Status.ObservedGeneration, f.Generation)
	})
	e.waitLayout("bert", "node-1:4/4", 30*time.Second)
}

// TestBadSpecs: what the API server's schema can check it refuses with the
// field and the rule; a policy parameter it cannot check turns the function's
// Ready condition false with the operator's error, and nothing starts.
func TestBadSpecs(t *testing.T) {
	e := start(t, 1)
	for _, tc := range []struct {
		spec v1alpha1.InferenceFunctionSpec
		want string
	}{
		{v1alpha1.InferenceFunctionSpec{Model: v1alpha1.ModelSource{Path: "/m.onnx", URL: "https://example.invalid/m.onnx"}}, "set exactly one of path, url and oci"},
		{v1alpha1.InferenceFunctionSpec{Model: v1alpha1.ModelSource{Path: "/m.onnx"}, Scaling: v1alpha1.Scaling{Policy: "fastest"}}, "spec.scaling.policy"},
		{v1alpha1.InferenceFunctionSpec{Model: v1alpha1.ModelSource{URL: "ftp://x/m.onnx"}}, "spec.model.url"},
		{v1alpha1.InferenceFunctionSpec{Model: v1alpha1.ModelSource{OCI: "registry.example/models/bert:v1"}}, "sha256 is required with url and oci"},
	} {
		f := &v1alpha1.InferenceFunction{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "default"}, Spec: tc.spec}
		err := e.c.Create(e.ctx, f)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %+v: %v, want Invalid naming %q", tc.spec, err, tc.want)
		}
	}
	e.create("slow", map[string]string{"slo": "-1s"})
	e.traffic.Set("default/slow", 10, 100*time.Millisecond)
	waitFor(t, 10*time.Second, "Ready=False InvalidSpec", func() (bool, string) {
		c := cond(e.get("slow"), "Ready")
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "InvalidSpec" && strings.Contains(c.Message, "slo"), fmt.Sprintf("%+v", c)
	})
	time.Sleep(2 * time.Second)
	if pods := e.podsOf("slow"); len(pods) != 0 {
		t.Errorf("an invalid function got pods: %s", layout(pods))
	}
}

// TestPlacementNeedsMemory: the node the policy picks by CPU lacks the memory
// of another pod (512 MiB allocatable, pods of 1 GiB), so the second pod goes
// to the node that has both; with no such node no pod is made that a kubelet
// would refuse.
func TestPlacementNeedsMemory(t *testing.T) {
	e := start(t, 1)
	if err := e.cl.AddNode(e.ctx, "node-2", 4, "512Mi"); err != nil {
		t.Fatal(err)
	}
	e.create("bert", fastHybrid)
	e.traffic.Set("default/bert", 30, 100*time.Millisecond)
	e.waitLayout("bert", "node-1:4/4", 30*time.Second)
	// Two more decisions' time: node-2 would be the choice but cannot hold it.
	time.Sleep(3 * time.Second)
	e.waitLayout("bert", "node-1:4/4", time.Second)
	if err := e.cl.AddNode(e.ctx, "node-3", 4, "16Gi"); err != nil {
		t.Fatal(err)
	}
	e.waitLayout("bert", "node-1:4/4 node-3:4/4", 30*time.Second)
}
