package quantize

import (
	"context"
	"fmt"
	"math"
	"path/filepath"

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
	ops := map[string]bool{"Conv": true, "MatMul": true}
	if len(opt.OpTypes) > 0 {
		ops = map[string]bool{}
	}
	for _, op := range opt.OpTypes {
		if op != "Conv" && op != "MatMul" {
			return rep, fmt.Errorf("%w: op type %q: static quantization covers Conv and MatMul", ErrOption, op)
		}
		ops[op] = true
	}
	src, err := onnx.Load(in, onnx.Mmap)
	if err != nil {
		return rep, err
	}
	defer src.Close()
	// QuantizeLinear and DequantizeLinear exist from opset 10, per axis
	// from 13; raising a model's opset would change what other ops mean.
	switch opset := src.Opset(); {
	case opset < 10:
		return rep, fmt.Errorf("%w: the model's opset %d: static quantization needs opset 10 or later", ErrOption, opset)
	case opset < 13 && opt.PerChannel:
		return rep, fmt.Errorf("%w: per-channel: the model's opset %d has no per-axis DequantizeLinear (opset 13)", ErrOption, opset)
	}
	m := proto.Clone(src.Proto).(*onnxpb.ModelProto)
	g := m.GetGraph()
	weights := map[string]*tensor.Tensor{}
	for k, v := range src.Weights {
		weights[k] = v
	}
	metas := map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		metas[t.GetName()] = t
	}
	exclude := map[string]bool{}
	for _, n := range opt.Exclude {
		exclude[n] = true
	}
	foldBatchNorms(g, weights, metas)
	// The nodes to quantize and the activations they read.
	var targets []*onnxpb.NodeProto
	var acts []string
	seen := map[string]bool{}
	for _, n := range g.GetNode() {
		if !ops[n.GetOpType()] || staticWeight(n, weights, metas, exclude) == nil {
			continue
		}
		x := n.GetInput()[0]
		if weights[x] != nil {
			continue
		}
		targets = append(targets, n)
		if !seen[x] {
			seen[x] = true
			acts = append(acts, x)
		}
	}
	ranges, err := calibrate(src, acts, calib)
	if err != nil {
		return rep, err
	}
	type qparams struct{ scale, zp string }
	actQ := map[string]qparams{}
	var nodes []*onnxpb.NodeProto
	addInit := func(name string, t *tensor.Tensor) string {
		dims := make([]int64, len(t.Shape))
		for i, d := range t.Shape {
			dims[i] = int64(d)
		}
		dt := int32(t.DType)
		meta := &onnxpb.TensorProto{Name: proto.String(name), DataType: &dt, Dims: dims}
		g.Initializer = append(g.Initializer, meta)
		metas[name] = meta
		weights[name] = t
		return name
	}
	isTarget := map[*onnxpb.NodeProto]bool{}
	for _, n := range targets {
		isTarget[n] = true
	}
	for _, n := range g.GetNode() {
		if !isTarget[n] {
			nodes = append(nodes, n)
			continue
		}
		x := n.GetInput()[0]
		qp, ok := actQ[x]
		if !ok {
			r := ranges[x]
			scale, zp := activationParams(r[0], r[1])
			qp = qparams{addInit(x+"_scale", tensor.FromF32([]float32{scale})), addInit(x+"_zero_point", &tensor.Tensor{DType: tensor.Uint8, U8: []uint8{uint8(zp)}})}
			actQ[x] = qp
			nodes = append(nodes,
				&onnxpb.NodeProto{Name: proto.String(x + "_QuantizeLinear"), OpType: proto.String("QuantizeLinear"), Input: []string{x, qp.scale, qp.zp}, Output: []string{x + "_quantized"}},
				&onnxpb.NodeProto{Name: proto.String(x + "_DequantizeLinear"), OpType: proto.String("DequantizeLinear"), Input: []string{x + "_quantized", qp.scale, qp.zp}, Output: []string{x + "_dequantized"}})
		}
		w := staticWeight(n, weights, metas, exclude)
		wName := n.GetInput()[1]
		axis := 0 // a Conv's output channels
		if n.GetOpType() == "MatMul" {
			axis = 1
		}
		q, wScale := quantizeAxis(w, axis, opt.PerChannel)
		perChannel := wScale.Len() > 1
		zp := &tensor.Tensor{DType: tensor.Int8, I8: []int8{0}}
		if perChannel {
			zp = tensor.New(tensor.Int8, wScale.Len())
		}
		qn := addInit(wName+"_quantized", q)
		sn := addInit(wName+"_scale", wScale)
		zn := addInit(wName+"_zero_point", zp)
		dq := &onnxpb.NodeProto{Name: proto.String(wName + "_DequantizeLinear"), OpType: proto.String("DequantizeLinear"), Input: []string{qn, sn, zn}, Output: []string{wName + "_dequantized"}}
		if perChannel {
			a := int64(axis)
			dq.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: &a}}
		}
		nodes = append(nodes, dq)
		rep.Weights++
		rep.FloatBytes += int64(4 * w.Len())
		rep.QuantizedBytes += int64(q.Len() + 4*wScale.Len() + zp.Len())
		nn := proto.Clone(n).(*onnxpb.NodeProto)
		nn.Input[0], nn.Input[1] = x+"_dequantized", wName+"_dequantized"
		if n.GetOpType() == "Conv" && len(n.GetInput()) > 2 && n.GetInput()[2] != "" {
			if b := weights[n.GetInput()[2]]; b != nil && b.DType == tensor.Float32 && len(b.Shape) == 1 {
				xs := weights[qp.scale].F32[0]
				bq, bs := quantizeBias(b, xs, wScale)
				bName := n.GetInput()[2]
				bdq := &onnxpb.NodeProto{Name: proto.String(bName + "_DequantizeLinear"), OpType: proto.String("DequantizeLinear"),
					Input: []string{addInit(bName+"_quantized", bq), addInit(bName+"_scale", bs), addInit(bName+"_zero_point", zeroInt32(bs.Len()))}, Output: []string{bName + "_dequantized"}}
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
	g.Node = nodes
	used := map[string]bool{}
	markUsed(g, used)
	var inits []*onnxpb.TensorProto
	for _, t := range g.GetInitializer() {
		if used[t.GetName()] {
			inits = append(inits, t)
		}
	}
	g.Initializer = inits
	rep.DataFile = filepath.Base(out) + ".data"
	return rep, write(m, weights, out, rep.DataFile)
}

// staticWeight returns node n's weight when n is a Conv with a constant
// float32 weight of rank 3 to 5, or a MatMul with a constant 2-D one, and
// is not excluded.
func staticWeight(n *onnxpb.NodeProto, weights map[string]*tensor.Tensor, metas map[string]*onnxpb.TensorProto, exclude map[string]bool) *tensor.Tensor {
	if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" || exclude[n.GetName()] || len(n.GetInput()) < 2 || len(n.GetOutput()) != 1 {
		return nil
	}
	meta, w := metas[n.GetInput()[1]], weights[n.GetInput()[1]]
	if meta == nil || w == nil || meta.GetDataType() != int32(tensor.Float32) || w.DType != tensor.Float32 || w.Len() == 0 {
		return nil
	}
	switch n.GetOpType() {
	case "Conv":
		if len(w.Shape) >= 3 && len(w.Shape) <= 5 {
			return w
		}
	case "MatMul":
		if len(w.Shape) == 2 && len(n.GetInput()) == 2 {
			return w
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

// quantizeAxis quantizes w to int8, symmetric ([-127, 127]), per tensor or
// with one scale per index of axis.
func quantizeAxis(w *tensor.Tensor, axis int, perChannel bool) (*tensor.Tensor, *tensor.Tensor) {
	dim := w.Shape[axis]
	inner := tensor.NumElements(w.Shape[axis+1:])
	groups := 1
	if perChannel {
		groups = dim
	}
	group := func(i int) int {
		if groups == 1 {
			return 0
		}
		return (i / inner) % dim
	}
	absmax := make([]float32, groups)
	for i, v := range w.F32 {
		absmax[group(i)] = max(absmax[group(i)], float32(math.Abs(float64(v))))
	}
	scales := make([]float32, groups)
	for i, a := range absmax {
		scales[i] = 1
		if a > 0 {
			scales[i] = a / 127
		}
	}
	q := tensor.New(tensor.Int8, w.Shape...)
	for i, v := range w.F32 {
		q.I8[i] = int8(max(-127, min(127, math.RoundToEven(float64(v/scales[group(i)])))))
	}
	if groups == 1 {
		return q, tensor.FromF32(scales)
	}
	return q, tensor.FromF32(scales, groups)
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
func foldBatchNorms(g *onnxpb.GraphProto, weights map[string]*tensor.Tensor, metas map[string]*onnxpb.TensorProto) {
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
		t := weights[name]
		if t == nil || t.DType != tensor.Float32 || t.Len() != n || metas[name] == nil {
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
		w := weights[conv.GetInput()[1]]
		if w == nil || w.DType != tensor.Float32 || len(w.Shape) < 3 || metas[conv.GetInput()[1]] == nil {
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
		wn, bnName := name+"_bn_folded_weight", name+"_bn_folded_bias"
		for _, t := range []struct {
			name string
			t    *tensor.Tensor
		}{{wn, fw}, {bnName, fb}} {
			dims := make([]int64, len(t.t.Shape))
			for i, d := range t.t.Shape {
				dims[i] = int64(d)
			}
			meta := &onnxpb.TensorProto{Name: proto.String(t.name), DataType: proto.Int32(int32(tensor.Float32)), Dims: dims}
			g.Initializer = append(g.Initializer, meta)
			metas[t.name] = meta
			weights[t.name] = t.t
		}
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
