package oip

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/tensor"
)

// request builds a one-input request body.
func request(datatype, shape, data string) string {
	return `{"inputs": [{"name": "x", "datatype": "` + datatype + `", "shape": ` + shape + `, "data": ` + data + `}]}`
}

func equalTensor(t *testing.T, got, want *tensor.Tensor) {
	t.Helper()
	if got == nil || got.DType != want.DType || !reflect.DeepEqual(norm(got.Shape), norm(want.Shape)) ||
		!bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("tensor mismatch (-want +got):\n- %v %v\n+ %v %v", want, dump(want), got, dump(got))
	}
}

func dump(t *tensor.Tensor) any {
	if t == nil {
		return nil
	}
	for _, s := range []any{t.F32, t.F64, t.I64, t.I32, t.I8, t.U8, t.B} {
		if v := reflect.ValueOf(s); v.Len() > 0 {
			return s
		}
	}
	return "[]"
}

func norm(s []int) []int {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestDecodeRequestData(t *testing.T) {
	tests := []struct {
		name     string
		datatype string
		shape    string
		data     string
		want     *tensor.Tensor
	}{
		{"FP32 flat", "FP32", "[2, 2]", "[1, -2.5, 3e-3, 3.4028235e38]",
			tensor.FromF32([]float32{1, -2.5, 3e-3, math.MaxFloat32}, 2, 2)},
		{"FP32 nested", "FP32", "[2, 2]", "[[1, -2.5], [ 3e-3 , 3.4028235E+38 ]]",
			tensor.FromF32([]float32{1, -2.5, 3e-3, math.MaxFloat32}, 2, 2)},
		{"FP32 underflow to zero", "FP32", "[1]", "[1e-60]", tensor.FromF32([]float32{0}, 1)},
		{"FP64", "FP64", "[3]", "[1e300, -0.0, 5e-324]",
			&tensor.Tensor{DType: tensor.Float64, Shape: []int{3}, F64: []float64{1e300, math.Copysign(0, -1), 5e-324}}},
		{"INT64 limits", "INT64", "[2]", "[9223372036854775807, -9223372036854775808]",
			tensor.FromI64([]int64{math.MaxInt64, math.MinInt64}, 2)},
		{"INT64 written as floats", "INT64", "[3]", "[3.0, 1e3, -2.5e1]", tensor.FromI64([]int64{3, 1000, -25}, 3)},
		{"INT32 nested 3-D", "INT32", "[2, 1, 2]", "[[[2147483647, -2147483648]], [[0, 7]]]",
			&tensor.Tensor{DType: tensor.Int32, Shape: []int{2, 1, 2}, I32: []int32{math.MaxInt32, math.MinInt32, 0, 7}}},
		{"INT8", "INT8", "[2]", "[-128, 127]", &tensor.Tensor{DType: tensor.Int8, Shape: []int{2}, I8: []int8{-128, 127}}},
		{"UINT8", "UINT8", "[3]", "[0, 255, 1]", &tensor.Tensor{DType: tensor.Uint8, Shape: []int{3}, U8: []uint8{0, 255, 1}}},
		{"BOOL", "BOOL", "[1, 2]", "[[true, false]]", &tensor.Tensor{DType: tensor.Bool, Shape: []int{1, 2}, B: []bool{true, false}}},
		{"scalar bare", "INT64", "[]", "42", tensor.FromI64([]int64{42})},
		{"scalar in array", "FP32", "[]", "[0.5]", tensor.FromF32([]float32{0.5})},
		{"empty flat", "FP32", "[0, 3]", "[]", tensor.FromF32([]float32{}, 0, 3)},
		{"empty nested", "UINT8", "[2, 0]", "[[], []]", &tensor.Tensor{DType: tensor.Uint8, Shape: []int{2, 0}, U8: []uint8{}}},
		{"whitespace", "INT32", "[2]", "\n[ 1 ,\t2\r\n]\n", &tensor.Tensor{DType: tensor.Int32, Shape: []int{2}, I32: []int32{1, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, tensors, err := DecodeRequest(strings.NewReader(request(tt.datatype, tt.shape, tt.data)), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(tensors) != 1 || len(req.Inputs) != 1 || req.Inputs[0].Name != "x" || req.Inputs[0].Datatype != tt.datatype {
				t.Fatalf("got request %+v and %d tensors, want one input x of %s", req, len(tensors), tt.datatype)
			}
			equalTensor(t, tensors["x"], tt.want)
		})
	}
}

func TestDecodeRequestFields(t *testing.T) {
	body := `{"id": "r1", "parameters": {"priority": 2, "tag": "a", "fast": true}, "unknown": [1, {"x": 2}],
		"inputs": [
			{"name": "a", "shape": [1], "datatype": "FP32", "data": [1], "parameters": {"content_type": "np"}, "extension": null},
			{"name": "b", "shape": [2], "datatype": "INT64", "data": [2, 3]}],
		"outputs": [{"name": "y"}, {"name": "z", "parameters": {"classification": 3}}]}`
	req, tensors, err := DecodeRequest(strings.NewReader(body), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := &InferRequest{
		ID:         "r1",
		Parameters: Parameters{"priority": 2.0, "tag": "a", "fast": true},
		Inputs: []RequestInput{
			{Name: "a", Shape: []int64{1}, Datatype: "FP32", Parameters: Parameters{"content_type": "np"}, Data: []byte("[1]")},
			{Name: "b", Shape: []int64{2}, Datatype: "INT64", Data: []byte("[2, 3]")},
		},
		Outputs: []RequestOutput{{Name: "y"}, {Name: "z", Parameters: Parameters{"classification": 3.0}}},
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("request (-want +got):\n- %+v\n+ %+v", want, req)
	}
	equalTensor(t, tensors["a"], tensor.FromF32([]float32{1}, 1))
	equalTensor(t, tensors["b"], tensor.FromI64([]int64{2, 3}, 2))
}

// TestDecodeRequestKeys pins how member names are matched: after unescaping,
// exactly (unlike encoding/json, which also matches case-insensitively), with
// the last of repeated names winning.
func TestDecodeRequestKeys(t *testing.T) {
	good := `[{"name": "x", "shape": [1], "datatype": "INT32", "data": [5]}]`
	tests := []struct {
		name    string
		body    string
		wantErr string
	}{
		{"escaped key", `{"in\u0070uts": ` + good + `}`, ""},
		{"repeated key", `{"inputs": [{"name": "x"}], "inputs": ` + good + `}`, ""},
		{"case differs", `{"Inputs": ` + good + `}`, "inputs: at least one input is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, tensors, err := DecodeRequest(strings.NewReader(tt.body), 0)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			equalTensor(t, tensors["x"], &tensor.Tensor{DType: tensor.Int32, Shape: []int{1}, I32: []int32{5}})
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		max  int64
		want string // the whole message: field path and rule
	}{
		{"too big", request("FP32", "[1]", "[1]"), 16, "body: exceeds 16 bytes"},
		{"too big MiB", strings.Repeat(" ", 1<<20+1), 1 << 20, "body: exceeds 1 MiB"},
		{"empty", "", 0, "body: is empty"},
		{"invalid JSON", `{"inputs": [1,}`, 0, "body: invalid JSON at offset 14: invalid character '}' looking for beginning of value"},
		{"truncated", `{"inputs": [`, 0, "body: invalid JSON at offset 12: unexpected end of JSON input"},
		{"trailing garbage", `{"inputs": []} x`, 0, "body: invalid JSON at offset 15: invalid character 'x' after top-level value"},
		{"not an object", `[1, 2]`, 0, "body: must be a JSON object, not an array"},
		{"inputs not array", `{"inputs": "x"}`, 0, "inputs: must be an array of objects, not a string"},
		{"no inputs", `{}`, 0, "inputs: at least one input is required"},
		{"null inputs", `{"inputs": null}`, 0, "inputs: at least one input is required"},
		{"input not object", `{"inputs": [7]}`, 0, "inputs[0]: must be an object, not a number"},
		{"id not string", `{"id": 5, "inputs": []}`, 0, "id: must be a string, not a number"},
		{"parameters not object", `{"parameters": [1], "inputs": []}`, 0, "parameters: must be an object, not an array"},
		{"parameter value", `{"parameters": {"p": [1]}, "inputs": []}`, 0, "parameters.p: must be a string, number or boolean"},
		{"name missing", `{"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}`, 0, "inputs[0].name: is missing"},
		{"name empty", `{"inputs": [{"name": "", "shape": [1], "datatype": "FP32", "data": [1]}]}`, 0, "inputs[0].name: is empty"},
		{"name not string", `{"inputs": [{"name": 1, "shape": [1], "datatype": "FP32", "data": [1]}]}`, 0, "inputs[0].name: must be a string, not a number"},
		{"duplicate name", `{"inputs": [` + strings.Repeat(`{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},`, 2) + `{"name": "x"}]}`, 0,
			`inputs[1].name: "x" is also the name of inputs[0]`},
		{"datatype missing", `{"inputs": [{"name": "x", "shape": [1], "data": [1]}]}`, 0, "inputs[0].datatype: is missing"},
		{"datatype FP8", request("FP8", "[1]", "[1]"), 0, `inputs[0].datatype: "FP8" is not supported (supported: FP32, FP16, BF16, FP64, INT64, INT32, INT16, INT8, UINT64, UINT32, UINT16, UINT8, BOOL, BYTES)`},
		{"INT16 range", request("INT16", "[1]", "[32768]"), 0, `inputs[0].data[0]: 32768 is out of range for INT16`},
		{"UINT16 negative", request("UINT16", "[1]", "[-1]"), 0, `inputs[0].data[0]: -1 is out of range for UINT16`},
		{"UINT32 range", request("UINT32", "[1]", "[4294967296]"), 0, `inputs[0].data[0]: 4294967296 is out of range for UINT32`},
		{"UINT64 range", request("UINT64", "[1]", "[18446744073709551616]"), 0, `inputs[0].data[0]: 18446744073709551616 is out of range for UINT64`},
		{"UINT64 negative", request("UINT64", "[1]", "[-1]"), 0, `inputs[0].data[0]: -1 is out of range for UINT64`},
		{"FP16 overflow", request("FP16", "[1]", "[65520]"), 0, `inputs[0].data[0]: 65520 overflows FP16`},
		{"datatype lower case", request("fp32", "[1]", "[1]"), 0, `inputs[0].datatype: "fp32" is not supported`},
		{"BYTES number", request("BYTES", "[1]", `[1]`), 0, `inputs[0].data[0]: expected a string, not 1 (datatype BYTES)`},
		{"shape missing", `{"inputs": [{"name": "x", "datatype": "FP32", "data": [1]}]}`, 0, "inputs[0].shape: is missing"},
		{"shape not array", request("FP32", `"1x2"`, "[1]"), 0, "inputs[0].shape: must be an array of integers, not a string"},
		{"shape float", request("FP32", `[1.5]`, "[1]"), 0, "inputs[0].shape: must be an array of integers, found number 1.5"},
		{"shape negative", request("FP32", `[1, -1]`, "[1]"), 0, "inputs[0].shape[1]: -1 is negative"},
		{"shape rank", request("FP32", "["+strings.Repeat("1,", 64)+"1]", "[1]"), 0, "inputs[0].shape: has 65 dimensions, at most 64 are supported"},
		{"shape overflow", request("FP32", "[4294967296, 4294967296]", "[1]"), 0, "inputs[0].shape[0]: 4294967296 is more than 2147483648, the largest dimension"},
		{"empty shape, huge dimension", request("FP32", "[0, 4294967296]", "[]"), 0, "inputs[0].shape[1]: 4294967296 is more than 2147483648, the largest dimension"},
		{"empty shape, too many elements", request("FP32", "[1048576, 0, 1048576]", "[]"), 0,
			"inputs[0].shape: [1048576 0 1048576] has too many elements: its non-zero dimensions may multiply to at most 2147483648, even when another is 0"},
		{"binary data", `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}]}`, 0,
			"inputs[0].parameters.binary_data_size: the body has no binary data: send the Inference-Header-Content-Length header with the JSON header's length"},
		{"data missing", `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}`, 0, "inputs[0].data: is missing"},
		{"data null", request("FP32", "[1]", "null"), 0, "inputs[0].data: must be an array, not null"},
		{"data object", request("FP32", "[1]", `{"a": 1}`), 0, "inputs[0].data: must be an array, not an object"},
		{"too few", request("FP32", "[1, 1, 28, 28]", "["+strings.Repeat("0,", 782)+"0]"), 0,
			"inputs[0].data: has 783 elements, shape [1 1 28 28] needs 784"},
		{"too many", request("INT64", "[2]", "[1, 2, 3]"), 0, "inputs[0].data: has 3 elements, shape [2] needs 2"},
		{"huge shape small data", request("FP32", "[100000, 10000]", "[1, 2]"), 0,
			"inputs[0].data: has 2 elements, shape [100000 10000] needs 1000000000"},
		{"scalar needs one", request("FP32", "[]", "[]"), 0, "inputs[0].data: has 0 elements, shape [] needs 1"},
		{"bare value for vector", request("FP32", "[1]", "1"), 0, "inputs[0].data: must be an array, not a number"},
		{"nested short row", request("FP32", "[2, 3]", "[[1, 2, 3], [4, 5]]"), 0,
			"inputs[0].data[1]: has 2 elements, shape [2 3] needs 3 at dimension 1"},
		{"nested too few rows", request("FP32", "[2, 1]", "[[1]]"), 0, "inputs[0].data: has 1 elements, shape [2 1] needs 2 at dimension 0"},
		{"nested scalar for row", request("FP32", "[2, 2]", "[[1, 2], 3]"), 0,
			"inputs[0].data[1]: must be an array (dimension 1 of shape [2 2]), not a number"},
		{"nested too deep", request("FP32", "[1, 2]", "[[1, [2]]]"), 0, "inputs[0].data[0][1]: expected a number, not an array"},
		{"flat array in vector", request("FP32", "[2]", "[[1], [2]]"), 0, "inputs[0].data[0]: expected a number, not an array"},
		{"mixed flat", request("FP32", "[2, 1]", "[1, [2]]"), 0, "inputs[0].data[1]: expected a number, not an array"},
		{"string element", request("FP32", "[2]", `[1, "2"]`), 0, "inputs[0].data[1]: expected a number, not a string"},
		{"object element", request("INT8", "[1]", `[{}]`), 0, "inputs[0].data[0]: expected a number, not an object"},
		{"null element", request("FP32", "[2]", "[1, null]"), 0, "inputs[0].data[1]: null is not a valid FP32 value"},
		{"bool for number", request("INT32", "[1]", "[true]"), 0, "inputs[0].data[0]: expected a number, not true (datatype INT32)"},
		{"number for bool", request("BOOL", "[2]", "[true, 1]"), 0, "inputs[0].data[1]: expected true or false, not 1"},
		{"string for bool", request("BOOL", "[1]", `["true"]`), 0, "inputs[0].data[0]: expected true or false, not a string"},
		{"FP32 overflow", request("FP32", "[2]", "[1, 1e39]"), 0, "inputs[0].data[1]: 1e39 overflows FP32"},
		{"FP32 max rounding", request("FP32", "[1]", "[3.4028236e38]"), 0, "inputs[0].data[0]: 3.4028236e38 overflows FP32"},
		{"FP64 overflow", request("FP64", "[1]", "[-1e309]"), 0, "inputs[0].data[0]: -1e309 overflows FP64"},
		{"fraction for int", request("INT64", "[2]", "[1, 3.5]"), 0, "inputs[0].data[1]: 3.5 is not an integer (datatype INT64)"},
		{"inexact int float", request("INT64", "[1]", "[1e18]"), 0, "inputs[0].data[0]: 1e18 is not an exact integer; write it without a fraction or exponent"},
		{"INT64 range", request("INT64", "[1]", "[9223372036854775808]"), 0, "inputs[0].data[0]: 9223372036854775808 is out of range for INT64"},
		{"INT32 range", request("INT32", "[1]", "[2147483648]"), 0, "inputs[0].data[0]: 2147483648 is out of range for INT32"},
		{"INT8 range", request("INT8", "[1]", "[-129]"), 0, "inputs[0].data[0]: -129 is out of range for INT8"},
		{"UINT8 negative", request("UINT8", "[1]", "[-1]"), 0, "inputs[0].data[0]: -1 is out of range for UINT8"},
		{"UINT8 range", request("UINT8", "[2, 1]", "[[0], [256]]"), 0, "inputs[0].data[1][0]: 256 is out of range for UINT8"},
		{"UINT8 float range", request("UINT8", "[1]", "[256.0]"), 0, "inputs[0].data[0]: 256.0 is out of range for UINT8"},
		{"long token", request("INT8", "[1]", "[1"+strings.Repeat("0", 40)+"]"), 0,
			"inputs[0].data[0]: 10000000000000000000000000000000... is out of range for INT8"},
		{"second input", `{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]},
			{"name": "b", "shape": [1], "datatype": "FP8", "data": [1]}]}`, 0, `inputs[1].datatype: "FP8" is not supported`},
		{"output not object", `{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}], "outputs": ["y"]}`, 0,
			"outputs[0]: must be an object"},
		{"output name missing", `{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}], "outputs": [{}]}`, 0,
			"outputs[0].name: is missing"},
		{"output duplicate", `{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}], "outputs": [{"name": "y"}, {"name": "y"}]}`, 0,
			`outputs[1].name: "y" is also the name of outputs[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeRequest(strings.NewReader(tt.body), tt.max)
			if err == nil {
				t.Fatalf("DecodeRequest succeeded, want error %q", tt.want)
			}
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("error %q does not wrap ErrBadRequest", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %q is not a *FieldError", err)
			}
			if got := err.Error(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("error (-want +got):\n- %s\n+ %s", tt.want, got)
			}
		})
	}
}

// failingReader fails after its data, as a client connection dropped mid-body.
type failingReader struct{ data []byte }

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errors.New("connection reset")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestDecodeRequestReadError(t *testing.T) {
	_, _, err := DecodeRequest(&failingReader{[]byte(`{"inputs": [`)}, 0)
	if err == nil || errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("error %v, want the read error, not ErrBadRequest", err)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{{64 << 20, "64 MiB"}, {2048, "2 KiB"}, {1<<20 + 1, "1048577 bytes"}, {1000, "1000 bytes"}, {0, "0 bytes"}}
	for _, tt := range tests {
		if got := byteSize(tt.n); got != tt.want {
			t.Errorf("byteSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestDatatypes(t *testing.T) {
	tests := []struct {
		name string
		dt   tensor.DType
	}{
		{"FP32", tensor.Float32}, {"FP64", tensor.Float64}, {"INT64", tensor.Int64}, {"INT32", tensor.Int32},
		{"INT8", tensor.Int8}, {"UINT8", tensor.Uint8}, {"BOOL", tensor.Bool}, {"INT16", tensor.Int16},
		{"UINT16", tensor.Uint16}, {"UINT32", tensor.Uint32}, {"UINT64", tensor.Uint64},
	}
	for _, tt := range tests {
		if got := DatatypeOf(tt.dt); got != tt.name {
			t.Errorf("DatatypeOf(%v) = %q, want %q", tt.dt, got, tt.name)
		}
		if got, err := DTypeOf(tt.name); err != nil || got != tt.dt {
			t.Errorf("DTypeOf(%q) = %v, %v, want %v", tt.name, got, err, tt.dt)
		}
	}
	if got, err := DTypeOf("FP16"); err != nil || got != tensor.Float16 || DatatypeOf(tensor.Float16) != "FP16" {
		t.Errorf("FP16: DTypeOf = %v, %v; DatatypeOf(float16) = %q", got, err, DatatypeOf(tensor.Float16))
	}
	for _, dt := range []tensor.DType{tensor.Sequence, tensor.Invalid} {
		if got := DatatypeOf(dt); got != "" {
			t.Errorf("DatatypeOf(%v) = %q, want \"\"", dt, got)
		}
	}
	for _, name := range []string{"FP8", "bytes", "fp32", ""} {
		if _, err := DTypeOf(name); err == nil || !strings.Contains(err.Error(), "is not supported (supported: FP32,") {
			t.Errorf("DTypeOf(%q) error %v, want unsupported", name, err)
		}
	}
}

// TestEncodeResponseGolden pins the exact JSON of a response, including the
// shortest float32 decimals and null for non-finite values.
func TestEncodeResponseGolden(t *testing.T) {
	resp := &InferResponse{
		ModelName: "mnist",
		ID:        "r1",
		Outputs: []ResponseOutput{
			OutputFromTensor("probs", tensor.FromF32([]float32{0.1, 1e-7, 1e6, float32(math.NaN()), float32(math.Inf(-1))}, 1, 5)),
			OutputFromTensor("label", tensor.FromI64([]int64{7})),
			OutputFromTensor("mask", &tensor.Tensor{DType: tensor.Bool, Shape: []int{2}, B: []bool{true, false}}),
			OutputFromTensor("bytes", &tensor.Tensor{DType: tensor.Uint8, Shape: []int{0}, U8: []uint8{}}),
		},
	}
	var b bytes.Buffer
	if err := EncodeResponse(&b, resp); err != nil {
		t.Fatal(err)
	}
	want := `{"model_name":"mnist","id":"r1","outputs":[` +
		`{"name":"probs","shape":[1,5],"datatype":"FP32","data":[0.1,1e-07,1e+06,null,null]},` +
		`{"name":"label","shape":[],"datatype":"INT64","data":[7]},` +
		`{"name":"mask","shape":[2],"datatype":"BOOL","data":[true,false]},` +
		`{"name":"bytes","shape":[0],"datatype":"UINT8","data":[]}]}` + "\n"
	if got := b.String(); got != want {
		t.Errorf("EncodeResponse (-want +got):\n- %s\n+ %s", want, got)
	}
}

func TestEncodeRejectsUnencodable(t *testing.T) {
	tests := []struct {
		name string
		t    *tensor.Tensor
	}{
		{"nil", nil},
		{"float16", &tensor.Tensor{DType: tensor.Float16, Shape: []int{1}}},
		{"length mismatch", tensor.FromF32([]float32{1}, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			resp := &InferResponse{ModelName: "m", Outputs: []ResponseOutput{OutputFromTensor("y", tt.t)}}
			if err := EncodeResponse(&b, resp); err == nil || !strings.Contains(err.Error(), `outputs[0] ("y")`) {
				t.Errorf("EncodeResponse error %v, want one naming outputs[0]", err)
			}
			req := &InferRequest{Inputs: []RequestInput{InputFromTensor("x", tt.t)}}
			if err := EncodeRequest(&b, req); err == nil || !strings.Contains(err.Error(), `inputs[0] ("x")`) {
				t.Errorf("EncodeRequest error %v, want one naming inputs[0]", err)
			}
			if b.Len() != 0 {
				t.Errorf("wrote %q before failing", b.String())
			}
		})
	}
}

// sample returns one tensor of each type with awkward values: extremes,
// negative zero, subnormals.
func sample() map[string]*tensor.Tensor {
	return map[string]*tensor.Tensor{
		"f32": tensor.FromF32([]float32{0.1, -0, math.MaxFloat32, math.SmallestNonzeroFloat32, 1.0 / 3, -7}, 2, 3),
		"f64": {DType: tensor.Float64, Shape: []int{3}, F64: []float64{0.1, math.MaxFloat64, math.SmallestNonzeroFloat64}},
		"i64": tensor.FromI64([]int64{math.MinInt64, 0, math.MaxInt64}, 3, 1),
		"i32": {DType: tensor.Int32, Shape: []int{2}, I32: []int32{math.MinInt32, math.MaxInt32}},
		"i8":  {DType: tensor.Int8, Shape: []int{2}, I8: []int8{-128, 127}},
		"u8":  {DType: tensor.Uint8, Shape: []int{}, U8: []uint8{255}},
		"b":   {DType: tensor.Bool, Shape: []int{1, 0}, B: []bool{}},
	}
}

func TestResponseRoundTrip(t *testing.T) {
	in := sample()
	resp := &InferResponse{ModelName: "m", ModelVersion: "3", ID: "q", Parameters: Parameters{"k": "v"}}
	for _, name := range []string{"f32", "f64", "i64", "i32", "i8", "u8", "b"} {
		resp.Outputs = append(resp.Outputs, OutputFromTensor(name, in[name]))
	}
	var b bytes.Buffer
	if err := EncodeResponse(&b, resp); err != nil {
		t.Fatal(err)
	}
	got, tensors, err := DecodeResponse(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ModelName != "m" || got.ModelVersion != "3" || got.ID != "q" || got.Parameters["k"] != "v" || len(got.Outputs) != len(in) {
		t.Errorf("response header fields: got %+v", got)
	}
	for name, want := range in {
		equalTensor(t, tensors[name], want)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	in := sample()
	req := &InferRequest{ID: "q"}
	for _, name := range []string{"f32", "f64", "i64", "i32", "i8", "u8", "b"} {
		req.Inputs = append(req.Inputs, InputFromTensor(name, in[name]))
	}
	var b bytes.Buffer
	if err := EncodeRequest(&b, req); err != nil {
		t.Fatal(err)
	}
	_, tensors, err := DecodeRequest(&b, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range in {
		equalTensor(t, tensors[name], want)
	}
}

func TestDecodeResponseNonFinite(t *testing.T) {
	src := tensor.FromF32([]float32{float32(math.NaN()), float32(math.Inf(1)), 2}, 3)
	var b bytes.Buffer
	if err := EncodeResponse(&b, &InferResponse{ModelName: "m", Outputs: []ResponseOutput{OutputFromTensor("y", src)}}); err != nil {
		t.Fatal(err)
	}
	_, tensors, err := DecodeResponse(&b)
	if err != nil {
		t.Fatal(err)
	}
	got := tensors["y"].F32
	if !math.IsNaN(float64(got[0])) || !math.IsNaN(float64(got[1])) || got[2] != 2 {
		t.Errorf("decoded %v, want [NaN NaN 2] (non-finite values travel as null)", got)
	}
}

func TestDecodeResponseErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		sentry error
		want   string
	}{
		{"server error", `{"error": "model \"m\" not found"}`, ErrRemote, `server error: model "m" not found`},
		{"error not string", `{"error": 5}`, ErrBadResponse, "error: must be a string, not a number"},
		{"invalid JSON", `{"outputs": [}`, ErrBadResponse, "body: invalid JSON at offset 13"},
		{"model_name", `{"model_name": 1, "outputs": []}`, ErrBadResponse, "model_name: must be a string, not a number"},
		{"output data", `{"model_name": "m", "outputs": [{"name": "y", "shape": [2], "datatype": "FP32", "data": [1]}]}`, ErrBadResponse,
			"outputs[0].data: has 1 elements, shape [2] needs 2"},
		{"null int", `{"model_name": "m", "outputs": [{"name": "y", "shape": [1], "datatype": "INT64", "data": [null]}]}`, ErrBadResponse,
			"outputs[0].data[0]: null is not a valid INT64 value"},
		{"duplicate", `{"model_name": "m", "outputs": [{"name": "y", "shape": [], "datatype": "FP32", "data": 1},
			{"name": "y", "shape": [], "datatype": "FP32", "data": 1}]}`, ErrBadResponse, `outputs[1].name: "y" is also the name of outputs[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeResponse(strings.NewReader(tt.body))
			if !errors.Is(err, tt.sentry) || err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("DecodeResponse error %v, want %v starting %q", err, tt.sentry, tt.want)
			}
		})
	}
}

// TestDecodeRequestNoOversizeAlloc checks that a shape far larger than the data
// is reported without allocating the tensor the shape describes.
func TestDecodeRequestNoOversizeAlloc(t *testing.T) {
	body := request("FP64", "[1000000000]", "[1, 2, 3]")
	allocs := testing.AllocsPerRun(10, func() {
		if _, _, err := DecodeRequest(strings.NewReader(body), 0); err == nil {
			t.Fatal("DecodeRequest succeeded")
		}
	})
	// Allocating 8 GB would fail outright; this bounds the small allocations
	// too, so a regression that grows per element shows.
	if allocs > 100 {
		t.Errorf("%v allocations, want at most 100", allocs)
	}
}

func ExampleDecodeRequest() {
	body := `{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]}`
	_, tensors, err := DecodeRequest(strings.NewReader(body), 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tensors["x"], tensors["x"].F32)

	_, _, err = DecodeRequest(strings.NewReader(`{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}]}`), 0)
	fmt.Println(err)
	// Output:
	// float32[2 2] [1 2 3 4]
	// inputs[0].data: has 3 elements, shape [2 2] needs 4
}

// TestFP16 checks FP16 data: decoded as float32 tensors of float16 values
// (0.1 rounds to 0.0999755859375), and a float32 output the model declares
// float16 written as FP16.
func TestFP16(t *testing.T) {
	_, ins, err := DecodeRequest(strings.NewReader(request("FP16", "[3]", "[0.1, 2049, -65504]")), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	x := ins["x"]
	if x.DType != tensor.Float32 || x.F32[0] != 0.0999755859375 || x.F32[1] != 2048 || x.F32[2] != -65504 {
		t.Errorf("FP16 input decoded as %s %v, want float32 [0.0999755859375 2048 -65504]", x, x.F32)
	}
	out := OutputAs("y", tensor.FromF32([]float32{0.1, 1}, 2), tensor.Float16)
	if out.Datatype != "FP16" || string(out.Data) != "[0.099975586,1]" { // float32's shortest form of the value
		t.Errorf("OutputAs float16 = %s %s, want FP16 [0.099975586,1]", out.Datatype, out.Data)
	}
	if out := OutputAs("y", tensor.FromF32([]float32{0.1}, 1), tensor.Float32); out.Datatype != "FP32" || string(out.Data) != "[0.1]" {
		t.Errorf("OutputAs float32 = %s %s, want FP32 [0.1]", out.Datatype, out.Data)
	}
}

// TestBF16AndWideIntegers checks BF16 data (held as float32 tensors of
// bfloat16 values: 0.1 rounds to 0.10009765625) and the 16-, 32- and 64-bit
// integer datatypes at the ends of their ranges, both ways.
func TestBF16AndWideIntegers(t *testing.T) {
	_, ins, err := DecodeRequest(strings.NewReader(request("BF16", "[2]", "[0.1, -3]")), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if x := ins["x"]; x.DType != tensor.Float32 || x.F32[0] != 0.10009765625 || x.F32[1] != -3 {
		t.Errorf("BF16 input decoded as %s %v, want float32 [0.10009765625 -3]", x, x.F32)
	}
	if out := OutputAs("y", tensor.FromF32([]float32{0.1}, 1), tensor.BFloat16); out.Datatype != "BF16" || string(out.Data) != "[0.100097656]" {
		t.Errorf("OutputAs bfloat16 = %s %s, want BF16 [0.100097656]", out.Datatype, out.Data)
	}
	for _, tt := range []struct{ datatype, data string }{
		{"INT16", "[-32768,32767]"}, {"UINT16", "[0,65535]"}, {"UINT32", "[0,4294967295]"},
		{"UINT64", "[0,18446744073709551615]"},
	} {
		_, ins, err := DecodeRequest(strings.NewReader(request(tt.datatype, "[2]", tt.data)), 1<<20)
		if err != nil {
			t.Errorf("%s %s: %v", tt.datatype, tt.data, err)
			continue
		}
		out := OutputFromTensor("y", ins["x"])
		if out.Datatype != tt.datatype || string(out.Data) != tt.data {
			t.Errorf("%s %s came back as %s %s", tt.datatype, tt.data, out.Datatype, out.Data)
		}
	}
}
