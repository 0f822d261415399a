package oip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"

	"github.com/spindleml/spindle/internal/tensor"
)

const (
	// DefaultMaxRequestBytes is the body limit DecodeRequest applies when
	// given a limit of zero or less.
	DefaultMaxRequestBytes = 64 << 20
	// maxResponseBytes bounds what DecodeResponse reads; responses come from a
	// server the caller chose to trust, so the limit only stops runaways.
	maxResponseBytes = 1 << 30
	// MaxRank is the most dimensions a tensor in a body may have (NumPy 2's
	// limit; ONNX models in practice stay far below it).
	MaxRank = 64
)

// The wire types mirror the public ones with every field a json.RawMessage, so
// that encoding/json never fails on a field's type and each field is decoded
// here with an error that names its index ("inputs[1].shape").
type wireTensor struct {
	Name       json.RawMessage `json:"name"`
	Shape      json.RawMessage `json:"shape"`
	Datatype   json.RawMessage `json:"datatype"`
	Parameters json.RawMessage `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type wireRequest struct {
	ID         json.RawMessage   `json:"id"`
	Parameters json.RawMessage   `json:"parameters"`
	Inputs     []json.RawMessage `json:"inputs"`
	Outputs    []json.RawMessage `json:"outputs"`
}

type wireResponse struct {
	ModelName    json.RawMessage   `json:"model_name"`
	ModelVersion json.RawMessage   `json:"model_version"`
	ID           json.RawMessage   `json:"id"`
	Parameters   json.RawMessage   `json:"parameters"`
	Outputs      []json.RawMessage `json:"outputs"`
	Error        json.RawMessage   `json:"error"`
}

// decoder carries the sentinel its errors wrap and whether float data may hold
// null (read as NaN).
type decoder struct {
	kind      error
	allowNull bool
}

func (d decoder) errorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...), kind: d.kind}
}

// DecodeRequest reads an InferRequest of at most maxBytes (DefaultMaxRequestBytes
// if maxBytes <= 0) from r and converts each input's data to a tensor, keyed by
// input name. Body errors are *FieldError values wrapping ErrBadRequest; an error
// reading r is returned as is.
func DecodeRequest(r io.Reader, maxBytes int64) (*InferRequest, map[string]*tensor.Tensor, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	d := decoder{kind: ErrBadRequest}
	body, err := d.readBody(r, maxBytes)
	if err != nil {
		return nil, nil, err
	}
	var w wireRequest
	if err := d.unmarshalBody(body, &w); err != nil {
		return nil, nil, err
	}
	req := &InferRequest{}
	if err := d.field("id", w.ID, &req.ID, "a string"); err != nil {
		return nil, nil, err
	}
	if req.Parameters, err = d.params("parameters", w.Parameters); err != nil {
		return nil, nil, err
	}
	if len(w.Inputs) == 0 {
		return nil, nil, d.errorf("inputs", "at least one input is required")
	}
	req.Inputs = make([]RequestInput, len(w.Inputs))
	tensors := make(map[string]*tensor.Tensor, len(w.Inputs))
	index := make(map[string]int, len(w.Inputs))
	for i, raw := range w.Inputs {
		path := "inputs[" + strconv.Itoa(i) + "]"
		in, t, err := d.tensor(path, raw)
		if err != nil {
			return nil, nil, err
		}
		if j, dup := index[in.Name]; dup {
			return nil, nil, d.errorf(path+".name", "%s is also the name of inputs[%d]", strconv.Quote(in.Name), j)
		}
		index[in.Name] = i
		tensors[in.Name] = t
		req.Inputs[i] = in
	}
	outIndex := make(map[string]int, len(w.Outputs))
	for i, raw := range w.Outputs {
		path := "outputs[" + strconv.Itoa(i) + "]"
		var wo struct {
			Name       json.RawMessage `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		}
		if err := json.Unmarshal(raw, &wo); err != nil {
			return nil, nil, d.errorf(path, "must be an object")
		}
		var o RequestOutput
		if err := d.name(path, wo.Name, &o.Name); err != nil {
			return nil, nil, err
		}
		if j, dup := outIndex[o.Name]; dup {
			return nil, nil, d.errorf(path+".name", "%s is also the name of outputs[%d]", strconv.Quote(o.Name), j)
		}
		outIndex[o.Name] = i
		if o.Parameters, err = d.params(path+".parameters", wo.Parameters); err != nil {
			return nil, nil, err
		}
		req.Outputs = append(req.Outputs, o)
	}
	return req, tensors, nil
}

// DecodeResponse reads an InferResponse from r and converts each output's data
// to a tensor, keyed by output name. Body errors are *FieldError values wrapping
// ErrBadResponse. A body that is an ErrorResponse yields an error wrapping
// ErrRemote with the server's message.
func DecodeResponse(r io.Reader) (*InferResponse, map[string]*tensor.Tensor, error) {
	d := decoder{kind: ErrBadResponse, allowNull: true}
	body, err := d.readBody(r, maxResponseBytes)
	if err != nil {
		return nil, nil, err
	}
	var w wireResponse
	if err := d.unmarshalBody(body, &w); err != nil {
		return nil, nil, err
	}
	if w.Error != nil && w.Outputs == nil {
		var msg string
		if err := d.field("error", w.Error, &msg, "a string"); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: %s", ErrRemote, msg)
	}
	resp := &InferResponse{}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{{"model_name", w.ModelName, &resp.ModelName}, {"model_version", w.ModelVersion, &resp.ModelVersion}, {"id", w.ID, &resp.ID}} {
		if err := d.field(f.name, f.raw, f.dst, "a string"); err != nil {
			return nil, nil, err
		}
	}
	if resp.Parameters, err = d.params("parameters", w.Parameters); err != nil {
		return nil, nil, err
	}
	resp.Outputs = make([]ResponseOutput, len(w.Outputs))
	tensors := make(map[string]*tensor.Tensor, len(w.Outputs))
	index := make(map[string]int, len(w.Outputs))
	for i, raw := range w.Outputs {
		path := "outputs[" + strconv.Itoa(i) + "]"
		out, t, err := d.tensor(path, raw)
		if err != nil {
			return nil, nil, err
		}
		if j, dup := index[out.Name]; dup {
			return nil, nil, d.errorf(path+".name", "%s is also the name of outputs[%d]", strconv.Quote(out.Name), j)
		}
		index[out.Name] = i
		tensors[out.Name] = t
		resp.Outputs[i] = ResponseOutput(out)
	}
	return resp, tensors, nil
}

// readBody reads all of r, failing if it holds more than max bytes.
func (d decoder) readBody(r io.Reader, max int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > max {
		return nil, d.errorf("body", "exceeds %s", byteSize(max))
	}
	return body, nil
}

// byteSize formats n as "64 MiB", "512 KiB" or "1000 bytes".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// unmarshalBody decodes a whole body into one of the wire structs. The only type
// errors left possible are a body that is not an object and an inputs or
// outputs member that is not an array of objects.
func (d decoder) unmarshalBody(body []byte, v any) error {
	if len(body) == 0 {
		return d.errorf("body", "is empty")
	}
	err := json.Unmarshal(body, v)
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syn):
		return d.errorf("body", "invalid JSON at offset %d: %v", syn.Offset, syn)
	case errors.As(err, &typ) && typ.Field == "":
		return d.errorf("body", "must be a JSON object, not %s", typ.Value)
	case errors.As(err, &typ):
		return d.errorf(typ.Field, "must be an array of objects, not %s", typ.Value)
	}
	return d.errorf("body", "%v", err)
}

// field decodes raw, if present, into dst, naming the JSON type expected.
func (d decoder) field(path string, raw json.RawMessage, dst any, want string) error {
	if raw == nil {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return d.errorf(path, "must be %s, not %s", want, jsonKind(raw))
	}
	return nil
}

// name decodes a required, non-empty name.
func (d decoder) name(path string, raw json.RawMessage, dst *string) error {
	if raw == nil {
		return d.errorf(path+".name", "is missing")
	}
	if err := d.field(path+".name", raw, dst, "a string"); err != nil {
		return err
	}
	if *dst == "" {
		return d.errorf(path+".name", "is empty")
	}
	return nil
}

// params decodes an optional parameters object whose values must be strings,
// numbers or booleans, as the spec's $parameter allows.
func (d decoder) params(path string, raw json.RawMessage) (Parameters, error) {
	var p Parameters
	if err := d.field(path, raw, &p, "an object"); err != nil {
		return nil, err
	}
	for k, v := range p {
		switch v.(type) {
		case string, float64, bool:
		default:
			return nil, d.errorf(path+"."+k, "must be a string, number or boolean")
		}
	}
	return p, nil
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(raw []byte) string {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return "an object"
		case '[':
			return "an array"
		case '"':
			return "a string"
		case 't', 'f':
			return "a boolean"
		case 'n':
			return "null"
		}
		return "a number"
	}
	return "empty"
}

// tensor decodes one request input or response output at path.
func (d decoder) tensor(path string, raw json.RawMessage) (RequestInput, *tensor.Tensor, error) {
	var in RequestInput
	var w wireTensor
	if err := json.Unmarshal(raw, &w); err != nil {
		return in, nil, d.errorf(path, "must be an object, not %s", jsonKind(raw))
	}
	if err := d.name(path, w.Name, &in.Name); err != nil {
		return in, nil, err
	}
	if w.Datatype == nil || string(w.Datatype) == "null" {
		return in, nil, d.errorf(path+".datatype", "is missing")
	}
	if err := d.field(path+".datatype", w.Datatype, &in.Datatype, "a string"); err != nil {
		return in, nil, err
	}
	dt, err := DTypeOf(in.Datatype)
	if err != nil {
		return in, nil, d.errorf(path+".datatype", "%v", err)
	}
	if w.Shape == nil || string(w.Shape) == "null" {
		return in, nil, d.errorf(path+".shape", "is missing")
	}
	if err := d.field(path+".shape", w.Shape, &in.Shape, "an array of integers"); err != nil {
		return in, nil, err
	}
	dims, err := d.dims(path+".shape", in.Shape)
	if err != nil {
		return in, nil, err
	}
	if in.Parameters, err = d.params(path+".parameters", w.Parameters); err != nil {
		return in, nil, err
	}
	if _, ok := in.Parameters["binary_data_size"]; ok {
		return in, nil, d.errorf(path+".parameters.binary_data_size", "binary tensor data is not supported; send data as JSON")
	}
	if w.Data == nil {
		return in, nil, d.errorf(path+".data", "is missing")
	}
	t, derr := decodeData(w.Data, dt, in.Datatype, dims, d.allowNull)
	if derr != nil {
		return in, nil, d.errorf(path+".data"+derr.suffix, "%s", derr.msg)
	}
	in.Data = w.Data
	return in, t, nil
}

// dims checks a shape from a body and converts it to ints.
func (d decoder) dims(path string, shape []int64) ([]int, error) {
	if len(shape) > MaxRank {
		return nil, d.errorf(path, "has %d dimensions, at most %d are supported", len(shape), MaxRank)
	}
	dims := make([]int, len(shape))
	zero := false
	for i, s := range shape {
		if s < 0 {
			return nil, d.errorf(path+"["+strconv.Itoa(i)+"]", "%d is negative", s)
		}
		dims[i] = int(s)
		zero = zero || s == 0
	}
	if zero {
		return dims, nil
	}
	n := uint64(1)
	for _, s := range shape {
		hi, lo := bits.Mul64(n, uint64(s))
		if hi != 0 || lo > math.MaxInt {
			return nil, d.errorf(path, "%s has too many elements", tensor.ShapeString(dims))
		}
		n = lo
	}
	return dims, nil
}
