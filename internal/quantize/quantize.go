// Package quantize rewrites float32 ONNX models into int8 ones (issue 14):
// `spindle model quantize` and `spindle deploy --quantize int8`.
//
// Dynamic quantizes as ONNX Runtime's quantize_dynamic does, and writes the
// same graph: each Gather from a 2-D float32 table (an embedding) reads an
// int8 copy and dequantizes what it read, and each MatMul whose B is a
// constant 2-D float32 weight becomes
//
//	a_q, a_scale, a_zp = DynamicQuantizeLinear(A)      (once per A)
//	y_int = MatMulInteger(a_q, W_q, a_zp, W_zp)
//	Y = Mul(Cast(y_int, to=float), Mul(a_scale, W_scale))
//
// with W quantized once to int8, symmetric (zero point 0, scale max|w|/127,
// per tensor or per output column), rounding half to even. The output loads
// in ONNX Runtime as well as in Spindle, whose fuser runs each such group as
// one int8 multiply with a float epilogue. MatMuls of two activations
// (attention's scores) stay float32.
package quantize

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// Options are quantize_dynamic's options that Spindle implements.
type Options struct {
	// PerChannel gives each output column of a weight its own scale
	// (ORT's per_channel); otherwise one scale per weight.
	PerChannel bool
	// ReduceRange quantizes weights to 7 bits, [-64, 64] (ORT's
	// reduce_range, for CPUs without VNNI whose u8·s8 sums saturate).
	ReduceRange bool
	// OpTypes lists the op types to quantize: MatMul, Gather (embedding
	// tables); empty means both.
	OpTypes []string
	// Exclude lists node names to leave in float32.
	Exclude []string
}

// ErrOption reports an option Dynamic cannot honour.
var ErrOption = errors.New("invalid quantize option")

// Report says what Dynamic did.
type Report struct {
	// Quantized counts the nodes rewritten; Weights the weights quantized.
	Quantized int `json:"quantized"`
	Weights   int `json:"weights"`
	// FloatBytes is the size of the float32 weights replaced,
	// QuantizedBytes that of their int8 versions with scales.
	FloatBytes     int64 `json:"float_bytes"`
	QuantizedBytes int64 `json:"quantized_bytes"`
	// DataFile is the external data file written beside the model.
	DataFile string `json:"data_file"`
}

// Dynamic reads the model at in and writes its dynamically quantized form
// to out, with every initializer in out's base name plus ".data" beside it
// (page-aligned, so Spindle maps the int8 weights in place).
func Dynamic(in, out string, opt Options) (Report, error) {
	var rep Report
	ops := map[string]bool{"MatMul": true, "Gather": true}
	if len(opt.OpTypes) > 0 {
		ops = map[string]bool{}
	}
	for _, op := range opt.OpTypes {
		if op != "MatMul" && op != "Gather" {
			return rep, fmt.Errorf("%w: op type %q: MatMul and Gather are quantized (dynamic)", ErrOption, op)
		}
		ops[op] = true
	}
	src, err := onnx.Load(in, onnx.Mmap)
	if err != nil {
		return rep, err
	}
	defer src.Close()
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
	qmax := float64(127)
	if opt.ReduceRange {
		qmax = 64
	}

	type qweight struct{ q, scale, zp string }
	qw := map[string]qweight{}
	type qact struct{ q, scale, zp string }
	qa := map[string]qact{}
	var nodes []*onnxpb.NodeProto
	var newInits []*onnxpb.TensorProto
	addInit := func(name string, t *tensor.Tensor) {
		dims := make([]int64, len(t.Shape))
		for i, d := range t.Shape {
			dims[i] = int64(d)
		}
		dt := int32(t.DType)
		meta := &onnxpb.TensorProto{Name: proto.String(name), DataType: &dt, Dims: dims}
		newInits = append(newInits, meta)
		metas[name] = meta
		weights[name] = t
	}
	opset := int64(0)
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			opset = o.GetVersion()
		}
	}
	for _, n := range g.GetNode() {
		if t := embedding(n, weights, metas, exclude); t != nil && ops["Gather"] {
			// Gather(table) -> DequantizeLinear(Gather(table_q)): the
			// table stays int8 in memory, rows widened as they are read.
			// Per channel means one scale per column (the output's last
			// axis), which DequantizeLinear takes from opset 13.
			data, y := n.GetInput()[0], n.GetOutput()[0]
			perChannel := opt.PerChannel && opset >= 13
			wq, ok := qw[data]
			if !ok {
				wq = qweight{data + "_quantized", data + "_scale", data + "_zero_point"}
				q, scale, zp := quantizeWeight(t, perChannel, qmax)
				addInit(wq.q, q)
				addInit(wq.scale, scale)
				addInit(wq.zp, zp)
				qw[data] = wq
				rep.Weights++
				rep.FloatBytes += int64(4 * t.Len())
				rep.QuantizedBytes += int64(q.Len() + 4*scale.Len() + zp.Len())
			}
			gather := proto.Clone(n).(*onnxpb.NodeProto)
			gather.Input = append([]string{wq.q}, n.GetInput()[1:]...)
			gather.Output = []string{y + "_quantized"}
			dq := &onnxpb.NodeProto{Name: proto.String(n.GetName() + "_dequantize"), OpType: proto.String("DequantizeLinear"),
				Input: []string{y + "_quantized", wq.scale, wq.zp}, Output: []string{y}}
			if perChannel {
				axis := int64(-1)
				dq.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: &axis}}
			}
			nodes = append(nodes, gather, dq)
			rep.Quantized++
			continue
		}
		w := quantizable(n, weights, metas, exclude)
		if w == nil || !ops["MatMul"] {
			nodes = append(nodes, n)
			continue
		}
		a, b, y := n.GetInput()[0], n.GetInput()[1], n.GetOutput()[0]
		wq, ok := qw[b]
		if !ok {
			wq = qweight{b + "_quantized", b + "_scale", b + "_zero_point"}
			q, scale, zp := quantizeWeight(w, opt.PerChannel, qmax)
			addInit(wq.q, q)
			addInit(wq.scale, scale)
			addInit(wq.zp, zp)
			qw[b] = wq
			rep.Weights++
			rep.FloatBytes += int64(4 * w.Len())
			rep.QuantizedBytes += int64(q.Len() + 4*scale.Len() + zp.Len())
		}
		aq, ok := qa[a]
		if !ok {
			aq = qact{a + "_quantized", a + "_scale", a + "_zero_point"}
			nodes = append(nodes, &onnxpb.NodeProto{Name: proto.String(a + "_QuantizeLinear"), OpType: proto.String("DynamicQuantizeLinear"),
				Input: []string{a}, Output: []string{aq.q, aq.scale, aq.zp}})
			qa[a] = aq
		}
		name := n.GetName()
		if name == "" {
			name = y
		}
		to := int64(tensor.Float32)
		nodes = append(nodes,
			&onnxpb.NodeProto{Name: proto.String(name + "_quant"), OpType: proto.String("MatMulInteger"),
				Input: []string{aq.q, wq.q, aq.zp, wq.zp}, Output: []string{y + "_output_quantized"}},
			&onnxpb.NodeProto{Name: proto.String(name + "_quant_cast"), OpType: proto.String("Cast"),
				Input: []string{y + "_output_quantized"}, Output: []string{y + "_output_quantized_cast_output"},
				Attribute: []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: &to}}},
			&onnxpb.NodeProto{Name: proto.String(name + "_quant_scales_mul"), OpType: proto.String("Mul"),
				Input: []string{aq.scale, wq.scale}, Output: []string{y + "_quant_scales_mul_output"}},
			&onnxpb.NodeProto{Name: proto.String(name + "_quant_output_scale_mul"), OpType: proto.String("Mul"),
				Input: []string{y + "_output_quantized_cast_output", y + "_quant_scales_mul_output"}, Output: []string{y}},
		)
		rep.Quantized++
	}
	g.Node = nodes
	// Drop the float weights nothing reads any more.
	used := map[string]bool{}
	markUsed(g, used)
	var inits []*onnxpb.TensorProto
	for _, t := range append(g.GetInitializer(), newInits...) {
		if used[t.GetName()] {
			inits = append(inits, t)
		}
	}
	g.Initializer = inits
	raiseOpset(m, 11) // DynamicQuantizeLinear
	rep.DataFile = filepath.Base(out) + ".data"
	if err := write(m, weights, out, rep.DataFile); err != nil {
		return rep, err
	}
	return rep, nil
}

// quantizable returns node n's weight when n is a MatMul to quantize: a
// default-domain MatMul, not excluded, whose B is a 2-D float32 initializer.
func quantizable(n *onnxpb.NodeProto, weights map[string]*tensor.Tensor, metas map[string]*onnxpb.TensorProto, exclude map[string]bool) *tensor.Tensor {
	if n.GetOpType() != "MatMul" || n.GetDomain() != "" && n.GetDomain() != "ai.onnx" || exclude[n.GetName()] || len(n.GetInput()) != 2 || len(n.GetOutput()) != 1 {
		return nil
	}
	meta, w := metas[n.GetInput()[1]], weights[n.GetInput()[1]]
	if meta == nil || w == nil || meta.GetDataType() != int32(tensor.Float32) || w.DType != tensor.Float32 || len(w.Shape) != 2 || w.Len() == 0 {
		return nil
	}
	return w
}

// embedding returns node n's table when n is a Gather to quantize: a
// default-domain Gather along axis 0, not excluded, of a 2-D float32
// initializer (an embedding table: per-channel scales are per column).
func embedding(n *onnxpb.NodeProto, weights map[string]*tensor.Tensor, metas map[string]*onnxpb.TensorProto, exclude map[string]bool) *tensor.Tensor {
	if n.GetOpType() != "Gather" || n.GetDomain() != "" && n.GetDomain() != "ai.onnx" || exclude[n.GetName()] || len(n.GetInput()) != 2 || len(n.GetOutput()) != 1 {
		return nil
	}
	for _, a := range n.GetAttribute() {
		if a.GetName() == "axis" && a.GetI() != 0 {
			return nil
		}
	}
	meta, t := metas[n.GetInput()[0]], weights[n.GetInput()[0]]
	if meta == nil || t == nil || meta.GetDataType() != int32(tensor.Float32) || t.DType != tensor.Float32 || len(t.Shape) != 2 || t.Len() == 0 {
		return nil
	}
	return t
}

// quantizeWeight returns w [K, N] as int8 with its scale and zero point
// (scalars, or [N] per channel): symmetric, scale = max|w|/qmax (1 for an
// all-zero weight), q = clamp(roundEven(w/scale), -qmax, qmax).
func quantizeWeight(w *tensor.Tensor, perChannel bool, qmax float64) (q, scale, zp *tensor.Tensor) {
	K, N := w.Shape[0], w.Shape[1]
	groups := 1
	if perChannel {
		groups = N
	}
	absmax := make([]float32, groups)
	for k := 0; k < K; k++ {
		for c, v := range w.F32[k*N : (k+1)*N] {
			g := 0
			if groups > 1 {
				g = c
			}
			absmax[g] = max(absmax[g], float32(math.Abs(float64(v))))
		}
	}
	scales := make([]float32, groups)
	for j, a := range absmax {
		scales[j] = 1
		if a > 0 {
			scales[j] = a / float32(qmax)
		}
	}
	q = tensor.New(tensor.Int8, K, N)
	for k := 0; k < K; k++ {
		for c := 0; c < N; c++ {
			s := scales[0]
			if groups > 1 {
				s = scales[c]
			}
			v := math.RoundToEven(float64(w.F32[k*N+c] / s))
			q.I8[k*N+c] = int8(max(-qmax, min(qmax, v)))
		}
	}
	if groups == 1 {
		return q, tensor.FromF32(scales), &tensor.Tensor{DType: tensor.Int8, I8: []int8{0}}
	}
	return q, tensor.FromF32(scales, N), tensor.New(tensor.Int8, N)
}

// markUsed records every value name g's nodes and their subgraphs read,
// and g's outputs.
func markUsed(g *onnxpb.GraphProto, used map[string]bool) {
	for _, o := range g.GetOutput() {
		used[o.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			used[in] = true
		}
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil {
				markUsed(a.GetG(), used)
			}
			for _, sg := range a.GetGraphs() {
				markUsed(sg, used)
			}
		}
	}
}

// raiseOpset makes the default domain's opset at least v.
func raiseOpset(m *onnxpb.ModelProto, v int64) {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			if o.GetVersion() < v {
				o.Version = proto.Int64(v)
			}
			return
		}
	}
	m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(""), Version: proto.Int64(v)})
}

// align is the offset alignment of tensors in the data file: a page.
const align = 4096

// write saves m to out with every initializer's bytes in dataFile beside
// it, each at a page-aligned offset.
func write(m *onnxpb.ModelProto, weights map[string]*tensor.Tensor, out, dataFile string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(filepath.Dir(out), dataFile))
	if err != nil {
		return err
	}
	defer f.Close()
	var off int64
	for _, t := range m.GetGraph().GetInitializer() {
		w := weights[t.GetName()]
		if w == nil {
			return fmt.Errorf("initializer %q has no data", t.GetName())
		}
		raw := w.Bytes()
		if t.GetDataType() == int32(tensor.Float16) && w.DType == tensor.Float32 {
			// The loader widened it; the file keeps the model's type.
			half := make([]byte, 2*len(w.F32))
			for i, v := range w.F32 {
				h := tensor.FloatToHalf(v)
				half[2*i], half[2*i+1] = byte(h), byte(h>>8)
			}
			raw = half
		} else if int32(w.DType) != t.GetDataType() {
			return fmt.Errorf("initializer %q: dtype %s in memory, %d in the model", t.GetName(), w.DType, t.GetDataType())
		}
		if pad := (align - off%align) % align; pad > 0 {
			if _, err := f.Write(make([]byte, pad)); err != nil {
				return err
			}
			off += pad
		}
		if _, err := f.Write(raw); err != nil {
			return err
		}
		loc := onnxpb.TensorProto_EXTERNAL
		t.DataLocation = &loc
		t.RawData, t.FloatData, t.Int32Data, t.Int64Data, t.DoubleData, t.Uint64Data = nil, nil, nil, nil, nil, nil
		t.ExternalData = []*onnxpb.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(dataFile)},
			{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(off, 10))},
			{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))},
		}
		off += int64(len(raw))
	}
	if err := f.Close(); err != nil {
		return err
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
