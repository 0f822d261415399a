package oip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"strconv"

	"github.com/spindleml/spindle/internal/tensor"
)

// Parameters holds a request's or tensor's optional parameters. The spec allows
// string, number and boolean values; decoded numbers are float64. A nil map is
// omitted from JSON.
type Parameters map[string]any

// InferRequest is the body of POST /v2/models/{name}[/versions/{v}]/infer.
type InferRequest struct {
	// ID is an optional identifier echoed in the response.
	ID         string         `json:"id,omitempty"`
	Parameters Parameters     `json:"parameters,omitempty"`
	Inputs     []RequestInput `json:"inputs"`
	// Outputs optionally names the outputs to return; empty means all.
	Outputs []RequestOutput `json:"outputs,omitempty"`
}

// RequestInput is one input tensor of an InferRequest.
type RequestInput struct {
	Name       string     `json:"name"`
	Shape      []int64    `json:"shape"`
	Datatype   string     `json:"datatype"`
	Parameters Parameters `json:"parameters,omitempty"`
	// Data is the tensor's elements as a JSON array, flat in row-major order or
	// nested to match Shape. After DecodeRequest it aliases the body read.
	Data json.RawMessage `json:"data"`
}

// RequestOutput names one output a client asks for.
type RequestOutput struct {
	Name       string     `json:"name"`
	Parameters Parameters `json:"parameters,omitempty"`
}

// InferResponse is the body of a successful inference.
type InferResponse struct {
	ModelName    string           `json:"model_name"`
	ModelVersion string           `json:"model_version,omitempty"`
	ID           string           `json:"id,omitempty"`
	Parameters   Parameters       `json:"parameters,omitempty"`
	Outputs      []ResponseOutput `json:"outputs"`
}

// ResponseOutput is one output tensor of an InferResponse. OutputFromTensor
// builds one from a tensor.
type ResponseOutput struct {
	Name       string     `json:"name"`
	Shape      []int64    `json:"shape"`
	Datatype   string     `json:"datatype"`
	Parameters Parameters `json:"parameters,omitempty"`
	// Data is the tensor's elements as a flat JSON array in row-major order.
	Data json.RawMessage `json:"data"`
}

// ModelVersion is the one version a Spindle function has: a deploy
// replaces the model in place.
const ModelVersion = "1"

// Extensions are the protocol extensions Spindle serves, as server
// metadata lists them.
var Extensions = []string{"binary_tensor_data", "statistics", "model_configuration"}

// ServerMetadataResponse is the body of GET /v2.
type ServerMetadataResponse struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// ServerMetadata describes the server: its name, version and extensions.
func ServerMetadata() ServerMetadataResponse {
	return ServerMetadataResponse{Name: "spindle", Version: serverVersion(), Extensions: Extensions}
}

// serverVersion is the module version the binary was built from, or
// "devel".
func serverVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// ModelMetadata is the body of GET /v2/models/{name}[/versions/{v}].
type ModelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions,omitempty"`
	Platform string           `json:"platform"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
}

// TensorMetadata describes one model input or output; -1 in Shape marks a
// dimension of variable size.
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ErrorResponse is the body of every failed request.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Sentinels wrapped by decoding errors.
var (
	// ErrBadRequest is wrapped by every DecodeRequest error caused by the body.
	ErrBadRequest = errors.New("bad request")
	// ErrBadResponse is wrapped by every DecodeResponse error caused by the body.
	ErrBadResponse = errors.New("bad response")
	// ErrRemote is wrapped by the error DecodeResponse returns for a body that
	// is an ErrorResponse.
	ErrRemote = errors.New("server error")
)

// FieldError is a decoding error about one part of a body. Its message is the
// JSON path and the rule broken, "inputs[0].data: has 783 elements, shape
// [1 1 28 28] needs 784", fit to show a client as is.
type FieldError struct {
	// Field is the JSON path of the offending value, or "body" for the body as
	// a whole.
	Field string
	// Msg states the rule the value breaks.
	Msg string
	// kind is ErrBadRequest or ErrBadResponse.
	kind error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap returns ErrBadRequest or ErrBadResponse.
func (e *FieldError) Unwrap() error { return e.kind }

// datatypes lists the protocol's names for the element types Spindle supports,
// in the order error messages list them.
var datatypes = []struct {
	name string
	dt   tensor.DType
}{
	{"FP32", tensor.Float32}, {"FP16", tensor.Float16}, {"BF16", tensor.BFloat16}, {"FP64", tensor.Float64},
	{"INT64", tensor.Int64}, {"INT32", tensor.Int32}, {"INT16", tensor.Int16}, {"INT8", tensor.Int8},
	{"UINT64", tensor.Uint64}, {"UINT32", tensor.Uint32}, {"UINT16", tensor.Uint16}, {"UINT8", tensor.Uint8},
	{"BOOL", tensor.Bool}, {"BYTES", tensor.String},
}

// FP16 and BF16 data is held as float32 tensors of float16 (bfloat16) values
// (Spindle computes them as float32): a decoded FP16 input is a Float32 tensor
// with every value rounded to float16, and OutputAs writes a Float32 tensor as
// FP16 or BF16.

const supportedDatatypes = "FP32, FP16, BF16, FP64, INT64, INT32, INT16, INT8, UINT64, UINT32, UINT16, UINT8, BOOL, BYTES"

// DatatypeOf returns the protocol's name for dt ("FP32" for tensor.Float32), or
// "" if the protocol cannot carry dt in Spindle.
func DatatypeOf(dt tensor.DType) string {
	for _, d := range datatypes {
		if d.dt == dt {
			return d.name
		}
	}
	return ""
}

// DTypeOf returns the tensor element type for a protocol datatype name. Names
// are case-sensitive, as in the spec.
func DTypeOf(datatype string) (tensor.DType, error) {
	for _, d := range datatypes {
		if d.name == datatype {
			return d.dt, nil
		}
	}
	return tensor.Invalid, fmt.Errorf("%s is not supported (supported: %s)", strconv.Quote(datatype), supportedDatatypes)
}

// OutputFromTensor returns t as a response output with flat data. Non-finite
// floats are written as null (JSON has no NaN or infinity). A tensor that fails
// Validate or has a type the protocol cannot carry yields an output with an
// empty Datatype and no Data, which EncodeResponse rejects.
func OutputFromTensor(name string, t *tensor.Tensor) ResponseOutput {
	shape, dt, data := fromTensor(t)
	return ResponseOutput{Name: name, Shape: shape, Datatype: dt, Data: data}
}

// OutputAs is OutputFromTensor for an output the model declares of dtype
// as: a Float32 tensor of a float16 or bfloat16 output is written as FP16 or
// BF16 (its values rounded to that type); any other declaration changes
// nothing.
func OutputAs(name string, t *tensor.Tensor, as tensor.DType) ResponseOutput {
	if !as.Wide() || t == nil || t.DType != tensor.Float32 {
		return OutputFromTensor(name, t)
	}
	round := tensor.RoundHalf
	if as == tensor.BFloat16 {
		round = tensor.RoundBFloat
	}
	h := &tensor.Tensor{DType: tensor.Float32, Shape: t.Shape, F32: make([]float32, len(t.F32))}
	for i, v := range t.F32 {
		h.F32[i] = round(v)
	}
	out := OutputFromTensor(name, h)
	if out.Datatype != "" {
		out.Datatype = DatatypeOf(as)
	}
	return out
}

// InputFromTensor returns t as a request input with flat data, following the
// same rules as OutputFromTensor.
func InputFromTensor(name string, t *tensor.Tensor) RequestInput {
	shape, dt, data := fromTensor(t)
	return RequestInput{Name: name, Shape: shape, Datatype: dt, Data: data}
}

func fromTensor(t *tensor.Tensor) (shape []int64, datatype string, data json.RawMessage) {
	if t == nil {
		return []int64{}, "", nil
	}
	shape = make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = int64(d)
	}
	datatype = DatatypeOf(t.DType)
	if datatype == "" || t.Validate() != nil {
		return shape, "", nil
	}
	return shape, datatype, appendData(make([]byte, 0, 2+t.Len()*estimate(t.DType)), t)
}

// estimate is a guess at the JSON bytes per element of dt, to size buffers.
func estimate(dt tensor.DType) int {
	switch dt {
	case tensor.Float32:
		return 12
	case tensor.Float64:
		return 20
	case tensor.Int64, tensor.Int32:
		return 6
	}
	return 5
}

// appendData appends t's elements to b as a flat JSON array.
func appendData(b []byte, t *tensor.Tensor) []byte {
	b = append(b, '[')
	n := t.Len()
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		switch t.DType {
		case tensor.Float32:
			b = appendFloat(b, float64(t.F32[i]), 32)
		case tensor.Float64:
			b = appendFloat(b, t.F64[i], 64)
		case tensor.Int64:
			b = strconv.AppendInt(b, t.I64[i], 10)
		case tensor.Int32:
			b = strconv.AppendInt(b, int64(t.I32[i]), 10)
		case tensor.Int16:
			b = strconv.AppendInt(b, int64(t.I16[i]), 10)
		case tensor.Int8:
			b = strconv.AppendInt(b, int64(t.I8[i]), 10)
		case tensor.Uint64:
			b = strconv.AppendUint(b, t.U64[i], 10)
		case tensor.Uint32:
			b = strconv.AppendUint(b, uint64(t.U32[i]), 10)
		case tensor.Uint16:
			b = strconv.AppendUint(b, uint64(t.U16[i]), 10)
		case tensor.Uint8:
			b = strconv.AppendUint(b, uint64(t.U8[i]), 10)
		case tensor.Bool:
			b = strconv.AppendBool(b, t.B[i])
		case tensor.String:
			q, _ := json.Marshal(t.S[i])
			b = append(b, q...)
		}
	}
	return append(b, ']')
}

// appendFloat writes the shortest decimal that reads back as the same value of
// the given bit size, or null for NaN and infinities.
func appendFloat(b []byte, v float64, bits int) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, bits)
}

// EncodeResponse writes resp as JSON followed by a newline. It returns an error,
// writing nothing, if an output has no datatype or data (as OutputFromTensor
// returns for a tensor it cannot encode).
func EncodeResponse(w io.Writer, resp *InferResponse) error {
	for i, o := range resp.Outputs {
		if o.Datatype == "" || o.Data == nil {
			return fmt.Errorf("encode response: outputs[%d] (%q) has no datatype or data: its tensor cannot be encoded", i, o.Name)
		}
	}
	return json.NewEncoder(w).Encode(resp)
}

// EncodeRequest writes req as JSON followed by a newline, with the same checks
// as EncodeResponse.
func EncodeRequest(w io.Writer, req *InferRequest) error {
	for i, in := range req.Inputs {
		if in.Datatype == "" || in.Data == nil {
			return fmt.Errorf("encode request: inputs[%d] (%q) has no datatype or data: its tensor cannot be encoded", i, in.Name)
		}
	}
	return json.NewEncoder(w).Encode(req)
}
