package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// get fetches path and decodes a JSON answer into out (when not nil).
func get(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// TestOIPRoutes drives every Open Inference Protocol route a standard client
// calls, over real HTTP to a real instance: server metadata, versioned model
// metadata and readiness (a wrong version is a 404), inference through the
// versioned route with binary inputs and outputs laid out byte by byte as
// the binary tensor data extension specifies (the same values as the JSON
// path), Triton's model configuration and the statistics extension.
func TestOIPRoutes(t *testing.T) {
	tg := newTestGateway(t, Config{})
	tg.deploy(t, "add", addModel())
	base := tg.url + "/v2/models/add"

	var server struct {
		Name       string
		Extensions []string
	}
	if code := get(t, tg.url+"/v2", &server); code != 200 || server.Name != "spindle" || !strings.Contains(strings.Join(server.Extensions, ","), "binary_tensor_data") {
		t.Errorf("GET /v2: %d %+v", code, server)
	}
	var md struct {
		Name     string
		Versions []string
		Inputs   []struct{ Name, Datatype string }
	}
	if code := get(t, base+"/versions/1", &md); code != 200 || md.Name != "add" || md.Versions[0] != "1" || md.Inputs[0].Datatype != "FP32" {
		t.Errorf("versioned metadata: %d %+v", code, md)
	}
	var e struct{ Error string }
	if code := get(t, base+"/versions/2", &e); code != 404 || !strings.Contains(e.Error, `no version "2"`) {
		t.Errorf("version 2: %d %q", code, e.Error)
	}
	if code := get(t, base+"/versions/1/ready", nil); code != 200 {
		t.Errorf("versioned ready: %d", code)
	}

	// JSON in, JSON out, for the reference.
	code, jsonBody := infer(t, tg.url, "add", addBody)
	if code != 200 || !strings.Contains(jsonBody, `"data":[2,3,4,5]`) {
		t.Fatalf("JSON infer: %d %s", code, jsonBody)
	}
	// Binary in, binary out, through the versioned route.
	header := `{"id":"b1","inputs":[{"name":"x","shape":[4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}`
	body := []byte(header)
	for _, v := range []float32{1, 2, 3, 4} {
		body = binary.LittleEndian.AppendUint32(body, math.Float32bits(v))
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/versions/1/infer", bytes.NewReader(body))
	req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(header)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	n, err := strconv.Atoi(resp.Header.Get("Inference-Header-Content-Length"))
	if resp.StatusCode != 200 || err != nil || n > len(raw) {
		t.Fatalf("binary infer: %d, header length %q, %d bytes: %s", resp.StatusCode, resp.Header.Get("Inference-Header-Content-Length"), len(raw), raw)
	}
	var rh struct {
		ID      string
		Outputs []struct {
			Name, Datatype string
			Shape          []int64
			Parameters     map[string]any
		}
	}
	if err := json.Unmarshal(raw[:n], &rh); err != nil {
		t.Fatalf("binary infer header %q: %v", raw[:n], err)
	}
	if rh.ID != "b1" || len(rh.Outputs) != 1 || rh.Outputs[0].Parameters["binary_data_size"] != float64(16) || len(raw)-n != 16 {
		t.Fatalf("binary infer header %s and %d data bytes", raw[:n], len(raw)-n)
	}
	for i, want := range []float32{2, 3, 4, 5} {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[n+4*i:])); got != want {
			t.Errorf("binary output element %d: %v, want %v", i, got, want)
		}
	}
	// A binary request whose sizes do not add up is a 400 naming the field.
	req, _ = http.NewRequest(http.MethodPost, base+"/infer", bytes.NewReader(body[:len(body)-4]))
	req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(header)))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(raw), "binary_data_size: 16 bytes, but only 12") {
		t.Errorf("short binary body: %d %s", resp.StatusCode, raw)
	}

	var cfg struct {
		Name         string
		MaxBatchSize int `json:"max_batch_size"`
		Input        []struct {
			Name     string
			DataType string `json:"data_type"`
			Dims     []int64
		}
	}
	if code := get(t, base+"/config", &cfg); code != 200 || cfg.Name != "add" || cfg.Input[0].DataType != "TYPE_FP32" || cfg.Input[0].Dims[0] != 4 {
		t.Errorf("config: %d %+v", code, cfg)
	}
	var stats struct {
		ModelStats []struct {
			Name           string
			InferenceCount int64 `json:"inference_count"`
			InferenceStats struct {
				Success, Fail struct{ Count, Ns int64 }
			} `json:"inference_stats"`
		} `json:"model_stats"`
	}
	if code := get(t, base+"/stats", &stats); code != 200 || len(stats.ModelStats) != 1 {
		t.Fatalf("stats: %d %+v", code, stats)
	}
	st := stats.ModelStats[0]
	if st.InferenceCount != 2 || st.InferenceStats.Success.Count != 2 || st.InferenceStats.Fail.Count != 1 || st.InferenceStats.Success.Ns <= 0 {
		t.Errorf("stats after 2 good and 1 bad request: %+v", st)
	}
	if code := get(t, tg.url+"/v2/models/stats", &stats); code != 200 || len(stats.ModelStats) != 1 || stats.ModelStats[0].Name != "add" {
		t.Errorf("all stats: %d %+v", code, stats)
	}
}

// TestOIPBytesTensors serves a model with a string input and output (a
// Cast to string and back) over JSON and binary BYTES.
func TestOIPBytesTensors(t *testing.T) {
	tg := newTestGateway(t, Config{})
	b := modelgen.NewBuilder("strings", 13, 1)
	b.Input("s", tensor.String, []int64{2})
	b.Node("Cast", []string{"s"}, []modelgen.Attr{modelgen.AInt("to", int64(tensor.Float32))}, "f")
	b.Output("f", tensor.Float32, []int64{2})
	b.Node("Cast", []string{"f"}, []modelgen.Attr{modelgen.AInt("to", int64(tensor.String))}, "back")
	b.Output("back", tensor.String, []int64{2})
	tg.deploy(t, "strings", b)
	code, out := infer(t, tg.url, "strings", `{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["1.5","-2"]}]}`)
	if code != 200 || !strings.Contains(out, `"data":[1.5,-2]`) || !strings.Contains(out, `"datatype":"BYTES","data":["1.5","-2"]`) {
		t.Fatalf("JSON BYTES: %d %s", code, out)
	}
	header := `{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":13}}],"parameters":{"binary_data_output":true}}`
	body := []byte(header)
	for _, s := range []string{"1.5", "-2"} {
		body = append(binary.LittleEndian.AppendUint32(body, uint32(len(s))), s...)
	}
	req, _ := http.NewRequest(http.MethodPost, tg.url+"/v2/models/strings/infer", bytes.NewReader(body))
	req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(header)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	n, _ := strconv.Atoi(resp.Header.Get("Inference-Header-Content-Length"))
	if resp.StatusCode != 200 || n == 0 {
		t.Fatalf("binary BYTES: %d %s", resp.StatusCode, raw)
	}
	// f (8 bytes of float32) then back (two length-prefixed strings).
	data := raw[n:]
	want := append(binary.LittleEndian.AppendUint32(nil, math.Float32bits(1.5)), 0, 0, 0, 0xc0)
	want = append(binary.LittleEndian.AppendUint32(want, 3), "1.5"...)
	want = append(binary.LittleEndian.AppendUint32(want, 2), "-2"...)
	if !bytes.Equal(data, want) {
		t.Errorf("binary outputs %v, want %v (header %s)", data, want, raw[:n])
	}
}
