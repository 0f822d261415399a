package engine

import (
	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// rewriteQDQ turns the QDQ form of a quantized MatMul (issue 14, item 2),
//
//	y = MatMul(DequantizeLinear(a_q, a_scale, a_zp), DequantizeLinear(W_q, w_scale, w_zp))
//
// with W_q a constant 2-D 8-bit weight, into the integer form
//
//	y = Mul(Cast(MatMulInteger(a_q, W_q, a_zp, w_zp), float), Mul(a_scale, w_scale))
//
// which the fuser runs as one int8 multiply (opQMatMul), as ONNX Runtime's
// QDQ transformer turns it into MatMulIntegerToFloat: the products are
// summed exactly in int32 and scaled once, instead of dequantizing both
// operands to float32 (and folding a float32 copy of the weight, four
// times its size). A DequantizeLinear nothing else reads is dropped.
// Graphs with subgraphs are left alone (their reads are not all visible
// here). nodes are not modified.
func rewriteQDQ(g *onnxpb.GraphProto, nodes []*onnxpb.NodeProto, weights map[string]*tensor.Tensor) []*onnxpb.NodeProto {
	producer := map[string]*onnxpb.NodeProto{}
	readers := map[string]int{}
	for _, n := range nodes {
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil || len(a.GetGraphs()) > 0 {
				return nodes
			}
		}
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
		for _, in := range n.GetInput() {
			readers[in]++
		}
	}
	for _, o := range g.GetOutput() {
		readers[o.GetName()]++
	}
	one := func(name string) bool {
		t := weights[name]
		return t != nil && t.Len() == 1
	}
	dq := func(name string) *onnxpb.NodeProto {
		p := producer[name]
		if p == nil || p.GetOpType() != "DequantizeLinear" || p.GetDomain() != "" && p.GetDomain() != "ai.onnx" || len(p.GetInput()) < 2 {
			return nil
		}
		for _, a := range p.GetAttribute() {
			if a.GetName() == "block_size" && a.GetI() != 0 {
				return nil
			}
		}
		return p
	}
	var out []*onnxpb.NodeProto
	dropped := map[*onnxpb.NodeProto]bool{}
	for _, n := range nodes {
		if n.GetOpType() != "MatMul" || n.GetDomain() != "" && n.GetDomain() != "ai.onnx" || len(n.GetInput()) != 2 || len(n.GetOutput()) != 1 {
			out = append(out, n)
			continue
		}
		da, dw := dq(n.GetInput()[0]), dq(n.GetInput()[1])
		if da == nil || dw == nil {
			out = append(out, n)
			continue
		}
		aq, wq := da.GetInput()[0], dw.GetInput()[0]
		w := weights[wq]
		aOK := weights[aq] == nil && one(da.GetInput()[1]) && (len(da.GetInput()) < 3 || da.GetInput()[2] == "" || one(da.GetInput()[2]))
		wOK := w != nil && len(w.Shape) == 2 && (w.DType == tensor.Int8 || w.DType == tensor.Uint8) && qdqWeightScale(dw, weights, w.Shape[1])
		if !aOK || !wOK {
			out = append(out, n)
			continue
		}
		y := n.GetOutput()[0]
		name := n.GetName()
		if name == "" {
			name = y
		}
		args := []string{aq, wq, "", ""}
		if len(da.GetInput()) > 2 {
			args[2] = da.GetInput()[2]
		}
		if len(dw.GetInput()) > 2 {
			args[3] = dw.GetInput()[2]
		}
		for len(args) > 2 && args[len(args)-1] == "" {
			args = args[:len(args)-1]
		}
		to := int64(tensor.Float32)
		out = append(out,
			&onnxpb.NodeProto{Name: proto.String(name + "/qdq_matmul"), OpType: proto.String("MatMulInteger"), Input: args, Output: []string{y + "/qdq_int"}},
			&onnxpb.NodeProto{Name: proto.String(name + "/qdq_cast"), OpType: proto.String("Cast"), Input: []string{y + "/qdq_int"}, Output: []string{y + "/qdq_float"},
				Attribute: []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: &to}}},
			&onnxpb.NodeProto{Name: proto.String(name + "/qdq_scales"), OpType: proto.String("Mul"), Input: []string{da.GetInput()[1], dw.GetInput()[1]}, Output: []string{y + "/qdq_scale"}},
			&onnxpb.NodeProto{Name: proto.String(name + "/qdq_scale"), OpType: proto.String("Mul"), Input: []string{y + "/qdq_float", y + "/qdq_scale"}, Output: []string{y}},
		)
		for _, d := range []*onnxpb.NodeProto{da, dw} {
			readers[d.GetOutput()[0]]--
			if readers[d.GetOutput()[0]] == 0 {
				dropped[d] = true
			}
		}
	}
	if len(dropped) == 0 {
		return out
	}
	kept := out[:0:0]
	for _, n := range out {
		if !dropped[n] {
			kept = append(kept, n)
		}
	}
	return kept
}

// qdqWeightScale reports whether DequantizeLinear node dw scales a [K, N]
// weight per tensor, or per column (axis 1 or -1, N scales): the scales
// of MatMul's output columns. Its zero point must match in size.
func qdqWeightScale(dw *onnxpb.NodeProto, weights map[string]*tensor.Tensor, n int) bool {
	s := weights[dw.GetInput()[1]]
	if s == nil || s.DType != tensor.Float32 {
		return false
	}
	var zp *tensor.Tensor
	if len(dw.GetInput()) > 2 && dw.GetInput()[2] != "" {
		if zp = weights[dw.GetInput()[2]]; zp == nil {
			return false
		}
	}
	if s.Len() == 1 && len(s.Shape) <= 1 {
		return zp == nil || zp.Len() == 1
	}
	axis := int64(1)
	for _, a := range dw.GetAttribute() {
		if a.GetName() == "axis" {
			axis = a.GetI()
		}
	}
	return (axis == 1 || axis == -1) && len(s.Shape) == 1 && s.Shape[0] == n && (zp == nil || zp.Len() == n)
}
