package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
	"google.golang.org/protobuf/proto"
)

// TestTopoSortOrder checks the order topoSort gives small graphs: file order
// where the file is already in order, producers before readers otherwise
// (the earliest ready node first), and an error naming the node and value for
// a cycle or an input nothing defines.
func TestTopoSortOrder(t *testing.T) {
	node := func(name string, ins []string, outs ...string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: &name, OpType: proto.String("Identity"), Input: ins, Output: outs}
	}
	tests := []struct {
		name    string
		nodes   []*onnxpb.NodeProto
		want    []string
		wantErr string
	}{
		{"in order", []*onnxpb.NodeProto{
			node("a", []string{"x"}, "va"), node("b", []string{"va"}, "vb"), node("c", []string{"x"}, "vc"),
		}, []string{"a", "b", "c"}, ""},
		{"reversed chain", []*onnxpb.NodeProto{
			node("c", []string{"vb"}, "vc"), node("b", []string{"va"}, "vb"), node("a", []string{"x"}, "va"),
		}, []string{"a", "b", "c"}, ""},
		{"earliest ready first", []*onnxpb.NodeProto{
			node("d", []string{"va", "vb"}, "vd"), node("b", []string{"w"}, "vb"), node("a", []string{"x"}, "va"), node("e", []string{"x", ""}, "ve"),
		}, []string{"b", "a", "d", "e"}, ""},
		{"one value read twice", []*onnxpb.NodeProto{
			node("m", []string{"va", "va"}, "vm"), node("a", []string{"x"}, "va"),
		}, []string{"a", "m"}, ""},
		{"cycle", []*onnxpb.NodeProto{
			node("a", []string{"x", "vb"}, "va"), node("b", []string{"va"}, "vb"),
		}, nil, `a/Identity needs "vb"; b/Identity needs "va"`},
		{"undefined input", []*onnxpb.NodeProto{
			node("a", []string{"x"}, "va"), node("b", []string{"nowhere"}, "vb"),
		}, nil, `b/Identity needs "nowhere"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &onnxpb.GraphProto{Node: tt.nodes, Input: []*onnxpb.ValueInfoProto{{Name: proto.String("x")}}}
			weights := map[string]*tensor.Tensor{"w": tensor.FromF32([]float32{1}, 1)}
			got, err := topoSort(g, g.GetNode(), weights)
			if tt.wantErr != "" {
				if !errors.Is(err, onnx.ErrBadModel) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want ErrBadModel naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, n := range got {
				names = append(names, n.GetName())
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("order (-want +got):\n-%v\n+%v", tt.want, names)
			}
		})
	}
}

// TestCompileReversedChain compiles and runs a chain of 100,000 Identity
// nodes listed last first, the worst case for an ordering that rescans the
// pending nodes each round (quadratic: minutes instead of milliseconds).
func TestCompileReversedChain(t *testing.T) {
	const n = 100_000
	b := modelgen.NewBuilder("reversed_chain", 13, 1)
	b.Input("v0", tensor.Float32, []int64{-1})
	for i := n - 1; i >= 0; i-- {
		b.Node("Identity", []string{fmt.Sprint("v", i)}, nil, fmt.Sprint("v", i+1))
	}
	b.Output(fmt.Sprint("v", n), tensor.Float32, nil)
	m, err := compileGraph(t, b, onnx.Copy, modelgen.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Stats().Steps; got != n {
		t.Errorf("%d steps, want %d", got, n)
	}
	x := tensor.FromF32([]float32{1, 2, 3}, 3)
	out, err := m.Run(context.Background(), map[string]*tensor.Tensor{"v0": x})
	if err != nil {
		t.Fatal(err)
	}
	if y := out[fmt.Sprint("v", n)]; y == nil || !slices.Equal(y.F32, x.F32) {
		t.Errorf("output %v, want the input %v", y, x.F32)
	}
}
