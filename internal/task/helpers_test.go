package task

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tokenizer"
)

var modelRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spindle-task-")
	if err != nil {
		panic(err)
	}
	modelRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bertModule holds a real BERT-uncased tokenizer.json (all-MiniLM-L6-v2, test
// data only; scripts/testdeps.sh downloads it into the module cache).
const bertModule = "github.com/clems4ever/all-minilm-l6-v2-go@v0.0.9"

var (
	bertOnce sync.Once
	bertPath string
)

// bertJSON returns the path of the real tokenizer.json, failing when missing.
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
		for _, r := range roots {
			p := filepath.Join(r, bertModule, "all_minilm_l6_v2", "tokenizer.json")
			if _, err := os.Stat(p); err == nil {
				bertPath = p
				return
			}
		}
	})
	if bertPath == "" {
		t.Fatalf("tokenizer.json of %s not in the Go module cache: run scripts/testdeps.sh", bertModule)
	}
	return bertPath
}

// bertTokenizer loads the real tokenizer, to compute expected model inputs.
func bertTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(bertJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var (
	modelsMu sync.Mutex
	models   = map[string]*engine.Model{}
)

// model generates (once per test binary) and compiles a modelgen kind.
func model(t testing.TB, kind string) *engine.Model {
	t.Helper()
	modelsMu.Lock()
	defer modelsMu.Unlock()
	if m := models[kind]; m != nil {
		return m
	}
	dir := filepath.Join(modelRoot, kind)
	if err := modelgen.Generate(kind, dir, 1); err != nil {
		t.Fatal(err)
	}
	src, err := onnx.Load(filepath.Join(dir, "model.onnx"), onnx.Copy)
	if err != nil {
		t.Fatal(err)
	}
	m, err := engine.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	models[kind] = m
	return m
}

// funcDir makes a function folder holding the given files (name -> content);
// a content of "@bert" is the real tokenizer.json.
func funcDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		b := []byte(content)
		if content == "@bert" {
			var err error
			if b, err = os.ReadFile(bertJSON(t)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// newTask builds a task, failing the test on error.
func newTask(t testing.TB, kind string, cfg Config, dir string, m *engine.Model) Task {
	t.Helper()
	tk, err := New(kind, cfg, dir, m)
	if err != nil {
		t.Fatalf("New(%s): %v", kind, err)
	}
	return tk
}

// handle calls tk on a body, running m.
func handle(t testing.TB, tk Task, m *engine.Model, ct, body string) (any, error) {
	t.Helper()
	var run RunFunc
	if m != nil {
		run = m.Run
	}
	return tk.Handle(context.Background(), Request{ContentType: ct, Body: []byte(body)}, run)
}

// testImage is a w x h image with smooth colour gradients and a bright square,
// so resampling and channel order both show in the pixels.
func testImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{R: uint8(255 * x / max(w-1, 1)), G: uint8(255 * y / max(h-1, 1)), B: uint8((x * y) % 256), A: 255}
			if x > w/4 && x < w/2 && y > h/4 && y < h/2 {
				c = color.NRGBA{R: 250, G: 240, B: 10, A: 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
