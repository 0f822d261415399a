package modelgen

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spindleml/spindle/internal/onnx"
)

// TestHostileModelsAreSmallAndLoad checks that the hostile models are what
// they claim: small files (the harm is in what they make a compiler do) that
// parse as ONNX.
func TestHostileModelsAreSmallAndLoad(t *testing.T) {
	models := map[string]*Builder{"gathernd": GatherNDBomb(), "concat": ConcatBomb(60, 2000), "pile": ConstantPile(60, 400)}
	for name, b := range CanOnlyFail() {
		models[name] = b
	}
	for name, b := range models {
		path := filepath.Join(t.TempDir(), "m.onnx")
		if err := b.Save(path, SaveOptions{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m, err := onnx.Load(path, onnx.Copy)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m.Close()
		if n := fileSize(t, path); n > 128<<10 {
			t.Errorf("%s: %d bytes, not a small upload", name, n)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
