package experiment

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/loadgen"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tenant"
	"github.com/spindleml/spindle/internal/tensor"
)

// ChaosExperiment is `spindle bench chaos`: issue 11's attacks on a real
// `spindle up`, one after another, each followed by the same checks. Not a
// thesis experiment, so `bench all` does not run it.
var ChaosExperiment = Experiment{Name: "chaos", Title: "Reliability under attack: what a tenant can do to the platform", Ref: "issue 11", Run: Chaos}

// ErrChaos is returned by Chaos when an attack hurt the platform: the gateway
// stopped answering, a victim's function failed, or something leaked.
var ErrChaos = errors.New("chaos: the platform did not hold")

// Chaos runs every attack against one platform (started with --auth keys,
// instances sandboxed as the machine allows) while a victim tenant's
// function is in use. After each attack it checks that the gateway and the
// victim's function still answer (survived) and compares the platform's
// footprint with its state before the attacks: file descriptors, resident
// memory, stored models, staging folders, cgroups and processes (leaked).
// Quick runs each attack small (about a minute on 2 cores); without it the
// counts are the and a soak of Env.Duration (default 10 min) ends
// the run.
func Chaos(ctx context.Context, env *Env) (*Report, error) {
	c, err := newChaos(ctx, env)
	if err != nil {
		return nil, err
	}
	defer func() { c.p.stop() }()
	rep := &Report{}
	var rows [][]string
	failed := 0
	for _, a := range c.attacks() {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		env.logf("   %s", a.name)
		began := time.Now()
		got, detail, err := a.run(ctx)
		if err != nil {
			got, detail = "error", err.Error()
		}
		ok := err == nil && a.pass(got)
		survived, why := c.survived(ctx)
		leaked := c.leaks(ctx)
		if !ok || !survived || leaked != "none" {
			failed++
		}
		if !survived {
			detail = strings.TrimSpace(detail + "; " + why)
		}
		rows = append(rows, []string{a.name, a.want, got, mark(ok), mark(survived), leaked, time.Since(began).Round(10 * time.Millisecond).String(), detail})
		env.logf("     -> %s (want %s), survived %s, leaked %s: %s", got, a.want, mark(survived), leaked, detail)
	}
	header := []string{"attack", "want", "got", "as wanted", "survived", "leaked", "took", "detail"}
	if err := writeCSV(env.Out, "chaos.csv", header, rows); err != nil {
		return rep, err
	}
	rep.Files = append(rep.Files, "chaos.csv")
	rep.Sections = append(rep.Sections, Section{
		Heading: "Attacks",
		Text: "Each attack runs against one `spindle up --auth keys` (cgroups and namespaces as this machine allows), " +
			"by a tenant with limits or by no tenant at all, while another tenant's function serves. " +
			"Survived: the gateway's health check and the victim's function answer correctly afterwards. " +
			"Leaked: after the attack settles, the gateway holds more file descriptors (beyond what its running instances explain) or resident memory (" + humanMiB(chaosRSSSlack) + " slack) than before the attacks, " +
			"or the home holds staging folders or more models than functions, or the platform's cgroups outnumber its running instances.",
		Tables: []Table{{Header: header, Rows: rows}},
	})
	first := c.first
	rep.Notes = append(rep.Notes, fmt.Sprintf("Before the attacks: gateway %d file descriptors, %s resident; %d stored models, %d instances (the restart resets the gateway's baseline).", first.fds, humanMiB(first.rss), first.models, first.procs))
	rep.Summary = append(rep.Summary, fmt.Sprintf("%d attacks, %d held (survived, as wanted, nothing leaked), %d did not.", len(rows), len(rows)-failed, failed))
	if failed > 0 {
		return rep, fmt.Errorf("%w: %d of %d attacks", ErrChaos, failed, len(rows))
	}
	return rep, nil
}

func mark(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func humanMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// chaosRSSSlack is how much more resident memory the gateway may hold after
// an attack than before them all: Go keeps freed heap a while before it
// returns it, and the first connections and requests grow buffers once.
const chaosRSSSlack = 192 << 20

// chaos is the state of one run: the platform, its tenants' keys, models.
type chaos struct {
	env  *Env
	p    *platform
	home string
	dir  string // generated models
	// clients by tenant.
	admin, victim, mallory *client.Client
	adminKey               string
	keys                   map[string]string
	victimBody             []byte
	// first is the footprint before the attacks; base the one leaks are
	// judged against (the restarted gateway's own, after a restart).
	first, base footprint
}

// attack is one row of the table: run returns what happened, in a word or
// a status list, and detail; pass says whether got is what want describes.
type attack struct {
	name, want string
	run        func(ctx context.Context) (got, detail string, err error)
	pass       func(got string) bool
}

func is(want string) func(string) bool { return func(got string) bool { return got == want } }

// serverError matches a 5xx status in a status list.
var serverError = regexp.MustCompile(`\b5\d\d x`)

func newChaos(ctx context.Context, env *Env) (*chaos, error) {
	home, err := os.MkdirTemp("", "spindle-chaos-")
	if err != nil {
		return nil, err
	}
	c := &chaos{env: env, home: home, dir: filepath.Join(home, "uploads"), keys: map[string]string{}}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	if c.p, err = env.startPlatformIn(ctx, home, "--auth", "keys", "--autoscale", "off"); err != nil {
		return nil, err
	}
	adminKey, err := os.ReadFile(filepath.Join(home, "admin.key"))
	if err != nil {
		c.p.stop()
		return nil, err
	}
	c.adminKey = strings.TrimSpace(string(adminKey))
	c.admin = c.clientWith(c.adminKey)
	for name, lim := range map[string]tenant.Limits{
		"victim":  {},
		"mallory": {MaxMemoryBytes: 512 << 20, MaxFunctions: 8},
		"full":    {MaxFunctions: 1},
		"small":   {MaxMemoryBytes: 1 << 20},
		"greedy":  {MaxRequestsPerSecond: 20, MaxConcurrency: 4},
	} {
		issued, err := c.admin.CreateTenant(ctx, name, lim)
		if err != nil {
			c.p.stop()
			return nil, fmt.Errorf("tenant %s: %w", name, err)
		}
		c.keys[name] = issued.Key
	}
	c.clients()
	plus := modelgen.NewBuilder("plus", 13, 1)
	plus.Input("x", tensor.Float32, []int64{4})
	plus.Fill("c", 1, 4)
	plus.Node("Add", []string{"x", "c"}, nil, "y")
	plus.Output("y", tensor.Float32, []int64{4})
	for _, d := range []struct {
		tenant, name string
		b            *modelgen.Builder
	}{{"victim", "plus", plus}, {"full", "only", plus}, {"greedy", "plus", plus}} {
		if _, err := c.deploy(ctx, d.tenant, d.name, d.b); err != nil {
			c.p.stop()
			return nil, fmt.Errorf("deploy %s/%s: %w", d.tenant, d.name, err)
		}
	}
	c.victimBody = []byte(`{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}`)
	if ok, why := c.survived(ctx); !ok {
		c.p.stop()
		return nil, fmt.Errorf("the victim's function does not serve before any attack: %s", why)
	}
	c.base = c.footprint()
	c.first = c.base
	return c, nil
}

// as returns a client with tenant's key.
func (c *chaos) as(tenant string) *client.Client { return c.clientWith(c.keys[tenant]) }

func (c *chaos) clientWith(key string) *client.Client {
	cl, _ := client.New(c.p.URL, client.WithKey(key)) // the platform printed the URL
	return cl
}

// clients makes the clients of the platform now running.
func (c *chaos) clients() {
	c.admin, c.victim, c.mallory = c.clientWith(c.adminKey), c.as("victim"), c.as("mallory")
}

// deploy saves b and deploys it as tenant's function name; it returns the
// HTTP status (201, or the error's).
func (c *chaos) deploy(ctx context.Context, tenant, name string, b *modelgen.Builder) (int, error) {
	dir, err := os.MkdirTemp(c.dir, name+"-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		return 0, err
	}
	_, err = c.as(tenant).Deploy(ctx, name, path)
	var ce *client.Error
	switch {
	case err == nil:
		return http.StatusCreated, nil
	case errors.As(err, &ce):
		return ce.Status, nil
	}
	return 0, err
}

// post sends body to tenant's function and returns the status.
func (c *chaos) post(ctx context.Context, tenant, function string, body []byte, header ...string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.p.inferURL(function), bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.keys[tenant])
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.p.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// survived reports whether the gateway's health check and the victim's
// function answer as before.
func (c *chaos) survived(ctx context.Context) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.p.URL+"/v2/health/live", nil)
	resp, err := c.p.http.Do(req)
	if err != nil {
		return false, "health check: " + err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("health check: %d", resp.StatusCode)
	}
	code, body, err := c.post(ctx, "victim", "plus", c.victimBody)
	if err != nil {
		return false, "victim: " + err.Error()
	}
	if code != http.StatusOK || !strings.Contains(body, `"data":[2,3,4,5]`) {
		return false, fmt.Sprintf("victim: %d %s", code, body)
	}
	return true, ""
}

// footprint is what the platform holds: the gateway process's descriptors
// and resident memory, and the home's and the machine's leftovers.
type footprint struct {
	fds                      int
	rss                      int64
	models, staging, cgroups int
	procs                    int // the gateway's child processes (instances)
	functions                int
}

func (c *chaos) footprint() footprint {
	pid := c.p.cmd.Process.Pid
	var f footprint
	if es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		f.fds = len(es)
	}
	if rss, _, err := metrics.ReadMemory(pid); err == nil {
		f.rss = int64(rss)
	}
	if es, err := os.ReadDir(filepath.Join(c.home, "models")); err == nil {
		for _, e := range es {
			if e.Name() != "staging" {
				f.models++
			}
		}
	}
	if es, err := os.ReadDir(filepath.Join(c.home, "models", "staging")); err == nil {
		f.staging = len(es)
	}
	for _, d := range platformGroups(pid) {
		if es, err := os.ReadDir(d); err == nil {
			n := 0
			for _, e := range es {
				if e.IsDir() {
					n++
				}
			}
			f.cgroups = max(f.cgroups, n)
		}
	}
	f.procs = len(childrenOf(pid))
	if ts, err := c.admin.ListTenants(context.Background()); err == nil {
		for _, t := range ts {
			f.functions += t.Functions
		}
	}
	return f
}

// leaks waits for the platform to settle (instances of removed or refused
// functions stopping, buffers returned) and reports what it holds beyond
// the baseline, or "none".
func (c *chaos) leaks(ctx context.Context) string {
	var why []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		f := c.footprint()
		why = why[:0]
		if f.staging > 0 {
			why = append(why, fmt.Sprintf("%d staging folders", f.staging))
		}
		if f.models > f.functions {
			why = append(why, fmt.Sprintf("%d models for %d functions", f.models, f.functions))
		}
		if f.cgroups > f.procs {
			why = append(why, fmt.Sprintf("%d cgroups for %d instances", f.cgroups, f.procs))
		}
		// Each instance holds a log, two pipes and idle connections.
		if extra := f.fds - c.base.fds - 8*max(0, f.procs-c.base.procs); extra > 32 {
			why = append(why, fmt.Sprintf("%d more file descriptors", extra))
		}
		if grew := f.rss - c.base.rss; grew > chaosRSSSlack {
			why = append(why, fmt.Sprintf("%s more resident memory", humanMiB(grew)))
		}
		if len(why) == 0 {
			return "none"
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return strings.Join(why, ", ")
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// platformGroups returns the directories of the parent cgroup ("spindle")
// under the cgroups of process pid, one per hierarchy.
func platformGroups(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctls := []string{"unified"}
		if parts[1] != "" {
			ctls = strings.Split(parts[1], ",")
		}
		for _, ctl := range ctls {
			if d := filepath.Join("/sys/fs/cgroup", ctl, parts[2], "spindle"); dirExists(d) {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

func dirExists(d string) bool { st, err := os.Stat(d); return err == nil && st.IsDir() }

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			if n, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// statusList renders status counts as "400 x9" or "200 x3, 503 x2".
func statusList(codes []int) string {
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	keys := make([]int, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d x%d", k, count[k])
	}
	return strings.Join(parts, ", ")
}

// attacks lists the attacks in the order they run; sizes depend on Quick.
func (c *chaos) attacks() []attack {
	q := c.env.Quick
	pick := func(quick, full int) int {
		if q {
			return quick
		}
		return full
	}
	deploy := func(tenant, name string, b *modelgen.Builder) func(ctx context.Context) (string, string, error) {
		return func(ctx context.Context) (string, string, error) {
			code, err := c.deploy(ctx, tenant, name, b)
			return strconv.Itoa(code), "", err
		}
	}
	soak := c.env.Duration
	if soak == 0 {
		soak = 10 * time.Minute
		if q {
			soak = 5 * time.Second
		}
	}
	return []attack{
		{name: "deploy: GatherND asking folding for 4 TiB (415 B upload)", want: "400", run: deploy("mallory", "gathernd", modelgen.GatherNDBomb()), pass: is("400")},
		{name: "deploy: a 60 MiB constant concatenated 2000 times", want: "400", run: deploy("mallory", "concat", modelgen.ConcatBomb(60, 2000)), pass: is("400")},
		{name: "deploy: 400 constants of 60 MiB, each under the node limit", want: "400, or 201 and requests answered within the tenant's memory (200 or 4xx)", run: c.constantPile, pass: func(g string) bool {
			return g == "400" || strings.HasPrefix(g, "201, then 2") || strings.HasPrefix(g, "201, then 4")
		}},
		{name: "deploy: models that can only fail (9 kinds)", want: "400 x9", run: c.canOnlyFail, pass: is("400 x9")},
		{name: "deploy: 3 new functions past the tenant's function limit", want: "403 x3", run: c.pastFunctionLimit, pass: is("403 x3")},
		{name: "deploy: 4 MiB upload past the tenant's 1 MiB memory limit", want: "403", run: c.pastMemoryLimit, pass: is("403")},
		{name: fmt.Sprintf("connections: %d idle, then a valid request", pick(2000, 12000)), want: "200", run: c.idleConnections(pick(2000, 12000)), pass: is("200")},
		{name: fmt.Sprintf("connections: %d sending headers a byte every 2 s", pick(20, 200)), want: "closed by the gateway", run: c.slowHeaders(pick(20, 200)), pass: is("closed by the gateway")},
		{name: "body: trickled a byte every 0.5 s under Spindle-Timeout 3s", want: "408", run: c.trickle(3 * time.Second), pass: is("408")},
		{name: fmt.Sprintf("body: %d concurrent 60 MB bodies", pick(12, 30)), want: "answers (503 past the body budget), no other 5xx", run: c.bigBodies(pick(12, 30)), pass: func(g string) bool {
			return !serverError.MatchString(strings.ReplaceAll(g, "503 x", "")) && !strings.HasPrefix(g, "0 x")
		}},
		{name: "scale: memory limit 10 MiB", want: "400", run: c.scale("plus", "victim", 10<<20), pass: is("400")},
		{name: "scale: memory limit below what the instance uses", want: "409, nothing changed", run: c.scaleBelowUse, pass: is("409, nothing changed")},
		{name: fmt.Sprintf("requests: %d at once by a tenant limited to 20/s and 4 at a time", pick(100, 1000)), want: "victim 200; some 429", run: c.overRate(pick(100, 1000)), pass: func(g string) bool {
			return strings.HasPrefix(g, "victim 200; ") && strings.Contains(g, "429 x") && !serverError.MatchString(g)
		}},
		{name: "instances: kill -9 the victim's instance 5 times under load", want: "0 failed", run: c.killInstances(5), pass: is("0 failed")},
		{name: "gateway: kill -9 mid-upload, then restart", want: "restarted clean", run: c.killGateway, pass: is("restarted clean")},
		{name: fmt.Sprintf("soak: %d users on the victim's function for %s", pick(4, 16), soak), want: "0 failed", run: c.soak(pick(4, 16), soak), pass: is("0 failed")},
	}
}

func (c *chaos) constantPile(ctx context.Context) (string, string, error) {
	code, err := c.deploy(ctx, "mallory", "pile", modelgen.ConstantPile(60, 400))
	if err != nil || code != http.StatusCreated {
		return strconv.Itoa(code), "", err
	}
	rcode, body, err := c.post(ctx, "mallory", "pile", c.victimBody)
	if err != nil {
		return "201", "", err
	}
	return fmt.Sprintf("201, then %d", rcode), trim(body, 160), nil
}

func (c *chaos) canOnlyFail(ctx context.Context) (string, string, error) {
	var codes []int
	var bad []string
	for name, b := range modelgen.CanOnlyFail() {
		code, err := c.deploy(ctx, "mallory", "fail", b)
		if err != nil {
			return "", "", err
		}
		codes = append(codes, code)
		if code != http.StatusBadRequest {
			bad = append(bad, fmt.Sprintf("%s: %d", name, code))
		}
	}
	return statusList(codes), strings.Join(bad, "; "), nil
}

func (c *chaos) pastFunctionLimit(ctx context.Context) (string, string, error) {
	before := c.footprint().models
	var codes []int
	for i := range 3 {
		b := modelgen.NewBuilder("extra", 13, uint64(i+2))
		b.Input("x", tensor.Float32, []int64{4})
		b.Uniform("c", 1, 4)
		b.Node("Add", []string{"x", "c"}, nil, "y")
		b.Output("y", tensor.Float32, []int64{4})
		code, err := c.deploy(ctx, "full", fmt.Sprintf("extra%d", i), b)
		if err != nil {
			return "", "", err
		}
		codes = append(codes, code)
	}
	return statusList(codes), fmt.Sprintf("stored models %d before, %d after", before, c.footprint().models), nil
}

func (c *chaos) pastMemoryLimit(ctx context.Context) (string, string, error) {
	b := modelgen.NewBuilder("heavy", 13, 1)
	b.Input("x", tensor.Float32, []int64{4})
	w := b.Fill("w", 0, 1<<20)
	s := b.Node("ReduceSum", []string{w}, []modelgen.Attr{modelgen.AInt("keepdims", 0)})
	b.Node("Add", []string{"x", s}, nil, "y")
	b.Output("y", tensor.Float32, []int64{4})
	code, err := c.deploy(ctx, "small", "heavy", b)
	return strconv.Itoa(code), "", err
}

// dial opens a raw connection to the gateway.
func (c *chaos) dial() (net.Conn, error) {
	return net.DialTimeout("tcp", strings.TrimPrefix(c.p.URL, "http://"), 5*time.Second)
}

func (c *chaos) idleConnections(n int) func(ctx context.Context) (string, string, error) {
	return func(ctx context.Context) (string, string, error) {
		var conns []net.Conn
		defer func() {
			for _, cn := range conns {
				cn.Close()
			}
		}()
		for range n {
			cn, err := c.dial()
			if err != nil {
				return "", "", fmt.Errorf("after %d connections: %w", len(conns), err)
			}
			conns = append(conns, cn)
		}
		// A tenth of them make a request first and stay open between requests.
		for _, cn := range conns[:n/10] {
			io.WriteString(cn, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		peak := c.footprint().fds
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		code, body, err := c.post(ctx, "victim", "plus", c.victimBody)
		if err != nil {
			return "", "", err
		}
		return strconv.Itoa(code), fmt.Sprintf("gateway descriptors at the peak: %d; %s", peak, trim(body, 80)), nil
	}
}

func (c *chaos) slowHeaders(n int) func(ctx context.Context) (string, string, error) {
	return func(ctx context.Context) (string, string, error) {
		var conns []net.Conn
		for range n {
			cn, err := c.dial()
			if err != nil {
				return "", "", err
			}
			conns = append(conns, cn)
		}
		var closed atomic.Int64
		var wg sync.WaitGroup
		began := time.Now()
		for _, cn := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cn.Close()
				header := "POST /v2/models/plus/infer HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)
				for i := 0; i < len(header) && time.Since(began) < 30*time.Second; i++ {
					if _, err := cn.Write([]byte{header[i]}); err != nil {
						closed.Add(1)
						return
					}
					time.Sleep(2 * time.Second)
				}
			}()
		}
		wg.Wait()
		if int(closed.Load()) == n {
			return "closed by the gateway", fmt.Sprintf("all %d within %s", n, time.Since(began).Round(time.Second)), nil
		}
		return fmt.Sprintf("%d of %d open after 30 s", n-int(closed.Load()), n), "", nil
	}
}

func (c *chaos) trickle(deadline time.Duration) func(ctx context.Context) (string, string, error) {
	return func(ctx context.Context) (string, string, error) {
		cn, err := c.dial()
		if err != nil {
			return "", "", err
		}
		defer cn.Close()
		fmt.Fprintf(cn, "POST /v2/models/plus/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nSpindle-Timeout: %s\r\nContent-Length: 1000\r\n\r\n", c.keys["victim"], deadline)
		stop := make(chan struct{})
		defer close(stop)
		go every(500*time.Millisecond, stop, func() bool {
			_, err := cn.Write([]byte(" "))
			return err == nil
		})
		began := time.Now()
		cn.SetReadDeadline(time.Now().Add(deadline + 30*time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(cn), nil)
		if err != nil {
			return "no answer", err.Error(), nil
		}
		resp.Body.Close()
		return strconv.Itoa(resp.StatusCode), fmt.Sprintf("answered after %s", time.Since(began).Round(100*time.Millisecond)), nil
	}
}

func (c *chaos) bigBodies(n int) func(ctx context.Context) (string, string, error) {
	return func(ctx context.Context) (string, string, error) {
		pad := strings.Repeat("0", 60<<20)
		body := []byte(`{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}],"parameters":{"pad":"` + pad + `"}}`)
		pad = ""
		var peak atomic.Int64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			every(50*time.Millisecond, stop, func() bool {
				if rss, _, err := metrics.ReadMemory(c.p.cmd.Process.Pid); err == nil && int64(rss) > peak.Load() {
					peak.Store(int64(rss))
				}
				return true
			})
		}()
		// As a careful client of large uploads does, each asks before it
		// sends (Expect: 100-continue): a body refused before it is read is
		// then not sent at all, and the refusal is read, not cut off.
		hc := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute, MaxIdleConnsPerHost: n}}
		defer hc.CloseIdleConnections()
		codes := make([]int, n)
		var errs []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.p.inferURL("plus"), bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+c.keys["victim"])
				req.Header.Set("Expect", "100-continue")
				req.Header.Set("Spindle-Timeout", "30s")
				resp, err := hc.Do(req)
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[i] = resp.StatusCode
			}()
		}
		wg.Wait()
		close(stop)
		<-sampled
		detail := fmt.Sprintf("gateway RSS peak %s (body budget 512 MiB)", humanMiB(peak.Load()))
		if len(errs) > 0 {
			detail += fmt.Sprintf("; %d without an answer, e.g. %s", len(errs), trim(errs[0], 100))
		}
		return statusList(codes), detail, nil
	}
}

func (c *chaos) scale(function, tenant string, memory int64) func(ctx context.Context) (string, string, error) {
	return func(ctx context.Context) (string, string, error) {
		_, err := c.as(tenant).Scale(ctx, function, api.ScaleRequest{Memory: &memory})
		var ce *client.Error
		switch {
		case err == nil:
			return "200", "", nil
		case errors.As(err, &ce):
			return strconv.Itoa(ce.Status), trim(ce.Error(), 120), nil
		}
		return "", "", err
	}
}

// scaleBelowUse asks for a memory limit below what a running instance of a
// 48 MiB model uses; the limit must be refused and nothing recorded.
func (c *chaos) scaleBelowUse(ctx context.Context) (string, string, error) {
	if code, err := c.deploy(ctx, "mallory", "big", modelgen.WeightHog(48)); err != nil || code != http.StatusCreated {
		return strconv.Itoa(code), "deploy failed", err
	}
	if code, body, err := c.post(ctx, "mallory", "big", c.victimBody); err != nil || code != http.StatusOK {
		return strconv.Itoa(code), trim(body, 120), err
	}
	got, detail, err := c.scale("big", "mallory", 40<<20)(ctx)
	if err != nil {
		return "", "", err
	}
	d, err := c.mallory.Describe(ctx, "big")
	if err != nil {
		return got, detail, err
	}
	if d.MemoryLimit != 0 {
		return got + fmt.Sprintf(", limit %d recorded", d.MemoryLimit), detail, nil
	}
	if code, _, err := c.post(ctx, "mallory", "big", c.victimBody); err != nil || code != http.StatusOK {
		return got + fmt.Sprintf(", then %d", code), detail, err
	}
	return got + ", nothing changed", detail, nil
}

func (c *chaos) overRate(n int) func(ctx context.Context) (string, string, error) {
	return func(ctx context.Context) (string, string, error) {
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _, _ = c.post(ctx, "greedy", "plus", c.victimBody)
			}()
		}
		vcode, _, err := c.post(ctx, "victim", "plus", c.victimBody)
		wg.Wait()
		if err != nil {
			return "", "", err
		}
		return fmt.Sprintf("victim %d; %s", vcode, statusList(codes)), "the victim's request was sent while the tenant's ran", nil
	}
}

func (c *chaos) killInstances(kills int) func(ctx context.Context) (string, string, error) {
	return func(ctx context.Context) (string, string, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan *loadgen.Result, 1)
		go func() {
			res, _ := loadgen.Run(ctx, loadgen.Config{
				URL: c.p.inferURL("plus"), Payload: loadgen.JSONBody(c.victimBody),
				Header:   http.Header{"Authorization": {"Bearer " + c.keys["victim"]}},
				Closed:   &loadgen.Closed{Ramp: loadgen.Ramp{Start: 4, Max: 4}},
				Duration: time.Duration(kills+1) * 600 * time.Millisecond, Timeout: 30 * time.Second,
			})
			done <- res
		}()
		killed := 0
		for range kills {
			time.Sleep(500 * time.Millisecond)
			d, err := c.victim.Describe(ctx, "plus")
			if err != nil || len(d.Instances) == 0 {
				continue
			}
			if syscall.Kill(d.Instances[0].Pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		res := <-done
		if res == nil {
			return "", "", errors.New("load run failed")
		}
		return fmt.Sprintf("%d failed", res.Summary.Errors), fmt.Sprintf("%d instances killed, %d requests (%s)", killed, res.Summary.Requests, statusMap(res.Summary.ByStatus)), nil
	}
}

func statusMap(m map[int]int) string {
	var codes []int
	for code, n := range m {
		for range n {
			codes = append(codes, code)
		}
	}
	return statusList(codes)
}

// killGateway starts an upload, kills the gateway process alone with
// SIGKILL (its instances die with it), restarts it on the same home, and
// checks that the next start left nothing of the killed one behind.
func (c *chaos) killGateway(ctx context.Context) (string, string, error) {
	cn, err := c.dial()
	if err != nil {
		return "", "", err
	}
	defer cn.Close()
	const boundary = "chaos"
	fmt.Fprintf(cn, "POST /admin/v1/functions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n", c.keys["victim"], boundary, 100<<20)
	fmt.Fprintf(cn, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model.onnx\"\r\n\r\n%s", boundary, strings.Repeat("x", 1<<20))
	staging := filepath.Join(c.home, "models", "staging")
	for range 200 {
		if es, _ := os.ReadDir(staging); len(es) > 0 {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	before := c.footprint()
	pid := c.p.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGKILL)
	<-c.p.done
	for range 200 { // instances die with their platform
		if len(childrenOf(pid)) == 0 {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	left := fmt.Sprintf("the killed gateway left %d staging folders and %d cgroups", before.staging, before.cgroups)
	p, err := c.env.startPlatformIn(ctx, c.home, "--auth", "keys", "--autoscale", "off")
	if err != nil {
		return "", left, err
	}
	c.p = p
	c.clients()
	// The new gateway's baseline: a new process, its own descriptors. Its
	// stem cells start in the background, each cgroup a moment before its
	// process: a cgroup without a process is a leftover only if it stays.
	after := c.footprint()
	for deadline := time.Now().Add(10 * time.Second); (after.staging != 0 || after.cgroups > after.procs) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		after = c.footprint()
	}
	c.base.fds, c.base.rss, c.base.procs = after.fds, after.rss, after.procs
	if after.staging != 0 || after.cgroups > after.procs {
		return "left overs", fmt.Sprintf("%s; after the restart %d and %d", left, after.staging, after.cgroups), nil
	}
	return "restarted clean", left, nil
}

func (c *chaos) soak(users int, d time.Duration) func(ctx context.Context) (string, string, error) {
	return func(ctx context.Context) (string, string, error) {
		before := c.footprint()
		res, err := loadgen.Run(ctx, loadgen.Config{
			URL: c.p.inferURL("plus"), Payload: loadgen.JSONBody(c.victimBody),
			Header:   http.Header{"Authorization": {"Bearer " + c.keys["victim"]}},
			Closed:   &loadgen.Closed{Ramp: loadgen.Ramp{Start: users, Max: users}},
			Duration: d, Timeout: 30 * time.Second,
		})
		if err != nil {
			return "", "", err
		}
		after := c.footprint()
		s := res.Summary
		return fmt.Sprintf("%d failed", s.Errors), fmt.Sprintf("%d requests, %.0f req/s, p99 %s; gateway RSS %s -> %s, descriptors %d -> %d",
			s.Requests, float64(s.Requests)/max(s.Elapsed.Seconds(), 1e-9), s.P99.Round(10*time.Microsecond), humanMiB(before.rss), humanMiB(after.rss), before.fds, after.fds), nil
	}
}

// every calls f every d until stop is closed or f returns false.
func every(d time.Duration, stop <-chan struct{}, f func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if !f() {
				return
			}
		}
	}
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
