package instance

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestStem checks a stem cell's life: before its assignment it is live and
// serves nothing else; a bad assignment is a 400 naming the field and
// leaves it assignable; a good one loads the model and it serves it; a
// second assignment is refused.
func TestStem(t *testing.T) {
	b := modelgen.NewBuilder("double", 13, 1)
	b.Input("x", tensor.Float32, []int64{-1, 4}, "N")
	b.Fill("two", 2, 4)
	b.Node("Mul", []string{"x", "two"}, nil, "y")
	b.Output("y", tensor.Float32, []int64{-1, 4}, "N")
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	st := NewStem(Config{})
	srv := httptest.NewServer(st)
	defer func() { srv.Close(); st.Close() }()
	infer := `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`

	if code, _ := call(t, "GET", srv.URL+"/v2/health/live", ""); code != 200 {
		t.Fatalf("live before assignment: %d", code)
	}
	if code, v := call(t, "POST", srv.URL+"/v2/models/double/infer", infer); code != 503 || !strings.Contains(fmt.Sprint(v["error"]), "no function yet") {
		t.Fatalf("infer before assignment: %d %v; want 503", code, v)
	}
	assign := func(body string) (int, map[string]any) {
		return call(t, "POST", srv.URL+"/_spindle/assign", body)
	}
	bad := []struct{ body, want string }{
		{`{"name":"double","model":"` + path + `","workers":0}`, "workers: 0 must be between 1 and 4096"},
		{`{"model":"` + path + `","workers":1}`, "name: required"},
		{`{"name":"double","workers":1,"gpus":2}`, `unknown field "gpus"`},
		{`{"name":"double","model":"` + path + `","workers":1,"batch":"max=0"}`, "batch"},
		{`{"name":"double","model":"` + path + `","workers":1,"load":"teleport"}`, "teleport"},
		{`{"name":"double","model":"` + path + `","workers":1,"memory_limit":-1}`, "memory_limit"},
	}
	for _, tt := range bad {
		if code, v := assign(tt.body); code != 400 || !strings.Contains(fmt.Sprint(v["error"]), tt.want) {
			t.Errorf("assign %s: %d %v; want 400 naming %q", tt.body, code, v, tt.want)
		}
	}
	code, v := assign(`{"name":"double","model":"` + path + `","workers":2}`)
	if code != 200 || v["load_ns"].(float64) <= 0 {
		t.Fatalf("assign: %d %v; want 200 with the load time", code, v)
	}
	code, v = call(t, "POST", srv.URL+"/v2/models/double/infer", infer)
	out, _ := json.Marshal(v["outputs"])
	if code != 200 || !strings.Contains(string(out), `"data":[2,4,6,8]`) {
		t.Fatalf("infer after assignment: %d %s", code, out)
	}
	if got := st.srv.Load().srv.Stats().Pool.Concurrency; got != 2 {
		t.Errorf("assigned with 2 workers, runs %d", got)
	}
	if code, v := assign(`{"name":"other","model":"` + path + `","workers":1}`); code != 409 {
		t.Fatalf("second assignment: %d %v; want 409", code, v)
	}
}
