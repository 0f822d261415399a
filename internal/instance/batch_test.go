package instance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/tensor"
)

func TestParseBatchPolicy(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"off", "off", ""}, {"", "off", ""}, {"auto", "max=32", ""}, {"max=8", "max=8", ""},
		{"max=16,delay=2ms", "max=16,delay=2ms", ""}, {"delay=5ms", "max=32,delay=5ms", ""},
		{"max=0", "", "max=0: must be an integer in [1, 4096]"},
		{"max=8,delay=5s", "", "delay=5s: must be a duration in [0, 1s]"},
		{"size=8", "", "size: unknown; want max, delay or pad"}, {"max=4,pad=attention_mask", "max=4,pad=attention_mask", ""}, {"pad=", "", "pad=: must name"},
		{"max", "", `"max": want off, auto or max=N[,delay=D][,pad=MASK]`},
	} {
		p, err := api.ParseBatchPolicy(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want %q", c.in, err, c.err)
		case c.err == "" && (err != nil || p.String() != c.want):
			t.Errorf("%q: %v %v, want %s", c.in, p, err, c.want)
		}
	}
}

// mnistServer serves the MNIST CNN (dynamic batch) with the given batching.
func mnistServer(t *testing.T, p api.BatchPolicy) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := modelgen.MNISTCNN(3).Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return newModelServer(t, Config{Name: "mnist", ModelPath: path, Workers: 1, Batch: p})
}

func mnistBody(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := tensor.New(tensor.Float32, n, 1, 28, 28)
	for i := range x.F32 {
		x.F32[i] = rng.Float32()
	}
	var b bytes.Buffer
	oip.EncodeRequest(&b, &oip.InferRequest{Inputs: []oip.RequestInput{oip.InputFromTensor("input", x)}})
	return b.String()
}

func inferOutput(t *testing.T, url, body string) []float32 {
	t.Helper()
	resp, err := http.Post(url+"/v2/models/mnist/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	_, outs, err := oip.DecodeResponse(resp.Body)
	if err != nil {
		t.Error(err)
		return nil
	}
	return outs["output"].F32
}

// TestBatchingMatchesUnbatched sends concurrent requests of 1 and 2 images
// to an instance that batches them (one worker; a 300 ms window so that
// they all meet) and checks that every answer is what the same request gets
// from an instance that does not batch, within 1e-6, and that runs did
// serve several requests.
func TestBatchingMatchesUnbatched(t *testing.T) {
	batched, burl := mnistServer(t, api.BatchPolicy{Max: 32, Delay: 300 * time.Millisecond})
	_, plain := mnistServer(t, api.BatchPolicy{})
	const n = 12
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = mnistBody(uint64(i), 1+i%2)
	}
	got := make([][]float32, n)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = inferOutput(t, burl, bodies[i])
		}()
	}
	wg.Wait()
	for i, body := range bodies {
		want := inferOutput(t, plain, body)
		if len(got[i]) != len(want) || len(want) != 10*(1+i%2) {
			t.Fatalf("request %d: %d values batched, %d alone", i, len(got[i]), len(want))
		}
		for j := range want {
			if math.Abs(float64(got[i][j]-want[j])) > 1e-6 {
				t.Fatalf("request %d value %d: %v batched, %v alone", i, j, got[i][j], want[j])
			}
		}
	}
	st := batched.Stats().Batch
	if st == nil {
		t.Fatal("no batch stats")
	}
	runs, served := int64(0), int64(0)
	for size, c := range st.Runs {
		runs += c
		served += int64(size) * c
	}
	if served != n || runs >= n {
		t.Errorf("batch runs %v: %d runs served %d requests; want all %d in fewer runs", st.Runs, runs, served, n)
	}
}

// TestBatchingKeepsShapesApart checks that requests whose shapes differ
// past the batch dimension are never joined: each gets its own answer.
func TestBatchingKeepsShapesApart(t *testing.T) {
	s, url := newServerWith(t, Config{Workers: 1, Batch: api.BatchPolicy{Max: 8, Delay: 100 * time.Millisecond}})
	// The doubling model takes [N 4] only: a [1 3] request is refused on
	// its own; the others, sent together, batch.
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[%d,1,1,1]}]}`, i)
			if i == 5 {
				body = `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,1,1]}]}`
			}
			resp, err := http.Post(url+"/v2/models/double/infer", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			var v struct {
				Outputs []struct{ Data []float64 }
			}
			json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			codes[i] = resp.StatusCode
			if i < 5 && (len(v.Outputs) != 1 || v.Outputs[0].Data[0] != float64(2*i)) {
				t.Errorf("request %d: %+v, want its own row doubled", i, v)
			}
		}()
	}
	wg.Wait()
	if fmt.Sprint(codes) != "[200 200 200 200 200 400]" {
		t.Errorf("codes %v", codes)
	}
	if st := s.Stats().Batch; st == nil || st.Policy != "max=8,delay=100ms" {
		t.Errorf("stats %+v", st)
	}
}

// tinyBERTServer serves the tiny BERT (dynamic batch and sequence).
func tinyBERTServer(t *testing.T, p api.BatchPolicy) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	if err := modelgen.Generate("tiny-bert", dir, 5); err != nil {
		t.Fatal(err)
	}
	return newModelServer(t, Config{Name: "bert", ModelPath: filepath.Join(dir, "model.onnx"), Workers: 1, Batch: p})
}

func tokensBody(seed uint64, rows, seq int) string {
	rng := rand.New(rand.NewPCG(seed, 2))
	ids, mask, types := tensor.New(tensor.Int64, rows, seq), tensor.New(tensor.Int64, rows, seq), tensor.New(tensor.Int64, rows, seq)
	for i := range ids.I64 {
		ids.I64[i] = 1 + rng.Int64N(90)
		mask.I64[i] = 1
	}
	var b bytes.Buffer
	oip.EncodeRequest(&b, &oip.InferRequest{Inputs: []oip.RequestInput{
		oip.InputFromTensor("input_ids", ids), oip.InputFromTensor("attention_mask", mask), oip.InputFromTensor("token_type_ids", types)}})
	return b.String()
}

// TestBatchingPadsSequences batches requests of 3 to 11 tokens (one of two
// rows) with pad=attention_mask: they are padded to the longest, and each
// answer, hidden states cut back to its own length and the pooled
// embedding, matches the same request run alone within 1e-6.
func TestBatchingPadsSequences(t *testing.T) {
	batched, burl := tinyBERTServer(t, api.BatchPolicy{Max: 32, Delay: 300 * time.Millisecond, Pad: "attention_mask"})
	_, plain := tinyBERTServer(t, api.BatchPolicy{})
	lens := []int{3, 11, 7, 5, 11, 4, 9, 6}
	bodies := make([]string, len(lens))
	for i, n := range lens {
		bodies[i] = tokensBody(uint64(i), 1+i%2, n)
	}
	got := make([]map[string]*tensor.Tensor, len(lens))
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = inferAll(t, burl+"/v2/models/bert/infer", bodies[i])
		}()
	}
	wg.Wait()
	for i, body := range bodies {
		want := inferAll(t, plain+"/v2/models/bert/infer", body)
		for name, w := range want {
			g := got[i][name]
			if g == nil || fmt.Sprint(g.Shape) != fmt.Sprint(w.Shape) {
				t.Fatalf("request %d output %s: %v batched, %v alone", i, name, g, w)
			}
			for j := range w.F32 {
				if math.Abs(float64(g.F32[j]-w.F32[j])) > 1e-6 {
					t.Fatalf("request %d (%d tokens) output %s value %d: %v batched, %v alone", i, lens[i], name, j, g.F32[j], w.F32[j])
				}
			}
		}
	}
	st := batched.Stats().Batch
	runs := int64(0)
	for _, c := range st.Runs {
		runs += c
	}
	if runs >= int64(len(lens)) {
		t.Errorf("batch runs %v: requests of different lengths were not batched", st.Runs)
	}
}

func inferAll(t *testing.T, url, body string) map[string]*tensor.Tensor {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	_, outs, err := oip.DecodeResponse(resp.Body)
	if err != nil {
		t.Error(err)
	}
	return outs
}
