package engine

import (
	"fmt"
	"math"

	"github.com/spindleml/spindle/internal/tensor"
)

// Loss functions (issue 13, item 5): ONNX Runtime's CPU provider runs them
// at inference too (a model exported with its loss head).

func init() {
	register("NegativeLogLikelihoodLoss", func(n *Node) (Kernel, error) { return newLoss(n, false) })
	register("SoftmaxCrossEntropyLoss", func(n *Node) (Kernel, error) { return newLoss(n, true) })
}

// newLoss implements NegativeLogLikelihoodLoss(input [N C d...], target
// [N d...], weight [C]) and, with softmax, SoftmaxCrossEntropyLoss(scores,
// labels, weights), which is the former on LogSoftmax(scores) along axis 1
// and also returns those log-probabilities. Each position's loss is
// -input[n, t, d] × weight[t] for its target t, 0 where t is ignore_index;
// reduction none keeps them, sum adds them, mean (the default) divides the
// sum by the weights of the targets not ignored.
func newLoss(n *Node, softmax bool) (Kernel, error) {
	reduction := n.String("reduction", "mean")
	if reduction != "none" && reduction != "sum" && reduction != "mean" {
		return nil, fmt.Errorf("attribute reduction: %q, must be none, sum or mean", reduction)
	}
	ignore, hasIgnore := n.Int("ignore_index", 0), n.Has("ignore_index")
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 3); err != nil {
			return nil, err
		}
		x, target := in[0], in[1]
		if x.DType != tensor.Float32 && x.DType != tensor.Float64 || len(x.Shape) < 2 {
			return nil, fmt.Errorf("input 0: %s, must be float [N C ...]", x)
		}
		N, C := x.Shape[0], x.Shape[1]
		inner := tensor.NumElements(x.Shape[2:])
		wantT := append([]int{N}, x.Shape[2:]...)
		tg, err := castTensor(target, tensor.Int64)
		if err != nil || !equalInts(target.Shape, wantT) {
			return nil, fmt.Errorf("input 1: %s, must be integers shaped %s", target, tensor.ShapeString(wantT))
		}
		var weight []float64
		if len(in) > 2 && in[2] != nil {
			w, err := castTensor(in[2], tensor.Float64)
			if err != nil || len(w.Shape) != 1 || w.Shape[0] != C {
				return nil, fmt.Errorf("input 2 (weights): %s, must be float [%d]", in[2], C)
			}
			weight = w.F64
		}
		xf, _ := castTensor(x, tensor.Float64)
		logp := xf.F64
		if softmax {
			logp = make([]float64, len(xf.F64))
			for b := range N {
				for d := range inner {
					m := math.Inf(-1)
					for c := range C {
						m = max(m, xf.F64[(b*C+c)*inner+d])
					}
					var s float64
					for c := range C {
						s += math.Exp(xf.F64[(b*C+c)*inner+d] - m)
					}
					for c := range C {
						logp[(b*C+c)*inner+d] = xf.F64[(b*C+c)*inner+d] - m - math.Log(s)
					}
				}
			}
		}
		loss := make([]float64, N*inner)
		var total, wsum float64
		for b := range N {
			for d := range inner {
				t := tg.I64[b*inner+d]
				if hasIgnore && t == ignore {
					continue
				}
				if t < 0 || t >= int64(C) {
					return nil, fmt.Errorf("input 1: target %d at position %d is not a class in [0, %d)", t, b*inner+d, C)
				}
				w := 1.0
				if weight != nil {
					w = weight[t]
				}
				l := -logp[(b*C+int(t))*inner+d] * w
				loss[b*inner+d] = l
				total += l
				wsum += w
			}
		}
		var out *tensor.Tensor
		switch reduction {
		case "none":
			out = &tensor.Tensor{DType: tensor.Float64, Shape: wantT, F64: loss}
		case "sum":
			out = &tensor.Tensor{DType: tensor.Float64, Shape: []int{}, F64: []float64{total}}
		default:
			out = &tensor.Tensor{DType: tensor.Float64, Shape: []int{}, F64: []float64{total / wsum}}
		}
		res, err := castTensor(out, x.DType)
		if err != nil {
			return nil, err
		}
		outs := []*tensor.Tensor{res}
		if softmax {
			lp, err := castTensor(&tensor.Tensor{DType: tensor.Float64, Shape: x.Shape, F64: logp}, x.DType)
			if err != nil {
				return nil, err
			}
			outs = append(outs, lp)
		}
		return outs, nil
	}, nil
}
