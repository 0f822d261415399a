package gateway

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestBatchingThroughGateway deploys a function with a batching policy
// through the real API: the policy is recorded and shown, a bad one is a
// 400 naming the field, its instance batches concurrent requests (each
// answered with its own rows), and the gateway's spindle_batch_size
// histogram counts every request served.
func TestBatchingThroughGateway(t *testing.T) {
	tg := newTestGateway(t, Config{})
	b := modelgen.NewBuilder("double", 13, 1)
	b.Input("x", tensor.Float32, []int64{-1, 4}, "N")
	b.Fill("two", 2, 4)
	b.Node("Mul", []string{"x", "two"}, nil, "y")
	b.Output("y", tensor.Float32, []int64{-1, 4}, "N")
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(tg.url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeployWith(context.Background(), "dbl", path, client.DeployOptions{Batch: "max=8,delay=50ms"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeployWith(context.Background(), "bad", path, client.DeployOptions{Batch: "max=0"}); err == nil || !strings.Contains(err.Error(), "batch: max=0") {
		t.Errorf("bad policy: %v, want an error naming batch", err)
	}
	d, err := c.Describe(context.Background(), "dbl")
	if err != nil || d.Batch != "max=8,delay=50ms" {
		t.Fatalf("describe: %q %v", d.Batch, err)
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[` + strconv.Itoa(i) + `,0,0,0]}]}`
			code, out := infer(t, tg.url, "dbl", body)
			if code != 200 || !strings.Contains(out, `"data":[`+strconv.Itoa(2*i)+`,0,0,0]`) {
				t.Errorf("request %d: %d %s", i, code, out)
			}
		}()
	}
	wg.Wait()
	resp, err := http.Get(tg.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	count := regexp.MustCompile(`spindle_batch_size_count\{function="default/dbl"\} (\d+)`).FindSubmatch(m)
	sum := regexp.MustCompile(`spindle_batch_size_sum\{function="default/dbl"\} (\d+)`).FindSubmatch(m)
	if count == nil || string(count[1]) != "6" || sum == nil {
		t.Fatalf("spindle_batch_size: count %q sum %q, want 6 requests counted\n%s", count, sum, m)
	}
	if s, _ := strconv.Atoi(string(sum[1])); s <= 6 {
		t.Errorf("batch sizes sum to %d over 6 requests: no request was served in a batch", s)
	}
}
