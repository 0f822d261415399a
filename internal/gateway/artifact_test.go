package gateway

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// matMulModel is y = x W with W an 8x8 weight (w[i][j] = i+j): a model the
// deploy compiles into an artifact with W prepacked.
func matMulModel() *modelgen.Builder {
	b := modelgen.NewBuilder("mm", 13, 1)
	b.Input("x", tensor.Float32, []int64{1, 8})
	w := make([]float32, 64)
	for i := range 8 {
		for j := range 8 {
			w[i*8+j] = float32(i + j)
		}
	}
	b.Node("MatMul", []string{"x", b.Init("w", []int64{8, 8}, w)}, nil, "y")
	b.Output("y", tensor.Float32, []int64{1, 8})
	return b
}

// TestDeployCompilesArtifact checks that a deploy compiles the upload into
// an artifact in the model's folder, that instances map it (not the
// uploaded model) and answer as the model does, and that an upload may not
// put files in the artifact's folder.
func TestDeployCompilesArtifact(t *testing.T) {
	tg := newTestGateway(t, Config{})
	tg.deploy(t, "mm", matMulModel())
	f, err := tg.reg.Get("default", "mm")
	if err != nil {
		t.Fatal(err)
	}
	if f.Artifact != artifactPath {
		t.Fatalf("registry artifact %q, want %q", f.Artifact, artifactPath)
	}
	for _, p := range []string{f.Artifact, f.Artifact + ".data"} {
		if _, err := os.Stat(tg.store.Path(f.ModelDigest, p)); err != nil {
			t.Fatalf("artifact file: %v", err)
		}
	}
	// x = e_0 + e_1: y_j = w[0][j] + w[1][j] = 2j + 1.
	code, body := infer(t, tg.url, "mm", `{"inputs":[{"name":"x","shape":[1,8],"datatype":"FP32","data":[1,1,0,0,0,0,0,0]}]}`)
	if code != 200 || !strings.Contains(body, `"data":[1,3,5,7,9,11,13,15]`) {
		t.Fatalf("infer: %d %s", code, body)
	}
	pids := tg.pids("mm")
	if len(pids) != 1 {
		t.Fatalf("%d instances, want 1", len(pids))
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pids[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(maps, []byte(tg.store.Path(f.ModelDigest, f.Artifact+".data"))) {
		t.Fatalf("instance %d does not map the artifact's data file:\n%s", pids[0], maps)
	}

	// The artifact's folder is the platform's.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("name", "sneaky")
	for _, name := range []string{"model.onnx", ".spindle/model.spindle"} {
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write([]byte("not a model"))
	}
	mw.Close()
	resp, err := http.Post(tg.url+"/admin/v1/functions", mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantStatus(t, "upload into .spindle/", resp.StatusCode, string(b), 400, `the folder .spindle is the platform's`)
}
