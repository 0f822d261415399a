package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/npy"
	"github.com/spindleml/spindle/internal/tensor"
	"github.com/spindleml/spindle/internal/testbin"
)

// bin is the spindle binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) { testbin.Main(m, &bin) }

// result is one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// spindle runs the binary to completion.
func spindle(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("spindle %v: %v", args, err)
	}
	return r
}

// mustRun runs the binary and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	r := spindle(t, args...)
	if r.code != 0 {
		t.Fatalf("spindle %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// wantExit2 runs the binary and checks it fails with code 2 and a message.
func wantExit2(t *testing.T, msg string, args ...string) {
	t.Helper()
	r := spindle(t, args...)
	if r.code != 2 || !strings.Contains(r.stderr, msg) {
		t.Fatalf("spindle %s: exit %d, stderr %q; want exit 2 with %q", strings.Join(args, " "), r.code, r.stderr, msg)
	}
}

// platform is a running `spindle up`.
type platform struct {
	url    string
	cmd    *exec.Cmd
	stdout *bufio.Scanner
	lines  []string
}

// startPlatform runs `spindle up` on a free port and waits for its banner.
func startPlatform(t *testing.T, home string, extra ...string) *platform {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"up", "--listen", "127.0.0.1:0", "--home", home}, extra...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "up.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &platform{cmd: cmd, stdout: bufio.NewScanner(out)}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("spindle up did not stop within 20s of SIGINT")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("spindle up log:\n%s", b)
		}
	})
	for p.stdout.Scan() {
		line := p.stdout.Text()
		p.lines = append(p.lines, line)
		if u, ok := strings.CutPrefix(line, "Spindle is up: gateway "); ok {
			p.url = strings.Split(u, ",")[0]
			return p
		}
	}
	t.Fatalf("spindle up exited before its banner; stdout: %q", p.lines)
	return nil
}

// readUntil reads up to 10 more stdout lines of the platform and returns the
// first that contains substr, or fails the test.
func (p *platform) readUntil(t *testing.T, substr string) string {
	t.Helper()
	for range 10 {
		if line := p.readLine(t); strings.Contains(line, substr) {
			return line
		}
	}
	t.Fatalf("no line containing %q in %q", substr, p.lines)
	return ""
}

// readLine returns the next stdout line of the platform.
func (p *platform) readLine(t *testing.T) string {
	t.Helper()
	if !p.stdout.Scan() {
		t.Fatalf("spindle up stdout closed; so far: %q", p.lines)
	}
	p.lines = append(p.lines, p.stdout.Text())
	return p.stdout.Text()
}

// post sends a JSON body and decodes the JSON answer.
func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("POST %s: status %d, body is not JSON: %q", url, resp.StatusCode, b)
	}
	return resp.StatusCode, v
}

func randomImage(batch int) *tensor.Tensor {
	r := rand.New(rand.NewPCG(3, 4))
	t := tensor.New(tensor.Float32, batch, 1, 28, 28)
	for i := range t.F32 {
		t.F32[i] = r.Float32()
	}
	return t
}

func sameBits(t *testing.T, what string, a, b *tensor.Tensor) {
	t.Helper()
	if a.DType != b.DType || tensor.ShapeString(a.Shape) != tensor.ShapeString(b.Shape) {
		t.Fatalf("%s: %v vs %v", what, a, b)
	}
	for i := range a.F32 {
		if math.Float32bits(a.F32[i]) != math.Float32bits(b.F32[i]) {
			t.Fatalf("%s: element %d differs: %v vs %v", what, i, a.F32[i], b.F32[i])
		}
	}
}

func TestEndToEnd(t *testing.T) {
	work := t.TempDir()
	modelDir := filepath.Join(work, "mnist")
	mustRun(t, "model", "gen", "mnist-cnn", "-o", modelDir)
	model := filepath.Join(modelDir, "model.onnx")
	in := filepath.Join(work, "input.npy")
	if err := npy.WriteFile(in, randomImage(2)); err != nil {
		t.Fatal(err)
	}

	// spindle run: the three load modes agree bit for bit.
	var ref *tensor.Tensor
	for _, mode := range []string{"copy", "single", "mmap"} {
		out := filepath.Join(work, "run-"+mode)
		mustRun(t, "run", "--model", model, "--load", mode, "--input", "input="+in, "--out", out)
		got, err := npy.ReadFile(filepath.Join(out, "output.npy"))
		if err != nil {
			t.Fatal(err)
		}
		if ref == nil {
			ref = got
		}
		sameBits(t, "run --load "+mode, got, ref)
	}
	if tensor.ShapeString(ref.Shape) != "[2 10]" {
		t.Fatalf("output shape %v", ref.Shape)
	}

	p := startPlatform(t, filepath.Join(work, "home"))
	gw := "--gateway=" + p.url
	mustRun(t, "deploy", "mnist", "--model", model, gw)

	// spindle invoke through the gateway matches spindle run.
	mustRun(t, "invoke", "mnist", "--input", "input="+in, "--out", filepath.Join(work, "inv"), gw)
	got, err := npy.ReadFile(filepath.Join(work, "inv", "output.npy"))
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "invoke", got, ref)

	// curl-style JSON, nested data, through the gateway.
	img := randomImage(2)
	nested := make([][][][]float32, 2)
	for n := range nested {
		nested[n] = [][][]float32{make([][]float32, 28)}
		for y := 0; y < 28; y++ {
			nested[n][0][y] = img.F32[n*784+y*28 : n*784+y*28+28]
		}
	}
	data, _ := json.Marshal(nested)
	body := fmt.Sprintf(`{"id":"req-1","inputs":[{"name":"input","shape":[2,1,28,28],"datatype":"FP32","data":%s}]}`, data)
	code, resp := post(t, p.url+"/v2/models/mnist/infer", body)
	if code != 200 {
		t.Fatalf("infer: %d %v", code, resp)
	}
	if resp["model_name"] != "mnist" || resp["id"] != "req-1" {
		t.Fatalf("infer response %v", resp)
	}
	outs := resp["outputs"].([]any)
	o := outs[0].(map[string]any)
	vals := o["data"].([]any)
	if o["name"] != "output" || len(vals) != 20 {
		t.Fatalf("output %v", o)
	}
	for i, v := range vals {
		if float32(v.(float64)) != ref.F32[i] {
			t.Fatalf("JSON output[%d] = %v, spindle run gave %v", i, v, ref.F32[i])
		}
	}

	// The instance is reused: describe shows the same single instance.
	pid := func() float64 {
		var d struct {
			Instances []struct{ Pid float64 } `json:"instances"`
		}
		if err := json.Unmarshal([]byte(mustRun(t, "describe", "mnist", "--json", gw)), &d); err != nil || len(d.Instances) != 1 {
			t.Fatalf("describe: %v %+v", err, d)
		}
		return d.Instances[0].Pid
	}
	first := pid()
	mustRun(t, "invoke", "mnist", "--input", "input="+in, gw)
	if second := pid(); second != first {
		t.Fatalf("second request started a new instance: pid %v then %v", first, second)
	}
	// For a person, describe shows units, not nanoseconds.
	text := mustRun(t, "describe", "mnist", gw)
	if !strings.Contains(text, fmt.Sprintf("pid %d", int(first))) || !regexp.MustCompile(`p99 [0-9.]+(µs|ms|s)\b`).MatchString(text) {
		t.Fatalf("describe:\n%s\nwant the instance's pid and latencies in units", text)
	}

	// spindle logs shows the instance's load report.
	if logs := mustRun(t, "logs", "mnist", gw); !strings.Contains(logs, "model loaded") {
		t.Fatalf("spindle logs: %q", logs)
	}

	t.Run("bad requests", func(t *testing.T) {
		valid := `{"inputs":[{"name":"input","shape":[1,1,28,28],"datatype":"FP32","data":` + zeros(784) + `}]}`
		tests := []struct {
			name, path, body string
			code             int
			want             string
		}{
			{"unknown function", "/v2/models/nope/infer", valid, 404, `function "nope" is not deployed`},
			{"wrong input name", "/v2/models/mnist/infer", strings.Replace(valid, `"input"`, `"image"`, 1), 400, `"image"`},
			{"wrong shape", "/v2/models/mnist/infer", `{"inputs":[{"name":"input","shape":[1,1,28,27],"datatype":"FP32","data":` + zeros(756) + `}]}`, 400, "dimension 3 must be 28"},
			{"wrong dtype", "/v2/models/mnist/infer", strings.Replace(valid, "FP32", "INT64", 1), 400, "dtype int64"},
			{"element count", "/v2/models/mnist/infer", strings.Replace(valid, "[0,", "[", 1), 400, "783"},
			{"malformed JSON", "/v2/models/mnist/infer", `{"inputs":[{"name":`, 400, "JSON"},
			{"not JSON at all", "/v2/models/mnist/infer", "hello", 400, "JSON"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, resp := post(t, p.url+tc.path, tc.body)
				msg, _ := resp["error"].(string)
				if code != tc.code || !strings.Contains(msg, tc.want) {
					t.Fatalf("got %d %q, want %d with %q", code, msg, tc.code, tc.want)
				}
				// The platform keeps serving.
				if code, resp := post(t, p.url+"/v2/models/mnist/infer", valid); code != 200 {
					t.Fatalf("after bad request: %d %v", code, resp)
				}
			})
		}
	})

	t.Run("bad CLI input", func(t *testing.T) {
		notNpy := filepath.Join(work, "not.npy")
		os.WriteFile(notNpy, []byte("hello, not numpy"), 0o644)
		wantExit2(t, "bad magic", "invoke", "mnist", "--input", "input="+notNpy, gw)
		wantExit2(t, "NAME=FILE.npy", "invoke", "mnist", "--input", "input", gw)
		wantExit2(t, "not deployed", "invoke", "ghost", "--input", "input="+in, gw)
		wantExit2(t, "no such file", "deploy", "m2", "--model", filepath.Join(work, "missing.onnx"), gw)
		wantExit2(t, "no such file", "run", "--model", filepath.Join(work, "missing.onnx"), "--input", "input="+in, "--out", work)
		wantExit2(t, "must be one of copy, single, mmap", "run", "--model", model, "--load", "fast", "--input", "input="+in)
		wantExit2(t, "name \"Bad_Name\"", "deploy", "Bad_Name", "--model", model, gw)
		wantExit2(t, "unknown flag", "deploy", "--nope")
		wantExit2(t, "unknown command", "frobnicate")
		wantExit2(t, "--autoscale nope", "up", "--autoscale", "nope", "--home", work)
		wantExit2(t, "slo", "up", "--autoscale-param", "slo=fast", "--home", work)
		wantExit2(t, "--vcpu 0.3", "up", "--vcpu", "0.3", "--home", work)
		wantExit2(t, "mnist-cnn", "model", "gen", "resnet9000", "-o", work)

		// A model whose external data is truncated, and one that escapes its folder.
		b := modelgen.NewBuilder("ext", 13, 1)
		b.Input("x", tensor.Float32, []int64{1024})
		b.Fill("w", 2, 1024)
		b.Node("Mul", []string{"x", "w"}, nil, "y")
		b.Output("y", tensor.Float32, []int64{1024})
		extDir := filepath.Join(work, "ext")
		if err := b.Save(filepath.Join(extDir, "model.onnx"), modelgen.SaveOptions{ExternalData: "w.bin"}); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "deploy", "ext", "--model", filepath.Join(extDir, "model.onnx"), gw)
		os.Truncate(filepath.Join(extDir, "w.bin"), 100)
		wantExit2(t, "truncated", "deploy", "ext2", "--model", filepath.Join(extDir, "model.onnx"), gw)
		wantExit2(t, "truncated", "run", "--model", filepath.Join(extDir, "model.onnx"), "--input", "x="+in)
	})

	t.Run("deploy API rejects what the CLI would not send", func(t *testing.T) {
		tests := []struct{ name, body, want string }{
			{"escaping path", part("name", "evil") + filePart("../model.onnx", "x"), "without '..'"},
			{"no model", part("name", "empty"), "no model file"},
			{"garbage model", part("name", "junk") + filePart("model.onnx", "not a model"), "model:"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				body := tc.body + "--XYZ--\r\n"
				resp, err := http.Post(p.url+"/admin/v1/functions", "multipart/form-data; boundary=XYZ", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 400 || !strings.Contains(string(b), tc.want) {
					t.Fatalf("got %d %s, want 400 with %q", resp.StatusCode, b, tc.want)
				}
			})
		}
	})
}

func part(name, value string) string {
	return "--XYZ\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n"
}

func filePart(filename, content string) string {
	return "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename + "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + content + "\r\n"
}

func zeros(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]"
}

// TestDemoCurlWorksAsPasted starts `spindle up --demo` and runs the curl line it
// prints, exactly as printed, through a shell.
func TestDemoCurlWorksAsPasted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed for this test: apt-get install curl")
	}
	home := t.TempDir()
	p := startPlatform(t, home, "--demo")
	var curl string
	for i := 0; i < 10 && curl == ""; i++ {
		if line := strings.TrimSpace(p.readLine(t)); strings.HasPrefix(line, "curl ") {
			curl = line
		}
	}
	if curl == "" {
		t.Fatalf("no curl line in %q", p.lines)
	}
	out, err := exec.Command("sh", "-c", curl).Output()
	if err != nil {
		t.Fatalf("%s: %v", curl, err)
	}
	var resp struct {
		ModelName string `json:"model_name"`
		Outputs   []struct {
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("curl output is not an OIP response: %s", out)
	}
	if resp.ModelName != "mnist" || len(resp.Outputs) != 1 || len(resp.Outputs[0].Data) != 10 {
		t.Fatalf("curl response %s", out)
	}
	var sum float64
	for _, v := range resp.Outputs[0].Data {
		sum += math.Exp(v)
	}
	if math.Abs(sum-1) > 1e-4 {
		t.Fatalf("demo output is not log-probabilities: sum(exp) = %v", sum)
	}
	// The dashboard's URL, printed after the commands, serves the page.
	line := p.readUntil(t, "dashboard: ")
	page, _, _ := strings.Cut(line[strings.Index(line, "http://"):], "#")
	if !strings.HasPrefix(page, p.url+"/") {
		t.Fatalf("dashboard line %q: want a URL on the gateway %s", line, p.url)
	}
	got, err := http.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Body.Close()
	b, _ := io.ReadAll(got.Body)
	if got.StatusCode != 200 || !strings.Contains(string(b), `<script src="/ui/app.js"`) {
		t.Fatalf("GET %s: %d %.200s; want the dashboard page", page, got.StatusCode, b)
	}
}
