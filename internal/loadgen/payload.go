package loadgen

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/tensor"
)

// Payload gives the body of the i-th request (i counts from 0). A nil Payload
// means requests without a body.
type Payload interface {
	Body(i int) []byte
	ContentType() string
}

// Bodies is a Payload that cycles through fixed bodies of one content type.
type Bodies struct {
	Data [][]byte
	Type string
}

// Body returns the (i mod len)-th body, or nil when there are none.
func (b *Bodies) Body(i int) []byte {
	if len(b.Data) == 0 {
		return nil
	}
	return b.Data[i%len(b.Data)]
}

// ContentType returns Type.
func (b *Bodies) ContentType() string { return b.Type }

var _ Payload = (*Bodies)(nil)

// JSONBody is a Payload of one fixed JSON body (a request file).
func JSONBody(data []byte) *Bodies {
	return &Bodies{Data: [][]byte{data}, Type: "application/json"}
}

// OIPRequest encodes inputs as one OIP v2 inference request body, inputs in
// name order.
func OIPRequest(inputs map[string]*tensor.Tensor) ([]byte, error) {
	names := make([]string, 0, len(inputs))
	for n := range inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	req := oip.InferRequest{}
	for _, n := range names {
		req.Inputs = append(req.Inputs, oip.InputFromTensor(n, inputs[n]))
	}
	var buf bytes.Buffer
	if err := oip.EncodeRequest(&buf, &req); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// RandomInput describes a generated input tensor: floats uniform in [0, 1),
// integers uniform in [0, 100) (valid token ids for any vocabulary the
// generated models use), booleans true.
type RandomInput struct {
	Name  string
	DType tensor.DType
	Shape []int
}

// maxRandomElements bounds a generated tensor (64 Mi elements).
const maxRandomElements = 1 << 26

// ParseRandomInput parses NAME=DATATYPE:D1xD2x..., e.g.
// "input=FP32:1x1x28x28"; DATATYPE is an OIP datatype name.
func ParseRandomInput(s string) (RandomInput, error) {
	name, spec, ok := strings.Cut(s, "=")
	dt, dims, ok2 := strings.Cut(spec, ":")
	if !ok || !ok2 || name == "" || dims == "" {
		return RandomInput{}, fmt.Errorf("random input %q: want NAME=DATATYPE:D1xD2x... (e.g. input=FP32:1x1x28x28)", s)
	}
	d, err := oip.DTypeOf(strings.ToUpper(dt))
	if err != nil {
		return RandomInput{}, fmt.Errorf("random input %q: datatype: %w", s, err)
	}
	if d == tensor.Float16 {
		// Sent as FP32: Spindle holds float16 as float32, and a float16
		// input takes float32 data.
		d = tensor.Float32
	}
	in := RandomInput{Name: name, DType: d}
	n := 1
	for _, f := range strings.Split(dims, "x") {
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 {
			return RandomInput{}, fmt.Errorf("random input %q: dimension %q must be a whole number >= 1", s, f)
		}
		if n > maxRandomElements/v {
			return RandomInput{}, fmt.Errorf("random input %q: more than %d elements", s, maxRandomElements)
		}
		n *= v
		in.Shape = append(in.Shape, v)
	}
	return in, nil
}

// fill returns a tensor for in with values from rng.
func (in RandomInput) fill(rng *rand.Rand) *tensor.Tensor {
	t := tensor.New(in.DType, in.Shape...)
	for i := range t.Len() {
		switch in.DType {
		case tensor.Float32:
			t.F32[i] = rng.Float32()
		case tensor.Float64:
			t.F64[i] = rng.Float64()
		case tensor.Int64:
			t.I64[i] = rng.Int64N(100)
		case tensor.Int32:
			t.I32[i] = rng.Int32N(100)
		case tensor.Int8:
			t.I8[i] = int8(rng.IntN(100))
		case tensor.Uint8:
			t.U8[i] = uint8(rng.IntN(100))
		case tensor.Int16:
			t.I16[i] = int16(rng.IntN(100))
		case tensor.Uint16:
			t.U16[i] = uint16(rng.IntN(100))
		case tensor.Uint32:
			t.U32[i] = uint32(rng.IntN(100))
		case tensor.Uint64:
			t.U64[i] = uint64(rng.IntN(100))
		case tensor.Bool:
			t.B[i] = true
		}
	}
	return t
}

// RandomOIP returns a Payload of n different OIP requests (n >= 1), each with
// every input of specs filled from seed; requests cycle through them.
func RandomOIP(specs []RandomInput, n int, seed uint64) (*Bodies, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("random inputs: none given")
	}
	rng := rand.New(rand.NewPCG(seed, 0xb0d1e5))
	b := &Bodies{Type: "application/json"}
	for range max(n, 1) {
		ins := map[string]*tensor.Tensor{}
		for _, s := range specs {
			if _, dup := ins[s.Name]; dup {
				return nil, fmt.Errorf("random input %q: given twice", s.Name)
			}
			ins[s.Name] = s.fill(rng)
		}
		body, err := OIPRequest(ins)
		if err != nil {
			return nil, err
		}
		b.Data = append(b.Data, body)
	}
	return b, nil
}
