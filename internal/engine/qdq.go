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
	drop := func(ds ...*onnxpb.NodeProto) {
		for _, d := range ds {
			readers[d.GetOutput()[0]]--
			if readers[d.GetOutput()[0]] == 0 {
				dropped[d] = true
			}
		}
	}
	for _, n := range nodes {
		if n.GetOpType() == "Conv" && (n.GetDomain() == "" || n.GetDomain() == "ai.onnx") {
			if conv := qdqConv(n, dq, weights, one); conv != nil {
				out = append(out, conv.nodes...)
				drop(conv.dqs...)
				continue
			}
		}
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
		wOK := w != nil && len(w.Shape) == 2 && (w.DType == tensor.Int8 || w.DType == tensor.Uint8) && qdqAxisScale(dw, weights, w.Shape[1], 1, 2)
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
		drop(da, dw)
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

// qdqRewrite is the integer form of one QDQ node and the DequantizeLinear
// nodes it no longer reads.
type qdqRewrite struct {
	nodes []*onnxpb.NodeProto
	dqs   []*onnxpb.NodeProto
}

// qdqConv rewrites a Conv in QDQ form,
//
//	y = Conv(DequantizeLinear(x_q, sx, zx), DequantizeLinear(W_q, sw, zw)[, DequantizeLinear(b_q, sb)])
//
// with W_q a constant 8-bit weight scaled per tensor or per output channel
// (axis 0) and b_q a constant int32 bias, into
//
//	y = Cast(ConvInteger(x_q, W_q, zx, zw), float) * (sx·sw)[M 1 ...] [+ b[M 1 ...]]
//
// (the bias dequantized once: its inputs are constants, so it folds), or
// returns nil. Only convolutions of one group are rewritten.
func qdqConv(n *onnxpb.NodeProto, dq func(string) *onnxpb.NodeProto, weights map[string]*tensor.Tensor, one func(string) bool) *qdqRewrite {
	in := n.GetInput()
	if len(in) < 2 || len(n.GetOutput()) != 1 {
		return nil
	}
	for _, a := range n.GetAttribute() {
		if a.GetName() == "group" && a.GetI() != 1 {
			// Grouped and depthwise convolutions stay in float: their
			// weight folds to float32 and the float depthwise kernels
			// beat an int8 product of a few rows per group.
			return nil
		}
	}
	dx, dw := dq(in[0]), dq(in[1])
	if dx == nil || dw == nil {
		return nil
	}
	xq, wq := dx.GetInput()[0], dw.GetInput()[0]
	w := weights[wq]
	if weights[xq] != nil || !one(dx.GetInput()[1]) || len(dx.GetInput()) > 2 && dx.GetInput()[2] != "" && !one(dx.GetInput()[2]) {
		return nil
	}
	if w == nil || len(w.Shape) < 3 || len(w.Shape) > 5 || w.DType != tensor.Int8 && w.DType != tensor.Uint8 || !qdqAxisScale(dw, weights, w.Shape[0], 0, len(w.Shape)) {
		return nil
	}
	M := w.Shape[0]
	var db *onnxpb.NodeProto
	if len(in) > 2 && in[2] != "" {
		if db = dq(in[2]); db == nil {
			return nil
		}
		b := weights[db.GetInput()[0]]
		if b == nil || b.DType != tensor.Int32 || len(b.Shape) != 1 || b.Shape[0] != M || !qdqAxisScale(db, weights, M, 0, 1) {
			return nil
		}
	}
	y := n.GetOutput()[0]
	name := n.GetName()
	if name == "" {
		name = y
	}
	args := []string{xq, wq, "", ""}
	if len(dx.GetInput()) > 2 {
		args[2] = dx.GetInput()[2]
	}
	if len(dw.GetInput()) > 2 {
		args[3] = dw.GetInput()[2]
	}
	for len(args) > 2 && args[len(args)-1] == "" {
		args = args[:len(args)-1]
	}
	// [M] -> [M, 1, ...]: one value per output channel of [N, M, spatial...].
	shape := make([]int64, len(w.Shape)-1)
	for i := range shape {
		shape[i] = 1
	}
	shape[0] = -1
	shapeName := name + "/qdq_channel_shape"
	r := &qdqRewrite{dqs: []*onnxpb.NodeProto{dx, dw}}
	to := int64(tensor.Float32)
	conv := proto.Clone(n).(*onnxpb.NodeProto)
	conv.Name, conv.OpType, conv.Input, conv.Output = proto.String(name+"/qdq_conv"), proto.String("ConvInteger"), args, []string{y + "/qdq_int"}
	r.nodes = append(r.nodes,
		&onnxpb.NodeProto{Name: proto.String(shapeName), OpType: proto.String("Constant"), Output: []string{shapeName},
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(),
				T: &onnxpb.TensorProto{DataType: proto.Int32(int32(tensor.Int64)), Dims: []int64{int64(len(shape))}, Int64Data: shape}}}},
		conv,
		&onnxpb.NodeProto{Name: proto.String(name + "/qdq_cast"), OpType: proto.String("Cast"), Input: []string{y + "/qdq_int"}, Output: []string{y + "/qdq_float"},
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: &to}}},
		&onnxpb.NodeProto{Name: proto.String(name + "/qdq_scales"), OpType: proto.String("Mul"), Input: []string{dx.GetInput()[1], dw.GetInput()[1]}, Output: []string{y + "/qdq_scales"}},
		&onnxpb.NodeProto{Name: proto.String(name + "/qdq_scales_shape"), OpType: proto.String("Reshape"), Input: []string{y + "/qdq_scales", shapeName}, Output: []string{y + "/qdq_scale"}},
	)
	scaled := y
	if db != nil {
		scaled = y + "/qdq_scaled"
	}
	r.nodes = append(r.nodes, &onnxpb.NodeProto{Name: proto.String(name + "/qdq_scale"), OpType: proto.String("Mul"), Input: []string{y + "/qdq_float", y + "/qdq_scale"}, Output: []string{scaled}})
	if db != nil {
		r.dqs = append(r.dqs, db)
		bf := proto.Clone(db).(*onnxpb.NodeProto)
		bf.Name, bf.Output = proto.String(name+"/qdq_bias"), []string{y + "/qdq_bias"}
		r.nodes = append(r.nodes, bf,
			&onnxpb.NodeProto{Name: proto.String(name + "/qdq_bias_shape"), OpType: proto.String("Reshape"), Input: []string{y + "/qdq_bias", shapeName}, Output: []string{y + "/qdq_bias_c"}},
			&onnxpb.NodeProto{Name: proto.String(name + "/qdq_bias_add"), OpType: proto.String("Add"), Input: []string{scaled, y + "/qdq_bias_c"}, Output: []string{y}})
	}
	return r
}

// qdqAxisScale reports whether DequantizeLinear node d, on a tensor of
// rank rank, scales per tensor, or per index of axis want (n scales; the
// axis may count from the end), with a zero point of the same size.
func qdqAxisScale(d *onnxpb.NodeProto, weights map[string]*tensor.Tensor, n int, want int64, rank int) bool {
	s := weights[d.GetInput()[1]]
	if s == nil || s.DType != tensor.Float32 {
		return false
	}
	var zp *tensor.Tensor
	if len(d.GetInput()) > 2 && d.GetInput()[2] != "" {
		if zp = weights[d.GetInput()[2]]; zp == nil {
			return false
		}
	}
	if s.Len() == 1 && len(s.Shape) <= 1 {
		return zp == nil || zp.Len() == 1
	}
	axis := int64(1)
	for _, a := range d.GetAttribute() {
		if a.GetName() == "axis" {
			axis = a.GetI()
		}
	}
	if axis < 0 {
		axis += int64(rank)
	}
	return axis == want && len(s.Shape) == 1 && s.Shape[0] == n && (zp == nil || zp.Len() == n)
}
