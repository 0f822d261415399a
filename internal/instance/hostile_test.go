package instance

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// serveModel saves b and serves it as "m" behind httptest.
func serveModel(t *testing.T, b *modelgen.Builder, cfg Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg.Name, cfg.ModelPath = "m", path
	_, url := serveConfig(t, cfg)
	return url
}

// serveConfig loads cfg's model into a real server behind httptest.
func serveConfig(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); s.Close() })
	return s, srv.URL
}

// callRaw sends body and returns the status code and the answer as text.
func callRaw(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ones returns a JSON array of n ones.
func ones(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"
}

// TestHostileShapesGet400 sends bodies whose shapes would make the engine
// allocate terabytes (each a fatal out-of-memory error for the whole
// instance were it tried), expects 400 naming the rule for each, and then a
// valid request answered as usual: the instance keeps serving.
func TestHostileShapesGet400(t *testing.T) {
	bert := serveModel(t, modelgen.Transformer(modelgen.TinyBERT, 1), Config{Workers: 2})
	rb := modelgen.NewBuilder("resize", 13, 1)
	rb.Input("x", tensor.Float32, []int64{-1, -1, -1, -1})
	rb.Input("sizes", tensor.Int64, []int64{4})
	rb.Input("row", tensor.Float32, []int64{-1, 1})
	rb.Input("col", tensor.Float32, []int64{1, -1})
	rb.Node("Resize", []string{"x", "", "", "sizes"}, nil, "resized")
	rb.Node("Add", []string{"row", "col"}, nil, "grid")
	rb.Output("resized", tensor.Float32, nil)
	rb.Output("grid", tensor.Float32, nil)
	resize := serveModel(t, rb, Config{Workers: 2})
	small := serveModel(t, rb, Config{Workers: 2, MaxRunBytes: 1 << 20})

	ids := func(shape, data string) string {
		var in []string
		for _, name := range []string{"input_ids", "attention_mask", "token_type_ids"} {
			in = append(in, fmt.Sprintf(`{"name":%q,"shape":%s,"datatype":"INT64","data":%s}`, name, shape, data))
		}
		return `{"inputs":[` + strings.Join(in, ",") + `]}`
	}
	grid := func(sizes string, rows, cols int) string {
		return `{"inputs":[{"name":"x","shape":[1,1,1,1],"datatype":"FP32","data":[1]},` +
			`{"name":"sizes","shape":[4],"datatype":"INT64","data":` + sizes + `},` +
			fmt.Sprintf(`{"name":"row","shape":[%d,1],"datatype":"FP32","data":%s},`, rows, ones(rows)) +
			fmt.Sprintf(`{"name":"col","shape":[1,%d],"datatype":"FP32","data":%s}]}`, cols, ones(cols))
	}
	tests := []struct {
		name, url, body string
		code            int
		want            string // substring of the answer
	}{
		{"empty batch of 2^30 into mean pooling", bert, ids("[1073741824,0]", "[]"), 400, "request needs an intermediate tensor of"},
		{"dimension past 2^31", bert, ids("[4294967296,0]", "[]"), 400, "inputs[0].shape[0]: 4294967296 is more than 2147483648"},
		{"empty shape of 2^40 elements", bert, ids("[1048576,0,1048576]", "[]"), 400, "has too many elements"},
		{"Resize to 4 TiB", resize, grid("[1,1,1048576,1048576]", 2, 3), 400, `node \"Resize_1\" (Resize): bad input: output: shape [1 1 1048576 1048576] has more than 1073741824 elements`},
		{"broadcast to 8 GiB", resize, grid("[1,1,2,2]", 32768, 65536), 400, `intermediate tensor of 8 GiB at node \"Add_2\"`},
		{"instance limit", small, grid("[1,1,1024,1024]", 2, 3), 400, "more than the limit of 1 MiB"},
		{"valid after the hostile ones", bert, ids("[1,3]", "[[1,1,1]]"), 200, `"name":"sentence_embedding"`},
		{"valid Resize", resize, grid("[1,1,2,2]", 2, 3), 200, `"data":[1,1,1,1]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := callRaw(t, "POST", tt.url+"/v2/models/m/infer", tt.body)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("%d %s, want %d with %q", code, body, tt.code, tt.want)
			}
		})
	}
}

// TestRunBudgetFollowsMemoryLimit checks that an instance under a memory
// limit gives each request its share of what the limit leaves after the
// loaded model (a request within the engine's default 4 GiB used to get the
// instance killed for its cgroup limit: 502 for it and every request in
// it), and that a resize moves the share with the workers and the limit.
func TestRunBudgetFollowsMemoryLimit(t *testing.T) {
	rb := modelgen.NewBuilder("grid", 13, 1)
	rb.Input("row", tensor.Float32, []int64{-1, 1})
	rb.Input("col", tensor.Float32, []int64{1, -1})
	rb.Node("Add", []string{"row", "col"}, nil, "grid")
	rb.Output("grid", tensor.Float32, nil)
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := rb.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	const limit = 256 << 20
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) }) // the server set the test process's
	s, url := serveConfig(t, Config{Name: "m", ModelPath: path, Workers: 2, MemoryLimit: limit})
	share := s.Stats().RunBudget
	if want := (limit - s.loaded - 16<<20) / 2; share != want || share <= 0 {
		t.Fatalf("run budget %d with 2 workers under %d, %d loaded; want %d", share, limit, s.loaded, want)
	}
	grid := func(rows, cols int) string {
		return fmt.Sprintf(`{"inputs":[{"name":"row","shape":[%d,1],"datatype":"FP32","data":%s},{"name":"col","shape":[1,%d],"datatype":"FP32","data":%s}]}`, rows, ones(rows), cols, ones(cols))
	}
	// 8192 x 8192 floats: 256 MiB, within the default budget, past the share.
	code, body := callRaw(t, "POST", url+"/v2/models/m/infer", grid(8192, 8192))
	if code != http.StatusBadRequest || !strings.Contains(body, "more than the limit of") {
		t.Errorf("request past the share: %d %.200s; want 400 naming the limit", code, body)
	}
	code, _ = callRaw(t, "POST", url+"/v2/models/m/infer", grid(64, 64))
	if code != http.StatusOK {
		t.Errorf("small request: %d", code)
	}
	code, body = callRaw(t, "POST", url+"/_spindle/resize", `{"workers":1,"gomaxprocs":1,"memory_limit":536870912}`)
	if code != http.StatusOK {
		t.Fatalf("resize: %d %s", code, body)
	}
	if got, want := s.Stats().RunBudget, int64(512<<20)-s.loaded-16<<20; got != want {
		t.Errorf("run budget %d after the resize to 1 worker and 512 MiB, want %d", got, want)
	}
}

// TestFloat16IO serves a model whose input and output are float16: the
// metadata says FP16, an FP16 request is read (values rounded to float16)
// and the answer is FP16.
func TestFloat16IO(t *testing.T) {
	b := modelgen.NewBuilder("half", 17, 1)
	b.Input("x", tensor.Float16, []int64{3})
	b.Output("y", tensor.Float16, []int64{3})
	x := b.Node("Cast", []string{"x"}, []modelgen.Attr{modelgen.AInt("to", int64(tensor.Float32))})
	y := b.Node("Mul", []string{x, b.Init("third", []int64{1}, []float32{1.0 / 3})}, nil)
	b.Node("Cast", []string{y}, []modelgen.Attr{modelgen.AInt("to", int64(tensor.Float16))}, "y")
	url := serveModel(t, b, Config{Workers: 1})
	code, body := callRaw(t, "GET", url+"/v2/models/m", "")
	if code != 200 || !strings.Contains(body, `"inputs":[{"name":"x","datatype":"FP16"`) || !strings.Contains(body, `"outputs":[{"name":"y","datatype":"FP16"`) {
		t.Fatalf("metadata: %d %s, want FP16 input and output", code, body)
	}
	// 3 × 1/3 = 1; 0.1 reads as 0.0999755859375, a third of it is 0.033325195 in float16.
	code, body = callRaw(t, "POST", url+"/v2/models/m/infer", `{"inputs":[{"name":"x","shape":[3],"datatype":"FP16","data":[3,0.1,-6]}]}`)
	if code != 200 || !strings.Contains(body, `"datatype":"FP16","data":[1,0.033325195,-2]`) {
		t.Fatalf("infer: %d %s, want FP16 [1,0.033325195,-2]", code, body)
	}
}
