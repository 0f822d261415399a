package engine

import (
	"context"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestOnStepReportsEachStepOnce checks RunOptions.OnStep: one call per step
// of the compiled plan, with the fused step's joined name, also when the
// fused step's fast kernel declines and the steps it replaced run instead
// (a bias over two axes), whose own steps must not be reported again.
func TestOnStepReportsEachStepOnce(t *testing.T) {
	b := modelgen.NewBuilder("onstep", 13, 1)
	b.Input("x", tensor.Float32, []int64{3, 8})
	y := b.Node("MatMul", []string{"x", b.Normal("w", 0.3, 8, 4)}, nil)
	y = b.Node("Add", []string{y, b.Normal("bias", 0.3, 3, 4)}, nil)
	y = b.Node("Sigmoid", []string{y}, nil)
	b.Output(y, tensor.Float32, nil)
	fused, _ := compileBoth(t, b)
	type call struct{ name, op string }
	var calls []call
	ro := RunOptions{Threads: 1, OnStep: func(name, op string, d time.Duration) {
		if d < 0 {
			t.Errorf("step %s took %v", name, d)
		}
		calls = append(calls, call{name, op})
	}}
	if _, err := fused.RunWith(context.Background(), map[string]*tensor.Tensor{"x": randTensor(1, 3, 8)}, ro); err != nil {
		t.Fatal(err)
	}
	want := []call{{"MatMul_1+Add_2", opEpilogue}, {"Sigmoid_3", "Sigmoid"}}
	if len(calls) != len(want) || calls[0] != want[0] || calls[1] != want[1] {
		t.Errorf("OnStep calls %v, want %v", calls, want)
	}
}
