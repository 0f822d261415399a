package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// plusModel writes y = x + c over 4 floats to DIR/model.onnx.
func plusModel(t *testing.T, dir string, c float32) string {
	t.Helper()
	b := modelgen.NewBuilder("plus", 13, 1)
	b.Input("x", tensor.Float32, []int64{4})
	b.Fill("c", c, 4)
	b.Node("Add", []string{"x", "c"}, nil, "y")
	b.Output("y", tensor.Float32, []int64{4})
	path := filepath.Join(dir, "model.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return path
}

// inferAs posts the plus model's request with key and returns status and body.
func inferAs(t *testing.T, url, name, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v2/models/"+name+"/infer",
		strings.NewReader(`{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}`))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func wantInfer(t *testing.T, url, name, key string, code int, want string) {
	t.Helper()
	got, body := inferAs(t, url, name, key)
	if got != code || !strings.Contains(body, want) {
		t.Fatalf("infer %s: %d %s; want %d with %q", name, got, body, code, want)
	}
}

// stop ends a platform and waits for it, as its cleanup would.
func (p *platform) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("spindle up exited with %v", err)
	}
}

func TestTenantsEndToEnd(t *testing.T) {
	work := t.TempDir()
	home := filepath.Join(work, "home")
	m10 := plusModel(t, filepath.Join(work, "m10"), 10)
	m20 := plusModel(t, filepath.Join(work, "m20"), 20)

	p := startPlatform(t, home, "--auth", "keys")
	gw := "--gateway=" + p.url
	p.readUntil(t, "Admin key (shown once")
	if st, err := os.Stat(filepath.Join(home, "admin.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.key: %v %v, want mode 0600", st, err)
	}

	// The tenant commands find the admin key in --home.
	alice := strings.TrimSpace(mustRun(t, "tenant", "create", "alice", "--home", home, gw))
	bob := strings.TrimSpace(mustRun(t, "tenant", "create", "bob", "--max-functions", "1", "--max-memory", "256MiB", "--home", home, gw))
	for _, k := range []string{alice, bob} {
		if !strings.HasPrefix(k, "spk_") || strings.ContainsAny(k, " \n") {
			t.Fatalf("tenant create printed %q, want just the key", k)
		}
	}
	mustRun(t, "deploy", "m", "--model", m10, gw, "--key", alice)
	mustRun(t, "deploy", "m", "--model", m20, gw, "--key", bob)
	mustRun(t, "deploy", "a-only", "--model", m10, gw, "--key", alice)

	check := func(t *testing.T, url string) {
		t.Helper()
		gw := "--gateway=" + url
		wantInfer(t, url, "m", alice, 200, `"data":[11,12,13,14]`)
		wantInfer(t, url, "m", bob, 200, `"data":[21,22,23,24]`)
		wantInfer(t, url, "a-only", alice, 200, `"data":[11,12,13,14]`)
		wantInfer(t, url, "a-only", bob, 404, `not deployed`)
		wantInfer(t, url, "m", "", 401, "missing bearer key")
		if ls := mustRun(t, "ls", gw, "--key", bob); strings.Contains(ls, "a-only") || !strings.Contains(ls, "m ") {
			t.Fatalf("bob's ls:\n%s", ls)
		}
		if ls := mustRun(t, "ls", gw, "--key", alice); !strings.Contains(ls, "a-only") {
			t.Fatalf("alice's ls:\n%s", ls)
		}
		wantExit2(t, "not deployed", "describe", "a-only", gw, "--key", bob)
		wantExit2(t, "not deployed", "rm", "a-only", gw, "--key", bob)
		wantExit2(t, "missing bearer key", "ls", gw)
		wantExit2(t, "invalid key", "ls", gw, "--key", "spk_bob_"+strings.Repeat("x", 43))
		wantExit2(t, "needs the admin key", "tenant", "ls", gw, "--admin-key", alice)
		ts := mustRun(t, "tenant", "ls", "--home", home, gw)
		if !strings.Contains(ts, "alice  2") || !strings.Contains(ts, "bob    1") || !strings.Contains(ts, "256MiB") {
			t.Fatalf("tenant ls:\n%s", ts)
		}
	}
	check(t, p.url)
	wantExit2(t, `tenant "bob": function limit 1 reached`, "deploy", "b2", "--model", m20, gw, "--key", bob)
	wantExit2(t, "already exists", "tenant", "create", "alice", "--home", home, gw)

	// A restart on the same home keeps tenants, keys, functions and the admin key.
	p.stop(t)
	p = startPlatform(t, home, "--auth", "keys")
	if line := p.readUntil(t, "Admin key"); !strings.Contains(line, "Admin key: in ") {
		t.Fatalf("restart: admin key line %q, want only its file", line)
	}
	check(t, p.url)

	// Removing a tenant removes its key and functions, not the other tenant's.
	gw = "--gateway=" + p.url
	if out := mustRun(t, "tenant", "rm", "bob", "--home", home, gw); !strings.Contains(out, "removed tenant bob and its 1 function(s)") {
		t.Fatalf("tenant rm: %q", out)
	}
	wantExit2(t, "invalid key", "ls", gw, "--key", bob)
	wantInfer(t, p.url, "m", alice, 200, `"data":[11,12,13,14]`)
}

func TestUpAuthFlags(t *testing.T) {
	home := t.TempDir()
	wantExit2(t, "open access (no API keys) is allowed only on a loopback address", "up", "--listen", "0.0.0.0:0", "--home", home)
	wantExit2(t, `--auth "none": must be open or keys`, "up", "--auth", "none", "--home", home)
	if _, err := os.Stat(filepath.Join(home, "admin.key")); !os.IsNotExist(err) {
		t.Fatalf("open mode wrote an admin key: %v", err)
	}
}

// TestDemoWithKeys checks that `spindle up --auth keys --demo` prints a curl
// line, with the demo tenant's key, that works as pasted.
func TestDemoWithKeys(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed for this test: apt-get install curl")
	}
	p := startPlatform(t, t.TempDir(), "--auth", "keys", "--demo")
	var curl string
	for i := 0; i < 10 && curl == ""; i++ {
		if line := strings.TrimSpace(p.readLine(t)); strings.HasPrefix(line, "curl ") {
			curl = line
		}
	}
	if !strings.Contains(curl, "Authorization: Bearer spk_demo_") {
		t.Fatalf("curl line without the demo key: %q", curl)
	}
	out, err := exec.Command("sh", "-c", curl).Output()
	if err != nil {
		t.Fatalf("%s: %v", curl, err)
	}
	var resp struct {
		ModelName string `json:"model_name"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || resp.ModelName != "mnist" {
		t.Fatalf("curl answered %s", out)
	}
}

// TestTenantAdminKeyNotFound runs the tenant commands against a gateway that
// needs keys, with no admin key anywhere: the refusal names every place the
// CLI looked and how to give the key, where it used to say only that the
// bearer key was missing.
func TestTenantAdminKeyNotFound(t *testing.T) {
	t.Setenv("SPINDLE_ADMIN_KEY", "")
	t.Setenv("SPINDLE_HOME", "")
	p := startPlatform(t, t.TempDir(), "--auth", "keys")
	gw := "--gateway=" + p.url
	empty := t.TempDir()
	envHome := t.TempDir()
	const howTo = "give --admin-key KEY, set $SPINDLE_ADMIN_KEY, or point --home or $SPINDLE_HOME at the data directory"
	tests := []struct {
		name   string
		env    string // $SPINDLE_HOME
		args   []string
		looked string
	}{
		{"create, --home", "", []string{"tenant", "create", "carol", "--home", empty, gw},
			"looked in --admin-key (not given), $SPINDLE_ADMIN_KEY (not set) and " + filepath.Join(empty, "admin.key") + " (from --home; no such file)"},
		{"ls, $SPINDLE_HOME", envHome, []string{"tenant", "ls", gw},
			"looked in --admin-key (not given), $SPINDLE_ADMIN_KEY (not set) and " + filepath.Join(envHome, "admin.key") + " (from $SPINDLE_HOME; no such file)"},
		{"rotate", "", []string{"tenant", "rotate", "carol", "--home", empty, gw}, filepath.Join(empty, "admin.key")},
		{"rm", "", []string{"tenant", "rm", "carol", "--home", empty, gw}, filepath.Join(empty, "admin.key")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SPINDLE_HOME", tc.env)
			for _, msg := range []string{"missing bearer key (HTTP 401); no admin key found", tc.looked, howTo} {
				wantExit2(t, msg, tc.args...)
			}
		})
	}
	// A key that is found but refused says where it came from.
	home := t.TempDir()
	tenantKey := "spk_carol_" + strings.Repeat("x", 43)
	os.WriteFile(filepath.Join(home, "admin.key"), []byte(tenantKey+"\n"), 0o600)
	wantExit2(t, "not an admin key", "tenant", "ls", "--home", home, gw)
	wantExit2(t, "the admin key sent came from --admin-key", "tenant", "ls", "--admin-key", tenantKey, gw)
}
