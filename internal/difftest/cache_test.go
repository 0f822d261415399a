package difftest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
)

func TestCache(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	stale := filepath.Join(c.Dir, fmt.Sprintf("mnist-cnn-seed2-v%d", modelgen.Version-1))
	other := filepath.Join(c.Dir, "mnist-cnn-seed3-v0")
	for _, d := range []string{stale, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p, err := c.Model("mnist-cnn", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(c.Dir, fmt.Sprintf("mnist-cnn-seed2-v%d", modelgen.Version), "model.onnx")
	if p != want {
		t.Fatalf("path %s, want %s", p, want)
	}
	// A second call reuses the entry: mark it and see the mark survive.
	if err := os.WriteFile(filepath.Join(filepath.Dir(p), "mark"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p2, err := c.Model("mnist-cnn", 2); err != nil || p2 != p {
		t.Fatalf("second call gave %s, %v; want %s", p2, err, p)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(p), "mark")); err != nil {
		t.Errorf("second call regenerated the entry: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("entry of an older generator version kept (stat: %v)", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("entry of another seed removed: %v", err)
	}
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("cache holds %d entries, want 2 (no temporary folders left)", len(entries))
	}
	if _, err := c.Model("no-such-kind", 1); err == nil {
		t.Error("unknown kind: got no error")
	}
}
