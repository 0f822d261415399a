package nodeagent

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kubemanifests "github.com/spindleml/spindle/deploy/kubernetes"
	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
	"github.com/spindleml/spindle/internal/kube/devcluster"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// TestAgentOnRealAPIServer: functions applied to a real API server get their
// models fetched once per node and verified; a wrong digest is an event of
// the function and leaves nothing; a removed function's model is pruned.
func TestAgentOnRealAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := devcluster.Start(ctx, devcluster.Config{Dir: t.TempDir(), Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Stop()
	model := []byte("a model's bytes")
	var gets, badGets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad.onnx" {
			badGets.Add(1)
		} else {
			gets.Add(1)
		}
		w.Write(model)
	}))
	defer srv.Close()

	// The agent runs as its service account, with the shipped RBAC only.
	for _, m := range [][]byte{kubemanifests.Operator, kubemanifests.NodeAgent} {
		if err := cl.Apply(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := cl.ServiceAccountConfig(ctx, "spindle-system", "spindle-node-agent")
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{Scheme: devcluster.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	cache := &Cache{Root: t.TempDir()}
	if err := (&Agent{Node: "node-1", Cache: cache}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() { mcancel(); <-done }()

	d := digestOf(model)
	fn := func(name, path, digest string) *v1alpha1.InferenceFunction {
		return &v1alpha1.InferenceFunction{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec:       v1alpha1.InferenceFunctionSpec{Model: v1alpha1.ModelSource{URL: srv.URL + path, SHA256: digest}},
		}
	}
	for _, f := range []*v1alpha1.InferenceFunction{fn("a", "/model.onnx", d), fn("b", "/model.onnx", d), fn("bad", "/bad.onnx", digestOf([]byte("other")))} {
		if err := cl.Client.Create(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "events", func() (bool, string) {
		reasons := eventsOf(t, cl.Client, ctx)
		return reasons["a"] == "ModelCached" && reasons["bad"] == "ModelFetchFailed", fmt.Sprint(reasons)
	})
	// a and b share the model: one fetch for both.
	time.Sleep(time.Second) // b's reconcile, which finds the model cached (or joins a's fetch)
	if !cache.Has(d) || gets.Load() != 1 || badGets.Load() < 1 {
		t.Errorf("cached %v after %d fetches (and %d of the bad digest)", cache.Has(d), gets.Load(), badGets.Load())
	}
	if err := cl.Client.Delete(ctx, fn("bad", "", "")); err != nil {
		t.Fatal(err)
	}
	if err := cl.Client.Delete(ctx, fn("a", "", "")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if !cache.Has(d) {
		t.Fatal("a model still named by b was pruned")
	}
	if err := cl.Client.Delete(ctx, fn("b", "", "")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "prune", func() (bool, string) { return !cache.Has(d), "still cached" })
	if gets.Load() != 1 {
		t.Errorf("%d fetches of the shared model, want 1", gets.Load())
	}
}

// eventsOf returns the newest event reason per function.
func eventsOf(t *testing.T, c client.Client, ctx context.Context) map[string]string {
	var evs eventsv1.EventList
	if err := c.List(ctx, &evs, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range evs.Items {
		if e.Regarding.Kind == "InferenceFunction" {
			out[e.Regarding.Name] = e.Reason
		}
	}
	return out
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
