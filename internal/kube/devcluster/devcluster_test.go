package devcluster

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestClusterRunsPods starts the real API server and kwok, and checks that the
// simulated nodes turn Ready, that a pod bound to one runs, and that kubectl
// works with the kubeconfig written.
func TestClusterRunsPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{Dir: t.TempDir(), Nodes: 2, NodeCPUs: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	defer func() {
		if t.Failed() {
			t.Logf("kwok log:\n%s\napiserver log:\n%s", c.Log("kwok", 30), c.Log("apiserver", 10))
		}
	}()
	waitFor(t, 60*time.Second, "nodes Ready", func() (bool, string) {
		var nodes corev1.NodeList
		if err := c.Client.List(ctx, &nodes); err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == 2, fmt.Sprintf("ready nodes: %d", ready)
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "node-2", Containers: []corev1.Container{{
			Name: "c", Image: "example.invalid/x",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
		}}},
	}
	if err := c.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "pod Running", func() (bool, string) {
		var p corev1.Pod
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(pod), &p); err != nil {
			return false, err.Error()
		}
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
			return false, string(p.Status.Phase)
		}
		// The simulated kubelet reports what it admitted, as a real one does.
		res := p.Status.ContainerStatuses[0].Resources
		if res == nil || res.Requests.Cpu().Cmp(resource.MustParse("1")) != 0 {
			return false, fmt.Sprintf("running; container status resources %+v", res)
		}
		return true, ""
	})
	if kubectl, err := exec.LookPath("kubectl"); err != nil {
		t.Errorf("kubectl not installed (scripts/testdeps.sh installs it): %v", err)
	} else {
		out, err := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "get", "pods", "-o", "wide").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "node-2") {
			t.Fatalf("kubectl get pods: %v\n%s", err, out)
		}
	}
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
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not after %v (last: %s)", what, d, last)
}
