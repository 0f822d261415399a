package quantize

import (
	"context"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// Static quantization in QDQ form, as ONNX Runtime's quantize_static with
// QuantFormat.QDQ writes it: the input of each quantized Conv and MatMul
// passes through QuantizeLinear and DequantizeLinear (uint8, asymmetric,
// the range seen on calibration data), its weight is int8 (symmetric, per
// tensor or per output channel) behind a DequantizeLinear, and a Conv's
// bias is int32 at scale x_scale·w_scale. Engines that know QDQ (Spindle's
// rewriteQDQ, ONNX Runtime's QDQ transformer) run each such node on
// integer kernels; any engine can run the graph as written.

// Calibration is one set of model inputs to calibrate activation ranges on.
type Calibration = map[string]*tensor.Tensor

// Static reads the model at in, runs it on every calibration input set to
// find the range of each tensor a quantized node reads, and writes the QDQ
// model to out (data beside it, as Dynamic). Options: PerChannel, Exclude,
// and OpTypes (Conv, MatMul; default both). ReduceRange is not used.
func Static(in, out string, opt Options, calib []Calibration) (Report, error) {
	var rep Report
	if len(calib) == 0 {
		return rep, fmt.Errorf("%w: static quantization needs at least one calibration input set", ErrOption)
	}
	ops, err := opTypes(opt.OpTypes, "static", "Conv", "MatMul")
	if err != nil {
		return rep, err
	}
	q, err := open(in, opt.Exclude)
	if err != nil {
		return rep, err
	}
	defer q.src.Close()
	// QuantizeLinear and DequantizeLinear exist from opset 10, per axis
	// from 13; raising a model's opset would change what other ops mean.
	switch opset := q.src.Opset(); {
	case opset < 10:
		return rep, fmt.Errorf("%w: the model's opset %d: static quantization needs opset 10 or later", ErrOption, opset)
	case opset < 13 && opt.PerChannel:
		return rep, fmt.Errorf("%w: per-channel: the model's opset %d has no per-axis DequantizeLinear (opset 13)", ErrOption, opset)
	}
	q.foldBatchNorms()
	// The nodes to quantize and the activations they read.
	var targets []*onnxpb.NodeProto
	var acts []string
	seen := map[string]bool{}
	for _, n := range q.g.GetNode() {
		if !ops[n.GetOpType()] || q.staticWeight(n) == nil {
			continue
		}
		x := n.GetInput()[0]
		if q.weights[x] != nil {
			continue
		}
		targets = append(targets, n)
		if !seen[x] {
			seen[x] = true
			acts = append(acts, x)
		}
	}
	ranges, err := calibrate(q.src, acts, calib)
	if err != nil {
		return rep, err
	}
	type qparams struct{ scale, zp string }
	actQ := map[string]qparams{}
	var nodes []*onnxpb.NodeProto
	isTarget := map[*onnxpb.NodeProto]bool{}
	for _, n := range targets {
		isTarget[n] = true
	}
	for _, n := range q.g.GetNode() {
		if !isTarget[n] {
			nodes = append(nodes, n)
			continue
		}
		x := n.GetInput()[0]
		qp, ok := actQ[x]
		if !ok {
			r := ranges[x]
			scale, zp := activationParams(r[0], r[1])
			qp = qparams{q.addInit(x+"_scale", tensor.FromF32([]float32{scale})), q.addInit(x+"_zero_point", &tensor.Tensor{DType: tensor.Uint8, U8: []uint8{uint8(zp)}})}
			actQ[x] = qp
			nodes = append(nodes,
				&onnxpb.NodeProto{Name: proto.String(x + "_QuantizeLinear"), OpType: proto.String("QuantizeLinear"), Input: []string{x, qp.scale, qp.zp}, Output: []string{x + "_quantized"}},
				&onnxpb.NodeProto{Name: proto.String(x + "_DequantizeLinear"), OpType: proto.String("DequantizeLinear"), Input: []string{x + "_quantized", qp.scale, qp.zp}, Output: []string{x + "_dequantized"}})
		}
		w := q.staticWeight(n)
		wName := n.GetInput()[1]
		axis := 0 // a Conv's output channels
		if n.GetOpType() == "MatMul" {
			axis = 1
		}
		wq := q.addQuantized(&rep, wName, w, axis, opt.PerChannel, 127)
		wScale := q.weights[wq.scale]
		dq := &onnxpb.NodeProto{Name: proto.String(wName + "_DequantizeLinear"), OpType: proto.String("DequantizeLinear"), Input: []string{wq.q, wq.scale, wq.zp}, Output: []string{wName + "_dequantized"}}
		if wScale.Len() > 1 {
			a := int64(axis)
			dq.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: &a}}
		}
		nodes = append(nodes, dq)
		nn := proto.Clone(n).(*onnxpb.NodeProto)
		nn.Input[0], nn.Input[1] = x+"_dequantized", wName+"_dequantized"
		if n.GetOpType() == "Conv" && len(n.GetInput()) > 2 && n.GetInput()[2] != "" {
			if b := q.weights[n.GetInput()[2]]; b != nil && b.DType == tensor.Float32 && len(b.Shape) == 1 {
				xs := q.weights[qp.scale].F32[0]
				bq, bs := quantizeBias(b, xs, wScale)
				bName := n.GetInput()[2]
				bdq := &onnxpb.NodeProto{Name: proto.String(bName + "_DequantizeLinear"), OpType: proto.String("DequantizeLinear"),
					Input: []string{q.addInit(bName+"_quantized", bq), q.addInit(bName+"_scale", bs), q.addInit(bName+"_zero_point", zeroInt32(bs.Len()))}, Output: []string{bName + "_dequantized"}}
				if bs.Len() > 1 {
					a := int64(0)
					bdq.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: &a}}
				}
				nodes = append(nodes, bdq)
				nn.Input[2] = bName + "_dequantized"
			}
		}
		nodes = append(nodes, nn)
		rep.Quantized++
	}
	q.g.Node = nodes
	rep.DataFile, err = q.save(out)
	return rep, err
}

// staticWeight returns node n's weight when n is a Conv with a constant
// float32 weight of rank 3 to 5, or a MatMul with a constant 2-D one, and
// is not excluded.
func (q *qmodel) staticWeight(n *onnxpb.NodeProto) *tensor.Tensor {
	if !q.eligible(n) || len(n.GetInput()) < 2 {
		return nil
	}
	switch n.GetOpType() {
	case "Conv":
		return q.floatInit(n.GetInput()[1], 3, 5)
	case "MatMul":
		if len(n.GetInput()) == 2 {
			return q.floatInit(n.GetInput()[1], 2, 2)
		}
	}
	return nil
}

// calibrate runs the model on every input set with acts as extra outputs
// and returns each one's [min, max] over all of them.
func calibrate(src *onnx.Model, acts []string, calib []Calibration) (map[string][2]float32, error) {
	ranges := map[string][2]float32{}
	if len(acts) == 0 {
		return ranges, nil
	}
	p := proto.Clone(src.Proto).(*onnxpb.ModelProto)
	g := p.GetGraph()
	outs := map[string]bool{}
	for _, o := range g.GetOutput() {
		outs[o.GetName()] = true
	}
	for _, a := range acts {
		if !outs[a] {
			et := int32(tensor.Float32)
			g.Output = append(g.Output, &onnxpb.ValueInfoProto{Name: proto.String(a),
				Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: &et}}}})
		}
	}
	em, err := engine.CompileWith(&onnx.Model{Proto: p, Weights: src.Weights, Dir: src.Dir}, engine.Options{NoFusion: true})
	if err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	for i, in := range calib {
		res, err := em.Run(context.Background(), in)
		if err != nil {
			return nil, fmt.Errorf("calibration input set %d: %w", i+1, err)
		}
		for _, a := range acts {
			t := res[a]
			if t == nil || t.DType != tensor.Float32 {
				return nil, fmt.Errorf("calibration: tensor %q is not float32", a)
			}
			lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
			if r, ok := ranges[a]; ok {
				lo, hi = r[0], r[1]
			}
			for _, v := range t.F32 {
				if v == v {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
			ranges[a] = [2]float32{lo, hi}
		}
	}
	return ranges, nil
}

// activationParams returns the uint8 scale and zero point of a tensor in
// [lo, hi]: the range widened to hold 0, scale (hi-lo)/255, zero point
// round(-lo/scale) (ONNX Runtime's MinMax calibration, asymmetric).
func activationParams(lo, hi float32) (float32, int32) {
	if lo > hi { // no values seen
		lo, hi = 0, 0
	}
	lo, hi = min(lo, 0), max(hi, 0)
	if hi == lo {
		return 1, 0
	}
	scale := (hi - lo) / 255
	zp := math.RoundToEven(float64(-lo / scale))
	return scale, int32(max(0, min(255, zp)))
}

// quantizeBias quantizes a Conv's float32 bias to int32 at scale
// x_scale·w_scale (one per output channel when the weight has them).
func quantizeBias(b *tensor.Tensor, xs float32, ws *tensor.Tensor) (q, scale *tensor.Tensor) {
	n := len(b.F32)
	s := make([]float32, ws.Len())
	for i, w := range ws.F32 {
		s[i] = xs * w
	}
	q = &tensor.Tensor{DType: tensor.Int32, Shape: []int{n}, I32: make([]int32, n)}
	for i, v := range b.F32 {
		sc := s[0]
		if len(s) > 1 {
			sc = s[i]
		}
		q.I32[i] = int32(max(math.MinInt32, min(math.MaxInt32, math.RoundToEven(float64(v/sc)))))
	}
	if len(s) == 1 {
		return q, tensor.FromF32(s)
	}
	return q, tensor.FromF32(s, len(s))
}

func zeroInt32(n int) *tensor.Tensor {
	if n == 1 {
		return &tensor.Tensor{DType: tensor.Int32, I32: []int32{0}}
	}
	return &tensor.Tensor{DType: tensor.Int32, Shape: []int{n}, I32: make([]int32, n)}
}

// foldBatchNorms folds each BatchNormalization that alone reads a Conv's
// output into the Conv's weight and bias (as ONNX Runtime's pre-processing
// does before quantize_static): quantized, the folded weight keeps the
// normalisation's scale in its own, per-channel, scales, and no float
// normalisation runs between int8 convolutions. Computed in float64.
func (q *qmodel) foldBatchNorms() {
	g := q.g
	readers := map[string]int{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			readers[in]++
		}
	}
	for _, o := range g.GetOutput() {
		readers[o.GetName()] += 2
	}
	producer := map[string]*onnxpb.NodeProto{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	float := func(name string, n int) []float32 {
		t := q.floatInit(name, 0, 5)
		if t == nil || t.Len() != n {
			return nil
		}
		return t.F32
	}
	dropped := map[*onnxpb.NodeProto]bool{}
	for _, bn := range g.GetNode() {
		if bn.GetOpType() != "BatchNormalization" || bn.GetDomain() != "" && bn.GetDomain() != "ai.onnx" || len(bn.GetInput()) != 5 {
			continue
		}
		if len(bn.GetOutput()) > 1 && bn.GetOutput()[1] != "" {
			continue // training outputs
		}
		conv := producer[bn.GetInput()[0]]
		if conv == nil || conv.GetOpType() != "Conv" || readers[bn.GetInput()[0]] != 1 || len(conv.GetInput()) < 2 {
			continue
		}
		w := q.floatInit(conv.GetInput()[1], 3, 5)
		if w == nil {
			continue
		}
		M := w.Shape[0]
		gamma, beta, mean, vari := float(bn.GetInput()[1], M), float(bn.GetInput()[2], M), float(bn.GetInput()[3], M), float(bn.GetInput()[4], M)
		if gamma == nil || beta == nil || mean == nil || vari == nil {
			continue
		}
		var bias []float32
		if len(conv.GetInput()) > 2 && conv.GetInput()[2] != "" {
			if bias = float(conv.GetInput()[2], M); bias == nil {
				continue
			}
		}
		eps := 1e-5
		for _, a := range bn.GetAttribute() {
			if a.GetName() == "epsilon" {
				eps = float64(a.GetF())
			}
		}
		per := w.Len() / M
		fw := tensor.New(tensor.Float32, w.Shape...)
		fb := tensor.New(tensor.Float32, M)
		for m := 0; m < M; m++ {
			s := float64(gamma[m]) / math.Sqrt(float64(vari[m])+eps)
			for i := m * per; i < (m+1)*per; i++ {
				fw.F32[i] = float32(float64(w.F32[i]) * s)
			}
			b := 0.0
			if bias != nil {
				b = float64(bias[m])
			}
			fb.F32[m] = float32((b-float64(mean[m]))*s + float64(beta[m]))
		}
		name := conv.GetName()
		if name == "" {
			name = conv.GetOutput()[0]
		}
		wn, bnName := q.addInit(name+"_bn_folded_weight", fw), q.addInit(name+"_bn_folded_bias", fb)
		in := []string{conv.GetInput()[0], wn, bnName}
		conv.Input = in
		conv.Output = []string{bn.GetOutput()[0]}
		dropped[bn] = true
	}
	if len(dropped) == 0 {
		return
	}
	var kept []*onnxpb.NodeProto
	for _, n := range g.GetNode() {
		if !dropped[n] {
			kept = append(kept, n)
		}
	}
	g.Node = kept
}
