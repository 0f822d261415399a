package oip

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/tensor"
)

// binaryBody lays out a request as the binary tensor data extension does:
// the JSON header, then each binary input's raw bytes in order. It returns
// the body and the header's length.
func binaryBody(header string, raw ...[]byte) ([]byte, int64) {
	body := []byte(header)
	for _, r := range raw {
		body = append(body, r...)
	}
	return body, int64(len(header))
}

func le32(v ...float32) []byte {
	var b []byte
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

// TestDecodeRequestBinary decodes a request mixing binary FP32, FP16,
// BOOL and BYTES inputs with a JSON one, byte by byte as the extension
// specifies, and gets the same tensors the JSON form gives.
func TestDecodeRequestBinary(t *testing.T) {
	header := `{"id": "r1", "inputs": [
		{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
		{"name": "j", "shape": [1], "datatype": "INT64", "data": [7]},
		{"name": "h", "shape": [1], "datatype": "FP16", "parameters": {"binary_data_size": 2}},
		{"name": "b", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2}},
		{"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 10}}],
		"parameters": {"binary_data_output": true}}`
	bytesData := append(binary.LittleEndian.AppendUint32(nil, 2), "ab"...)
	bytesData = binary.LittleEndian.AppendUint32(bytesData, 0)
	body, n := binaryBody(header, le32(1.5, -2), []byte{0x00, 0x3c}, []byte{1, 0}, bytesData)
	req, ts, err := DecodeRequestBinary(bytes.NewReader(body), 0, n)
	if err != nil {
		t.Fatal(err)
	}
	if x := ts["x"]; x.DType != tensor.Float32 || x.F32[0] != 1.5 || x.F32[1] != -2 {
		t.Errorf("x = %v %v", x, x.F32)
	}
	if h := ts["h"]; h.DType != tensor.Float32 || h.F32[0] != 1 {
		t.Errorf("h = %v %v, want float32 [1] (FP16 widened)", h, h.F32)
	}
	if b := ts["b"]; !b.B[0] || b.B[1] {
		t.Errorf("b = %v", b.B)
	}
	if s := ts["s"]; s.DType != tensor.String || s.S[0] != "ab" || s.S[1] != "" {
		t.Errorf("s = %v %q", s, s.S)
	}
	if j := ts["j"]; j.I64[0] != 7 {
		t.Errorf("j = %v", j.I64)
	}
	if req.ID != "r1" || !req.WantsBinary(nil) {
		t.Errorf("id %q, binary output %v", req.ID, req.WantsBinary(nil))
	}
	// The JSON form of the same request gives the same tensors.
	_, js, err := DecodeRequest(strings.NewReader(`{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, -2]},
		{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["ab", ""]}]}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(js["x"].Bytes(), ts["x"].Bytes()) || js["s"].S[0] != "ab" || js["s"].S[1] != "" {
		t.Errorf("JSON form: x %v, s %q", js["x"].F32, js["s"].S)
	}
}

func TestDecodeRequestBinaryErrors(t *testing.T) {
	one := `{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": %s}}]}`
	tests := []struct {
		name, header string
		raw          []byte
		headerLen    int64 // -1: the header's length
		want         string
	}{
		{"too few bytes", strings.Replace(one, "%s", "8", 1), le32(1), -1, "inputs[0].parameters.binary_data_size: 8 bytes, but only 4 bytes of binary data are left"},
		{"size against shape", strings.Replace(one, "%s", "4", 1), le32(1), -1, "inputs[0].parameters.binary_data_size: 4 bytes, shape [2] of FP32 needs 8"},
		{"bytes left over", strings.Replace(one, "%s", "8", 1), le32(1, 2, 3), -1, "body: 4 bytes of binary data follow the inputs' binary_data_size bytes (8)"},
		{"header longer than body", strings.Replace(one, "%s", "8", 1), nil, 1 << 20, "body: Inference-Header-Content-Length is 1048576, more than the body's"},
		{"negative size", strings.Replace(one, "%s", "-8", 1), le32(1, 2), -1, "inputs[0].parameters.binary_data_size: must be a non-negative integer, not -8"},
		{"data and size", `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "parameters": {"binary_data_size": 4}}]}`, le32(1), -1,
			"inputs[0].data: is given with binary_data_size: send the data one way"},
		{"BYTES length past the end", `{"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]}`,
			append(binary.LittleEndian.AppendUint32(nil, 9), "ab"...), -1, "inputs[0].parameters.binary_data_size: BYTES element 0: length 9, only 2 bytes left"},
		{"BYTES extra", `{"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}}]}`,
			append(binary.LittleEndian.AppendUint32(nil, 2), "abc"...), -1, "inputs[0].parameters.binary_data_size: 1 bytes left after the 1 BYTES elements of shape [1]"},
		{"binary_data_output not a bool", `{"parameters": {"binary_data_output": "yes"}, "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}`, nil, -1,
			"parameters.binary_data_output: must be true or false"},
		{"classification", `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], "outputs": [{"name": "y", "parameters": {"class_count": 3}}]}`, nil, -1,
			"outputs[0].parameters.class_count: the classification extension is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, n := binaryBody(tt.header, tt.raw)
			if tt.headerLen >= 0 {
				n = tt.headerLen
			}
			_, _, err := DecodeRequestBinary(bytes.NewReader(body), 0, n)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestOutputBinary checks the raw bytes of binary outputs: float32 as is, a
// float16 output as halves, BOOL a byte each, BYTES length-prefixed; and the
// JSON header MarshalResponse writes for them.
func TestOutputBinary(t *testing.T) {
	resp := &InferResponse{ModelName: "m", ID: "r1"}
	var raws [][]byte
	for _, c := range []struct {
		name     string
		t        *tensor.Tensor
		declared tensor.DType
		want     []byte
	}{
		{"f", tensor.FromF32([]float32{1.5, -2}, 2), tensor.Float32, le32(1.5, -2)},
		{"h", tensor.FromF32([]float32{1, 0.1}, 2), tensor.Float16, []byte{0x00, 0x3c, 0x66, 0x2e}},
		{"b", &tensor.Tensor{DType: tensor.Bool, Shape: []int{2}, B: []bool{true, false}}, tensor.Bool, []byte{1, 0}},
		{"s", &tensor.Tensor{DType: tensor.String, Shape: []int{2}, S: []string{"hé", ""}}, tensor.String, append(append(binary.LittleEndian.AppendUint32(nil, 3), "hé"...), 0, 0, 0, 0)},
	} {
		o, raw := OutputBinary(c.name, c.t, c.declared)
		if !bytes.Equal(raw, c.want) {
			t.Errorf("%s: raw %v, want %v", c.name, raw, c.want)
		}
		resp.Outputs = append(resp.Outputs, o)
		raws = append(raws, raw)
	}
	header, err := MarshalResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Outputs []struct {
			Name       string
			Datatype   string
			Shape      []int64
			Parameters map[string]any
			Data       any
		}
	}
	if err := json.Unmarshal(header, &back); err != nil {
		t.Fatal(err)
	}
	wantTypes := []string{"FP32", "FP16", "BOOL", "BYTES"}
	for i, o := range back.Outputs {
		if o.Datatype != wantTypes[i] || o.Parameters["binary_data_size"] != float64(len(raws[i])) || o.Data != nil {
			t.Errorf("output %s: %+v, want %s with binary_data_size %d and no data", o.Name, o, wantTypes[i], len(raws[i]))
		}
	}
	if _, err := MarshalResponse(&InferResponse{Outputs: []ResponseOutput{{Name: "y", Datatype: "FP32"}}}); err == nil {
		t.Error("an output with neither data nor binary_data_size must be refused")
	}
}
