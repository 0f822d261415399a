package engine

import (
	"context"
	"math"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestQDQMatMulRunsOnInt8 checks that MatMuls in QDQ form become fused
// int8 multiplies (no float copy of the weight, no dequantized activation)
// and compute what the float emulation (fusion off) computes, up to float32
// rounding of the sums.
func TestQDQMatMulRunsOnInt8(t *testing.T) {
	for _, signed := range []bool{false, true} {
		for _, perChannel := range []bool{false, true} {
			fused, plain := compileBoth(t, modelgen.QDQMatMul(1, signed, perChannel))
			q := 0
			for _, st := range fused.steps {
				switch st.node.OpType {
				case opQMatMul:
					q++
				case "MatMul", "DequantizeLinear":
					t.Errorf("signed=%v perChannel=%v: a %s step is left", signed, perChannel, st.node.OpType)
				}
			}
			if q != 2 {
				t.Errorf("signed=%v perChannel=%v: %d int8 multiplies, want 2", signed, perChannel, q)
			}
			x := randTensor(9, 13, 64)
			for i := range x.F32 {
				x.F32[i] *= 3
			}
			in := map[string]*tensor.Tensor{"x": x}
			want, err := plain.Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fused.Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			var worst, top float64
			for i, v := range want["y"].F32 {
				worst = max(worst, math.Abs(float64(got["y"].F32[i]-v)))
				top = max(top, math.Abs(float64(v)))
			}
			if worst > 1e-5*top {
				t.Errorf("signed=%v perChannel=%v: max |diff| %.3g against max %.3g", signed, perChannel, worst, top)
			}
		}
	}
}
