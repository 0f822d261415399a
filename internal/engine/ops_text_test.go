package engine

import (
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
)

// TestTextAndLpOps checks string ops' and the Lp and group normalisation
// ops' results on hand-worked cases and their errors; ONNX Runtime agrees
// on wider cases (internal/difftest TestTextOps, TestLaterOpsets).
func TestTextAndLpOps(t *testing.T) {
	runTensorCases(t, []tensorCase{
		{name: "string concat broadcasts", opset: 20, op: "StringConcat", inputs: ins(strs([]string{"a", "b"}, 2), strs([]string{"!"}, 1)), want: outs(strs([]string{"a!", "b!"}, 2))},
		{name: "split on spaces", opset: 20, op: "StringSplit", inputs: ins(strs([]string{"  a  bc d ", "", "x"}, 3)),
			want: outs(strs([]string{"a", "bc", "d", "", "", "", "x", "", ""}, 3, 3), i64([]int64{3, 0, 1}, 3))},
		{name: "split on spaces, maxsplit 1", opset: 20, op: "StringSplit", attrs: []modelgen.Attr{modelgen.AInt("maxsplit", 1)}, inputs: ins(strs([]string{" a b  c  "}, 1)),
			want: outs(strs([]string{"a", "b  c"}, 1, 2), i64([]int64{2}, 1))},
		{name: "split on a delimiter keeps empty parts", opset: 20, op: "StringSplit", attrs: []modelgen.Attr{modelgen.AString("delimiter", "::")}, inputs: ins(strs([]string{"a::::b", "c"}, 2)),
			want: outs(strs([]string{"a", "", "b", "c", "", ""}, 2, 3), i64([]int64{3, 1}, 2))},
		{name: "regex full match", opset: 20, op: "RegexFullMatch", attrs: []modelgen.Attr{modelgen.AString("pattern", "[a-c]+|x")}, inputs: ins(strs([]string{"abc", "abcd", "x", "xx"}, 4)),
			want: outs(tens([]bool{true, false, true, false}, 4))},
		{name: "lp normalization l1", op: "LpNormalization", attrs: []modelgen.Attr{modelgen.AInt("p", 1)}, inputs: ins(f32([]float32{1, -3, 0, 0}, 2, 2)), want: outs(f32([]float32{0.25, -0.75, 0, 0}, 2, 2))},
		{name: "global lp pool", op: "GlobalLpPool", inputs: ins(f32([]float32{3, 4, 0, 0}, 1, 1, 2, 2)), want: outs(f32([]float32{5}, 1, 1, 1, 1))},
		{name: "group norm per channel", opset: 21, op: "GroupNormalization", attrs: []modelgen.Attr{modelgen.AInt("num_groups", 1), modelgen.AFloat("epsilon", 0)},
			inputs: ins(f32([]float32{1, 3}, 1, 2, 1), f32([]float32{1, 2}, 2), f32([]float32{0, 10}, 2)), want: outs(f32([]float32{-1, 12}, 1, 2, 1))},
	})
	runErrCases(t, []errCase{
		{name: "split maxsplit", opset: 20, op: "StringSplit", attrs: []modelgen.Attr{modelgen.AInt("maxsplit", -2)}, inputs: ins(strs([]string{"a"}, 1)), nout: 2, frag: []string{"maxsplit", "-2"}},
		{name: "regex pattern", opset: 20, op: "RegexFullMatch", attrs: []modelgen.Attr{modelgen.AString("pattern", "(a")}, inputs: ins(strs([]string{"a"}, 1)), frag: []string{"attribute pattern", "missing closing )"}},
		{name: "concat numbers", opset: 20, op: "StringConcat", inputs: ins(f32([]float32{1}, 1), strs([]string{"a"}, 1)), frag: []string{"input X", "float32", "string"}},
		{name: "lp normalization p 3", op: "LpNormalization", attrs: []modelgen.Attr{modelgen.AInt("p", 3)}, inputs: ins(f32([]float32{1}, 1)), frag: []string{"attribute p", "1 or 2"}},
		{name: "group norm groups", opset: 21, op: "GroupNormalization", attrs: []modelgen.Attr{modelgen.AInt("num_groups", 2)},
			inputs: ins(f32(make([]float32, 3), 1, 3, 1), f32(make([]float32, 3), 3), f32(make([]float32, 3), 3)), frag: []string{"3 channels", "2 groups"}},
		{name: "lp pool p 0", op: "LpPool", attrs: []modelgen.Attr{modelgen.AInt("p", 0), modelgen.AInts("kernel_shape", 1)}, inputs: ins(f32([]float32{1}, 1, 1, 1)), frag: []string{"attribute p", "[1, 64]"}},
	})
}
