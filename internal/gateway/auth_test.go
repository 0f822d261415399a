package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tenant"
	"github.com/spindleml/spindle/internal/tensor"
)

// plusModel is y = x + c over 4 floats: tenants deploying the same name with
// different c get told apart by their answers.
func plusModel(c float32) *modelgen.Builder {
	b := modelgen.NewBuilder("plus", 13, 1)
	b.Input("x", tensor.Float32, []int64{4})
	b.Fill("c", c, 4)
	b.Node("Add", []string{"x", "c"}, nil, "y")
	b.Output("y", tensor.Float32, []int64{4})
	return b
}

// keysGateway is a test gateway that requires keys, with its admin key.
func keysGateway(t *testing.T) (*testGateway, string) {
	t.Helper()
	admin, err := tenant.NewAdminKey()
	if err != nil {
		t.Fatal(err)
	}
	return newTestGateway(t, Config{Auth: AuthKeys, AdminKey: admin}), admin
}

func (tg *testGateway) client(t *testing.T, key string) *client.Client {
	t.Helper()
	c, err := client.New(tg.url, client.WithKey(key))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (tg *testGateway) createTenant(t *testing.T, admin, name string, l tenant.Limits) string {
	t.Helper()
	ti, err := tg.client(t, admin).CreateTenant(context.Background(), name, l)
	if err != nil {
		t.Fatalf("create tenant %s: %v", name, err)
	}
	return ti.Key
}

// deployAs deploys b as name with key and returns the gateway's error.
func (tg *testGateway) deployAs(t *testing.T, key, name string, b *modelgen.Builder) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := tg.client(t, key).Deploy(context.Background(), name, path)
	return err
}

// call sends a request with an optional Bearer key and returns status and body.
func call(t *testing.T, method, url, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func wantStatus(t *testing.T, what string, code int, body string, wantCode int, wantBody string) {
	t.Helper()
	if code != wantCode || !strings.Contains(body, wantBody) {
		t.Fatalf("%s: %d %s; want %d with %q", what, code, body, wantCode, wantBody)
	}
}

func TestTenantsAreIsolated(t *testing.T) {
	tg, admin := keysGateway(t)
	alice := tg.createTenant(t, admin, "alice", tenant.Limits{})
	bob := tg.createTenant(t, admin, "bob", tenant.Limits{})
	// Both deploy "m", with different models; each also has a private function.
	for _, d := range []struct {
		key, name string
		c         float32
	}{{alice, "m", 10}, {bob, "m", 20}, {alice, "a-only", 1}, {bob, "b-only", 2}} {
		if err := tg.deployAs(t, d.key, d.name, plusModel(d.c)); err != nil {
			t.Fatalf("deploy %s: %v", d.name, err)
		}
	}
	// Each tenant's "m" is its own model.
	code, body := call(t, "POST", tg.url+"/v2/models/m/infer", alice, addBody)
	wantStatus(t, "alice infers m", code, body, 200, `"data":[11,12,13,14]`)
	code, body = call(t, "POST", tg.url+"/v2/models/m/infer", bob, addBody)
	wantStatus(t, "bob infers m", code, body, 200, `"data":[21,22,23,24]`)

	for _, tc := range []struct {
		who, key, mine, theirs string
	}{{"alice", alice, "a-only", "b-only"}, {"bob", bob, "b-only", "a-only"}} {
		t.Run(tc.who, func(t *testing.T) {
			fs, err := tg.client(t, tc.key).List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fs {
				got = append(got, f.Owner+"/"+f.Name)
			}
			if want := []string{tc.who + "/" + tc.mine, tc.who + "/m"}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("list = %v, want %v", got, want)
			}
			// Every route answers for the other tenant's function exactly as for
			// a name nobody deployed.
			routes := []struct{ method, path, body string }{
				{"POST", "/v2/models/%s/infer", addBody},
				{"GET", "/v2/models/%s", ""},
				{"GET", "/v2/models/%s/ready", ""},
				{"GET", "/admin/v1/functions/%s", ""},
				{"GET", "/admin/v1/functions/%s/logs", ""},
				{"DELETE", "/admin/v1/functions/%s", ""},
			}
			for _, rt := range routes {
				code, body := call(t, rt.method, tg.url+fmt.Sprintf(rt.path, tc.theirs), tc.key, rt.body)
				ghostCode, ghostBody := call(t, rt.method, tg.url+fmt.Sprintf(rt.path, "ghost"), tc.key, rt.body)
				ghostBody = strings.ReplaceAll(ghostBody, "ghost", tc.theirs)
				if code != 404 || code != ghostCode || body != ghostBody {
					t.Errorf("%s %s: %d %s; a missing function gives %d %s", rt.method, fmt.Sprintf(rt.path, tc.theirs), code, body, ghostCode, ghostBody)
				}
			}
		})
	}
	// The other tenant's functions survived the DELETE attempts.
	for _, k := range []string{alice, bob} {
		if fs, _ := tg.client(t, k).List(context.Background()); len(fs) != 2 {
			t.Fatalf("after cross-tenant deletes: %d functions, want 2", len(fs))
		}
	}
	// Alice removing her "m" leaves bob's "m" serving.
	if err := tg.client(t, alice).Remove(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	code, body = call(t, "POST", tg.url+"/v2/models/m/infer", alice, addBody)
	wantStatus(t, "alice after removing m", code, body, 404, `function \"m\" is not deployed`)
	code, body = call(t, "POST", tg.url+"/v2/models/m/infer", bob, addBody)
	wantStatus(t, "bob after alice removed her m", code, body, 200, `"data":[21,22,23,24]`)
	if pids := tg.pidsOf("bob", "m"); len(pids) != 1 {
		t.Fatalf("bob's m instances: %v, want 1", pids)
	}
}

func (tg *testGateway) pidsOf(owner, name string) []int {
	tg.mu.Lock()
	f := tg.fns[fnKey(owner, name)]
	tg.mu.Unlock()
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneLocked()
	var out []int
	for _, r := range f.replicas {
		out = append(out, r.proc.Pid)
	}
	return out
}

func TestAuthorization(t *testing.T) {
	tg, admin := keysGateway(t)
	alice := tg.createTenant(t, admin, "alice", tenant.Limits{})
	if err := tg.deployAs(t, alice, "m", plusModel(1)); err != nil {
		t.Fatal(err)
	}
	rotated := tg.createTenant(t, admin, "bob", tenant.Limits{})
	if _, err := tg.client(t, admin).RotateKey(context.Background(), "bob"); err != nil {
		t.Fatal(err)
	}
	forged := "spk_alice_" + strings.Repeat("A", 43)
	tests := []struct {
		name, method, path, header string
		code                       int
		want                       string
	}{
		{"no key", "GET", "/admin/v1/functions", "", 401, `{"error":"authorization: missing bearer key"}`},
		{"no key, infer", "POST", "/v2/models/m/infer", "", 401, "missing bearer key"},
		{"no key, unknown route", "GET", "/nowhere", "", 401, "missing bearer key"},
		{"forged key", "GET", "/admin/v1/functions", "Bearer " + forged, 401, `{"error":"authorization: invalid key"}`},
		{"rotated key", "GET", "/admin/v1/functions", "Bearer " + rotated, 401, "invalid key"},
		{"not a key", "GET", "/admin/v1/functions", "Bearer hunter2", 401, "invalid key"},
		{"basic auth", "GET", "/admin/v1/functions", "Basic YWxpY2U6eA==", 401, "want 'Authorization: Bearer KEY'"},
		{"lower-case scheme", "GET", "/admin/v1/functions", "bearer " + alice, 200, `"name":"m"`},
		{"tenant lists tenants", "GET", "/admin/v1/tenants", "Bearer " + alice, 403, "admin key"},
		{"tenant creates a tenant", "POST", "/admin/v1/tenants", "Bearer " + alice, 403, "admin key"},
		{"tenant rotates a key", "POST", "/admin/v1/tenants/alice/keys", "Bearer " + alice, 403, "admin key"},
		{"no key lists tenants", "GET", "/admin/v1/tenants", "", 401, "missing bearer key"},
		{"admin lists functions", "GET", "/admin/v1/functions", "Bearer " + admin, 403, "functions need a tenant key"},
		{"admin infers", "POST", "/v2/models/m/infer", "Bearer " + admin, 403, "functions need a tenant key"},
		{"admin lists tenants", "GET", "/admin/v1/tenants", "Bearer " + admin, 200, `"functions":1`},
		{"admin scrapes metrics", "GET", "/metrics", "Bearer " + admin, 200, "go_goroutines"},
		{"tenant scrapes metrics", "GET", "/metrics", "Bearer " + alice, 403, "/metrics needs the admin key"},
		{"metrics without key", "GET", "/metrics", "", 401, "missing bearer key"},
		{"health without key", "GET", "/v2/health/ready", "", 200, `"ready":true`},
		{"liveness without key", "GET", "/v2/health/live", "", 200, `"live":true`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tg.url+tc.path, strings.NewReader(`{"name":"x"}`))
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantStatus(t, tc.name, resp.StatusCode, string(b), tc.code, tc.want)
			if tc.code == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without a WWW-Authenticate header")
			}
		})
	}
}

func TestTenantAdminAPI(t *testing.T) {
	tg, admin := keysGateway(t)
	ac := tg.client(t, admin)
	ctx := context.Background()
	alice := tg.createTenant(t, admin, "alice", tenant.Limits{MaxVCPU: 2, MaxMemoryBytes: 1 << 30})
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"duplicate", `{"name":"alice"}`, 409, `tenant \"alice\": already exists`},
		{"reserved name", `{"name":"admin"}`, 400, "reserved"},
		{"bad name", `{"name":"Alice!"}`, 400, `name \"Alice!\"`},
		{"negative limit", `{"name":"carol","limits":{"max_functions":-2}}`, 400, "max_functions -2"},
		{"unknown field", `{"name":"carol","limit":{}}`, 400, `unknown field \"limit\"`},
		{"not JSON", `carol`, 400, "body: want JSON"},
	} {
		code, body := call(t, "POST", tg.url+"/admin/v1/tenants", admin, tc.body)
		wantStatus(t, tc.name, code, body, tc.code, tc.want)
	}
	if l, err := tg.Tenants().Limits("alice"); err != nil || l.MaxVCPU != 2 || l.MaxMemoryBytes != 1<<30 {
		t.Fatalf("Limits(alice) = %+v, %v", l, err)
	}

	// Rotation: the old key stops working, the new one works.
	if err := tg.deployAs(t, alice, "m", plusModel(1)); err != nil {
		t.Fatal(err)
	}
	issued, err := ac.RotateKey(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	code, body := call(t, "GET", tg.url+"/admin/v1/functions/m", alice, "")
	wantStatus(t, "old key after rotation", code, body, 401, "invalid key")
	code, body = call(t, "GET", tg.url+"/admin/v1/functions/m", issued.Key, "")
	wantStatus(t, "new key after rotation", code, body, 200, `"owner":"alice"`)
	if _, err := ac.RotateKey(ctx, "nobody"); !isStatus(err, 404) {
		t.Fatalf("rotate a missing tenant: %v, want 404", err)
	}

	// Deleting a tenant revokes its key and removes its functions and instances.
	code, body = call(t, "POST", tg.url+"/v2/models/m/infer", issued.Key, addBody)
	wantStatus(t, "infer before delete", code, body, 200, `"data":[2,3,4,5]`)
	if n, err := ac.DeleteTenant(ctx, "alice"); err != nil || n != 1 {
		t.Fatalf("delete alice: %d functions, %v; want 1", n, err)
	}
	if pids := tg.pidsOf("alice", "m"); len(pids) != 0 {
		t.Fatalf("alice's instances after delete: %v", pids)
	}
	if fs, _ := tg.Registry().List("alice"); len(fs) != 0 {
		t.Fatalf("alice's functions after delete: %v", fs)
	}
	code, body = call(t, "GET", tg.url+"/admin/v1/functions", issued.Key, "")
	wantStatus(t, "key of a deleted tenant", code, body, 401, "invalid key")
	if _, err := ac.DeleteTenant(ctx, "alice"); !isStatus(err, 404) {
		t.Fatalf("delete twice: %v, want 404", err)
	}
	// Re-creating the name starts empty.
	again := tg.createTenant(t, admin, "alice", tenant.Limits{})
	if fs, err := tg.client(t, again).List(ctx); err != nil || len(fs) != 0 {
		t.Fatalf("re-created alice sees %v, %v", fs, err)
	}
}

func isStatus(err error, code int) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Status == code
}

func TestLimitsAtDeploy(t *testing.T) {
	tg, admin := keysGateway(t)
	small := tg.createTenant(t, admin, "small", tenant.Limits{MaxFunctions: 1})
	tiny := tg.createTenant(t, admin, "tiny", tenant.Limits{MaxMemoryBytes: 100})

	if err := tg.deployAs(t, small, "one", plusModel(1)); err != nil {
		t.Fatal(err)
	}
	err := tg.deployAs(t, small, "two", plusModel(2))
	if !isStatus(err, 403) || !strings.Contains(err.Error(), `tenant "small": function limit 1 reached`) {
		t.Fatalf("second function over the limit: %v", err)
	}
	// Redeploying the one it has is not a new function.
	if err := tg.deployAs(t, small, "one", plusModel(3)); err != nil {
		t.Fatalf("redeploy at the limit: %v", err)
	}
	code, body := call(t, "POST", tg.url+"/v2/models/one/infer", small, addBody)
	wantStatus(t, "redeployed model", code, body, 200, `"data":[4,5,6,7]`)

	err = tg.deployAs(t, tiny, "m", plusModel(1))
	if !isStatus(err, 403) || !strings.Contains(err.Error(), "over the memory limit of 100 bytes") {
		t.Fatalf("model over the memory limit: %v", err)
	}
	if fs, _ := tg.Registry().List("tiny"); len(fs) != 0 {
		t.Fatalf("refused deploy was registered: %v", fs)
	}
}

func TestOpenMode(t *testing.T) {
	tg := newTestGateway(t, Config{})
	// No key: tenant "default", with admin rights.
	if err := tg.deployAs(t, "", "m", plusModel(1)); err != nil {
		t.Fatal(err)
	}
	alice := tg.createTenant(t, "", "alice", tenant.Limits{})
	if f, err := tg.Registry().Get("default", "m"); err != nil || f.Owner != "default" {
		t.Fatalf("function deployed without a key: %+v, %v", f, err)
	}
	// A key, when sent, is checked and scopes the caller to its tenant.
	code, body := call(t, "GET", tg.url+"/v2/models/m", alice, "")
	wantStatus(t, "alice in open mode", code, body, 404, "not deployed")
	code, body = call(t, "GET", tg.url+"/v2/models/m", "spk_alice_"+strings.Repeat("x", 43), "")
	wantStatus(t, "wrong key in open mode", code, body, 401, "invalid key")
	code, body = call(t, "GET", tg.url+"/admin/v1/tenants", alice, "")
	wantStatus(t, "tenant key on the admin API in open mode", code, body, 403, "admin key")
	code, body = call(t, "GET", tg.url+"/v2/models/m", "", "")
	wantStatus(t, "no key in open mode", code, body, 200, `"name":"m"`)
}

func TestOpenModeNeedsLoopback(t *testing.T) {
	tests := []struct {
		name, auth, listen string
		refused            bool
	}{
		{"open on all interfaces", AuthOpen, "0.0.0.0:0", true},
		{"open on loopback", AuthOpen, "127.0.0.1:0", false},
		{"keys on all interfaces", AuthKeys, "0.0.0.0:0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			admin, _ := tenant.NewAdminKey()
			g, err := New(Config{Home: t.TempDir(), Exe: spindleBin, Auth: tc.auth, AdminKey: admin, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if err := g.CheckListen(ln.Addr()); errors.Is(err, ErrOpenNotLoopback) != tc.refused {
				t.Fatalf("CheckListen(%s) = %v, refused want %v", ln.Addr(), err, tc.refused)
			}
			if !tc.refused {
				g.Close()
				return
			}
			// Serve refuses too, before serving anything.
			if err := g.Serve(context.Background(), ln); !errors.Is(err, ErrOpenNotLoopback) || !strings.Contains(err.Error(), "--auth keys") {
				t.Fatalf("Serve: %v, want ErrOpenNotLoopback naming --auth keys", err)
			}
		})
	}
}

func TestConfigAuth(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown mode", Config{Auth: "none"}, `auth "none": must be open or keys`},
		{"keys without admin key", Config{Auth: AuthKeys}, "admin key is required"},
		{"malformed admin key", Config{Auth: AuthKeys, AdminKey: "hunter2"}, "admin key: must look like"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Home, tc.cfg.Exe = t.TempDir(), spindleBin
			g, err := New(tc.cfg)
			if err == nil {
				g.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
}
