package oip

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"
)

// imageRequest returns a request body carrying one 1x3x224x224 FP32 image
// (150528 values) formatted as Python's json module writes float64 values.
func imageRequest(nested bool) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := []byte(`{"id": "bench", "inputs": [{"name": "pixel_values", "shape": [1, 3, 224, 224], "datatype": "FP32", "data": `)
	if nested {
		b = append(b, "[["...)
	}
	for c := range 3 {
		if nested {
			if c > 0 {
				b = append(b, ", "...)
			}
			b = append(b, '[')
		}
		for y := range 224 {
			if nested {
				if y > 0 {
					b = append(b, ", "...)
				}
				b = append(b, '[')
			}
			for x := range 224 {
				if x > 0 || !nested && (c > 0 || y > 0) {
					b = append(b, ", "...)
				} else if !nested {
					b = append(b, '[')
				}
				b = strconv.AppendFloat(b, r.NormFloat64()*0.5, 'g', -1, 64)
			}
			if nested {
				b = append(b, ']')
			}
		}
		if nested {
			b = append(b, ']')
		}
	}
	if nested {
		b = append(b, "]]"...)
	} else {
		b = append(b, ']')
	}
	return append(b, "}]}"...)
}

func BenchmarkDecodeRequestImage(b *testing.B) {
	for _, bc := range []struct {
		name   string
		nested bool
	}{{"flat", false}, {"nested", true}} {
		body := imageRequest(bc.nested)
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				_, ts, err := DecodeRequest(bytes.NewReader(body), 0)
				if err != nil {
					b.Fatal(err)
				}
				if n := len(ts["pixel_values"].F32); n != 150528 {
					b.Fatalf("%d values", n)
				}
			}
		})
	}
}

func BenchmarkEncodeResponseImage(b *testing.B) {
	_, ts, err := DecodeRequest(bytes.NewReader(imageRequest(false)), 0)
	if err != nil {
		b.Fatal(err)
	}
	resp := &InferResponse{ModelName: "m"}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		resp.Outputs = []ResponseOutput{OutputFromTensor("y", ts["pixel_values"])}
		if err := EncodeResponse(&buf, resp); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
