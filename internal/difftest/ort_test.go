package difftest

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/tensor"
)

// TestORTRoundTrip passes a tensor of each dtype ort-run.mjs reads and writes
// through an Identity graph, so its .npy reader and writer must keep dtype,
// shape and every byte.
func TestORTRoundTrip(t *testing.T) {
	ort := reference(t)
	inputs := map[string]*tensor.Tensor{
		"f32":    tensor.FromF32([]float32{1.5, -2.25, 3e-38, 65504, -0}, 5),
		"i64":    tensor.FromI64([]int64{1 << 62, -7, 0, 1<<53 + 1}, 2, 2),
		"i32":    {DType: tensor.Int32, Shape: []int{3}, I32: []int32{-1 << 31, 0, 1<<31 - 1}},
		"u8":     {DType: tensor.Uint8, Shape: []int{2, 1, 2}, U8: []uint8{0, 1, 128, 255}},
		"i8":     {DType: tensor.Int8, Shape: []int{2}, I8: []int8{-128, 127}},
		"b":      {DType: tensor.Bool, Shape: []int{3}, B: []bool{true, false, true}},
		"f64":    {DType: tensor.Float64, Shape: []int{2}, F64: []float64{1e300, -1.0 / 3}},
		"scalar": tensor.FromF32([]float32{42}),
	}
	b := modelgen.NewBuilder("identity", 13, 1)
	var outs []string
	for _, name := range slices.Sorted(maps.Keys(inputs)) {
		in := inputs[name]
		shape := make([]int64, len(in.Shape))
		for i, d := range in.Shape {
			shape[i] = int64(d)
		}
		b.Input(name, in.DType, shape)
		b.Output(name+"_out", in.DType, shape)
		b.Node("Identity", []string{name}, nil, name+"_out")
		outs = append(outs, name+"_out")
	}
	path := filepath.Join(t.TempDir(), "identity.onnx")
	if err := b.Save(path, modelgen.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := ort.Run(context.Background(), path, inputs, outs)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range inputs {
		out := got[name+"_out"]
		if out == nil {
			t.Errorf("%s: no output", name)
			continue
		}
		if out.DType != in.DType || !slices.Equal(out.Shape, in.Shape) || !slices.Equal(out.Bytes(), in.Bytes()) {
			t.Errorf("%s: got %v %v, want %v %v", name, out, out.Bytes(), in, in.Bytes())
		}
	}
}

// TestORTErrors checks that ort-run.mjs fails with a message naming the cause,
// and with status 2 for a bad command line, as `spindle run` does.
func TestORTErrors(t *testing.T) {
	ort := reference(t)
	dir := t.TempDir()
	_, err := ort.Run(context.Background(), filepath.Join(dir, "missing.onnx"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "ort-run:") {
		t.Errorf("missing model: got %v, want an ort-run error", err)
	}
	notNpy := filepath.Join(dir, "x.npy")
	if err := os.WriteFile(notNpy, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		status int
		msg    string
	}{
		{"no model", []string{"--out", dir}, 2, "--model: required"},
		{"no out", []string{"--model", "m.onnx"}, 2, "--out: required"},
		{"bad input spec", []string{"--model", "m.onnx", "--out", dir, "--input", "x"}, 2, "want NAME=FILE.npy"},
		{"bad threads", []string{"--model", "m.onnx", "--out", dir, "--threads", "0"}, 2, "--threads"},
		{"unknown flag", []string{"--model", "m.onnx", "--out", dir, "--fast"}, 2, "unknown argument"},
		{"not npy", []string{"--model", "m.onnx", "--out", dir, "--input", "x=" + notNpy}, 1, "not a .npy file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(ort.Node, append([]string{ort.Script}, tt.args...)...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tt.status || !strings.Contains(string(out), tt.msg) {
				t.Errorf("got %v, %q; want exit status %d and a message containing %q", err, out, tt.status, tt.msg)
			}
		})
	}
}
