package engine

import (
	"fmt"
	"slices"
	"strings"
)

// OperatorsMarkdown returns OPERATORS.md: the op set the engine supports,
// generated from the registries (TestOperatorsDoc keeps the file current).
func OperatorsMarkdown() string {
	var b strings.Builder
	b.WriteString("# Supported operators\n\n")
	b.WriteString("Generated from the engine's op registry by `SPINDLE_UPDATE_OPS=1 go test ./internal/engine -run TestOperatorsDoc`;\n")
	b.WriteString("the test fails when this file and the code disagree. A model using an op not listed here is refused at\n")
	b.WriteString("deploy with one error naming every such op.\n\n")
	var std []string
	for _, op := range SupportedOps() {
		if !strings.HasPrefix(strings.ToLower(op), "spindle") { // internal and test-only ops
			std = append(std, op)
		}
	}
	fmt.Fprintf(&b, "## Default ONNX domain (%d ops)\n\n", len(std))
	writeOpList(&b, std)
	var ms []string
	for op := range contribOps {
		ms = append(ms, op)
	}
	slices.Sort(ms)
	fmt.Fprintf(&b, "\n## ONNX Runtime contrib ops, `com.microsoft` (%d ops)\n\n", len(ms))
	b.WriteString("Expanded at compile time into default-domain ops, which the fuser fuses again.\n")
	for op := range onnxDomainContrib {
		fmt.Fprintf(&b, "`%s` is also accepted in the default domain, where ONNX Runtime registers it.\n", op)
	}
	b.WriteString("\n")
	writeOpList(&b, ms)
	b.WriteString(`
## Element types

float32, float64, int64, int32, int16, int8, uint64, uint32, uint16, uint8, bool and string tensors.
float16 and bfloat16 are computed as float32: a Cast to them rounds to their values (ties to even),
graph inputs take float32 or OIP FP16/BF16 data (and .npy <f2 files), and outputs are answered as
FP16/BF16. float16 MatMul and Gemm weights and Gather tables stay float16 where the model file maps
them (half the memory of float32; the matrix kernels widen each block as they pack it); other float16
weights and all bfloat16 weights are widened once at compile (engine.Stats says how much of each). Casts between strings and numbers follow ONNX (the
shortest round-trip decimal; "INF", "-INF", "NaN"). Sequences of tensors and optional values (of
tensors or sequences) flow through the graph, If, Loop and SequenceMap, and are accepted as graph
inputs and outputs by the engine; the Open Inference Protocol carries tensors only.
`)
	return b.String()
}

// writeOpList writes ops as a comma-separated list, wrapped.
func writeOpList(b *strings.Builder, ops []string) {
	line := 0
	for i, op := range ops {
		s := "`" + op + "`"
		if i < len(ops)-1 {
			s += ","
		}
		if line > 0 && line+len(s)+1 > 100 {
			b.WriteString("\n")
			line = 0
		} else if line > 0 {
			b.WriteString(" ")
			line++
		}
		b.WriteString(s)
		line += len(s)
	}
	b.WriteString("\n")
}
