package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/sandbox"
	"github.com/spindleml/spindle/internal/tenant"
)

// readBoard opens the dashboard stream with key and returns its first
// event (a Board) and the status; the stream is closed.
func readBoard(t *testing.T, url, key, function string) (int, api.Board, string) {
	t.Helper()
	q := ""
	if function != "" {
		q = "?function=" + function
	}
	req, _ := http.NewRequest(http.MethodGet, url+"/admin/v1/dashboard/stream"+q, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, api.Board{}, string(b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream Content-Type %q, want text/event-stream", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var event string
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			if event != "board" {
				t.Fatalf("first event %q, want board", event)
			}
			var b api.Board
			if err := json.Unmarshal([]byte(data), &b); err != nil {
				t.Fatalf("board event: %v", err)
			}
			return resp.StatusCode, b, ""
		}
	}
	t.Fatalf("stream ended before its first event: %v", sc.Err())
	return 0, api.Board{}, ""
}

func boardKeys(b api.Board) []string {
	var keys []string
	for _, f := range b.Functions {
		keys = append(keys, f.Key)
	}
	return keys
}

// TestDashboardStreamAccess checks who sees what on the dashboard's stream:
// a tenant its own functions and the detail of its own only, the admin all
// of them without managing any, no key nothing; and that the detail carries
// the instance's cold start with its phases, failed requests and the
// timeline.
func TestDashboardStreamAccess(t *testing.T) {
	tg, admin := keysGateway(t)
	alpha := tg.createTenant(t, admin, "alpha", tenant.Limits{})
	beta := tg.createTenant(t, admin, "beta", tenant.Limits{})
	if err := tg.deployAs(t, alpha, "fa", plusModel(1)); err != nil {
		t.Fatal(err)
	}
	if err := tg.deployAs(t, beta, "fb", plusModel(2)); err != nil {
		t.Fatal(err)
	}
	if code, body := infer(t, tg.url, "fa", addBody, "Authorization", "Bearer "+alpha); code != 200 {
		t.Fatalf("infer: %d %s", code, body)
	}
	if code, _ := infer(t, tg.url, "fa", `{"inputs":[]}`, "Authorization", "Bearer "+alpha); code != 400 {
		t.Fatalf("bad infer: %d, want 400", code)
	}

	code, b, body := readBoard(t, tg.url, alpha, "alpha/fa")
	if code != 200 {
		t.Fatalf("tenant stream: %d %s", code, body)
	}
	if got := boardKeys(b); len(got) != 1 || got[0] != "alpha/fa" || b.Tenant != "alpha" || !b.CanManage {
		t.Fatalf("tenant alpha sees %v (tenant %q, manage %v); want only alpha/fa, managed", got, b.Tenant, b.CanManage)
	}
	d := b.Detail
	if d == nil || d.Key != "alpha/fa" || len(d.Instances) != 1 || d.Metadata.Inputs[0].Name != "x" {
		t.Fatalf("detail %+v: want alpha/fa with one instance and its metadata", d)
	}
	if len(d.ColdStarts) != 1 || !d.ColdStarts[0].FromZero || d.ColdStarts[0].Load <= 0 || d.ColdStarts[0].Start <= 0 ||
		d.ColdStarts[0].FirstInference <= 0 || d.ColdStarts[0].Pid != d.Instances[0].Pid {
		t.Fatalf("cold starts %+v: want one from zero, of instance %d, with start, load and first inference", d.ColdStarts, d.Instances[0].Pid)
	}
	if len(d.Errors) != 1 || d.Errors[0].Status != 400 || !strings.Contains(d.Errors[0].Message, "inputs") || d.FunctionRow.Errors[400] != 1 {
		t.Fatalf("errors %+v (by status %v): want the one 400 naming the inputs", d.Errors, d.FunctionRow.Errors)
	}
	if len(d.Timeline) == 0 || d.Timeline[0].Kind != "start" {
		t.Fatalf("timeline %+v: want the instance start", d.Timeline)
	}
	if len(d.Log) == 0 {
		t.Fatal("detail has no log lines; the gateway logged the start")
	}
	// Another tenant's function is no detail, as if it did not exist.
	if _, b, _ := readBoard(t, tg.url, alpha, "beta/fb"); b.Detail != nil {
		t.Fatalf("alpha got the detail of beta/fb: %+v", b.Detail)
	}

	code, b, body = readBoard(t, tg.url, admin, "beta/fb")
	if got := boardKeys(b); code != 200 || len(got) != 2 || b.Tenant != "" || b.CanManage || b.Detail == nil {
		t.Fatalf("admin stream: %d %s: sees %v (manage %v, detail %v); want both functions, watch only, with the detail", code, body, got, b.CanManage, b.Detail != nil)
	}
	if b.Node.CPUs != runtime.NumCPU() || b.Node.Instances != 1 || b.Node.ModelShared <= 0 || b.Node.MemoryTotal == 0 {
		t.Fatalf("node %+v: want this machine's CPUs and memory, one instance and its model", b.Node)
	}

	code, _, body = readBoard(t, tg.url, "", "")
	wantStatus(t, "stream without a key", code, body, 401, "missing bearer key")
	code, _, body = readBoard(t, tg.url, alpha, "fa")
	wantStatus(t, "stream for a bare name", code, body, 400, "want TENANT/NAME")
}

// TestDashboardStreamUpdates reads a stream from a served gateway: updates
// come every second and the samples follow the load, and a gateway that
// shuts down ends the stream instead of waiting for it.
func TestDashboardStreamUpdates(t *testing.T) {
	tg := servedGateway(t, Config{})
	tg.deploy(t, "add", addModel())
	resp, err := http.Get(tg.url + "/admin/v1/dashboard/stream?function=default/add")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan api.BoardUpdate)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var u api.BoardUpdate
				if json.Unmarshal([]byte(data), &u) == nil {
					events <- u
				}
			}
		}
	}()
	stop := make(chan struct{})
	wait := runLoad(t, tg.url, "add", addBody, 2, stop)
	var busy api.Sample
	for u := range events {
		if s := u.Detail.Sample; s.Rate > 0 && s.P99 > 0 && s.Instances == 1 {
			busy = s
			break
		}
	}
	close(stop)
	if ok, failed, sample := wait(); failed > 0 || ok == 0 {
		t.Fatalf("load: %d ok, %d failed: %v", ok, failed, sample)
	}
	if busy.Rate == 0 {
		t.Fatal("the stream ended before a sample showed the load")
	}
	// The gateway shuts down: the stream ends.
	tg.endStreams()
	for range events {
	}
}

// chromium returns Debian's chromium (scripts/testdeps.sh installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium: not found; scripts/testdeps.sh installs it (apt-get install chromium)")
	return ""
}

// artifacts is where the browser tests leave their screenshots:
// $SPINDLE_ARTIFACTS/dashboard, else test-artifacts/dashboard at the
// repository's root.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SPINDLE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "test-artifacts")
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless chromium tab; problems collects what its console
// and log reported as errors.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T, parent context.Context) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	b := &browser{ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if (m.Type == chromedp.ConsoleError || m.IsException()) && !answeredByPage(m) {
				b.mu.Lock()
				b.problems = append(b.problems, m.String()+" "+m.URL)
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// answeredByPage reports whether m is the browser logging an API call's
// 4xx answer that the page shows to its user (the 401 of a keyless stream
// asks for a key; a refused deploy says why). A failed load of the page's
// own files is a problem.
func answeredByPage(m chromedp.ConsoleMessage) bool {
	if !strings.HasPrefix(m.Text, "Failed to load resource: the server responded with a status of 4") {
		return false
	}
	u, err := url.Parse(m.URL)
	return err == nil && (strings.HasPrefix(u.Path, "/admin/v1/") || strings.HasPrefix(u.Path, "/v2/") || strings.HasPrefix(u.Path, "/v1/tasks/"))
}

// run runs steps with a bound of d, failing the test with what.
func (b *browser) run(t *testing.T, what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.failed(t, what, err)
	}
}

// failed ends the test at a step that did not finish, with what the page
// showed and reported: its text, its errors and a screenshot.
func (b *browser) failed(t *testing.T, what string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ''`))
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		os.WriteFile(filepath.Join(artifacts(t), "failed.png"), png, 0o644)
	}
	b.mu.Lock()
	problems := strings.Join(b.problems, "\n")
	b.mu.Unlock()
	t.Fatalf("%s: %v\npage text:\n%s\npage errors:\n%s", what, err, text, problems)
}

// eval evaluates expr in b's page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) noProblems(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(b.problems, "\n"))
	}
}

// waitJS polls expr in the page until it is true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))
}

func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// cgroupCPU reads the CPU quota, in vCPUs, that the kernel enforces on
// process pid: cpu.max (v2) or cpu.cfs_quota_us over cpu.cfs_period_us (v1)
// of the cgroup /proc/PID/cgroup names.
func cgroupCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls, path := parts[1], parts[2]
		switch {
		case ctrls == "" && path != "/": // v2
			for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
				if raw, err := os.ReadFile(filepath.Join(root, path, "cpu.max")); err == nil {
					f := strings.Fields(string(raw))
					q, err1 := strconv.ParseFloat(f[0], 64)
					p, err2 := strconv.ParseFloat(f[1], 64)
					if err1 == nil && err2 == nil {
						return q / p
					}
				}
			}
		case strings.Contains(","+ctrls+",", ",cpu,"): // v1
			dir := filepath.Join("/sys/fs/cgroup/cpu", path)
			qb, err1 := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
			pb, err2 := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
			if err1 == nil && err2 == nil {
				q, _ := strconv.ParseFloat(strings.TrimSpace(string(qb)), 64)
				p, _ := strconv.ParseFloat(strings.TrimSpace(string(pb)), 64)
				if q > 0 && p > 0 {
					return q / p
				}
			}
		}
	}
	t.Fatalf("process %d: no CPU quota found in %s", pid, b)
	return 0
}

// TestDashboardInBrowser drives the page in Debian's chromium (issue 17):
// it loads with no console errors, asks for a key, shows a tenant only its
// own functions and the admin all of them, shows a function deployed during
// the test within 2 s, moves the p99 and rate charts under load, scales an
// instance from the page (the vCPU figure and the kernel's cgroup quota
// follow), runs a request from "Try it", removes a function after its name
// is typed, fits a phone's width, and saves screenshots.
func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	admin, err := tenant.NewAdminKey()
	if err != nil {
		t.Fatal(err)
	}
	caps := detect(t, sandbox.Options{})
	if !caps.CPU {
		t.Fatalf("this test needs a writable cgroup CPU controller (run as root); sandbox says: %s", caps)
	}
	tg := servedGateway(t, Config{Auth: AuthKeys, AdminKey: admin, Sandbox: caps})
	alpha := tg.createTenant(t, admin, "alpha", tenant.Limits{})
	beta := tg.createTenant(t, admin, "beta", tenant.Limits{})
	if err := tg.deployAs(t, beta, "other", plusModel(2)); err != nil {
		t.Fatal(err)
	}

	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))...)
	t.Cleanup(cancel)
	br := newBrowser(t, alloc)

	// The page loads, asks for a key, and with alpha's shows alpha's
	// functions: none yet, not beta's.
	br.run(t, "open the page", 30*time.Second,
		chromedp.Navigate(tg.url+"/"),
		chromedp.WaitVisible(chromedp.ID("key-panel")),
		chromedp.SendKeys(chromedp.ID("key-input"), alpha),
		chromedp.Click(chromedp.ID("key-use")),
		waitJS(`document.getElementById('who').textContent === 'tenant alpha' && !!document.getElementById('fn-rows')`))
	if rows := eval[int](t, br, `document.querySelectorAll('#fn-rows tr[data-key]').length`); rows != 0 {
		t.Fatalf("tenant alpha sees %d functions before deploying any (beta has one)", rows)
	}

	// A function deployed now appears within 2 s.
	if err := tg.deployAs(t, alpha, "adder", addModel()); err != nil {
		t.Fatal(err)
	}
	br.run(t, "the new function appears within 2 s", 2*time.Second,
		waitJS(`!!document.querySelector('#fn-rows tr[data-key="alpha/adder"]')`))
	const rowKeys = `[...document.querySelectorAll('#fn-rows tr[data-key]')].map(r => r.dataset.key).sort()`
	keys := eval[[]string](t, br, rowKeys)
	if len(keys) != 1 || keys[0] != "alpha/adder" {
		t.Fatalf("tenant alpha sees %v; want only alpha/adder", keys)
	}
	br.noProblems(t)

	// A function deployed from the page's form, by upload.
	model := filepath.Join(t.TempDir(), "model.onnx")
	if err := plusModel(3).Save(model, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	br.run(t, "deploy by upload", 30*time.Second,
		chromedp.SendKeys(chromedp.ID("deploy-name"), "uploaded"),
		chromedp.SetUploadFiles(chromedp.ID("deploy-files"), []string{model}),
		chromedp.Click(chromedp.ID("deploy-submit")),
		waitJS(`document.getElementById('deploy-out').textContent.startsWith('Deployed uploaded')`),
		waitJS(`!!document.querySelector('#fn-rows tr[data-key="alpha/uploaded"]')`))
	if code, body := infer(t, tg.url, "uploaded", addBody, "Authorization", "Bearer "+alpha); code != 200 || !strings.Contains(body, `"data":[4,5,6,7]`) {
		t.Fatalf("the function deployed from the page answers %d %s; want x+3", code, body)
	}
	junk := filepath.Join(t.TempDir(), "junk.onnx")
	if err := os.WriteFile(junk, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	br.run(t, "a refused upload says why", 30*time.Second,
		chromedp.SetValue(chromedp.ID("deploy-name"), "junk"),
		chromedp.SetUploadFiles(chromedp.ID("deploy-files"), []string{junk}),
		chromedp.Click(chromedp.ID("deploy-submit")),
		waitJS(`document.getElementById('deploy-out').textContent.startsWith('Refused (400)')`))

	// Under load the function page's p99 and rate charts move.
	stop := make(chan struct{})
	var loadWG sync.WaitGroup
	var failed sync.Map
	for range 2 {
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, body := infer(t, tg.url, "adder", addBody, "Authorization", "Bearer "+alpha); code != 200 {
					failed.Store(code, body)
				}
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); loadWG.Wait() })
	t.Cleanup(stopLoad)
	type chartState struct{ P99, Rate string }
	br.run(t, "the charts show the load", 30*time.Second,
		chromedp.Navigate(tg.url+"/#/f/alpha/adder"),
		waitJS(`Number(document.getElementById('chart-rate')?.dataset.last) > 0 && Number(document.getElementById('chart-latency')?.dataset.last) > 0`))
	before := eval[chartState](t, br, `({P99: document.getElementById('chart-latency').dataset.points, Rate: document.getElementById('chart-rate').dataset.points})`)
	br.run(t, "the charts move", 30*time.Second,
		waitJS(fmt.Sprintf(`Number(document.getElementById('chart-latency').dataset.points) > %s && Number(document.getElementById('chart-rate').dataset.points) > %s`, before.P99, before.Rate)))
	after := eval[chartState](t, br, `({P99: document.getElementById('chart-latency').dataset.last, Rate: document.getElementById('chart-rate').dataset.last})`)
	if p, _ := strconv.ParseFloat(after.P99, 64); p <= 0 {
		t.Fatalf("p99 chart's newest value %q under load; want > 0", after.P99)
	}
	if r, _ := strconv.ParseFloat(after.Rate, 64); r <= 0 {
		t.Fatalf("rate chart's newest value %q under load; want > 0", after.Rate)
	}
	failed.Range(func(k, v any) bool { t.Errorf("a request under load got %v: %v", k, v); return true })

	// "Try it" sends the example request built from the model's inputs.
	br.run(t, "try it", 20*time.Second,
		chromedp.Click(chromedp.ID("try-send")),
		waitJS(`document.getElementById('try-out').textContent.includes('"outputs"')`))
	br.screenshot(t, "function.png")

	// Scale from the page: the vCPU figure and the kernel's quota follow.
	pids := tg.pidsOf("alpha", "adder")
	if len(pids) != 1 {
		t.Fatalf("adder runs %d instances, want 1", len(pids))
	}
	br.run(t, "scale to 0.5 vCPU", 20*time.Second,
		chromedp.SetValue(chromedp.ID("scale-vcpu"), "0.5"),
		chromedp.Click(chromedp.ID("scale-apply")),
		waitJS(`document.getElementById('fn-vcpu').textContent === '0.5 vCPU'`))
	if q := cgroupCPU(t, pids[0]); q != 0.5 {
		t.Fatalf("instance %d's cgroup quota is %v vCPU after scaling to 0.5 from the page", pids[0], q)
	}
	stopLoad()
	br.noProblems(t)

	// The overview, at a laptop's width and at a phone's.
	br.run(t, "overview", 20*time.Second,
		chromedp.Navigate(tg.url+"/#/"),
		waitJS(`!!document.querySelector('#fn-rows tr[data-key="alpha/adder"]')`))
	br.screenshot(t, "overview.png")
	br.run(t, "phone width", 20*time.Second,
		chromedp.EmulateViewport(390, 844),
		waitJS(`window.innerWidth === 390`))
	if eval[bool](t, br, `document.documentElement.scrollWidth > window.innerWidth + 1`) {
		t.Fatal("the overview is wider than a phone's 390 px screen")
	}
	br.screenshot(t, "overview-phone.png")

	// The admin key, in a tab of its own: every tenant's functions, no
	// deploy form, no actions.
	ad := newBrowser(t, br.ctx)
	ad.run(t, "admin view", 30*time.Second,
		chromedp.Navigate(tg.url+"/"),
		chromedp.WaitVisible(chromedp.ID("key-panel")),
		chromedp.SendKeys(chromedp.ID("key-input"), admin),
		chromedp.Click(chromedp.ID("key-use")),
		waitJS(`document.querySelectorAll('#fn-rows tr[data-key]').length === 3`))
	keys = eval[[]string](t, ad, rowKeys)
	if len(keys) != 3 || keys[0] != "alpha/adder" || keys[1] != "alpha/uploaded" || keys[2] != "beta/other" {
		t.Fatalf("admin sees %v; want alpha/adder, alpha/uploaded and beta/other", keys)
	}
	if eval[bool](t, ad, `!!document.getElementById('deploy-form')`) {
		t.Fatal("the admin's view offers a deploy form; the admin key manages tenants, not functions")
	}
	ad.noProblems(t)

	// Remove from the page, after typing the name.
	br.run(t, "remove", 20*time.Second,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(tg.url+"/#/f/alpha/adder"),
		chromedp.WaitVisible(chromedp.ID("remove-open")),
		chromedp.Click(chromedp.ID("remove-open")),
		chromedp.SendKeys(chromedp.ID("remove-confirm"), "adder"),
		chromedp.Click(chromedp.ID("remove-yes")),
		waitJS(`location.hash === '#/' && !!document.getElementById('fn-rows') && !document.querySelector('#fn-rows tr[data-key="alpha/adder"]')`))
	if code, body := call(t, "GET", tg.url+"/admin/v1/functions/adder", alpha, ""); code != 404 {
		t.Fatalf("after removal from the page: %d %s, want 404", code, body)
	}
	br.noProblems(t)
}
