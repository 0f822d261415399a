package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/sandbox"
	"github.com/spindleml/spindle/internal/tenant"
	"github.com/spindleml/spindle/internal/tensor"
)

// foldModel is a tiny upload whose compile folds a 60 MiB constant: within
// every engine limit, but more than a small memory allowance.
func foldModel() *modelgen.Builder {
	b := modelgen.NewBuilder("fold", 17, 1)
	b.Input("x", tensor.Float32, []int64{1})
	c := b.Node("ConstantOfShape", []string{b.Ints64("s", 15<<20)}, nil)
	r := b.Node("ReduceSum", []string{c}, []modelgen.Attr{modelgen.AInt("keepdims", 0)})
	b.Node("Add", []string{"x", r}, nil, "y")
	b.Output("y", tensor.Float32, nil)
	return b
}

// TestHostileUploadsAreCheckedOutsideTheGateway deploys models built to
// exhaust the memory of whatever compiles them (each crashed the gateway,
// and every tenant with it, when the gateway compiled uploads itself): each
// is refused with 400 naming the rule, the gateway's heap does not grow by
// what they asked for, and another tenant's function serves throughout.
func TestHostileUploadsAreCheckedOutsideTheGateway(t *testing.T) {
	caps := detect(t, sandbox.Options{})
	admin, err := tenant.NewAdminKey()
	if err != nil {
		t.Fatal(err)
	}
	tg := newTestGateway(t, Config{Auth: AuthKeys, AdminKey: admin, Sandbox: caps})
	mallory := tg.createTenant(t, admin, "mallory", tenant.Limits{MaxMemoryBytes: 48 << 20})
	alice := tg.createTenant(t, admin, "alice", tenant.Limits{})
	if err := tg.deployAs(t, alice, "m", plusModel(10)); err != nil {
		t.Fatal(err)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	err = tg.deployAs(t, mallory, "bomb", modelgen.GatherNDBomb())
	if !isStatus(err, 400) || !strings.Contains(err.Error(), "GatherND") || !strings.Contains(err.Error(), "4 TiB") {
		t.Errorf("GatherND of 4 TiB: %v, want 400 naming the node and the size", err)
	}
	if caps.Memory {
		err = tg.deployAs(t, mallory, "fold", foldModel())
		if !isStatus(err, 400) || !strings.Contains(err.Error(), "needs more than 48 MiB of memory") || !strings.Contains(err.Error(), `tenant "mallory"`) {
			t.Errorf("model whose compile needs 60 MiB under a 48 MiB limit: %v, want 400 naming the limit", err)
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapSys) - int64(before.HeapSys); grew > 32<<20 {
		t.Errorf("the gateway's heap grew by %d MiB checking the uploads", grew>>20)
	}
	code, body := call(t, "POST", tg.url+"/v2/models/m/infer", alice, addBody)
	wantStatus(t, "alice's function after the attacks", code, body, 200, `"data":[11,12,13,14]`)
	if fs, _ := tg.Registry().List("mallory"); len(fs) != 0 {
		t.Errorf("refused deploys were registered: %v", fs)
	}
	// A reasonable model still deploys for the same tenant.
	if err := tg.deployAs(t, mallory, "ok", plusModel(1)); err != nil {
		t.Errorf("a good model after the refused ones: %v", err)
	}
}

// storedModels lists the model folders in a gateway home, and whatever is
// left in staging.
func storedModels(t *testing.T, home string) (models, staging []string) {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(home, "models"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Name() != "staging" {
			models = append(models, e.Name())
		}
	}
	ss, err := os.ReadDir(filepath.Join(home, "models", "staging"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ss {
		staging = append(staging, e.Name())
	}
	return models, staging
}

// TestRefusedDeploysStoreNothing deploys as a tenant at its function limit,
// and over its memory limit: each deploy is refused, and the model store
// holds only the models of registered functions.
func TestRefusedDeploysStoreNothing(t *testing.T) {
	tg, admin := keysGateway(t)
	full := tg.createTenant(t, admin, "full", tenant.Limits{MaxFunctions: 1})
	small := tg.createTenant(t, admin, "small", tenant.Limits{MaxMemoryBytes: 100})
	if err := tg.deployAs(t, full, "one", plusModel(1)); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"two", "three", "four"} {
		if err := tg.deployAs(t, full, name, plusModel(float32(i+2))); !isStatus(err, 403) {
			t.Errorf("deploy %s over the function limit: %v, want 403", name, err)
		}
	}
	if err := tg.deployAs(t, small, "m", plusModel(9)); !isStatus(err, 403) || !strings.Contains(err.Error(), "memory limit of 100 bytes") {
		t.Errorf("deploy over the memory limit: %v, want 403 naming the limit", err)
	}
	// An upload that names its function first is refused at its name, while
	// the rest of its 100 MiB is still to come.
	c, err := net.Dial("tcp", strings.TrimPrefix(tg.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /admin/v1/functions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n", full, 100<<20)
	fmt.Fprintf(c, "--B\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nfive\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model.onnx\"\r\n\r\n%s", strings.Repeat("x", 64<<10))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to an upload past the function limit while it was still sending: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "function limit 1 reached") {
		t.Errorf("upload past the function limit: %d %s", resp.StatusCode, b)
	}
	models, staging := storedModels(t, tg.cfg.Home)
	if len(models) != 1 || len(staging) != 0 {
		t.Errorf("store holds models %v and staging %v; want the one registered model and nothing staged", models, staging)
	}
}

// TestRemoveFreesModels checks the store's reference counting: a model two
// functions share stays until both are removed, and a redeploy frees the
// model it replaced.
func TestRemoveFreesModels(t *testing.T) {
	tg := newTestGateway(t, Config{})
	c := tg.client(t, "")
	ctx := context.Background()
	tg.deploy(t, "a", plusModel(1))
	tg.deploy(t, "b", plusModel(1)) // the same bytes: one stored model
	tg.deploy(t, "c", plusModel(2))
	if m, _ := storedModels(t, tg.cfg.Home); len(m) != 2 {
		t.Fatalf("store holds %d models, want 2", len(m))
	}
	if err := c.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if m, _ := storedModels(t, tg.cfg.Home); len(m) != 2 {
		t.Errorf("after removing a, store holds %d models, want 2 (b still uses a's)", len(m))
	}
	code, body := infer(t, tg.url, "b", addBody)
	wantStatus(t, "b after a's removal", code, body, 200, `"data":[2,3,4,5]`)
	if err := c.Remove(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if m, _ := storedModels(t, tg.cfg.Home); len(m) != 1 {
		t.Errorf("after removing b, store holds %d models, want 1", len(m))
	}
	tg.deploy(t, "c", plusModel(3)) // replaces c's model
	if m, _ := storedModels(t, tg.cfg.Home); len(m) != 1 {
		t.Errorf("after redeploying c, store holds %d models, want 1", len(m))
	}
	code, body = infer(t, tg.url, "c", addBody)
	wantStatus(t, "redeployed c", code, body, 200, `"data":[4,5,6,7]`)
}

// TestReconcileOnStart leaves what a killed gateway would (a half-written
// upload in staging, a committed model no function got) and starts a new
// gateway on the same home: both are removed, and the registered function
// still serves.
func TestReconcileOnStart(t *testing.T) {
	home := t.TempDir()
	g1, err := New(Config{Home: home, Exe: spindleBin, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	tg := &testGateway{Gateway: g1}
	srv := serve(t, g1)
	tg.url = srv
	tg.deploy(t, "a", plusModel(1))
	g1.Close()
	orphan := filepath.Join(home, "models", strings.Repeat("ab", 32))
	staged := filepath.Join(home, "models", "staging", "upload-123")
	for _, d := range []string{orphan, staged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "model.onnx"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g2, err := New(Config{Home: home, Exe: spindleBin, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	url := serve(t, g2)
	for _, d := range []string{orphan, staged} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s survived the restart: %v", d, err)
		}
	}
	code, body := infer(t, url, "a", addBody)
	wantStatus(t, "function after the restart", code, body, 200, `"data":[2,3,4,5]`)
}

// TestGatewayDoesNotImportTheEngine keeps untrusted work out of the
// gateway's process by construction: nothing it links parses or compiles a
// model.
func TestGatewayDoesNotImportTheEngine(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/spindleml/spindle/internal/gateway").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"internal/engine", "internal/onnx", "internal/task", "internal/instance", "internal/kernels"} {
		if strings.Contains(string(out), "spindle/"+pkg+"\n") {
			t.Errorf("the gateway links %s", pkg)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serve serves g's API on a test server until the test ends and returns its
// URL.
func serve(t *testing.T, g *Gateway) string {
	t.Helper()
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestScaleIsTransactional asks for a memory limit below what the running
// instance uses (cgroup v1 refused it with a raw path in a 500, and the
// limit was saved anyway, so every later start failed): the answer is 409 in
// words, and neither the instance nor the registry changes. A limit no
// instance could start under is refused before anything is tried, and
// --memory alone (without --vcpu) works.
func TestScaleIsTransactional(t *testing.T) {
	caps := detect(t, sandbox.Options{})
	if !caps.Memory {
		t.Skipf("no memory cgroup here (%s)", caps.CgroupProblem)
	}
	tg := newTestGateway(t, Config{Sandbox: caps})
	tg.deploy(t, "big", modelgen.WeightHog(48))
	code, body := infer(t, tg.url, "big", addBody)
	wantStatus(t, "first request", code, body, 200, `"data":[`)
	_, cg := tg.instanceWorkers(t, "big")
	before := cg.Limits()

	code, _, msg := scaleFn(t, tg.url, "big", `{"memory":41943040}`)
	if code != http.StatusConflict || !strings.Contains(msg, "uses now; nothing was changed") || strings.Contains(msg, "/sys/fs/cgroup") {
		t.Errorf("scale to 40 MiB under use: %d %s; want 409 in words, no cgroup path", code, msg)
	}
	if got := cg.Limits(); got != before {
		t.Errorf("instance limits %+v after the refused resize, want %+v", got, before)
	}
	if f, _ := tg.reg.Get("default", "big"); f.MemoryLimit != 0 || f.VCPU != 0 {
		t.Errorf("registry kept memory %d, vcpu %v after the refused resize", f.MemoryLimit, f.VCPU)
	}
	code, _, msg = scaleFn(t, tg.url, "big", `{"vcpu":1,"memory":10485760}`)
	if code != http.StatusBadRequest || !strings.Contains(msg, "10 MiB is less than the 32 MiB an instance needs to start") {
		t.Errorf("scale to 10 MiB: %d %s; want 400 naming the floor", code, msg)
	}
	code, res, msg := scaleFn(t, tg.url, "big", `{"memory":536870912}`)
	if code != http.StatusOK || res.Memory != 512<<20 || res.Instances != 1 {
		t.Fatalf("memory alone: %d %s", code, msg)
	}
	if got := cg.Limits().Memory; got != 512<<20 {
		t.Errorf("instance memory limit %d after the resize, want 512 MiB", got)
	}
	if f, _ := tg.reg.Get("default", "big"); f.MemoryLimit != 512<<20 || f.VCPU != 0 {
		t.Errorf("registry has memory %d, vcpu %v; want 512 MiB and vcpu unchanged", f.MemoryLimit, f.VCPU)
	}
	code, body = infer(t, tg.url, "big", addBody)
	wantStatus(t, "request after the resizes", code, body, 200, `"data":[`)
}

// TestFunctionLog checks what a function's log holds (spindle logs showed
// neither requests nor errors): instance starts and failed requests with
// their answers; that it is rotated at its size limit, keeping one older
// file; and that removing the function removes its logs.
func TestFunctionLog(t *testing.T) {
	tg := newTestGateway(t, Config{LogMaxMB: 1})
	tg.deploy(t, "add", addModel())
	code, body := infer(t, tg.url, "add", addBody)
	wantStatus(t, "request", code, body, 200, `"data"`)
	code, body = infer(t, tg.url, "add", `{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2,3]}]}`)
	wantStatus(t, "bad request", code, body, 400, "x")
	code, log := call(t, "GET", tg.url+"/admin/v1/functions/add/logs", "", "")
	if code != 200 || !strings.Contains(log, "spindle: instance ") || !strings.Contains(log, "started in") ||
		!strings.Contains(log, "POST /v2/models/add/infer -> 400") {
		t.Errorf("log (%d) lacks the instance start or the failed request:\n%s", code, log)
	}
	spec, err := tg.reg.Get("default", "add")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 1000)
	for range 3000 { // about 3 MB through a 1 MiB log
		tg.logEvent(spec, "%s", line)
	}
	files, _ := filepath.Glob(filepath.Join(tg.cfg.Home, "logs", "default", "add*.log"))
	var total int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	if len(files) != 2 || total > 2<<20+4096 {
		t.Errorf("log files %v hold %d bytes; want the current file and one older, at most 2 MiB", files, total)
	}
	if err := tg.client(t, "").Remove(context.Background(), "add"); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(tg.cfg.Home, "logs", "default", "add*.log")); len(files) != 0 {
		t.Errorf("logs of the removed function remain: %v", files)
	}
}

// TestRefusalBeforeBodyReachesClient deploys a 16 MiB model as a tenant
// whose memory limit is 1 MiB, twenty times: the gateway refuses it when the
// first MiB has arrived and closes the connection, with most of the upload
// still on its way. Every client must get the 403, not a connection reset
// (closing with unread data sends a reset, which can destroy the answer
// before the client reads it: 1 CI run in 8).
func TestRefusalBeforeBodyReachesClient(t *testing.T) {
	tg, admin := keysGateway(t)
	small := tg.createTenant(t, admin, "small", tenant.Limits{MaxMemoryBytes: 1 << 20})
	b := modelgen.NewBuilder("big", 13, 1)
	b.Input("x", tensor.Float32, []int64{4})
	b.Fill("c", 1, 4<<20)
	b.Node("ReduceSum", []string{"c"}, nil, "s")
	b.Node("Add", []string{"x", "s"}, nil, "y")
	b.Output("y", tensor.Float32, nil)
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	c := tg.client(t, small)
	for i := range 20 {
		if _, err := c.Deploy(context.Background(), "big", path); !isStatus(err, 403) {
			t.Fatalf("deploy %d over the memory limit: %v, want 403", i, err)
		}
	}
}

// TestLogAfterClose checks that Close logs every instance's exit before it
// returns and that nothing reopens a log afterwards: an exit logged late
// recreated the file while the test's data directory was being removed
// (1 CI run in 3).
func TestLogAfterClose(t *testing.T) {
	tg := newTestGateway(t, Config{})
	tg.deploy(t, "add", addModel())
	code, body := infer(t, tg.url, "add", addBody)
	wantStatus(t, "request", code, body, 200, `"data"`)
	pid := tg.pids("add")[0]
	spec, err := tg.reg.Get("default", "add")
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	path := tg.logPath(spec)
	log, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("spindle: instance %d exited", pid); !strings.Contains(string(log), want) {
		t.Errorf("log after Close lacks %q:\n%s", want, log)
	}
	tg.logEvent(spec, "a line after Close")
	spec.Name = "other"
	tg.logEvent(spec, "a line after Close")
	if after, _ := os.ReadFile(path); len(after) != len(log) {
		t.Errorf("a line logged after Close reached the file")
	}
	if _, err := os.Stat(tg.logPath(spec)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a line logged after Close made %s (stat: %v)", tg.logPath(spec), err)
	}
}

// TestJSONIsNotHTMLEscaped checks that answers keep "<", ">" and "&" as they
// are: a decision's reason "p99 > SLO" reached describe as "p99 \u003e SLO".
func TestJSONIsNotHTMLEscaped(t *testing.T) {
	rec := httptest.NewRecorder()
	writeError(rec, http.StatusBadRequest, "p99 600ms > SLO 500ms & <rising>")
	if got := rec.Body.String(); !strings.Contains(got, "p99 600ms > SLO 500ms & <rising>") {
		t.Errorf("body %q escapes HTML characters", got)
	}
}

// TestDeployErrorsNameUploadPaths uploads a broken model (past any client
// check): the error names the file as uploaded, never the gateway's staging
// folder.
func TestDeployErrorsNameUploadPaths(t *testing.T) {
	tg := newTestGateway(t, Config{})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("name", "broken")
	fw, _ := mw.CreateFormFile("file", "sub/broken.onnx")
	fw.Write([]byte("not a model at all"))
	mw.Close()
	resp, err := http.Post(tg.url+"/admin/v1/functions", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(msg), `sub/broken.onnx`) || strings.Contains(string(msg), "staging") || strings.Contains(string(msg), tg.cfg.Home) {
		t.Errorf("deploy of a broken model: %d %s; want 400 naming sub/broken.onnx and no server path", resp.StatusCode, msg)
	}
}

// TestDeployNamesEveryUnsupportedOp deploys a model using three ops the
// engine lacks: one 400 names them all, so the user does not learn them one
// failed deploy at a time.
func TestDeployNamesEveryUnsupportedOp(t *testing.T) {
	tg := newTestGateway(t, Config{Sandbox: detect(t, sandbox.Options{})})
	b := modelgen.NewBuilder("unsupported", 17, 1)
	b.Input("x", tensor.Float32, []int64{2})
	b.Output("y", tensor.Float32, []int64{2})
	x := b.Node("Foo", []string{"x"}, nil)
	x = b.Node("Relu", []string{x}, nil)
	x = b.Node("Bar", []string{x}, nil)
	b.Node("Custom", []string{x}, nil, "y")
	b.SetDomain("Custom_4", "com.example")
	err := tg.deployAs(t, "", "u", b)
	if !isStatus(err, 400) {
		t.Fatalf("deploy of a model with unsupported ops: %v, want 400", err)
	}
	for _, want := range []string{"3 ops", `Foo (node "Foo_1")`, `Bar (node "Bar_3")`, `com.example:Custom (node "Custom_4")`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("deploy error %q does not name %s", err, want)
		}
	}
}
