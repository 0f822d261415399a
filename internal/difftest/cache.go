package difftest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spindleml/spindle/internal/modelgen"
)

// Cache keeps generated models in a folder, one subfolder per kind, seed and
// modelgen.Version, so a model is generated once and reused until a generator
// changes. The zero value is not usable; call NewCache.
type Cache struct {
	Dir string
}

// NewCache returns the cache in $SPINDLE_TEST_MODELS if set, else in
// spindle-test-models under the user's cache folder.
func NewCache() (*Cache, error) {
	if d := os.Getenv("SPINDLE_TEST_MODELS"); d != "" {
		return &Cache{Dir: d}, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("test model cache: %w", err)
	}
	return &Cache{Dir: filepath.Join(d, "spindle-test-models")}, nil
}

// Model returns the path of model.onnx for kind and seed, generating it first
// if the cache lacks it. A model is generated into a temporary folder and
// renamed into place, so an interrupted or concurrent generation never leaves a
// half-written entry; entries of the same kind and seed from other generator
// versions are removed.
func (c *Cache) Model(kind string, seed uint64) (string, error) {
	stem := fmt.Sprintf("%s-seed%d-v", kind, seed)
	dir := filepath.Join(c.Dir, fmt.Sprintf("%s%d", stem, modelgen.Version))
	path := filepath.Join(dir, "model.onnx")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", fmt.Errorf("test model cache: %w", err)
	}
	if old, err := filepath.Glob(filepath.Join(c.Dir, stem+"*")); err == nil {
		for _, o := range old {
			if o != dir && !strings.Contains(filepath.Base(o), ".tmp") {
				os.RemoveAll(o)
			}
		}
	}
	tmp, err := os.MkdirTemp(c.Dir, filepath.Base(dir)+".tmp")
	if err != nil {
		return "", fmt.Errorf("test model cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := modelgen.Generate(kind, tmp, seed); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process may have put the same entry in place first.
		if _, statErr := os.Stat(path); statErr == nil {
			return path, nil
		}
		return "", fmt.Errorf("test model cache: %w", err)
	}
	return path, nil
}
