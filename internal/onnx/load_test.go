package onnx_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// writeModel saves a small graph with one 1000-float weight "w", one int64
// weight "shape" and an odd-sized weight that pushes later raw data off alignment.
func writeModel(t *testing.T, opt modelgen.SaveOptions) (string, []float32) {
	t.Helper()
	b := modelgen.NewBuilder("test", 13, 7)
	b.Input("x", tensor.Float32, []int64{1000})
	b.Init("odd", []int64{3}, []float32{1, 2, 3})
	b.InitTensor("pad", &tensor.Tensor{DType: tensor.Uint8, Shape: []int{3}, U8: []uint8{1, 2, 3}})
	w := make([]float32, 1000)
	for i := range w {
		w[i] = float32(i) * 0.5
	}
	b.Init("w", []int64{1000}, w)
	b.Ints64("shape", 10, 100)
	y := b.Node("Add", []string{"x", "w"}, nil, "y")
	b.Output(y, tensor.Float32, []int64{1000})
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := b.Save(path, opt); err != nil {
		t.Fatal(err)
	}
	return path, w
}

func TestLoadModesAgree(t *testing.T) {
	for _, ext := range []bool{false, true} {
		opt := modelgen.SaveOptions{}
		if ext {
			opt = modelgen.SaveOptions{ExternalData: "weights.bin", ExternalMin: 16}
		}
		path, w := writeModel(t, opt)
		for _, mode := range []onnx.LoadMode{onnx.Copy, onnx.Single, onnx.Mmap} {
			t.Run(string(mode)+map[bool]string{false: "/inline", true: "/external"}[ext], func(t *testing.T) {
				m, err := onnx.Load(path, mode)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				got := m.Weights["w"]
				if got == nil || got.DType != tensor.Float32 || len(got.F32) != 1000 {
					t.Fatalf("weight w = %v", got)
				}
				for i, v := range got.F32 {
					if math.Float32bits(v) != math.Float32bits(w[i]) {
						t.Fatalf("w[%d] = %v, want %v", i, v, w[i])
					}
				}
				if s := m.Weights["shape"]; s == nil || s.DType != tensor.Int64 || s.I64[0] != 10 || s.I64[1] != 100 {
					t.Fatalf("weight shape = %+v", s)
				}
				if m.Report.Tensors != 4 || m.Report.WeightBytes != 4000+12+3+16 {
					t.Fatalf("report %+v", m.Report)
				}
				if mode == onnx.Copy && m.Report.CopiedBytes != m.Report.WeightBytes {
					t.Fatalf("copy mode copied %d of %d bytes", m.Report.CopiedBytes, m.Report.WeightBytes)
				}
				if ext && mode != onnx.Copy && m.Report.CopiedBytes >= 4000 {
					// Aligned external data is viewed in place; only small inline
					// tensors may have been copied.
					t.Fatalf("%s mode copied %d bytes of aligned external data", mode, m.Report.CopiedBytes)
				}
				if ext && len(m.ExternalFiles) != 1 || ext && m.ExternalFiles[0] != "weights.bin" {
					t.Fatalf("ExternalFiles = %v", m.ExternalFiles)
				}
			})
		}
	}
}

func TestLoadMmapIsZeroCopy(t *testing.T) {
	path, _ := writeModel(t, modelgen.SaveOptions{ExternalData: "weights.bin", ExternalMin: 1})
	m, err := onnx.Load(path, onnx.Mmap)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Every external tensor is aligned by the writer, so only bool-free,
	// aligned views: nothing copied at all.
	if m.Report.CopiedBytes != 0 {
		t.Fatalf("mmap of aligned external data copied %d bytes (%d tensors)", m.Report.CopiedBytes, m.Report.CopiedTensors)
	}
}

func TestLoadReportsMisalignedCopies(t *testing.T) {
	// Align 1 packs tensors back to back: "pad" (3 bytes) shifts "w" off a
	// 4-byte boundary, so the loader must copy it alone and say so.
	path, w := writeModel(t, modelgen.SaveOptions{ExternalData: "weights.bin", ExternalMin: 1, Align: 1})
	m, err := onnx.Load(path, onnx.Mmap)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Report.CopiedTensors == 0 || m.Report.CopiedBytes < 4000 {
		t.Fatalf("report %+v: want the misaligned 4000-byte tensor counted as copied", m.Report)
	}
	if m.Weights["w"].F32[999] != w[999] {
		t.Fatal("misaligned tensor decoded wrong")
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, dir string, m *onnxpb.ModelProto)
		want   string
	}{
		{"escaping location", func(t *testing.T, dir string, m *onnxpb.ModelProto) {
			setLocation(m, "../weights.bin")
		}, "must be a relative path inside the model's folder"},
		{"absolute location", func(t *testing.T, dir string, m *onnxpb.ModelProto) {
			setLocation(m, "/etc/passwd")
		}, "must be a relative path inside the model's folder"},
		{"symlink escaping", func(t *testing.T, dir string, m *onnxpb.ModelProto) {
			outside := filepath.Join(t.TempDir(), "secret.bin")
			os.WriteFile(outside, make([]byte, 8192), 0o644)
			os.Symlink(outside, filepath.Join(dir, "link.bin"))
			setLocation(m, "link.bin")
		}, "resolves outside the model's folder"},
		{"missing external file", func(t *testing.T, dir string, m *onnxpb.ModelProto) {
			os.Remove(filepath.Join(dir, "weights.bin"))
		}, "no such file"},
		{"truncated external data", func(t *testing.T, dir string, m *onnxpb.ModelProto) {
			p := filepath.Join(dir, "weights.bin")
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-100)
		}, "exceeds the file's"},
		{"bad offset", func(t *testing.T, dir string, m *onnxpb.ModelProto) {
			for _, kv := range m.Graph.Initializer[0].ExternalData {
				if kv.GetKey() == "offset" {
					kv.Value = proto.String("ten")
				}
			}
		}, "not an integer"},
		{"wrong length for dims", func(t *testing.T, dir string, m *onnxpb.ModelProto) {
			m.Graph.Initializer[0].Dims = []int64{5000}
		}, "needs 20000 bytes"},
		{"unsupported dtype", func(t *testing.T, dir string, m *onnxpb.ModelProto) {
			dt := int32(14) // complex64
			m.Graph.Initializer[0].DataType = &dt
		}, "data_type 14 is not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := modelgen.NewBuilder("t", 13, 1)
			b.Input("x", tensor.Float32, []int64{1000})
			b.Fill("w", 1, 1000)
			b.Node("Add", []string{"x", "w"}, nil, "y")
			b.Output("y", tensor.Float32, []int64{1000})
			dir := t.TempDir()
			path := filepath.Join(dir, "model.onnx")
			if err := b.Save(path, modelgen.SaveOptions{ExternalData: "weights.bin"}); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(path)
			m := &onnxpb.ModelProto{}
			if err := proto.Unmarshal(raw, m); err != nil {
				t.Fatal(err)
			}
			tc.mutate(t, dir, m)
			raw, _ = proto.Marshal(m)
			os.WriteFile(path, raw, 0o644)
			for _, mode := range []onnx.LoadMode{onnx.Copy, onnx.Single, onnx.Mmap} {
				_, err := onnx.Load(path, mode)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%s: got %v, want error containing %q", mode, err, tc.want)
				}
				if tc.name != "missing external file" && !errors.Is(err, onnx.ErrBadModel) {
					t.Fatalf("%s: %v does not wrap ErrBadModel", mode, err)
				}
			}
		})
	}
}

func setLocation(m *onnxpb.ModelProto, loc string) {
	for _, kv := range m.Graph.Initializer[0].ExternalData {
		if kv.GetKey() == "location" {
			kv.Value = proto.String(loc)
		}
	}
}

func TestLoadRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	tests := map[string][]byte{
		"not protobuf": []byte("this is not a model\xff\xff\xff"),
		"empty":        {},
		"truncated":    {0x3a, 0x80, 0x01, 0x0a},
	}
	for name, data := range tests {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".onnx")
		os.WriteFile(p, data, 0o644)
		for _, mode := range []onnx.LoadMode{onnx.Copy, onnx.Mmap} {
			if _, err := onnx.Load(p, mode); !errors.Is(err, onnx.ErrBadModel) {
				t.Errorf("%s/%s: got %v, want ErrBadModel", name, mode, err)
			}
		}
	}
	if _, err := onnx.Load(filepath.Join(dir, "missing.onnx"), onnx.Mmap); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want ErrNotExist", err)
	}
	if _, err := onnx.ParseLoadMode("fast"); err == nil || !strings.Contains(err.Error(), "copy, single, mmap") {
		t.Errorf("ParseLoadMode(fast) = %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	b := modelgen.NewBuilder("t", 13, 1)
	b.Input("x", tensor.Float32, []int64{4})
	b.Fill("w", 1, 4)
	b.Node("Add", []string{"x", "w"}, nil, "y")
	b.Output("y", tensor.Float32, []int64{4})
	seedPath := filepath.Join(f.TempDir(), "seed.onnx")
	if err := b.Save(seedPath, modelgen.SaveOptions{}); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(seedPath)
	f.Add(seed)
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "m.onnx")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, mode := range []onnx.LoadMode{onnx.Copy, onnx.Mmap} {
			m, err := onnx.Load(p, mode)
			if err != nil {
				if !errors.Is(err, onnx.ErrBadModel) && !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "external_data") {
					t.Fatalf("%s: error not classified: %v", mode, err)
				}
				continue
			}
			m.Close()
		}
	})
}
