package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
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
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kubemanifests "github.com/spindleml/spindle/deploy/kubernetes"
	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
	"github.com/spindleml/spindle/internal/kube/devcluster"
	"github.com/spindleml/spindle/internal/kube/kubesim"
	"github.com/spindleml/spindle/internal/kube/operator"
	"github.com/spindleml/spindle/internal/kube/router"
	"github.com/spindleml/spindle/internal/sandbox"
	"github.com/spindleml/spindle/internal/testbin"
)

var bin string

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	testbin.Main(m, &bin)
}

// dataPlane is a real API server whose nodes are process nodes (their pods
// run as real `spindle instance` processes in real cgroups, on their own
// loopback addresses), the operator and the gateway, each as its service
// account with the RBAC of deploy/kubernetes, and a client's view of the
// gateway's address.
type dataPlane struct {
	t     *testing.T
	ctx   context.Context
	c     client.Client
	procs *kubesim.Processes
	url   string // the gateway
	model string
}

// startDataPlane starts it; keys, if given, are the gateway's tenant keys.
func startDataPlane(t *testing.T, nodes int, keys ...map[string]string) *dataPlane {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	cl, err := devcluster.Start(ctx, devcluster.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	d := &dataPlane{t: t, ctx: ctx, c: cl.Client}
	for i := 1; i <= nodes; i++ {
		if err := kubesim.AddProcessNode(ctx, cl.Client, fmt.Sprintf("node-%d", i), fmt.Sprintf("127.43.%d.0/24", i), 2, "4Gi"); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	if out, err := exec.Command(bin, "model", "gen", "mnist-cnn", "-o", work).CombinedOutput(); err != nil {
		t.Fatalf("model gen: %v\n%s", err, out)
	}
	d.model = filepath.Join(work, "model.onnx")

	// The process kubelet, with real cgroups.
	caps, err := sandbox.Detect(sandbox.Options{Parent: "spindle-test-kube", DisableNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caps.Controller.Close() })
	if !caps.CPU {
		t.Fatalf("no CPU quota on this machine's cgroups: %s", caps.CgroupProblem)
	}
	d.procs = &kubesim.Processes{Exe: bin, Sandbox: caps, Log: testWriter{t}, StopGrace: 2 * time.Second}
	kmgr := newManager(t, cl.Rest, ctrl.Options{})
	if err := d.procs.SetupWithManager(kmgr); err != nil {
		t.Fatal(err)
	}
	if err := (&kubesim.Kubelet{Manages: kubesim.IsProcessNode, Grant: d.procs.Grant}).SetupWithManager(kmgr); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, kmgr)
	t.Cleanup(d.procs.Close)

	for _, m := range [][]byte{kubemanifests.Operator, kubemanifests.Gateway} {
		if err := cl.Apply(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// The gateway, as its service account (a Role in "default" only).
	gwRest, err := cl.ServiceAccountConfig(ctx, "spindle-system", "spindle-gateway")
	if err != nil {
		t.Fatal(err)
	}
	rcfg := router.Config{Namespace: "default", MaxBodyBytes: 1 << 20, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	if len(keys) > 0 {
		rcfg.Keys = keys[0]
	}
	rt, err := router.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	gmgr := newManager(t, gwRest, ctrl.Options{Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{"default": {}}}})
	if err := rt.SetupWithManager(gmgr); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, gmgr)
	front := httptest.NewServer(rt.Handler())
	t.Cleanup(front.Close)
	admin := httptest.NewServer(rt.AdminHandler())
	t.Cleanup(admin.Close)
	d.url = front.URL

	// The operator, as its service account, scaling on the gateway's
	// measurements.
	opRest, err := cl.ServiceAccountConfig(ctx, "spindle-system", "spindle-operator")
	if err != nil {
		t.Fatal(err)
	}
	op, err := operator.New(operator.Config{Image: "spindle:test", Stats: &router.Gateways{URLs: []string{admin.URL}},
		Resolution: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	omgr := newManager(t, opRest, ctrl.Options{})
	if err := op.SetupWithManager(omgr); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, omgr)
	t.Cleanup(func() {
		if t.Failed() {
			var pods corev1.PodList
			cl.Client.List(context.Background(), &pods)
			for _, p := range pods.Items {
				t.Logf("pod %s on %s: phase %s ip %s conditions %v message %q", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP, p.Status.Conditions, p.Status.Message)
			}
		}
	})
	waitFor(t, 30*time.Second, "gateway ready", func() (bool, string) {
		resp, err := http.Get(admin.URL + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return d
}

func newManager(t *testing.T, rc *rest.Config, o ctrl.Options) ctrl.Manager {
	t.Helper()
	o.Scheme = devcluster.Scheme()
	o.Metrics = metricsserver.Options{BindAddress: "0"}
	mgr, err := ctrl.NewManager(rc, o)
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}

// run starts mgr until the test ends.
func run(t *testing.T, ctx context.Context, mgr ctrl.Manager) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		var done bool
		if done, last = ok(); done {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v (last: %s)", what, d, last)
}

func (d *dataPlane) create(name, policy string, params map[string]string) {
	d.createFor("", name, policy, params)
}

// createFor creates a function of tenant.
func (d *dataPlane) createFor(tenant, name, policy string, params map[string]string) {
	f := &v1alpha1.InferenceFunction{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1alpha1.InferenceFunctionSpec{
			Tenant:  tenant,
			Model:   v1alpha1.ModelSource{Path: d.model},
			Memory:  "512Mi",
			Scaling: v1alpha1.Scaling{Policy: policy, Params: params},
		},
	}
	if err := d.c.Create(d.ctx, f); err != nil {
		d.t.Fatal(err)
	}
}

func (d *dataPlane) get(name string) *v1alpha1.InferenceFunction {
	var f v1alpha1.InferenceFunction
	if err := d.c.Get(d.ctx, types.NamespacedName{Namespace: "default", Name: name}, &f); err != nil {
		d.t.Fatal(err)
	}
	return &f
}

// setParams changes the function's scaling parameters, retrying on
// conflicts with the operator's status writes.
func (d *dataPlane) setParams(name string, params map[string]string) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		f := d.get(name)
		for k, v := range params {
			f.Spec.Scaling.Params[k] = v
		}
		return d.c.Update(d.ctx, f)
	})
	if err != nil {
		d.t.Fatal(err)
	}
}

// pods returns the function's live pods, by node.
func (d *dataPlane) pods(name string) []corev1.Pod {
	var list corev1.PodList
	if err := d.c.List(d.ctx, &list, client.InNamespace("default"), client.MatchingLabels{operator.LabelFunction: name}); err != nil {
		d.t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Spec.NodeName < out[b].Spec.NodeName })
	return out
}

// post sends body to url and returns the status and answer.
func post(t *testing.T, url string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// mnistRequest is an OIP request for the generated MNIST model: one 28x28
// image of a ramp.
func mnistRequest(input string) []byte {
	data := make([]float32, 28*28)
	for i := range data {
		data[i] = float32(i%28) / 28
	}
	b, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": input, "shape": []int{1, 1, 28, 28}, "datatype": "FP32", "data": data}}})
	return b
}

type instanceStats struct {
	Served     int64 `json:"served"`
	GOMAXPROCS int   `json:"gomaxprocs"`
}

func podStats(t *testing.T, p *corev1.Pod) instanceStats {
	t.Helper()
	var st instanceStats
	resp, err := http.Get("http://" + net.JoinHostPort(p.Status.PodIP, "8080") + "/_spindle/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDataPlaneFromZeroUpOutAndBack is the whole path on a real API server
// with real instances: a request to a function at zero is held by the
// gateway, which wakes the operator; a pod starts on a node (a real process
// on the pod's own address, in a cgroup of the pod's CPU) and the request is
// answered by it, byte for byte as the pod answers directly. Latency over the
// SLO, measured by the gateway, grows the same pod in place (its cgroup
// quota and the instance's GOMAXPROCS follow, same process) until its node is
// full, then a pod on the other node shares the requests. Idle, the function
// goes to zero (processes stopped), and the next request starts it again.
func TestDataPlaneFromZeroUpOutAndBack(t *testing.T) {
	d := startDataPlane(t, 2)
	d.create("mnist", "hybrid", map[string]string{
		"slo": "2s", "interval": "1s", "window": "2s", "stabilization": "2s", "idle-to-zero": "4s", "min-vcpus": "1",
	})
	infer := d.url + "/v2/models/mnist/infer"
	// The gateway knows a function once its watch delivered it (it does not
	// ask the API server about names it has not seen: a client could make it
	// do so for every name).
	waitFor(t, 10*time.Second, "the gateway sees the function", func() (bool, string) {
		resp, err := http.Get(d.url + "/v2/models/mnist/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})

	// Bad requests are refused by the gateway itself, naming the rule.
	for _, c := range []struct {
		url, timeout string
		body         []byte
		code         int
		want         string
	}{
		{d.url + "/v2/models/nope/infer", "", []byte("{}"), http.StatusNotFound, `function "nope" is not deployed in namespace default`},
		{d.url + "/v2/models/mnist/versions/7/infer", "", []byte("{}"), http.StatusNotFound, `has no version "7"`},
		{infer, "soon", []byte("{}"), http.StatusBadRequest, `header Spindle-Timeout "soon"`},
		{infer, "", make([]byte, 2<<20), http.StatusRequestEntityTooLarge, "more than the limit of 1048576"},
	} {
		var h []string
		if c.timeout != "" {
			h = []string{"Spindle-Timeout", c.timeout}
		}
		code, out := post(t, c.url, c.body, h...)
		var e struct{ Error string }
		json.Unmarshal(out, &e)
		if code != c.code || !strings.Contains(e.Error, c.want) {
			t.Errorf("POST %s: %d %s, want %d with %q", c.url, code, out, c.code, c.want)
		}
	}
	if n := len(d.pods("mnist")); n != 0 {
		t.Fatalf("%d pods before any request, want 0", n)
	}

	// From zero: the request waits for the pod it caused.
	resp, err := http.Get(d.url + "/v2/models/mnist")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Inputs []struct{ Name string } `json:"inputs"`
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(meta.Inputs) != 1 {
		t.Fatalf("metadata from zero: %s %+v", resp.Status, meta)
	}
	body := mnistRequest(meta.Inputs[0].Name)
	began := time.Now()
	code, viaGateway := post(t, infer, body)
	if code != http.StatusOK {
		t.Fatalf("infer: %d %s", code, viaGateway)
	}
	t.Logf("first inference (pod already started by the metadata request): %v", time.Since(began).Round(time.Millisecond))
	if d.get("mnist").Annotations[router.WakeAnnotation] == "" {
		t.Errorf("no %s annotation after a request at zero", router.WakeAnnotation)
	}
	pods := d.pods("mnist")
	if len(pods) != 1 {
		t.Fatalf("%d pods after the first request, want 1", len(pods))
	}
	first := pods[0]
	if !strings.HasPrefix(first.Status.PodIP, "127.43.") {
		t.Fatalf("pod %s has address %q, want a process node's", first.Name, first.Status.PodIP)
	}
	pid, _, ok := d.procs.Process("default", first.Name)
	if !ok {
		t.Fatalf("no process runs pod %s", first.Name)
	}
	code, direct := post(t, "http://"+net.JoinHostPort(first.Status.PodIP, "8080")+"/v2/models/mnist/infer", body)
	if code != http.StatusOK || !bytes.Equal(direct, viaGateway) {
		t.Fatalf("the pod answers %d %s directly, the gateway gave %s", code, direct, viaGateway)
	}
	if st := podStats(t, &first); st.GOMAXPROCS != 1 {
		t.Errorf("instance of a 1-vCPU pod runs GOMAXPROCS %d", st.GOMAXPROCS)
	}

	// Latency over the SLO (now 1 µs: every request breaks it): the same
	// pod grows to its node's 2 vCPUs, then a pod starts on the other node.
	stop := make(chan struct{})
	loadDone := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				loadDone <- n
				return
			default:
			}
			// Not post: t.Fatal belongs to the test's goroutine.
			if resp, err := http.Post(infer, "application/json", bytes.NewReader(body)); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					n++
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	d.setParams("mnist", map[string]string{"slo": "1us"})
	waitFor(t, 30*time.Second, "pod resized in place to 2 vCPUs", func() (bool, string) {
		ps := d.pods("mnist")
		if len(ps) == 0 {
			return false, "no pod"
		}
		p := ps[0]
		got := p.Spec.Containers[0].Resources.Requests.Cpu().String()
		granted := "-"
		if len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].Resources != nil {
			granted = p.Status.ContainerStatuses[0].Resources.Requests.Cpu().String()
		}
		return p.UID == first.UID && got == "2" && granted == "2", fmt.Sprintf("%s: spec %s granted %s", p.Name, got, granted)
	})
	waitFor(t, 5*time.Second, "the instance follows its cgroup", func() (bool, string) {
		st := podStats(t, &first)
		return st.GOMAXPROCS == 2, fmt.Sprintf("GOMAXPROCS %d", st.GOMAXPROCS)
	})
	if now, _, ok := d.procs.Process("default", first.Name); !ok || now != pid {
		t.Fatalf("the resize restarted the instance: pid %d -> %d", pid, now)
	}
	waitFor(t, 30*time.Second, "a second pod on the other node", func() (bool, string) {
		ps := d.pods("mnist")
		var nodes []string
		ready := 0
		for _, p := range ps {
			nodes = append(nodes, p.Spec.NodeName)
			if p.Status.Phase == corev1.PodRunning {
				ready++
			}
		}
		return len(ps) == 2 && ready == 2 && nodes[0] != nodes[1], fmt.Sprintf("nodes %v, %d running", nodes, ready)
	})
	waitFor(t, 10*time.Second, "both pods serve", func() (bool, string) {
		ps := d.pods("mnist")
		var served []int64
		for i := range ps {
			served = append(served, podStats(t, &ps[i]).Served)
		}
		return len(served) == 2 && served[0] > 0 && served[1] > 0, fmt.Sprintf("served %v", served)
	})
	close(stop)
	t.Logf("%d requests under load", <-loadDone)
	f := d.get("mnist")
	if f.Status.P99 == "" || f.Status.P99 == "0s" {
		t.Errorf("status p99 %q: the gateway's measurement did not reach the operator", f.Status.P99)
	}

	// Idle: to zero, processes stopped.
	waitFor(t, 30*time.Second, "scaled to zero", func() (bool, string) {
		n := len(d.pods("mnist"))
		return n == 0, fmt.Sprintf("%d pods", n)
	})
	waitFor(t, 10*time.Second, "processes stopped", func() (bool, string) {
		_, _, ok := d.procs.Process("default", first.Name)
		return !ok, "still running"
	})
	// And back: the next request starts a pod again.
	d.setParams("mnist", map[string]string{"slo": "2s"})
	began = time.Now()
	if code, out := post(t, infer, body); code != http.StatusOK || !bytes.Equal(out, viaGateway) {
		t.Fatalf("infer from zero again: %d %s", code, out)
	}
	t.Logf("cold start through the cluster (wake, decision, pod, process, model load, inference): %v", time.Since(began).Round(time.Millisecond))
}

// TestDataPlanePodDies: an instance killed under load (its pod fails) costs
// the clients nothing: the requests it was serving, and those sent before
// the gateway saw the pod fail, are retried on the other pod; the operator
// replaces the pod, and the new one serves.
func TestDataPlanePodDies(t *testing.T) {
	d := startDataPlane(t, 2)
	d.create("mnist", "static", map[string]string{"vcpus": "1", "instances": "2", "interval": "1s"})
	var running []corev1.Pod
	waitFor(t, 30*time.Second, "two pods running", func() (bool, string) {
		running = running[:0]
		for _, p := range d.pods("mnist") {
			if p.Status.Phase == corev1.PodRunning {
				running = append(running, p)
			}
		}
		return len(running) == 2, fmt.Sprintf("%d running", len(running))
	})
	body := mnistRequest("input")
	infer := d.url + "/v2/models/mnist/infer"
	var ok, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := http.Post(infer, "application/json", bytes.NewReader(body))
			if err != nil {
				failed.Add(1)
				lastErr.Store(err.Error())
				continue
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ok.Add(1)
			} else {
				failed.Add(1)
				lastErr.Store(fmt.Sprintf("%d %s", resp.StatusCode, out))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	victim := running[0]
	pid, _, found := d.procs.Process("default", victim.Name)
	if !found {
		t.Fatalf("no process for pod %s", victim.Name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	before := ok.Load()
	waitFor(t, 30*time.Second, "the pod replaced and serving", func() (bool, string) {
		ps := d.pods("mnist")
		var names []string
		fresh := false
		n := 0
		for i, p := range ps {
			names = append(names, p.Name+":"+string(p.Status.Phase))
			if p.Status.Phase != corev1.PodRunning {
				continue
			}
			n++
			if p.Name != victim.Name && p.Name != running[1].Name && podStats(t, &ps[i]).Served > 0 {
				fresh = true
			}
		}
		return n == 2 && fresh, strings.Join(names, " ")
	})
	close(stop)
	<-done
	// kubectl describe says why the pod went.
	waitFor(t, 10*time.Second, "a PodFailed event on the function", func() (bool, string) {
		var evs eventsv1.EventList
		if err := d.c.List(d.ctx, &evs, client.InNamespace("default")); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, ev := range evs.Items {
			if ev.Regarding.Kind == "InferenceFunction" && ev.Regarding.Name == "mnist" && ev.Reason == "PodFailed" {
				if strings.Contains(ev.Note, victim.Name) && strings.Contains(ev.Note, "instance exited") {
					return true, ev.Note
				}
				seen = append(seen, ev.Note)
			}
		}
		return false, strings.Join(seen, "; ")
	})
	t.Logf("%d requests answered (%d after the kill), %d failed", ok.Load(), ok.Load()-before, failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d requests failed while a pod died; last: %v", failed.Load(), lastErr.Load())
	}
	if ok.Load() <= before {
		t.Error("no request answered after the kill")
	}
}

// TestDataPlaneTenants: with tenant keys, a request needs a key, and a
// tenant reaches its own functions only; another's reads as not deployed
// and wakes nothing.
func TestDataPlaneTenants(t *testing.T) {
	const acme, globex = "acme-0123456789abcdef", "globex-0123456789abcdef"
	d := startDataPlane(t, 1, map[string]string{acme: "acme", globex: "globex"})
	d.createFor("acme", "mnist", "hybrid", map[string]string{"idle-to-zero": "1m"})
	infer := d.url + "/v2/models/mnist/infer"
	body := mnistRequest("input")
	waitFor(t, 10*time.Second, "the gateway sees the function", func() (bool, string) {
		code, out := post(t, infer, body, "Authorization", "Bearer "+globex)
		return code == http.StatusNotFound && !strings.Contains(string(out), "not read"), fmt.Sprintf("%d %s", code, out)
	})
	for _, c := range []struct {
		auth string
		code int
		want string
	}{
		{"", http.StatusUnauthorized, "want 'Authorization: Bearer KEY'"},
		{"Bearer not-a-key-of-anyone", http.StatusUnauthorized, "unknown key"},
		{"Bearer " + globex, http.StatusNotFound, `function "mnist" is not deployed`},
	} {
		var h []string
		if c.auth != "" {
			h = []string{"Authorization", c.auth}
		}
		code, out := post(t, infer, body, h...)
		var e struct{ Error string }
		json.Unmarshal(out, &e)
		if code != c.code || !strings.Contains(e.Error, c.want) {
			t.Errorf("%q: %d %s, want %d with %q", c.auth, code, out, c.code, c.want)
		}
	}
	if n := len(d.pods("mnist")); n != 0 || d.get("mnist").Annotations[router.WakeAnnotation] != "" {
		t.Fatalf("refused requests started %d pods or woke the function", n)
	}
	if code, out := post(t, infer, body, "Authorization", "Bearer "+acme); code != http.StatusOK {
		t.Fatalf("its tenant: %d %s", code, out)
	}
}

// TestDataPlaneModelThatCannotLoad: a function whose model cannot load
// answers its waiting request with the deadline (504), says why on the
// function (PodFailed events naming the model), and its pods are retried
// with a backoff, not one a second.
func TestDataPlaneModelThatCannotLoad(t *testing.T) {
	d := startDataPlane(t, 1)
	d.model = "/nonexistent/model.onnx"
	d.create("broken", "hybrid", map[string]string{"interval": "1s"})
	waitFor(t, 10*time.Second, "the gateway sees the function", func() (bool, string) {
		resp, err := http.Get(d.url + "/v2/models/broken/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	code, out := post(t, d.url+"/v2/models/broken/infer", mnistRequest("input"), "Spindle-Timeout", "8s")
	var e struct{ Error string }
	json.Unmarshal(out, &e)
	if code != http.StatusGatewayTimeout || !strings.Contains(e.Error, "exceeded while waiting for a pod") {
		t.Fatalf("%d %s, want 504 waiting for a pod", code, out)
	}
	var evs eventsv1.EventList
	if err := d.c.List(d.ctx, &evs, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, ev := range evs.Items {
		if ev.Regarding.Name == "broken" && ev.Reason == "PodFailed" {
			failed++
			if !strings.Contains(ev.Note, "/nonexistent/model.onnx") {
				t.Errorf("PodFailed says %q, not which model", ev.Note)
			}
		}
	}
	t.Logf("%d pods failed in 8 s", failed)
	if failed < 2 || failed > 4 {
		t.Errorf("%d pods failed in 8 s: want 2-4 (a retry after 1, 2, 4 s), not none and not one a second", failed)
	}
}
