package loadgen

import (
	"bytes"
	"slices"
	"testing"

	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/tensor"
)

func TestParseRandomInput(t *testing.T) {
	tests := []struct {
		in    string
		want  RandomInput
		wantE bool
	}{
		{in: "input=FP32:1x1x28x28", want: RandomInput{Name: "input", DType: tensor.Float32, Shape: []int{1, 1, 28, 28}}},
		{in: "input_ids=int64:1x16", want: RandomInput{Name: "input_ids", DType: tensor.Int64, Shape: []int{1, 16}}},
		{in: "x=FP16:2x3", want: RandomInput{Name: "x", DType: tensor.Float32, Shape: []int{2, 3}}}, // float16 travels as FP32
		{in: "x=FP32", wantE: true},
		{in: "=FP32:1", wantE: true},
		{in: "x=FP99:1", wantE: true},
		{in: "x=FP32:1x0", wantE: true},
		{in: "x=FP32:1xa", wantE: true},
		{in: "x=FP32:100000x100000", wantE: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRandomInput(tt.in)
			if (err != nil) != tt.wantE {
				t.Fatalf("err = %v, want error %v", err, tt.wantE)
			}
			if err == nil && (got.Name != tt.want.Name || got.DType != tt.want.DType || !slices.Equal(got.Shape, tt.want.Shape)) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRandomOIPDecodes(t *testing.T) {
	specs := []RandomInput{
		{Name: "input_ids", DType: tensor.Int64, Shape: []int{1, 8}},
		{Name: "pixels", DType: tensor.Float32, Shape: []int{1, 3, 2, 2}},
	}
	p, err := RandomOIP(specs, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.ContentType() != "application/json" || len(p.Data) != 3 {
		t.Fatalf("content type %q, %d bodies", p.ContentType(), len(p.Data))
	}
	if bytes.Equal(p.Body(0), p.Body(1)) {
		t.Errorf("bodies 0 and 1 are equal; want different random data")
	}
	if !bytes.Equal(p.Body(0), p.Body(3)) {
		t.Errorf("body 3 differs from body 0; want cycling")
	}
	_, ins, err := oip.DecodeRequest(bytes.NewReader(p.Body(2)), 1<<20)
	if err != nil {
		t.Fatalf("decode generated request: %v", err)
	}
	ids, px := ins["input_ids"], ins["pixels"]
	if ids == nil || px == nil || !slices.Equal(ids.Shape, []int{1, 8}) || !slices.Equal(px.Shape, []int{1, 3, 2, 2}) {
		t.Fatalf("decoded inputs %v", ins)
	}
	for _, v := range ids.I64 {
		if v < 0 || v >= 100 {
			t.Errorf("token id %d outside [0, 100)", v)
		}
	}
	for _, v := range px.F32 {
		if v < 0 || v >= 1 {
			t.Errorf("pixel %v outside [0, 1)", v)
		}
	}
	if _, err := RandomOIP([]RandomInput{specs[0], specs[0]}, 1, 1); err == nil {
		t.Errorf("duplicate input names: no error")
	}
	if _, err := RandomOIP(nil, 1, 1); err == nil {
		t.Errorf("no inputs: no error")
	}
}
