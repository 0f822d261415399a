package engine

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/tensor"
)

// compileFuzzOps are ops that grow, gather, move or reshape data: with
// constant inputs, Compile folds them by running their kernels.
var compileFuzzOps = []string{
	"ConstantOfShape", "Expand", "Tile", "Range", "Concat", "GatherND", "Gather", "Reshape",
	"Transpose", "Pad", "OneHot", "Slice", "TopK", "DepthToSpace", "Unsqueeze", "Squeeze",
	"ReduceSum", "MatMul", "Add", "Mul", "Div", "CumSum", "Split", "Flatten", "Cast",
	"Resize", "EyeLike", "Trilu", "ScatterND",
	// Issue 13's ops that size their outputs from their inputs.
	"Compress", "ReverseSequence", "Unique", "CenterCropPad", "Col2Im", "AffineGrid", "HannWindow",
	"MaxUnpool", "DFT", "NonMaxSuppression", "Det", "Multinomial", "RandomUniformLike",
	// Issue 14's: fed integers by Cast (to uint8 or int8) and the constants.
	"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul",
	// Sequences made from tensors and back, sized by their inputs.
	"SplitToSequence", "ConcatFromSequence", "SequenceConstruct", "SequenceInsert", "SequenceAt", "SequenceLength",
	"BitShift", "TfIdfVectorizer",
}

// bigVal maps a byte to a small integer or, now and then, a large or extreme
// one: dimensions of 2^20 make constants of megabytes to terabytes.
func (b *fuzzBytes) bigVal() int64 {
	switch v := b.next(); v % 16 {
	case 15:
		return math.MaxInt64
	case 14:
		return math.MinInt64
	case 13:
		return 1 << 40
	case 12:
		return 1 << 20
	case 11:
		return 1 << 24
	case 10:
		return 15 << 20
	default:
		return int64(v%7) - 2
	}
}

// FuzzCompile builds small graphs of compileFuzzOps whose constant inputs
// and attributes may be huge or invalid, and compiles them, which folds what
// it can. The properties: Compile returns a model or an error, never a
// panic; it allocates no more than the model's fold budget and a fixed slack
// (a fold that asked the runtime for terabytes ended the process); and a
// model it accepts runs a small request within a memory budget or fails with
// an error. Run longer with go test -fuzz FuzzCompile ./internal/engine.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{0, 0, 1, 12, 1, 0, 12})                    // ConstantOfShape of 2^20
	f.Add([]byte{1, 2, 0, 1, 12, 12, 5, 0, 1, 12, 1, 0, 1}) // GatherND of two folded constants
	f.Add([]byte{3, 4, 1, 1, 1, 1, 4, 0, 2, 13, 0, 14})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		b := fuzzBytes(data)
		g := modelgen.NewBuilder("fuzz", []int64{11, 13, 17, 18}[b.next()%4], 1)
		g.Input("x", tensor.Float32, []int64{-1, 2})
		values := []string{"x"}
		consts := 0
		pick := func() string {
			if b.next()%2 == 0 {
				return values[b.next()%len(values)]
			}
			v := make([]int64, 1+b.next()%3)
			for i := range v {
				v[i] = b.bigVal()
			}
			consts++
			return g.Ints64(fmt.Sprintf("c%d", consts), v...)
		}
		nodes := 1 + b.next()%4
		for i := range nodes {
			op := compileFuzzOps[b.next()%len(compileFuzzOps)]
			ins := make([]string, 1+b.next()%3)
			for j := range ins {
				ins[j] = pick()
			}
			var attrs []modelgen.Attr
			for range b.next() % 3 {
				switch b.next() % 6 {
				case 0:
					attrs = append(attrs, modelgen.AInt("axis", b.bigVal()))
				case 1:
					attrs = append(attrs, modelgen.AInts("perm", b.bigVal(), b.bigVal()))
				case 2:
					attrs = append(attrs, modelgen.AInt("blocksize", b.bigVal()))
				case 3:
					attrs = append(attrs, modelgen.AInts("axes", b.bigVal()))
				case 4:
					attrs = append(attrs, tensorAttr("value", tensor.FromI64([]int64{b.bigVal()}, 1)))
				case 5:
					attrs = append(attrs, modelgen.AInt("to", b.bigVal()))
				}
			}
			out := fmt.Sprintf("v%d", i)
			g.Node(op, ins, dedupAttrs(attrs), out)
			values = append(values, out)
		}
		g.Output(values[len(values)-1], tensor.Float32, nil)
		path := filepath.Join(dir, "m.onnx")
		if err := g.Save(path, modelgen.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		src, err := onnx.Load(path, onnx.Copy)
		if err != nil {
			return
		}
		defer src.Close()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := Compile(src)
		runtime.ReadMemStats(&after)
		if used, budget := int64(after.TotalAlloc-before.TotalAlloc), foldBudget(0)+128<<20; used > budget {
			t.Fatalf("Compile allocated %d bytes, more than the fold budget and slack (%d)", used, budget)
		}
		if err != nil {
			return
		}
		x := tensor.FromF32([]float32{1, 2}, 1, 2)
		m.RunWith(context.Background(), map[string]*tensor.Tensor{"x": x}, RunOptions{MaxBytes: 64 << 20, Threads: 1})
	})
}

// dedupAttrs keeps the first attribute of each name: a node may set one once.
func dedupAttrs(attrs []modelgen.Attr) []modelgen.Attr {
	seen := map[string]bool{}
	var out []modelgen.Attr
	for _, a := range attrs {
		if !seen[a.GetName()] {
			seen[a.GetName()] = true
			out = append(out, a)
		}
	}
	return out
}
