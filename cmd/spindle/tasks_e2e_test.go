package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/npy"
	"github.com/spindleml/spindle/internal/tensor"
	"github.com/spindleml/spindle/internal/tokenizer"
)

// realTokenizer copies the real BERT-uncased tokenizer.json (test data in the
// module cache, put there by scripts/testdeps.sh) to dir/tokenizer.json.
func realTokenizer(t *testing.T, dir string) string {
	t.Helper()
	const module = "github.com/clems4ever/all-minilm-l6-v2-go@v0.0.9"
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), module, "all_minilm_l6_v2", "tokenizer.json"))
	if err != nil {
		t.Fatalf("tokenizer.json of %s: %v (run scripts/testdeps.sh)", module, err)
	}
	path := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// postAs sends body with a Content-Type and returns the status and raw answer.
func postAs(t *testing.T, url, ct string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type rankedLabels struct {
	Labels []struct {
		Label string  `json:"label"`
		Score float64 `json:"score"`
	} `json:"labels"`
}

// checkRanked checks an answer lists k distinct labels from want, best first,
// with scores in [0, 1] that sum to 1 when every label is listed.
func checkRanked(t *testing.T, what string, got rankedLabels, want []string, k int) {
	t.Helper()
	if len(got.Labels) != k {
		t.Fatalf("%s: %d labels, want %d: %+v", what, len(got.Labels), k, got)
	}
	seen := map[string]bool{}
	var sum float64
	for i, l := range got.Labels {
		if !contains(want, l.Label) || seen[l.Label] {
			t.Fatalf("%s: label %q unknown or repeated: %+v", what, l.Label, got)
		}
		seen[l.Label] = true
		if l.Score < 0 || l.Score > 1 || (i > 0 && l.Score > got.Labels[i-1].Score) {
			t.Fatalf("%s: scores not ranked probabilities: %+v", what, got)
		}
		sum += l.Score
	}
	if k == len(want) && math.Abs(sum-1) > 1e-6 {
		t.Fatalf("%s: scores sum to %v, want 1", what, sum)
	}
}

func contains(s []string, v string) bool {
	i := sort.SearchStrings(s, v)
	return i < len(s) && s[i] == v
}

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 90, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestTaskEndpointsEndToEnd deploys one function of each task kind with the
// CLI, calls them over HTTP and with `spindle invoke`, and checks that bad
// inputs get 400 with a message while the instances keep serving.
func TestTaskEndpointsEndToEnd(t *testing.T) {
	work := t.TempDir()
	for _, kind := range []string{"tiny-bert-cls", "tiny-bert", "tiny-image-cls"} {
		mustRun(t, "model", "gen", kind, "-o", filepath.Join(work, kind))
	}
	tok := realTokenizer(t, work)
	sentiment := []string{"negative", "neutral", "positive"} // sorted, for contains
	textLabels := writeFile(t, filepath.Join(work, "text", "labels.txt"), strings.Join(sentiment, "\n")+"\n")
	animals := []string{"bird", "cat", "dog", "fish", "frog"}
	imageLabels := writeFile(t, filepath.Join(work, "image", "labels.txt"), strings.Join(animals, "\n"))

	p := startPlatform(t, filepath.Join(work, "home"))
	gw := "--gateway=" + p.url
	model := func(kind string) string { return filepath.Join(work, kind, "model.onnx") }
	mustRun(t, "deploy", "sentiment", "--model", model("tiny-bert-cls"), "--task", "text-classification",
		"--file", tok, "--file", textLabels, "--config", "max_length=32", "--config", "truncate=false", gw)
	mustRun(t, "deploy", "embed", "--model", model("tiny-bert"), "--task", "embedding", "--file", tok, gw)
	mustRun(t, "deploy", "vision", "--model", model("tiny-image-cls"), "--task", "image-classification",
		"--file", imageLabels, "--config", `{"top_k": 3}`, gw)
	out := mustRun(t, "deploy", "burn", "--task", "cpu-burn", "--config", "burn_ms=5", "--config", "iters_per_ms=1000", gw)
	if !strings.Contains(out, "deployed burn (task cpu-burn, no model)") {
		t.Fatalf("deploy burn: %q", out)
	}
	task := func(name string) string { return p.url + "/v1/tasks/" + name }

	t.Run("text-classification", func(t *testing.T) {
		code, b := postAs(t, task("sentiment"), "application/json", []byte(`{"text": "Spindle starts models in milliseconds."}`))
		var one rankedLabels
		if code != 200 || json.Unmarshal(b, &one) != nil {
			t.Fatalf("got %d %s", code, b)
		}
		checkRanked(t, "text", one, sentiment, 3)
		code, b = postAs(t, task("sentiment"), "application/json", []byte(`{"texts": ["good", "Spindle starts models in milliseconds."]}`))
		var many struct{ Results []rankedLabels }
		if code != 200 || json.Unmarshal(b, &many) != nil || len(many.Results) != 2 {
			t.Fatalf("got %d %s", code, b)
		}
		checkRanked(t, "texts[0]", many.Results[0], sentiment, 3)
		if !reflectEqual(many.Results[1], one) {
			t.Fatalf("texts[1] %+v differs from the same text alone %+v", many.Results[1], one)
		}
		// spindle invoke --json prints the same answer.
		var cli rankedLabels
		if err := json.Unmarshal([]byte(mustRun(t, "invoke", "sentiment", "--json", `{"text": "Spindle starts models in milliseconds."}`, gw)), &cli); err != nil || !reflectEqual(cli, one) {
			t.Fatalf("invoke --json: %+v (%v), want %+v", cli, err, one)
		}
	})

	t.Run("embedding matches spindle run", func(t *testing.T) {
		text := "a cat sat on the mat"
		tk, err := tokenizer.Load(tok)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := tk.Encode(text, tokenizer.WithoutPadding())
		if err != nil {
			t.Fatal(err)
		}
		n := len(enc.IDs)
		args := []string{"run", "--model", model("tiny-bert"), "--out", filepath.Join(work, "run-embed")}
		for name, v := range map[string][]int64{"input_ids": enc.IDs, "attention_mask": enc.AttentionMask, "token_type_ids": enc.TypeIDs} {
			path := filepath.Join(work, name+".npy")
			if err := npy.WriteFile(path, tensor.FromI64(v, 1, n)); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--input", name+"="+path)
		}
		mustRun(t, args...)
		ref, err := npy.ReadFile(filepath.Join(work, "run-embed", "sentence_embedding.npy"))
		if err != nil {
			t.Fatal(err)
		}
		var ss float64
		for _, v := range ref.F32 {
			ss += float64(v) * float64(v)
		}

		code, b := postAs(t, task("embed"), "application/json", []byte(`{"text": "`+text+`"}`))
		var got struct{ Embedding []float32 }
		if code != 200 || json.Unmarshal(b, &got) != nil {
			t.Fatalf("got %d %s", code, b)
		}
		if len(got.Embedding) != len(ref.F32) {
			t.Fatalf("%d values, spindle run gave %d", len(got.Embedding), len(ref.F32))
		}
		var norm float64
		for i, v := range got.Embedding {
			norm += float64(v) * float64(v)
			if want := float64(ref.F32[i]) / math.Sqrt(ss); math.Abs(float64(v)-want) > 1e-6 {
				t.Fatalf("embedding[%d] = %v, normalised spindle run output %v", i, v, want)
			}
		}
		if math.Abs(norm-1) > 1e-5 {
			t.Fatalf("squared norm %v, want 1", norm)
		}
	})

	t.Run("image-classification", func(t *testing.T) {
		img := pngOf(t, 64, 48)
		code, b := postAs(t, task("vision"), "image/png", img)
		var raw rankedLabels
		if code != 200 || json.Unmarshal(b, &raw) != nil {
			t.Fatalf("got %d %s", code, b)
		}
		checkRanked(t, "png body", raw, animals, 3)

		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		w, _ := mw.CreateFormFile("image", "photo.png")
		w.Write(img)
		mw.Close()
		code, b = postAs(t, task("vision"), mw.FormDataContentType(), body.Bytes())
		var form rankedLabels
		if code != 200 || json.Unmarshal(b, &form) != nil || !reflectEqual(form, raw) {
			t.Fatalf("multipart: %d %s, want the raw body's answer %+v", code, b, raw)
		}
		path := filepath.Join(work, "photo.png")
		os.WriteFile(path, img, 0o644)
		var cli rankedLabels
		if err := json.Unmarshal([]byte(mustRun(t, "invoke", "vision", "--image", path, gw)), &cli); err != nil || !reflectEqual(cli, raw) {
			t.Fatalf("invoke --image: %+v (%v), want %+v", cli, err, raw)
		}
	})

	t.Run("cpu-burn", func(t *testing.T) {
		for _, tc := range []struct {
			body  string
			units int
		}{{"", 5}, {`{"ms": 3}`, 3}} {
			code, b := postAs(t, task("burn"), "application/json", []byte(tc.body))
			var got struct {
				BurnedMS   int    `json:"burned_ms"`
				Iterations int    `json:"iterations"`
				Result     string `json:"result"`
			}
			if code != 200 || json.Unmarshal(b, &got) != nil || got.BurnedMS != tc.units || got.Iterations != tc.units*1000 || len(got.Result) != 16 {
				t.Fatalf("%q: got %d %s, want %d units of 1000 iterations", tc.body, code, b, tc.units)
			}
		}
	})

	pids := func() map[string]float64 {
		out := map[string]float64{}
		for _, name := range []string{"sentiment", "embed", "vision", "burn"} {
			var d struct {
				Instances []struct{ Pid float64 } `json:"instances"`
			}
			if err := json.Unmarshal([]byte(mustRun(t, "describe", name, "--json", gw)), &d); err != nil || len(d.Instances) != 1 {
				t.Fatalf("describe %s: %v %+v", name, err, d)
			}
			out[name] = d.Instances[0].Pid
		}
		return out
	}
	before := pids()

	t.Run("bad inputs", func(t *testing.T) {
		long := strings.Repeat("word ", 40)
		tests := []struct {
			name, fn, ct, body string
			code               int
			want               string
		}{
			{"bad image bytes", "vision", "image/png", "\x89PNG but not really", 400, "image: not a PNG or JPEG"},
			{"image as JSON", "vision", "application/json", `{"image": "x"}`, 400, `Content-Type: \"application/json\", want image/png, image/jpeg, or multipart/form-data`},
			{"empty text", "sentiment", "application/json", `{"text": ""}`, 400, "text: must not be empty"},
			{"text over max length", "sentiment", "application/json", `{"text": "` + long + `"}`, 400, "text: 42 tokens, over max_length 32"},
			{"malformed JSON", "sentiment", "application/json", `{"text": "unterminated`, 400, "body: invalid JSON"},
			{"wrong field", "embed", "application/json", `{"sentence": "hi"}`, 400, `body: unknown field \"sentence\"`},
			{"wrong content type", "sentiment", "text/plain", `{"text": "hi"}`, 400, `Content-Type: \"text/plain\", want application/json`},
			{"burn over the cap", "burn", "application/json", `{"ms": 99999999}`, 400, "ms: 99999999 must be between 0 and 60000 (max_burn_ms)"},
			{"unknown function", "ghost", "application/json", `{}`, 404, `function \"ghost\" is not deployed`},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, b := postAs(t, task(tc.fn), tc.ct, []byte(tc.body))
				if code != tc.code || !strings.Contains(string(b), tc.want) {
					t.Fatalf("got %d %s, want %d with %s", code, b, tc.code, tc.want)
				}
				if !json.Valid(b) {
					t.Fatalf("answer is not JSON: %s", b)
				}
			})
		}
		code, b := postAs(t, p.url+"/v2/models/burn/infer", "application/json", []byte(`{"inputs": []}`))
		if code != 404 || !strings.Contains(string(b), "has no model") {
			t.Fatalf("infer on cpu-burn: %d %s", code, b)
		}
		wantExit2(t, "text: must not be empty", "invoke", "sentiment", "--json", `{"text": " "}`, gw)
		wantExit2(t, "--json: not valid JSON", "invoke", "sentiment", "--json", `{text}`, gw)
	})

	// The instances survived every bad input: same processes, still serving.
	if after := pids(); !reflectEqual(after, before) {
		t.Fatalf("instances changed after bad inputs: %v, then %v", before, after)
	}
	for _, fn := range []string{"sentiment", "embed"} {
		if code, b := postAs(t, task(fn), "application/json", []byte(`{"text": "still here"}`)); code != 200 {
			t.Fatalf("%s after bad inputs: %d %s", fn, code, b)
		}
	}

	t.Run("deploy rejects misfits", func(t *testing.T) {
		fourLabels := writeFile(t, filepath.Join(work, "four", "labels.txt"), "a\nb\nc\nd\n")
		cls := model("tiny-bert-cls")
		wantExit2(t, `tokenizer "tokenizer.json": not among the function's files`, "deploy", "m1", "--model", cls, "--task", "text-classification", "--file", textLabels, gw)
		wantExit2(t, `labels "labels.txt": 4 labels, but model output "logits" has 3 classes`, "deploy", "m2", "--model", cls, "--task", "text-classification", "--file", tok, "--file", fourLabels, gw)
		wantExit2(t, `config: top_k: not used by task embedding`, "deploy", "m3", "--model", model("tiny-bert"), "--task", "embedding", "--file", tok, "--config", "top_k=2", gw)
		wantExit2(t, `config: max_length: want int`, "deploy", "m4", "--model", cls, "--task", "text-classification", "--config", "max_length=long", gw)
		wantExit2(t, `task "translate": unknown`, "deploy", "m5", "--model", cls, "--task", "translate", gw)
		wantExit2(t, "task cpu-burn takes no model and no files", "deploy", "m6", "--model", cls, "--task", "cpu-burn", gw)
		wantExit2(t, "--model: required (only --task cpu-burn runs without one)", "deploy", "m7", "--task", "embedding", gw)
		wantExit2(t, `config: input: the model has 3 inputs`, "deploy", "m8", "--model", cls, "--task", "image-classification", "--file", imageLabels, gw)
	})
}

// reflectEqual compares two values by their JSON form.
func reflectEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
