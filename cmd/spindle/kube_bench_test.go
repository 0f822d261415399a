package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
	"github.com/spindleml/spindle/internal/kube/devcluster"
	"github.com/spindleml/spindle/internal/kube/kubesim"
)

// BenchmarkKubeSteadyState is issue 18's data-centre check on the real API
// server: 100 simulated nodes of 64 CPUs, 4 functions per node (400) under
// the thesis's hybrid policy (5 s interval) and a simulated load each, the
// operator in its own process as `spindle operator`. After the functions
// settle it measures, over SPINDLE_KUBE_BENCH_WINDOW (default 60s), the
// operator's CPU (cores, from /proc) and its API requests a second (its
// rest_client_requests_total), and the mean reconcile time. Run:
//
//	go test -run '^$' -bench KubeSteadyState -benchtime 1x ./cmd/spindle
func BenchmarkKubeSteadyState(b *testing.B) {
	const nodes, perNode = 100, 4
	window := 60 * time.Second
	if v := os.Getenv("SPINDLE_KUBE_BENCH_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		window = d
	}
	for range b.N {
		dir := b.TempDir()
		dev := startProc(b, filepath.Join(dir, "dev.log"), bin, "kube", "dev", "--nodes", strconv.Itoa(nodes), "--node-cpus", "64", "--operator=false", "--dir", filepath.Join(dir, "cluster"))
		kubeconfig := ""
		for line := range dev.lines {
			if v, ok := strings.CutPrefix(line, "KUBECONFIG="); ok {
				kubeconfig = v
				break
			}
		}
		if kubeconfig == "" {
			b.Fatal("spindle kube dev printed no KUBECONFIG")
		}
		go func() {
			for range dev.lines {
			}
		}()
		port := freePort(b)
		op := startProc(b, filepath.Join(dir, "operator.log"), bin, "operator", "--kubeconfig", kubeconfig, "--simulated-load",
			"--metrics-addr", "127.0.0.1:"+strconv.Itoa(port), "--health-addr", "0", "--image", "spindle:bench")
		go func() {
			for range op.lines {
			}
		}()
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			b.Fatal(err)
		}
		rc.QPS, rc.Burst = 100, 200
		c, err := devcluster.NewClient(rc)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		// Loads from 2 to 40 requests a second of 100 ms: from one small pod
		// to a few large ones.
		for i := range nodes * perNode {
			rate := 2 + (i*7)%39
			f := &v1alpha1.InferenceFunction{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fn-%03d", i), Namespace: "default",
					Annotations: map[string]string{kubesim.LoadAnnotation: fmt.Sprintf("%d/s,100ms", rate)}},
				Spec: v1alpha1.InferenceFunctionSpec{
					Model:   v1alpha1.ModelSource{Path: "/var/lib/spindle/models/m.onnx"},
					Scaling: v1alpha1.Scaling{Policy: "hybrid"},
				},
			}
			if err := c.Create(ctx, f); err != nil {
				b.Fatal(err)
			}
		}
		settle := 60 * time.Second
		b.Logf("created %d functions; settling %v", nodes*perNode, settle)
		time.Sleep(settle)
		metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
		cpu0, req0, rt0 := procCPU(b, op.cmd.Process.Pid), scrapeSum(b, metricsURL, "rest_client_requests_total"), reconcileTime(b, metricsURL)
		b.ResetTimer()
		time.Sleep(window)
		b.StopTimer()
		cpu1, req1, rt1 := procCPU(b, op.cmd.Process.Pid), scrapeSum(b, metricsURL, "rest_client_requests_total"), reconcileTime(b, metricsURL)
		var list v1alpha1.InferenceFunctionList
		if err := c.List(ctx, &list); err != nil {
			b.Fatal(err)
		}
		pods, vcpus := 0, 0.0
		for _, f := range list.Items {
			pods += f.Status.Pods
			v, _ := strconv.ParseFloat(f.Status.VCPUs, 64)
			vcpus += v
		}
		cores := (cpu1 - cpu0) / window.Seconds()
		rps := (req1 - req0) / window.Seconds()
		meanRT := 0.0
		if n := rt1[1] - rt0[1]; n > 0 {
			meanRT = (rt1[0] - rt0[0]) / n * 1000
		}
		decide, grant := reactionTimes(b, ctx, c, list.Items[:20])
		b.ReportMetric(decide.Seconds(), "decision-p50-s")
		b.ReportMetric(grant.Seconds(), "granted-p50-s")
		b.ReportMetric(cores, "operator-cores")
		b.ReportMetric(rps, "api-req/s")
		b.ReportMetric(meanRT, "reconcile-ms")
		b.ReportMetric(float64(pods), "pods")
		b.Logf("%d nodes x 64 CPUs, %d functions: %d pods, %.0f vCPUs granted; over %v the operator used %.3f cores and made %.1f API requests/s (targets < 1 core, < 200/s); mean reconcile %.2f ms; load x4 on 20 functions: decided after %v, granted in pod status after %v (medians; hybrid's interval is 5 s)",
			nodes, len(list.Items), pods, vcpus, window, cores, rps, meanRT, decide.Round(time.Millisecond), grant.Round(time.Millisecond))
		op.stop(b)
		dev.stop(b)
	}
}

// reactionTimes quadruples the load of fns at once and returns the median
// time until the operator decided to scale each up (its status's last
// decision) and until the pods' kubelets granted the new CPU (the status's
// vCPUs, read from the pods' status).
func reactionTimes(b *testing.B, ctx context.Context, c client.Client, fns []v1alpha1.InferenceFunction) (time.Duration, time.Duration) {
	b.Helper()
	began := time.Now()
	before := map[string]string{}
	for _, f := range fns {
		before[f.Name] = f.Status.VCPUs
		rate, service, err := kubesim.ParseLoad(f.Annotations[kubesim.LoadAnnotation])
		if err != nil {
			b.Fatal(err)
		}
		patch := client.MergeFrom(f.DeepCopy())
		f.Annotations[kubesim.LoadAnnotation] = fmt.Sprintf("%g/s,%s", 4*rate, service)
		if err := c.Patch(ctx, &f, patch); err != nil {
			b.Fatal(err)
		}
	}
	var decided, granted []time.Duration
	seenD, seenG := map[string]bool{}, map[string]bool{}
	for time.Since(began) < 60*time.Second && len(granted) < len(fns) {
		for _, f := range fns {
			var cur v1alpha1.InferenceFunction
			if err := c.Get(ctx, client.ObjectKeyFromObject(&f), &cur); err != nil {
				b.Fatal(err)
			}
			now := time.Since(began)
			if d := cur.Status.LastDecision; !seenD[f.Name] && d != nil && d.Action == "scale-up" && d.Time.After(began) {
				seenD[f.Name] = true
				decided = append(decided, d.Time.Sub(began))
			}
			if !seenG[f.Name] && seenD[f.Name] && cur.Status.VCPUs != before[f.Name] && cur.Status.VCPUs == cur.Status.LastDecision.VCPUs {
				seenG[f.Name] = true
				granted = append(granted, now)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(granted) < len(fns) {
		b.Errorf("after 60 s, %d of %d functions decided and %d granted", len(decided), len(fns), len(granted))
	}
	return median(decided), median(granted)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

type proc struct {
	cmd   *exec.Cmd
	lines chan string
	log   string
}

func startProc(tb testing.TB, log, bin string, args ...string) *proc {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	lf, err := os.Create(log)
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = lf
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 64), log: log}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if tb.Failed() {
			b, _ := os.ReadFile(log)
			tb.Logf("%s:\n%s", log, tail(string(b), 30))
		}
	})
	return p
}

func (p *proc) stop(tb testing.TB) {
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		tb.Errorf("%s did not stop within 30s of SIGINT", p.cmd.Args[1])
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// procCPU is a process's user + system CPU time in seconds.
func procCPU(tb testing.TB, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func scrape(tb testing.TB, url string) map[string]*dto.MetricFamily {
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		tb.Fatal(err)
	}
	return fams
}

// scrapeSum sums a counter over its labels.
func scrapeSum(tb testing.TB, url, name string) float64 {
	var sum float64
	if f := scrape(tb, url)[name]; f != nil {
		for _, m := range f.Metric {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// reconcileTime returns the sum and count of controller-runtime's reconcile
// time histogram for the InferenceFunction controller.
func reconcileTime(tb testing.TB, url string) [2]float64 {
	var out [2]float64
	if f := scrape(tb, url)["controller_runtime_reconcile_time_seconds"]; f != nil {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "controller" && l.GetValue() == "inferencefunction" {
					out[0] += m.GetHistogram().GetSampleSum()
					out[1] += float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return out
}
