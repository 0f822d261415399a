package oip

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/spindleml/spindle/internal/tensor"
)

// The binary tensor data extension (Triton's, which its clients use by
// default): a body is a JSON header of the length the HTTP header
// Inference-Header-Content-Length gives, then the raw data of every tensor
// whose parameters give binary_data_size, in the order the tensors are
// listed. Raw data is each element's little-endian bytes in row-major order
// (BOOL one byte, FP16 and BF16 two); a BYTES element is a 4-byte
// little-endian length and then its bytes.

// HeaderLength is the HTTP header that carries the JSON header's length in
// a request or response with binary tensor data.
const HeaderLength = "Inference-Header-Content-Length"

// Parameter names of the extension.
const (
	// ParamBinarySize on a tensor gives the bytes of its raw data.
	ParamBinarySize = "binary_data_size"
	// ParamBinaryOutput on a request asks for every output in binary.
	ParamBinaryOutput = "binary_data_output"
	// ParamBinary on a requested output asks for it in binary (or, false,
	// in JSON).
	ParamBinary = "binary_data"
	// ParamClassCount asks for Triton's classification extension.
	ParamClassCount = "class_count"
)

// binarySection is what is left of a body's binary data to read.
type binarySection struct {
	data []byte
	read int
}

// take returns the next n bytes of the section.
func (b *binarySection) take(n int) ([]byte, bool) {
	if n > len(b.data)-b.read {
		return nil, false
	}
	out := b.data[b.read : b.read+n]
	b.read += n
	return out, true
}

// binarySize reads a tensor's binary_data_size: a non-negative integer.
func (d decoder) binarySize(path string, p Parameters) (int, bool, error) {
	v, ok := p[ParamBinarySize]
	if !ok {
		return 0, false, nil
	}
	f, isNum := v.(float64)
	if !isNum || f < 0 || f != math.Trunc(f) || f > math.MaxInt32*4 {
		return 0, true, d.errorf(path+".parameters."+ParamBinarySize, "must be a non-negative integer, not %v", v)
	}
	return int(f), true, nil
}

// binaryTensor decodes a tensor sent as binary data of size bytes.
func (d decoder) binaryTensor(path string, size int, dt tensor.DType, datatype string, shape []int) (*tensor.Tensor, error) {
	field := path + ".parameters." + ParamBinarySize
	if d.bin == nil {
		return nil, d.errorf(field, "the body has no binary data: send the %s header with the JSON header's length", HeaderLength)
	}
	raw, ok := d.bin.take(size)
	if !ok {
		return nil, d.errorf(field, "%d bytes, but only %d bytes of binary data are left", size, len(d.bin.data)-d.bin.read)
	}
	t, err := decodeRaw(raw, dt, datatype, shape)
	if err != nil {
		return nil, d.errorf(field, "%v", err)
	}
	return t, nil
}

// decodeRaw converts a tensor's raw binary data to a tensor of shape.
func decodeRaw(raw []byte, dt tensor.DType, datatype string, shape []int) (*tensor.Tensor, error) {
	n := tensor.NumElements(shape)
	if dt == tensor.String {
		t := tensor.New(tensor.String, shape...)
		rest := raw
		for i := range n {
			if len(rest) < 4 {
				return nil, fmt.Errorf("BYTES element %d: its 4-byte length is cut off (%d bytes of %d read)", i, len(raw)-len(rest), len(raw))
			}
			l := binary.LittleEndian.Uint32(rest)
			rest = rest[4:]
			if uint64(l) > uint64(len(rest)) {
				return nil, fmt.Errorf("BYTES element %d: length %d, only %d bytes left", i, l, len(rest))
			}
			t.S[i] = string(rest[:l])
			rest = rest[l:]
		}
		if len(rest) > 0 {
			return nil, fmt.Errorf("%d bytes left after the %d BYTES elements of shape %s", len(rest), n, tensor.ShapeString(shape))
		}
		return t, nil
	}
	if want := n * dt.Size(); len(raw) != want {
		return nil, fmt.Errorf("%d bytes, shape %s of %s needs %d", len(raw), tensor.ShapeString(shape), datatype, want)
	}
	// Decode widens FP16 and BF16 to float32 tensors of their values.
	return tensor.Decode(dt, shape, raw)
}

// rawData encodes t's elements as the extension lays them out, t held as
// declares (a float32 tensor of a float16 or bfloat16 output is written in
// two bytes per element).
func rawData(t *tensor.Tensor, declared tensor.DType) ([]byte, string) {
	switch {
	case t.DType == tensor.String:
		size := 0
		for _, s := range t.S {
			size += 4 + len(s)
		}
		out := make([]byte, 0, size)
		for _, s := range t.S {
			out = binary.LittleEndian.AppendUint32(out, uint32(len(s)))
			out = append(out, s...)
		}
		return out, "BYTES"
	case t.DType == tensor.Float32 && declared.Wide():
		out := make([]byte, 2*len(t.F32))
		for i, v := range t.F32 {
			h := tensor.FloatToHalf(v)
			if declared == tensor.BFloat16 {
				h = tensor.FloatToBFloat(v)
			}
			binary.LittleEndian.PutUint16(out[2*i:], h)
		}
		return out, DatatypeOf(declared)
	}
	return append([]byte(nil), t.Bytes()...), DatatypeOf(t.DType)
}

// OutputBinary returns t as a response output sent in binary: its
// parameters give binary_data_size, and its raw data is returned beside it,
// to follow the JSON header. A tensor the protocol cannot carry yields an
// output with an empty Datatype, which MarshalResponse rejects.
func OutputBinary(name string, t *tensor.Tensor, declared tensor.DType) (ResponseOutput, []byte) {
	out := ResponseOutput{Name: name, Shape: []int64{}}
	if t == nil || t.Validate() != nil || DatatypeOf(t.DType) == "" {
		return out, nil
	}
	out.Shape = make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		out.Shape[i] = int64(d)
	}
	raw, datatype := rawData(t, declared)
	out.Datatype = datatype
	out.Parameters = Parameters{ParamBinarySize: len(raw)}
	return out, raw
}

// MarshalResponse returns resp as the JSON header of a response with binary
// data (no trailing newline: its length goes in HeaderLength). Every output
// must have a datatype and either data or a binary_data_size.
func MarshalResponse(resp *InferResponse) ([]byte, error) {
	for i, o := range resp.Outputs {
		_, binary := o.Parameters[ParamBinarySize]
		if o.Datatype == "" || o.Data == nil && !binary {
			return nil, fmt.Errorf("encode response: outputs[%d] (%q) has no datatype or data: its tensor cannot be encoded", i, o.Name)
		}
	}
	return json.Marshal(resp)
}

// WantsBinary reports whether the request asks for output o (an entry of
// its outputs, or nil when it names none) in binary: by o's binary_data,
// else by the request's binary_data_output.
func (req *InferRequest) WantsBinary(o *RequestOutput) bool {
	if o != nil {
		if v, ok := o.Parameters[ParamBinary].(bool); ok {
			return v
		}
	}
	v, _ := req.Parameters[ParamBinaryOutput].(bool)
	return v
}

// checkOutputParams refuses what a requested output asks that Spindle does
// not do (the classification extension) and parameters of a wrong type.
func (d decoder) checkOutputParams(path string, p Parameters) error {
	if v, ok := p[ParamClassCount]; ok {
		if f, isNum := v.(float64); !isNum || f != 0 {
			return d.errorf(path+".parameters."+ParamClassCount, "the classification extension is not supported; ask for the output itself")
		}
	}
	if v, ok := p[ParamBinary]; ok {
		if _, isBool := v.(bool); !isBool {
			return d.errorf(path+".parameters."+ParamBinary, "must be true or false, not %s", strconv.Quote(fmt.Sprint(v)))
		}
	}
	return nil
}
