package tokenizer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// bertModule is the Go module whose files include a real BERT-uncased
// tokenizer.json (all-MiniLM-L6-v2, vocabulary 30522). It is test data only:
// scripts/testdeps.sh puts it in the module cache with `go mod download`.
const bertModule = "github.com/clems4ever/all-minilm-l6-v2-go@v0.0.9"

var (
	bertOnce sync.Once
	bertPath string
	bertErr  string
)

// bertJSON returns the path of the real BERT tokenizer.json, failing the test
// when it is missing.
func bertJSON(t testing.TB) string {
	t.Helper()
	bertOnce.Do(func() {
		var roots []string
		if c := os.Getenv("GOMODCACHE"); c != "" {
			roots = append(roots, c)
		}
		if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
			roots = append(roots, strings.TrimSpace(string(out)))
		}
		for _, p := range filepath.SplitList(os.Getenv("GOPATH")) {
			roots = append(roots, filepath.Join(p, "pkg", "mod"))
		}
		if h, err := os.UserHomeDir(); err == nil {
			roots = append(roots, filepath.Join(h, "go", "pkg", "mod"))
		}
		for _, r := range roots {
			p := filepath.Join(r, bertModule, "all_minilm_l6_v2", "tokenizer.json")
			if _, err := os.Stat(p); err == nil {
				bertPath = p
				return
			}
		}
		bertErr = "BERT tokenizer.json of " + bertModule + " not found in the Go module cache (looked in " +
			strings.Join(roots, ", ") + "): run scripts/testdeps.sh"
	})
	if bertErr != "" {
		t.Fatal(bertErr)
	}
	return bertPath
}

var (
	bertTokOnce sync.Once
	bertTok     *Tokenizer
	bertTokErr  error
)

// loadBERT loads the real BERT tokenizer once per test binary.
func loadBERT(t testing.TB) *Tokenizer {
	t.Helper()
	p := bertJSON(t)
	bertTokOnce.Do(func() { bertTok, bertTokErr = Load(p) })
	if bertTokErr != nil {
		t.Fatalf("Load(%q): %v", p, bertTokErr)
	}
	return bertTok
}

// normalizeString runs s through the tokenizer's normalizer.
func (t *Tokenizer) normalizeString(s string) string {
	chars, _ := applyNorm(t.norm, appendChars(nil, s, 0), nil)
	var b strings.Builder
	for _, c := range chars {
		b.WriteRune(c.r)
	}
	return b.String()
}
