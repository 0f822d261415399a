package dashboard

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVendoredUPlotIsNPMs checks that the vendored uPlot files are byte for
// byte those of the npm package at the version VERSION names, which
// scripts/testdeps.sh installs into tools/node.
func TestVendoredUPlotIsNPMs(t *testing.T) {
	pkg := filepath.Join("..", "..", "tools", "node", "node_modules", "uplot")
	manifest, err := os.ReadFile(filepath.Join(pkg, "package.json"))
	if err != nil {
		t.Fatalf("uplot from npm: %v (scripts/testdeps.sh installs it)", err)
	}
	version, err := fs.ReadFile(Assets(), "vendor/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(manifest, []byte(`"version": "1.6.32"`)) || !strings.Contains(string(version), "uplot 1.6.32") {
		t.Fatalf("tools/node has uplot %s; vendor/VERSION says %q: keep them one version", manifest, version)
	}
	for vendored, npm := range map[string]string{
		"vendor/uPlot.iife.min.js": "dist/uPlot.iife.min.js",
		"vendor/uPlot.min.css":     "dist/uPlot.min.css",
		"vendor/uPlot.LICENSE":     "LICENSE",
	} {
		got, err := fs.ReadFile(Assets(), vendored)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(pkg, npm))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from npm's uplot %s", vendored, npm)
		}
	}
}

// TestHandler checks what the page's server answers: the page at /, its
// files under /ui/ with their types, no folder listings, and headers that
// keep scripts from elsewhere out.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	tests := []struct {
		path, ctype string
		code        int
		body        string
	}{
		{"/", "text/html; charset=utf-8", 200, `<script src="/ui/app.js" defer></script>`},
		{"/ui/app.js", "text/javascript; charset=utf-8", 200, "/admin/v1/dashboard/stream"},
		{"/ui/style.css", "text/css; charset=utf-8", 200, ".panel"},
		{"/ui/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8", 200, "uPlot"},
		{"/ui/vendor/", "", 404, ""},
		{"/ui/missing.js", "", 404, ""},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || (tt.ctype != "" && resp.Header.Get("Content-Type") != tt.ctype) || !strings.Contains(string(b), tt.body) {
			t.Errorf("GET %s: %d %s; want %d %s with %q", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.code, tt.ctype, tt.body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tt.path, csp)
		}
	}
}
