package instance

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
)

// newTaskServer loads cfg into a real server behind httptest.
func newTaskServer(t *testing.T, cfg Config) string {
	t.Helper()
	s := New(cfg)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); s.Close() })
	return srv.URL
}

func postType(t *testing.T, url, ct string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("POST %s: %d, body not JSON: %v", url, resp.StatusCode, err)
	}
	b, _ := json.Marshal(v)
	return resp.StatusCode, string(b)
}

func TestTaskEndpoints(t *testing.T) {
	burn := newTaskServer(t, Config{Name: "burn", Task: "cpu-burn", TaskConfig: json.RawMessage(`{"burn_ms": 2, "iters_per_ms": 1000}`)})
	_, double := newServer(t, 1, 4)

	dir := t.TempDir()
	if err := modelgen.Generate("tiny-image-cls", dir, 1); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "labels.txt"), []byte("a\nb\nc\nd\ne\n"), 0o644)
	img := newTaskServer(t, Config{Name: "img", ModelPath: filepath.Join(dir, "model.onnx"), Task: "image-classification", TaskConfig: json.RawMessage(`{"top_k": 2}`)})
	var pngBytes bytes.Buffer
	png.Encode(&pngBytes, image.NewGray(image.Rect(0, 0, 40, 30)))

	tests := []struct {
		name, url, ct, body string
		code                int
		want                string
	}{
		{"burn", burn + "/v1/tasks/burn", "", "", 200, `"burned_ms":2`},
		{"burn ms", burn + "/v1/tasks/burn", "application/json", `{"ms": 3}`, 200, `"iterations":3000`},
		{"burn bad JSON", burn + "/v1/tasks/burn", "application/json", `{"ms": "3"}`, 400, `body: ms: want int`},
		{"burn over cap", burn + "/v1/tasks/burn", "application/json", `{"ms": 600000}`, 400, `ms: 600000 must be between 0 and 60000`},
		{"burn other name", burn + "/v1/tasks/other", "", "", 404, `not served here`},
		{"burn has no model", burn + "/v2/models/burn/infer", "application/json", `{}`, 404, `function \"burn\" has no model (task cpu-burn)`},
		{"no task endpoint", double + "/v1/tasks/double", "application/json", `{}`, 404, `function \"double\" has no task endpoint`},
		{"image", img + "/v1/tasks/img", "image/png", pngBytes.String(), 200, `"labels":[{"label":`},
		{"bad image", img + "/v1/tasks/img", "image/png", "not a png", 400, `image: not a PNG or JPEG`},
		{"wrong content type", img + "/v1/tasks/img", "text/plain", pngBytes.String(), 400, `Content-Type: \"text/plain\"`},
		{"image again", img + "/v1/tasks/img", "image/png", pngBytes.String(), 200, `"score":`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, got := postType(t, tc.url, tc.ct, []byte(tc.body))
			if code != tc.code || !strings.Contains(got, tc.want) {
				t.Fatalf("got %d %s, want %d with %s", code, got, tc.code, tc.want)
			}
		})
	}
	code, got := postType(t, img+"/v1/tasks/img", "image/png", pngBytes.Bytes())
	var ans struct{ Labels []struct{ Label string } }
	json.Unmarshal([]byte(got), &ans)
	if code != 200 || len(ans.Labels) != 2 {
		t.Fatalf("top_k 2: %d %s", code, got)
	}
}

func TestTaskLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if err := modelgen.Generate("tiny-image-cls", dir, 1); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model.onnx")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no model, no task", Config{Name: "x"}, "model: required (only a cpu-burn task runs without one)"},
		{"no model for a model task", Config{Name: "x", Task: "embedding"}, "model: required"},
		{"unknown task", Config{Name: "x", ModelPath: model, Task: "translate"}, `kind "translate": unknown`},
		{"bad config", Config{Name: "x", ModelPath: model, Task: "image-classification", TaskConfig: json.RawMessage(`{"top_k": "2"}`)}, "config: top_k: want int"},
		{"no labels", Config{Name: "x", ModelPath: model, Task: "image-classification"}, `labels "labels.txt": not among the function's files`},
		{"cpu-burn with a model", Config{Name: "x", ModelPath: model, Task: "cpu-burn"}, "cpu-burn: takes no model"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.cfg)
			_, err := s.Load()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			s.Close()
		})
	}
}

// TestBodyTooLarge checks that a body over MaxBodyBytes gets 413 on both data
// endpoints, and a smaller one is served.
func TestBodyTooLarge(t *testing.T) {
	url := newTaskServer(t, Config{Name: "burn", Task: "cpu-burn", MaxBodyBytes: 64, TaskConfig: json.RawMessage(`{"burn_ms": 1, "iters_per_ms": 1000}`)})
	big := []byte(`{"ms": 1` + strings.Repeat(" ", 64) + `}`)
	if code, body := postType(t, url+"/v1/tasks/burn", "application/json", big); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "body: exceeds 64 bytes") {
		t.Errorf("task, %d-byte body: %d %s, want 413 naming the body", len(big), code, body)
	}
	if code, body := postType(t, url+"/v1/tasks/burn", "application/json", []byte(`{"ms": 1}`)); code != http.StatusOK {
		t.Errorf("task, small body: %d %s, want 200", code, body)
	}

	_, double := newServerWith(t, Config{MaxBodyBytes: 64})
	infer := []byte(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`)
	if code, body := postType(t, double+"/v2/models/double/infer", "application/json", infer); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "body: exceeds 64 bytes") {
		t.Errorf("infer, %d-byte body: %d %s, want 413", len(infer), code, body)
	}
}
