package engine

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// The com.microsoft ops of quantized exports (issue 14), expanded like the
// other contrib ops (contrib.go) into default-domain ops: the integer
// multiplies into MatMulInteger and its float epilogue (Cast, Mul by the
// scales, Add of the bias), which the fuser runs as one step on the int8
// kernels; the QLinear element-wise ops into DequantizeLinear, the float op
// and QuantizeLinear, as ONNX Runtime's QDQ transformer defines them.

// opDequantizeNBits widens MatMulNBits' packed weight to float32 [K, N];
// its inputs are constant, so Compile folds it once.
const opDequantizeNBits = "spindle.DequantizeNBits"

func init() {
	contribOps["DynamicQuantizeMatMul"] = func(e *expander, pn *onnxpb.NodeProto) error {
		q := e.dynamicQuantize(inputAt(pn, 0))
		e.out(pn, 0, e.intToFloat(q.name, inputAt(pn, 1), q.name+"_zp", inputAt(pn, 3), e.node("Mul", q.name+"_scale", inputAt(pn, 2)), inputAt(pn, 4)))
		return nil
	}
	contribOps["MatMulIntegerToFloat"] = func(e *expander, pn *onnxpb.NodeProto) error {
		scale := e.node("Mul", inputAt(pn, 2), inputAt(pn, 3))
		e.out(pn, 0, e.intToFloat(inputAt(pn, 0), inputAt(pn, 1), inputAt(pn, 4), inputAt(pn, 5), scale, inputAt(pn, 6)))
		return nil
	}
	contribOps["QLinearAdd"] = func(e *expander, pn *onnxpb.NodeProto) error { return e.qlinearBinary(pn, "Add") }
	contribOps["QLinearMul"] = func(e *expander, pn *onnxpb.NodeProto) error { return e.qlinearBinary(pn, "Mul") }
	contribOps["QLinearSigmoid"] = func(e *expander, pn *onnxpb.NodeProto) error {
		x := e.dq(inputAt(pn, 0), inputAt(pn, 1), inputAt(pn, 2))
		e.out(pn, 0, e.q(e.node("Sigmoid", x), inputAt(pn, 3), inputAt(pn, 4), inputAt(pn, 2)))
		return nil
	}
	contribOps["QLinearGlobalAveragePool"] = func(e *expander, pn *onnxpb.NodeProto) error {
		x := e.dq(inputAt(pn, 0), inputAt(pn, 1), inputAt(pn, 2))
		var y exNode
		if attrInt(pn, "channels_last", 0) != 0 {
			// [N, spatial..., C]: move C next to N and back.
			y = e.node(opChannelsLast, e.node("GlobalAveragePool", e.node(opChannelsFirst, x)))
		} else {
			y = e.node("GlobalAveragePool", x)
		}
		e.out(pn, 0, e.q(y, inputAt(pn, 3), inputAt(pn, 4), inputAt(pn, 2)))
		return nil
	}
	contribOps["QLinearConcat"] = func(e *expander, pn *onnxpb.NodeProto) error {
		in := pn.GetInput()
		if len(in) < 5 || (len(in)-2)%3 != 0 {
			return fmt.Errorf("%d inputs: want Y_scale, Y_zero_point and (X, X_scale, X_zero_point) triples", len(in))
		}
		var parts []any
		for i := 2; i+2 < len(in); i += 3 {
			parts = append(parts, e.dq(in[i], in[i+1], in[i+2]))
		}
		cat := e.node("Concat", parts...).with(&onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(attrInt(pn, "axis", 0))})
		e.out(pn, 0, e.q(cat, in[0], in[1], in[4]))
		return nil
	}
	contribOps["QGemm"] = (*expander).qgemm
	contribOps["QAttention"] = (*expander).qattention
	contribOps["MatMulNBits"] = (*expander).matMulNBits

	register(opDequantizeNBits, newDequantizeNBits)
	sizeFns[opDequantizeNBits] = func(n *Node, in [][]int) ([][]int, error) {
		return [][]int{{int(n.Int("K", 0)), int(n.Int("N", 0))}}, nil
	}
	register(opChannelsFirst, func(n *Node) (Kernel, error) { return newChannelMove(true), nil })
	register(opChannelsLast, func(n *Node) (Kernel, error) { return newChannelMove(false), nil })
}

// dynamicQuantize adds a DynamicQuantizeLinear of x; its outputs are the
// node's name and name+"_scale", name+"_zp".
func (e *expander) dynamicQuantize(x any) exNode {
	q := e.node("DynamicQuantizeLinear", x)
	q.pn.Output = append(q.pn.Output, q.name+"_scale", q.name+"_zp")
	return q
}

// intToFloat is float32(MatMulInteger(a, b, za, zb)) * scale (+ bias).
func (e *expander) intToFloat(a, b, za, zb string, scale exNode, bias string) exNode {
	args := []any{a, b, za, zb}
	for len(args) > 2 && args[len(args)-1] == "" {
		args = args[:len(args)-1]
	}
	mm := e.node("MatMulInteger", args...)
	y := e.node("Mul", e.node("Cast", mm).with(attrIntValue("to", int64(tensor.Float32))), scale)
	if bias != "" {
		y = e.node("Add", y, bias)
	}
	return y
}

// dq is DequantizeLinear(x, scale[, zp]).
func (e *expander) dq(x, scale, zp string) exNode {
	if zp == "" {
		return e.node("DequantizeLinear", x, scale)
	}
	return e.node("DequantizeLinear", x, scale, zp)
}

// q is QuantizeLinear(x, scale, zp); with zp absent the output takes the
// dtype of like (a zero point of the inputs) when that is given, else
// uint8.
func (e *expander) q(x any, scale, zp, like string) exNode {
	if zp == "" && like != "" {
		zero := e.node("Constant").with(attrTensor("value", &tensor.Tensor{DType: tensor.Int32, I32: []int32{0}}))
		return e.node("QuantizeLinear", x, scale, e.node("CastLike", zero, like))
	}
	if zp == "" {
		return e.node("QuantizeLinear", x, scale)
	}
	return e.node("QuantizeLinear", x, scale, zp)
}

// qattention expands QAttention(input, weight, bias, input_scale,
// weight_scale, mask_index, input_zero_point, weight_zero_point, past):
// Attention whose projection is an int8 multiply with a float epilogue
// (MatMulIntegerToFloat's). past and present are not supported.
func (e *expander) qattention(pn *onnxpb.NodeProto) error {
	heads := attrInt(pn, "num_heads", 0)
	if heads < 1 {
		return fmt.Errorf("attribute num_heads: %d, must be at least 1", heads)
	}
	if inputAt(pn, 8) != "" || len(pn.GetOutput()) > 1 && pn.GetOutput()[1] != "" {
		return fmt.Errorf("input past and output present (a decoder's key/value cache): %w", ErrUnsupported)
	}
	scale := e.node("Mul", inputAt(pn, 3), inputAt(pn, 4))
	qkv := e.intToFloat(inputAt(pn, 0), inputAt(pn, 1), inputAt(pn, 6), inputAt(pn, 7), scale, inputAt(pn, 2))
	return e.attentionOn(pn, heads, qkv, inputAt(pn, 5), "")
}

// qlinearBinary expands QLinearAdd and QLinearMul (A, A_scale, A_zp, B,
// B_scale, B_zp, C_scale, C_zp).
func (e *expander) qlinearBinary(pn *onnxpb.NodeProto, op string) error {
	a := e.dq(inputAt(pn, 0), inputAt(pn, 1), inputAt(pn, 2))
	b := e.dq(inputAt(pn, 3), inputAt(pn, 4), inputAt(pn, 5))
	e.out(pn, 0, e.q(e.node(op, a, b), inputAt(pn, 6), inputAt(pn, 7), inputAt(pn, 2)))
	return nil
}

// qgemm expands QGemm(A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale, y_zp):
// a float Gemm of the dequantized operands, C (int32, scaled by
// a_scale·b_scale) as its bias, requantised when y_scale is given.
func (e *expander) qgemm(pn *onnxpb.NodeProto) error {
	transB := attrInt(pn, "transB", 0)
	a := e.dq(inputAt(pn, 0), inputAt(pn, 1), inputAt(pn, 2))
	// b_scale is one value or one per column of op(B): axis 1 of B, or 0
	// when B is stored transposed.
	b := e.dq(inputAt(pn, 3), inputAt(pn, 4), inputAt(pn, 5)).with(attrIntValue("axis", 1-transB))
	args := []any{a, b}
	if c := inputAt(pn, 6); c != "" {
		args = append(args, e.node("Mul", e.node("Cast", c).with(attrIntValue("to", int64(tensor.Float32))), e.node("Mul", inputAt(pn, 1), inputAt(pn, 4))))
	}
	y := e.node("Gemm", args...).with(
		attrIntValue("transA", attrInt(pn, "transA", 0)), attrIntValue("transB", transB),
		&onnxpb.AttributeProto{Name: proto.String("alpha"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(attrFloat(pn, "alpha", 1))})
	if ys := inputAt(pn, 7); ys != "" {
		y = e.q(y, ys, inputAt(pn, 8), inputAt(pn, 2))
	}
	e.out(pn, 0, y)
	return nil
}

// matMulNBits expands MatMulNBits(A, B, scales, zero_points, g_idx, bias):
// A·W (+ bias) with W [K, N] widened from the packed blocks at compile time.
func (e *expander) matMulNBits(pn *onnxpb.NodeProto) error {
	if inputAt(pn, 4) != "" {
		return fmt.Errorf("input g_idx: %w", ErrUnsupported)
	}
	args := []any{inputAt(pn, 1), inputAt(pn, 2)}
	if zp := inputAt(pn, 3); zp != "" {
		args = append(args, zp)
	}
	w := e.node(opDequantizeNBits, args...)
	for _, name := range []string{"K", "N", "bits", "block_size"} {
		w = w.with(attrIntValue(name, attrInt(pn, name, 0)))
	}
	y := e.node("MatMul", inputAt(pn, 0), w)
	if bias := inputAt(pn, 5); bias != "" {
		y = e.node("Add", y, bias)
	}
	e.out(pn, 0, y)
	return nil
}

func attrIntValue(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// newDequantizeNBits widens B [N, blocks, blob] of bits-wide unsigned
// values (little end first in each byte) to float32 [K, N]:
// W[k][n] = (q - zp) · scale of k's block in row n. Zero points are
// packed bits-wide per row (uint8), or float32 per block, or absent
// (2^(bits-1)).
func newDequantizeNBits(n *Node) (Kernel, error) {
	K, N, bits, bs := int(n.Int("K", 0)), int(n.Int("N", 0)), int(n.Int("bits", 4)), int(n.Int("block_size", 0))
	if bits != 4 && bits != 8 {
		return nil, fmt.Errorf("attribute bits: %d: %w (4 and 8 are)", bits, ErrUnsupported)
	}
	if K <= 0 || N <= 0 || bs < 16 || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("attributes K %d, N %d, block_size %d: K and N must be positive, block_size a power of 2 >= 16", K, N, bs)
	}
	if int64(K)*int64(N) > 1<<31 {
		return nil, fmt.Errorf("attributes K %d, N %d: the weight is too large", K, N)
	}
	blocks := (K + bs - 1) / bs
	blob := bs * bits / 8
	perByte := 8 / bits
	mask := byte(1<<bits - 1)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 3); err != nil {
			return nil, err
		}
		b, scales := in[0], in[1]
		if b.DType != tensor.Uint8 || len(b.U8) != N*blocks*blob {
			return nil, fmt.Errorf("input B: %s, must be uint8 [%d %d %d]", b, N, blocks, blob)
		}
		if scales.DType != tensor.Float32 || len(scales.F32) != N*blocks {
			return nil, fmt.Errorf("input scales: %s, must be %d float32", scales, N*blocks)
		}
		zpOf := func(row, blk int) float32 { return float32(int(1) << (bits - 1)) }
		if len(in) > 2 && in[2] != nil {
			z := in[2]
			zrow := (blocks + perByte - 1) / perByte
			switch {
			case z.DType == tensor.Uint8 && len(z.U8) == N*zrow:
				zpOf = func(row, blk int) float32 {
					v := z.U8[row*zrow+blk/perByte] >> (bits * (blk % perByte))
					return float32(v & mask)
				}
			case z.DType == tensor.Float32 && len(z.F32) == N*blocks:
				zpOf = func(row, blk int) float32 { return z.F32[row*blocks+blk] }
			default:
				return nil, fmt.Errorf("input zero_points: %s, must be %d packed uint8 or %d float32", z, N*zrow, N*blocks)
			}
		}
		w := newF32(K, N)
		for row := 0; row < N; row++ {
			for blk := 0; blk < blocks; blk++ {
				s, zp := scales.F32[row*blocks+blk], zpOf(row, blk)
				data := b.U8[(row*blocks+blk)*blob : (row*blocks+blk+1)*blob]
				for i := 0; i < bs && blk*bs+i < K; i++ {
					v := (data[i/perByte] >> (bits * (i % perByte))) & mask
					w.F32[(blk*bs+i)*N+row] = (float32(v) - zp) * s
				}
			}
		}
		return []*tensor.Tensor{w}, nil
	}, nil
}

// Channel moves for channels-last ops: [N, spatial..., C] to [N, C,
// spatial...] and back.
const (
	opChannelsFirst = "spindle.ChannelsFirst"
	opChannelsLast  = "spindle.ChannelsLast"
)

func newChannelMove(first bool) Kernel {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		r := len(x.Shape)
		if r < 3 || x.DType.Size() == 0 {
			return nil, fmt.Errorf("input: %s, must have at least 3 axes", x)
		}
		perm := make([]int, r)
		perm[0] = 0
		for i := 1; i < r; i++ {
			if first {
				perm[i] = (i+r-3)%(r-1) + 1 // C (last) first, then the rest
			} else {
				perm[i] = i%(r-1) + 1 // spatial axes, then C
			}
		}
		shape := make([]int, r)
		st0 := contiguousStrides(x.Shape)
		st := make([]int, r)
		for i, p := range perm {
			shape[i], st[i] = x.Shape[p], st0[p]
		}
		out := newTyped(x.DType, shape...)
		if out.Len() > 0 {
			copyStrided(out, x, shape, st, 0)
		}
		return []*tensor.Tensor{out}, nil
	}
}
