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
	"slices"
	"strings"

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
	ops, err := opTypes(opt.OpTypes, "dynamic", "MatMul", "Gather")
	if err != nil {
		return rep, err
	}
	q, err := open(in, opt.Exclude)
	if err != nil {
		return rep, err
	}
	defer q.src.Close()
	qmax := float64(127)
	if opt.ReduceRange {
		qmax = 64
	}

	qw := map[string]qweight{}
	type qact struct{ q, scale, zp string }
	qa := map[string]qact{}
	var nodes []*onnxpb.NodeProto
	opset := q.src.Opset()
	for _, n := range q.g.GetNode() {
		if t := q.embedding(n); t != nil && ops["Gather"] {
			// Gather(table) -> DequantizeLinear(Gather(table_q)): the
			// table stays int8 in memory, rows widened as they are read.
			// Per channel means one scale per column (the output's last
			// axis), which DequantizeLinear takes from opset 13.
			data, y := n.GetInput()[0], n.GetOutput()[0]
			perChannel := opt.PerChannel && opset >= 13
			wq, ok := qw[data]
			if !ok {
				wq = q.addQuantized(&rep, data, t, 1, perChannel, qmax)
				qw[data] = wq
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
		w := q.quantizable(n)
		if w == nil || !ops["MatMul"] {
			nodes = append(nodes, n)
			continue
		}
		a, b, y := n.GetInput()[0], n.GetInput()[1], n.GetOutput()[0]
		wq, ok := qw[b]
		if !ok {
			wq = q.addQuantized(&rep, b, w, 1, opt.PerChannel, qmax) // per output column
			qw[b] = wq
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
	q.g.Node = nodes
	raiseOpset(q.m, 11) // DynamicQuantizeLinear
	rep.DataFile, err = q.save(out)
	return rep, err
}

// quantizable returns node n's weight when n is a MatMul to quantize: a
// default-domain MatMul, not excluded, whose B is a 2-D float32 initializer.
func (q *qmodel) quantizable(n *onnxpb.NodeProto) *tensor.Tensor {
	if n.GetOpType() != "MatMul" || !q.eligible(n) || len(n.GetInput()) != 2 {
		return nil
	}
	return q.floatInit(n.GetInput()[1], 2, 2)
}

// embedding returns node n's table when n is a Gather to quantize: a
// default-domain Gather along axis 0, not excluded, of a 2-D float32
// initializer (an embedding table: per-channel scales are per column).
func (q *qmodel) embedding(n *onnxpb.NodeProto) *tensor.Tensor {
	if n.GetOpType() != "Gather" || !q.eligible(n) || len(n.GetInput()) != 2 {
		return nil
	}
	for _, a := range n.GetAttribute() {
		if a.GetName() == "axis" && a.GetI() != 0 {
			return nil
		}
	}
	return q.floatInit(n.GetInput()[0], 2, 2)
}

// quantizeAxis quantizes w to int8, symmetric ([-qmax, qmax], scale =
// max|w|/qmax, 1 for all zeros, rounding half to even), per tensor or with
// one scale per index of axis, and returns it with its scales and zero
// points (zeros; scalars per tensor).
func quantizeAxis(w *tensor.Tensor, axis int, perChannel bool, qmax float64) (q, scale, zp *tensor.Tensor) {
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
			scales[i] = a / float32(qmax)
		}
	}
	q = tensor.New(tensor.Int8, w.Shape...)
	for i, v := range w.F32 {
		q.I8[i] = int8(max(-qmax, min(qmax, math.RoundToEven(float64(v/scales[group(i)])))))
	}
	if groups == 1 {
		return q, tensor.FromF32(scales), &tensor.Tensor{DType: tensor.Int8, I8: []int8{0}}
	}
	return q, tensor.FromF32(scales, groups), tensor.New(tensor.Int8, groups)
}

// qmodel is a model being quantized: a copy of the source's graph, its
// weights by name (the source's and those added) and initializer metadata.
type qmodel struct {
	src     *onnx.Model // open: close it when done
	m       *onnxpb.ModelProto
	g       *onnxpb.GraphProto
	weights map[string]*tensor.Tensor
	metas   map[string]*onnxpb.TensorProto
	exclude map[string]bool
}

// open loads the model at in (mapped) for quantizing, leaving out the
// nodes named in exclude.
func open(in string, exclude []string) (*qmodel, error) {
	src, err := onnx.Load(in, onnx.Mmap)
	if err != nil {
		return nil, err
	}
	q := &qmodel{src: src, m: proto.Clone(src.Proto).(*onnxpb.ModelProto), weights: map[string]*tensor.Tensor{},
		metas: map[string]*onnxpb.TensorProto{}, exclude: map[string]bool{}}
	q.g = q.m.GetGraph()
	for k, v := range src.Weights {
		q.weights[k] = v
	}
	for _, t := range q.g.GetInitializer() {
		q.metas[t.GetName()] = t
	}
	for _, n := range exclude {
		q.exclude[n] = true
	}
	return q, nil
}

// opTypes checks the op types given for mode against allowed and returns
// the set to quantize (all of allowed when none is given).
func opTypes(given []string, mode string, allowed ...string) (map[string]bool, error) {
	ops := map[string]bool{}
	if len(given) == 0 {
		given = allowed
	}
	for _, op := range given {
		if !slices.Contains(allowed, op) {
			return nil, fmt.Errorf("%w: op type %q: %s quantization covers %s", ErrOption, op, mode, strings.Join(allowed, " and "))
		}
		ops[op] = true
	}
	return ops, nil
}

// eligible reports whether n is a default-domain node with one output that
// is not excluded.
func (q *qmodel) eligible(n *onnxpb.NodeProto) bool {
	return (n.GetDomain() == "" || n.GetDomain() == "ai.onnx") && !q.exclude[n.GetName()] && len(n.GetOutput()) == 1
}

// floatInit returns initializer name when it is float32 in the model and
// in memory, non-empty, of a rank in [lo, hi]; nil otherwise.
func (q *qmodel) floatInit(name string, lo, hi int) *tensor.Tensor {
	meta, w := q.metas[name], q.weights[name]
	if meta == nil || w == nil || meta.GetDataType() != int32(tensor.Float32) || w.DType != tensor.Float32 || w.Len() == 0 || len(w.Shape) < lo || len(w.Shape) > hi {
		return nil
	}
	return w
}

// addInit adds initializer name holding t and returns the name.
func (q *qmodel) addInit(name string, t *tensor.Tensor) string {
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = int64(d)
	}
	meta := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(t.DType)), Dims: dims}
	q.g.Initializer = append(q.g.Initializer, meta)
	q.metas[name] = meta
	q.weights[name] = t
	return name
}

// qweight names an int8 weight's initializers.
type qweight struct{ q, scale, zp string }

// addQuantized adds weight name quantized along axis (quantizeAxis) as
// name_quantized, name_scale and name_zero_point, counting it in rep.
func (q *qmodel) addQuantized(rep *Report, name string, w *tensor.Tensor, axis int, perChannel bool, qmax float64) qweight {
	qt, scale, zp := quantizeAxis(w, axis, perChannel, qmax)
	rep.Weights++
	rep.FloatBytes += int64(4 * w.Len())
	rep.QuantizedBytes += int64(qt.Len() + 4*scale.Len() + zp.Len())
	return qweight{q.addInit(name+"_quantized", qt), q.addInit(name+"_scale", scale), q.addInit(name+"_zero_point", zp)}
}

// save drops the initializers nothing reads any more (the float weights
// replaced) and writes the model to out, its data beside it; it returns the
// data file's name.
func (q *qmodel) save(out string) (string, error) {
	used := map[string]bool{}
	markUsed(q.g, used)
	var inits []*onnxpb.TensorProto
	for _, t := range q.g.GetInitializer() {
		if used[t.GetName()] {
			inits = append(inits, t)
		}
	}
	q.g.Initializer = inits
	dataFile := filepath.Base(out) + ".data"
	return dataFile, write(q.m, q.weights, out, dataFile)
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

// write saves m to out with every initializer's bytes in dataFile beside
// it (onnx.DataWriter: page-aligned, mapped in place when loaded).
func write(m *onnxpb.ModelProto, weights map[string]*tensor.Tensor, out, dataFile string) error {
	data, err := onnx.CreateData(filepath.Dir(out), dataFile)
	if err != nil {
		return err
	}
	defer data.Close()
	for _, t := range m.GetGraph().GetInitializer() {
		w := weights[t.GetName()]
		if w == nil {
			return fmt.Errorf("initializer %q has no data", t.GetName())
		}
		raw := w.Bytes()
		if int32(w.DType) != t.GetDataType() {
			return fmt.Errorf("initializer %q: dtype %s in memory, %d in the model", t.GetName(), w.DType, t.GetDataType())
		}
		if err := data.Put(t, raw); err != nil {
			return err
		}
	}
	if err := data.Close(); err != nil {
		return err
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
