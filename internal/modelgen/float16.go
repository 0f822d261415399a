package modelgen

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// float16Max is the largest finite float16 value.
const float16Max = 65504

// Float16 converts b's graph to float16 the way the usual conversion does
// (onnxconverter-common's convert_float_to_float16 with keep_io_types):
// float32 initializers and Constant and ConstantOfShape values become
// float16, clamped to ±65504; Casts to float32 inside the graph cast to
// float16; float32 graph inputs and outputs stay float32, with a Cast after
// each input and before each output. Initializers that ONNX types float32
// whatever the data's type (Resize's roi and scales) stay float32. It
// returns b.
func (b *Builder) Float16() *Builder {
	g := b.g
	keep := map[string]bool{}
	for _, n := range g.Node {
		if n.GetOpType() == "Resize" {
			for _, in := range n.Input[1:] {
				keep[in] = true
			}
		}
	}
	f16 := int32(tensor.Float16)
	for _, t := range g.Initializer {
		if t.GetDataType() != int32(tensor.Float32) || keep[t.GetName()] {
			continue
		}
		b.data[t.GetName()] = halfBytes(b.data[t.GetName()])
		t.DataType = &f16
	}
	for _, n := range g.Node {
		for _, a := range n.Attribute {
			switch {
			case n.GetOpType() == "Cast" && a.GetName() == "to" && a.GetI() == int64(tensor.Float32):
				a.I = proto.Int64(int64(tensor.Float16))
			case (n.GetOpType() == "Constant" || n.GetOpType() == "ConstantOfShape") && a.GetName() == "value" &&
				a.GetT().GetDataType() == int32(tensor.Float32):
				a.T.RawData = halfBytes(a.T.RawData)
				a.T.DataType = &f16
			}
		}
	}
	rename := func(from, to string, skip *onnxpb.NodeProto) {
		for _, n := range g.Node {
			if n == skip {
				continue
			}
			for i, in := range n.Input {
				if in == from {
					n.Input[i] = to
				}
			}
		}
	}
	var head []*onnxpb.NodeProto
	for _, in := range g.Input {
		if in.GetType().GetTensorType().GetElemType() != int32(tensor.Float32) {
			continue
		}
		name := in.GetName() + "_fp16"
		rename(in.GetName(), name, nil)
		head = append(head, castNode(in.GetName(), name, tensor.Float16))
	}
	for _, out := range g.Output {
		if out.GetType().GetTensorType().GetElemType() != int32(tensor.Float32) {
			continue
		}
		name := out.GetName() + "_fp16"
		for _, n := range g.Node {
			for i, o := range n.Output {
				if o == out.GetName() {
					n.Output[i] = name
				}
			}
		}
		rename(out.GetName(), name, nil)
		g.Node = append(g.Node, castNode(name, out.GetName(), tensor.Float32))
	}
	g.Node = append(head, g.Node...)
	return b
}

func castNode(from, to string, dt tensor.DType) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: proto.String("Cast_" + to), OpType: proto.String("Cast"),
		Input: []string{from}, Output: []string{to}, Attribute: []Attr{AInt("to", int64(dt))}}
}

// halfBytes converts little-endian float32 bytes to float16 bytes, clamping
// finite values to float16's range.
func halfBytes(raw []byte) []byte {
	out := make([]byte, len(raw)/2)
	for i := range len(raw) / 4 {
		f := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		if !math.IsInf(float64(f), 0) && !math.IsNaN(float64(f)) {
			f = max(-float16Max, min(float16Max, f))
		}
		binary.LittleEndian.PutUint16(out[2*i:], tensor.FloatToHalf(f))
	}
	return out
}
