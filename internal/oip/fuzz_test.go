package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeRequest checks that DecodeRequest never panics, that every error
// wraps ErrBadRequest and is a *FieldError, and that every decoded tensor is
// valid, matches its input's shape and survives an encode/decode round trip.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		request("FP32", "[2, 2]", "[[1, 2], [3, 4.5e-3]]"),
		request("INT64", "[3]", "[1, -2, 3.0]"),
		request("BOOL", "[]", "true"),
		request("UINT8", "[2, 0]", "[[], []]"),
		request("INT8", "[1]", "[1e2]"),
		`{"id": "a\u0062", "parameters": {"x": 1}, "inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}], "outputs": [{"name": "y"}]}`,
		`{"inputs": [1,}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, tensors, err := DecodeRequest(bytes.NewReader(body), 1<<20)
		if err != nil {
			var fe *FieldError
			if !errors.Is(err, ErrBadRequest) || !errors.As(err, &fe) {
				t.Fatalf("error %q is not a *FieldError wrapping ErrBadRequest", err)
			}
			return
		}
		again := &InferRequest{}
		for _, in := range req.Inputs {
			x := tensors[in.Name]
			if err := x.Validate(); err != nil {
				t.Fatalf("input %q: invalid tensor: %v", in.Name, err)
			}
			for i, d := range x.Shape {
				if int64(d) != in.Shape[i] {
					t.Fatalf("input %q: tensor shape %v, request shape %v", in.Name, x.Shape, in.Shape)
				}
			}
			again.Inputs = append(again.Inputs, InputFromTensor(in.Name, x))
		}
		var b bytes.Buffer
		if err := EncodeRequest(&b, again); err != nil {
			t.Fatal(err)
		}
		_, tensors2, err := DecodeRequest(&b, 0)
		if err != nil {
			t.Fatalf("decode re-encoded request: %v\n%s", err, b.Bytes())
		}
		for name, x := range tensors {
			equalTensor(t, tensors2[name], x)
		}
	})
}

// FuzzValidate checks the hand-written JSON validator against encoding/json.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{`{"a": [1, -2.5e+3, true, null, "x\u00e9\n"]}`, `[01]`, `"\x"`, `{"a" 1}`, `1.`, `-`, `[1,]`, " \t\n[]\r", `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := validate(b)
		if want := json.Valid(b); (err == nil) != want {
			t.Fatalf("validate(%q) = %v, json.Valid = %v", b, err, want)
		}
		if err != nil && (err.off < 0 || err.off > len(b)) {
			t.Fatalf("validate(%q): offset %d out of range", b, err.off)
		}
	})
}

// FuzzDecodeRequestBinary feeds bodies with binary tensor data (the JSON
// header's length taken from the first byte, as a client's header would
// give it): DecodeRequestBinary never panics, errors are *FieldErrors
// wrapping ErrBadRequest, and every decoded tensor is valid, of its input's
// shape, and encodes back to binary data that decodes to the same tensor.
func FuzzDecodeRequestBinary(f *testing.F) {
	head := `{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}]}`
	seed := append([]byte{byte(len(head))}, head...)
	seed = append(seed, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 2, 0, 0, 0, 'o', 'k')
	f.Add(seed)
	f.Add([]byte{3, '{', '}', ' ', 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		n, body := int64(data[0]), data[1:]
		req, tensors, err := DecodeRequestBinary(bytes.NewReader(body), 1<<20, n)
		if err != nil {
			var fe *FieldError
			if !errors.Is(err, ErrBadRequest) || !errors.As(err, &fe) {
				t.Fatalf("error %q is not a *FieldError wrapping ErrBadRequest", err)
			}
			return
		}
		for _, in := range req.Inputs {
			x := tensors[in.Name]
			if err := x.Validate(); err != nil {
				t.Fatalf("input %q: invalid tensor: %v", in.Name, err)
			}
			if len(x.Shape) != len(in.Shape) {
				t.Fatalf("input %q: tensor shape %v, request shape %v", in.Name, x.Shape, in.Shape)
			}
			dt, _ := DTypeOf(in.Datatype)
			raw, _ := rawData(x, dt)
			back, err := decodeRaw(raw, dt, in.Datatype, x.Shape)
			if err != nil {
				t.Fatalf("input %q: its own binary data does not decode: %v", in.Name, err)
			}
			equalTensor(t, back, x)
		}
	})
}
