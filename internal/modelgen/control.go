package modelgen

import (
	"github.com/spindleml/spindle/internal/tensor"
)

// DoublingLoop builds a Loop test model (issue 13): inputs x float32[2],
// limit float32 (scalar) and, when tripCount is set, M int64 (scalar);
// the loop carries s (starting at x's weight w0 = [1, 1]) and each iteration
// computes s = s*2 + x and its iteration number as float, continuing while
// sum(s) < limit (and fewer than M iterations ran). Outputs: the final s,
// then the stacks of every iteration's s [iters 2] and number [iters].
func DoublingLoop(tripCount bool) *Builder {
	b := NewBuilder("doubling_loop", 17, 1)
	b.Input("x", tensor.Float32, []int64{2})
	b.Input("limit", tensor.Float32, []int64{})
	m := ""
	if tripCount {
		b.Input("M", tensor.Int64, []int64{})
		m = "M"
	}
	b.Output("s", tensor.Float32, []int64{2})
	b.Output("states", tensor.Float32, []int64{-1, 2}, "iters")
	b.Output("steps", tensor.Float32, []int64{-1}, "iters")
	w0 := b.Init("w0", []int64{2}, []float32{1, 1})
	cond := b.Node("Less", []string{b.Node("ReduceSum", []string{w0}, []Attr{AInt("keepdims", 0)}), "limit"}, nil)

	body := b.Subgraph("body")
	body.Input("body/i", tensor.Int64, []int64{})
	body.Input("body/c", tensor.Bool, []int64{})
	body.Input("body/s", tensor.Float32, []int64{2})
	two := body.Init("body/two", []int64{}, []float32{2})
	s := body.Node("Add", []string{body.Node("Mul", []string{"body/s", two}, nil), "x"}, nil, "body/s_out")
	body.Node("Less", []string{body.Node("ReduceSum", []string{s}, []Attr{AInt("keepdims", 0)}), "limit"}, nil, "body/c_out")
	body.Node("Identity", []string{s}, nil, "body/state")
	body.Node("Cast", []string{"body/i"}, []Attr{AInt("to", int64(tensor.Float32))}, "body/step")
	body.Output("body/c_out", tensor.Bool, []int64{})
	body.Output("body/s_out", tensor.Float32, []int64{2})
	body.Output("body/state", tensor.Float32, []int64{2})
	body.Output("body/step", tensor.Float32, []int64{})
	b.Node("Loop", []string{m, cond, w0}, []Attr{AGraph("body", body)}, "s", "states", "steps")
	return b
}
