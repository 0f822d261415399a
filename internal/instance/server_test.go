package instance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// newServer loads y = x*2 over [N,4] into a real server behind httptest.
func newServer(t *testing.T, workers, queue int) (*Server, string) {
	t.Helper()
	return newServerWith(t, Config{Workers: workers, Queue: queue})
}

// newServerWith is newServer with more of cfg set; Name and ModelPath are
// the doubling model's.
func newServerWith(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	b := modelgen.NewBuilder("double", 13, 1)
	b.Input("x", tensor.Float32, []int64{-1, 4}, "N")
	b.Fill("two", 2, 4)
	b.Node("Mul", []string{"x", "two"}, nil, "y")
	b.Output("y", tensor.Float32, []int64{-1, 4}, "N")
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg.Name, cfg.ModelPath = "double", path
	return newModelServer(t, cfg)
}

// newModelServer loads cfg's model into a real server behind httptest.
func newModelServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); s.Close() })
	return s, srv.URL
}

func call(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: %d, body not JSON: %q", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, v
}

func TestEndpoints(t *testing.T) {
	_, url := newServer(t, 2, 8)
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string // substring of the JSON answer
	}{
		{"live", "GET", "/v2/health/live", "", 200, `"live":true`},
		{"ready", "GET", "/v2/health/ready", "", 200, `"ready":true`},
		{"metadata", "GET", "/v2/models/double", "", 200, `"datatype":"FP32"`},
		{"model ready", "GET", "/v2/models/double/ready", "", 200, `"ready":true`},
		{"infer", "POST", "/v2/models/double/infer", `{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[[1,2,3,4],[5,6,7,8]]}]}`, 200, `"data":[2,4,6,8,10,12,14,16]`},
		{"other model", "POST", "/v2/models/other/infer", `{}`, 404, `not served here`},
		{"unknown output", "POST", "/v2/models/double/infer", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"z"}]}`, 400, `outputs[0].name`},
		{"bad dim", "POST", "/v2/models/double/infer", `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`, 400, `dimension 1 must be 4`},
		{"resize bad workers", "POST", "/_spindle/resize", `{"workers":0}`, 400, `workers: 0 must be between 1`},
		{"resize unknown field", "POST", "/_spindle/resize", `{"workers":2,"cpus":3}`, 400, `unknown field`},
		{"no such endpoint", "GET", "/nope", "", 404, `no such endpoint`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, v := call(t, tc.method, url+tc.path, tc.body)
			b, _ := json.Marshal(v)
			if code != tc.code || !strings.Contains(string(b), tc.want) {
				t.Fatalf("got %d %s, want %d with %s", code, b, tc.code, tc.want)
			}
		})
	}
}

// TestResizeUnderLoad resizes the worker pool up and down while requests run:
// no request fails, and the pool reports each new size.
func TestResizeUnderLoad(t *testing.T) {
	s, url := newServer(t, 1, 4096)
	body := `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`
	var wg sync.WaitGroup
	failures := make(chan string, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50 && ctx.Err() == nil; i++ {
				resp, err := http.Post(url+"/v2/models/double/infer", "application/json", strings.NewReader(body))
				if err != nil {
					failures <- err.Error()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures <- fmt.Sprint(resp.StatusCode)
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		n := 1 + i%4
		code, v := call(t, "POST", url+"/_spindle/resize", fmt.Sprintf(`{"workers":%d,"gomaxprocs":0}`, n))
		if code != 200 {
			t.Fatalf("resize to %d: %d %v", n, code, v)
		}
		if got := s.Stats().Pool.Concurrency; got != n {
			t.Fatalf("after resize to %d the pool runs %d at once", n, got)
		}
	}
	wg.Wait()
	cancel()
	close(failures)
	var all []string
	for f := range failures {
		all = append(all, f)
	}
	if len(all) > 0 {
		t.Fatalf("%d requests failed during resizes: %v", len(all), all[:min(len(all), 5)])
	}
	if served := s.Stats().Served; served != 400 {
		t.Fatalf("served %d, want 400", served)
	}
}

// TestShrinkWhenIdle checks, on a fake clock, that an instance gives its
// free memory back once per idle period: not while requests keep arriving,
// once 10 s after they stop, and not again until another request came.
func TestShrinkWhenIdle(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Now())
	s, url := newServerWith(t, Config{Workers: 1, Queue: 8, Clock: fc})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.shrinkWhenIdle(ctx, time.Second, 10*time.Second)
	waitFor(t, fc.HasWaiters)
	// tick steps the clock by one period and waits until the loop has
	// handled it: a fake ticker drops a step the loop has not taken yet.
	tick := func() {
		n := s.idleTicks.Load()
		fc.Step(time.Second)
		waitFor(t, func() bool { return s.idleTicks.Load() > n })
	}
	shrinks := func() int64 { return s.Stats().IdleShrinks }
	body := `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`
	for range 30 { // a request every second for 30 s
		call(t, "POST", url+"/v2/models/double/infer", body)
		tick()
	}
	if n := shrinks(); n != 0 {
		t.Fatalf("shrank %d times while requests arrived", n)
	}
	for range 9 {
		tick()
	}
	if n := shrinks(); n != 0 {
		t.Fatalf("shrank %d times 9 s after the last request, want none before 10 s", n)
	}
	tick()
	if n := shrinks(); n != 1 {
		t.Fatalf("shrank %d times 10 s after the last request, want 1", n)
	}
	for range 30 {
		tick()
	}
	if n := shrinks(); n != 1 {
		t.Fatalf("shrank %d times in one idle period, want 1", n)
	}
	call(t, "POST", url+"/v2/models/double/infer", body)
	for range 11 {
		tick()
	}
	if n := shrinks(); n != 2 {
		t.Fatalf("shrank %d times after a second idle period, want 2", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not met in 5 s")
}
