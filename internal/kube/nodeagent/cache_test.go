package nodeagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestCacheFetchesOncePerNode: many concurrent requests for one model make one
// HTTP fetch; the file is read-only and exactly the served bytes.
func TestCacheFetchesOncePerNode(t *testing.T) {
	model := bytes.Repeat([]byte("weights!"), 1<<16)
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Write(model)
	}))
	defer srv.Close()
	c := &Cache{Root: t.TempDir()}
	d := digestOf(model)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := c.Ensure(context.Background(), srv.URL+"/m.onnx", d)
			if err != nil || p != c.Path(d) {
				t.Errorf("Ensure = %q, %v", p, err)
			}
		}()
	}
	wg.Wait()
	if n := gets.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	got, err := os.ReadFile(c.Path(d))
	if err != nil || !bytes.Equal(got, model) {
		t.Fatalf("cached file: %d bytes, %v", len(got), err)
	}
	if st, _ := os.Stat(c.Path(d)); st.Mode().Perm()&0o222 != 0 {
		t.Errorf("cached file mode %v, want read-only", st.Mode())
	}
	if _, err := c.Ensure(context.Background(), srv.URL+"/m.onnx", d); err != nil || gets.Load() != 1 {
		t.Errorf("a cached model was fetched again (%d fetches, %v)", gets.Load(), err)
	}
}

// TestCacheRefuses: wrong digests, failed fetches and oversized models leave
// nothing in the cache.
func TestCacheRefuses(t *testing.T) {
	model := []byte("the real model")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write(model)
	}))
	defer srv.Close()
	c := &Cache{Root: t.TempDir(), MaxBytes: 10}
	other := digestOf([]byte("another model"))
	for _, tc := range []struct {
		url, digest, want string
	}{
		{srv.URL + "/m", strings.ToUpper(digestOf(model)), "64 lowercase hex"},
		{srv.URL + "/missing", other, "404"},
		{srv.URL + "/m", digestOf(model), "larger than the cache's limit of 10 bytes"},
	} {
		if _, err := c.Ensure(context.Background(), tc.url, tc.digest); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Ensure(%s, %s) = %v, want %q", tc.url, tc.digest, err, tc.want)
		}
	}
	c.MaxBytes = 0
	if _, err := c.Ensure(context.Background(), srv.URL+"/m", other); !errors.Is(err, ErrDigest) {
		t.Errorf("wrong digest: %v", err)
	}
	ents, _ := os.ReadDir(c.Root + "/sha256/" + other)
	if len(ents) != 0 || c.Has(other) {
		t.Errorf("a refused fetch left %d files", len(ents))
	}
	// Prune keeps what is asked for and removes the rest.
	d := digestOf(model)
	if _, err := c.Ensure(context.Background(), srv.URL+"/m", d); err != nil {
		t.Fatal(err)
	}
	if removed, err := c.Prune(map[string]bool{d: true}); err != nil || c.Has(other) || !c.Has(d) {
		t.Errorf("Prune kept %v: removed %v, %v", d, removed, err)
	}
	if removed, err := c.Prune(nil); err != nil || len(removed) != 1 || c.Has(d) {
		t.Errorf("Prune(nil) removed %v, %v", removed, err)
	}
}
