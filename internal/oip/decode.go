package oip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

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

// decoder carries the sentinel its errors wrap and whether float data may hold
// null (read as NaN).
type decoder struct {
	kind      error
	allowNull bool
	// bin is the body's binary data (binary tensor data extension); nil
	// when the body is JSON alone.
	bin *binarySection
}

func (d decoder) errorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...), kind: d.kind}
}

// DecodeRequest reads an InferRequest of at most maxBytes (DefaultMaxRequestBytes
// if maxBytes <= 0) from r and converts each input's data to a tensor, keyed by
// input name. Body errors are *FieldError values wrapping ErrBadRequest; an error
// reading r is returned as is.
func DecodeRequest(r io.Reader, maxBytes int64) (*InferRequest, map[string]*tensor.Tensor, error) {
	return DecodeRequestBinary(r, maxBytes, -1)
}

// DecodeRequestBinary is DecodeRequest for a body whose first headerLen
// bytes are the JSON request and the rest the binary data of the inputs
// whose parameters give binary_data_size (the binary tensor data extension;
// headerLen comes from the HeaderLength HTTP header). A negative headerLen
// means the whole body is JSON.
func DecodeRequestBinary(r io.Reader, maxBytes, headerLen int64) (*InferRequest, map[string]*tensor.Tensor, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	d := decoder{kind: ErrBadRequest}
	body, err := d.readBody(r, maxBytes)
	if err != nil {
		return nil, nil, err
	}
	if headerLen >= 0 {
		if headerLen > int64(len(body)) {
			return nil, nil, d.errorf("body", "%s is %d, more than the body's %d bytes", HeaderLength, headerLen, len(body))
		}
		d.bin = &binarySection{data: body[headerLen:]}
		body = body[:headerLen]
	}
	top, err := d.body(body)
	if err != nil {
		return nil, nil, err
	}
	req := &InferRequest{}
	if err := d.field("id", top["id"], &req.ID, "a string"); err != nil {
		return nil, nil, err
	}
	if req.Parameters, err = d.params("parameters", top["parameters"]); err != nil {
		return nil, nil, err
	}
	if v, ok := req.Parameters[ParamBinaryOutput]; ok {
		if _, isBool := v.(bool); !isBool {
			return nil, nil, d.errorf("parameters."+ParamBinaryOutput, "must be true or false")
		}
	}
	inputs, err := d.array("inputs", top["inputs"])
	if err != nil {
		return nil, nil, err
	}
	if len(inputs) == 0 {
		return nil, nil, d.errorf("inputs", "at least one input is required")
	}
	req.Inputs = make([]RequestInput, len(inputs))
	tensors := make(map[string]*tensor.Tensor, len(inputs))
	index := make(map[string]int, len(inputs))
	for i, raw := range inputs {
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
	if d.bin != nil && d.bin.read < len(d.bin.data) {
		return nil, nil, d.errorf("body", "%d bytes of binary data follow the inputs' binary_data_size bytes (%d)", len(d.bin.data)-d.bin.read, d.bin.read)
	}
	outputs, err := d.array("outputs", top["outputs"])
	if err != nil {
		return nil, nil, err
	}
	outIndex := make(map[string]int, len(outputs))
	for i, raw := range outputs {
		path := "outputs[" + strconv.Itoa(i) + "]"
		m, ok := object(raw)
		if !ok {
			return nil, nil, d.errorf(path, "must be an object, not %s", jsonKind(raw))
		}
		var o RequestOutput
		if err := d.name(path, m["name"], &o.Name); err != nil {
			return nil, nil, err
		}
		if j, dup := outIndex[o.Name]; dup {
			return nil, nil, d.errorf(path+".name", "%s is also the name of outputs[%d]", strconv.Quote(o.Name), j)
		}
		outIndex[o.Name] = i
		if o.Parameters, err = d.params(path+".parameters", m["parameters"]); err != nil {
			return nil, nil, err
		}
		if err := d.checkOutputParams(path, o.Parameters); err != nil {
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
	top, err := d.body(body)
	if err != nil {
		return nil, nil, err
	}
	if msg, ok := top["error"]; ok && top["outputs"] == nil {
		var text string
		if err := d.field("error", msg, &text, "a string"); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: %s", ErrRemote, text)
	}
	resp := &InferResponse{}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"model_name", &resp.ModelName}, {"model_version", &resp.ModelVersion}, {"id", &resp.ID}} {
		if err := d.field(f.name, top[f.name], f.dst, "a string"); err != nil {
			return nil, nil, err
		}
	}
	if resp.Parameters, err = d.params("parameters", top["parameters"]); err != nil {
		return nil, nil, err
	}
	outputs, err := d.array("outputs", top["outputs"])
	if err != nil {
		return nil, nil, err
	}
	resp.Outputs = make([]ResponseOutput, len(outputs))
	tensors := make(map[string]*tensor.Tensor, len(outputs))
	index := make(map[string]int, len(outputs))
	for i, raw := range outputs {
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

// body validates a whole body and splits the object it must be into members.
func (d decoder) body(body []byte) (map[string][]byte, error) {
	if skipSpace(body, 0) == len(body) {
		return nil, d.errorf("body", "is empty")
	}
	if err := validate(body); err != nil {
		return nil, d.errorf("body", "invalid JSON at offset %d: %s", err.off, err.msg)
	}
	top, ok := object(body)
	if !ok {
		return nil, d.errorf("body", "must be a JSON object, not %s", jsonKind(body))
	}
	return top, nil
}

// array splits an optional array member; null or absent is empty.
func (d decoder) array(path string, raw []byte) ([][]byte, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	elems, ok := array(raw)
	if !ok {
		return nil, d.errorf(path, "must be an array of objects, not %s", jsonKind(raw))
	}
	return elems, nil
}

// field decodes raw, if present, into dst, naming the JSON type expected.
func (d decoder) field(path string, raw []byte, dst any, want string) error {
	if raw == nil {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		var typ *json.UnmarshalTypeError
		if kind := jsonKind(raw); !strings.HasPrefix(want, kind) || !errors.As(err, &typ) {
			return d.errorf(path, "must be %s, not %s", want, kind)
		}
		// The container is right; an element is not.
		return d.errorf(path, "must be %s, found %s", want, typ.Value)
	}
	return nil
}

// name decodes a required, non-empty name.
func (d decoder) name(path string, raw []byte, dst *string) error {
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
func (d decoder) params(path string, raw []byte) (Parameters, error) {
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
func (d decoder) tensor(path string, raw []byte) (RequestInput, *tensor.Tensor, error) {
	var in RequestInput
	m, ok := object(raw)
	if !ok {
		return in, nil, d.errorf(path, "must be an object, not %s", jsonKind(raw))
	}
	w := struct{ Name, Shape, Datatype, Parameters, Data []byte }{
		m["name"], m["shape"], m["datatype"], m["parameters"], m["data"]}
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
	size, binary, err := d.binarySize(path, in.Parameters)
	if err != nil {
		return in, nil, err
	}
	if binary {
		if w.Data != nil && string(w.Data) != "null" {
			return in, nil, d.errorf(path+".data", "is given with binary_data_size: send the data one way")
		}
		t, err := d.binaryTensor(path, size, dt, in.Datatype, dims)
		return in, t, err
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

// dims checks a shape from a body and converts it to ints. The bounds are
// tensor.CheckShape's, and they hold for empty tensors too: a shape such as
// [1073741824 0] needs no data, but kernels loop over and size outputs by its
// non-zero dimensions (a sum over the empty axis is [1073741824]).
func (d decoder) dims(path string, shape []int64) ([]int, error) {
	if len(shape) > MaxRank {
		return nil, d.errorf(path, "has %d dimensions, at most %d are supported", len(shape), MaxRank)
	}
	dims := make([]int, len(shape))
	for i, s := range shape {
		if s < 0 {
			return nil, d.errorf(path+"["+strconv.Itoa(i)+"]", "%d is negative", s)
		}
		if s > tensor.MaxDim {
			return nil, d.errorf(path+"["+strconv.Itoa(i)+"]", "%d is more than %d, the largest dimension", s, tensor.MaxDim)
		}
		dims[i] = int(s)
	}
	if tensor.CheckShape(dims) != nil {
		return nil, d.errorf(path, "%s has too many elements: its non-zero dimensions may multiply to at most %d, even when another is 0", tensor.ShapeString(dims), tensor.MaxElements)
	}
	return dims, nil
}
