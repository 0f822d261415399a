package artifact

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/kernels"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// Version is the artifact format's version, written in the model's metadata
// ("spindle.artifact" = "packed-b VERSION"). 2: the data file holds the
// originals of packed weights last.
const Version = 2

// Report says what Compile wrote.
type Report struct {
	// Packed counts the prepacked companions written.
	Packed int `json:"packed"`
	// PackedBytes is their size.
	PackedBytes int64 `json:"packed_bytes"`
	// DataFile is the external data file, beside the model.
	DataFile string `json:"data_file"`
	// DataBytes is its size.
	DataBytes int64 `json:"data_bytes"`
}

// packing is one companion to write: op(B) = W, or Wᵀ when trans is set;
// with int8 set, an 8-bit W packed for the int8 kernels (MatMulInteger).
type packing struct {
	name  string
	trans bool
	int8  bool
}

// Compile reads the ONNX model at in and writes its artifact to out, with
// the weights in out's base name plus ".data" beside it. Every float32 2-D
// initializer that is the B input of a MatMul, or of a Gemm (transposed as
// the Gemm says), and every 8-bit one that is the B input of a
// MatMulInteger (an int8 model's weight) gets a prepacked companion.
func Compile(in, out string) (Report, error) {
	var rep Report
	src, err := onnx.Load(in, onnx.Mmap)
	if err != nil {
		return rep, err
	}
	defer src.Close()
	m := proto.Clone(src.Proto).(*onnxpb.ModelProto)
	g := m.GetGraph()

	want := map[packing]bool{}
	for _, n := range g.GetNode() {
		if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" || len(n.GetInput()) < 2 {
			continue
		}
		var trans bool
		switch n.GetOpType() {
		case "MatMulInteger":
			if w, ok := src.Weights[n.GetInput()[1]]; ok && (w.DType == tensor.Int8 || w.DType == tensor.Uint8) && len(w.Shape) == 2 && w.Shape[0] > 0 && w.Shape[1] > 0 {
				want[packing{name: n.GetInput()[1], int8: true}] = true
			}
			continue
		case "MatMul":
		case "Gemm":
			for _, a := range n.GetAttribute() {
				if a.GetName() == "transB" {
					trans = a.GetI() != 0
				}
			}
		default:
			continue
		}
		if w, ok := src.Weights[n.GetInput()[1]]; ok && w.DType == tensor.Float32 && len(w.Shape) == 2 && w.Shape[0] > 0 && w.Shape[1] > 0 {
			want[packing{name: n.GetInput()[1], trans: trans}] = true
		}
	}
	list := make([]packing, 0, len(want))
	for p := range want {
		list = append(list, p)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].name != list[j].name {
			return list[i].name < list[j].name
		}
		return !list[i].trans && list[j].trans
	})

	rep.DataFile = filepath.Base(out) + ".data"
	data, err := onnx.CreateData(filepath.Dir(out), rep.DataFile)
	if err != nil {
		return rep, err
	}
	defer data.Close()
	put := data.Put
	// The data file holds first what a run reads (initializers without a
	// packed companion, then the companions) and last the originals of the
	// packed weights, which only a fallback reads: mapped in 2 MiB
	// page-cache folios, a small weight next to an unused original would
	// make its whole folio resident.
	packed := map[string]bool{}
	for _, p := range list {
		packed[p.name] = true
	}
	putInit := func(t *onnxpb.TensorProto) error {
		w, ok := src.Weights[t.GetName()]
		if !ok {
			return fmt.Errorf("compile %s: initializer %q was not loaded", in, t.GetName())
		}
		raw := w.Bytes()
		if raw == nil && w.Len() > 0 {
			return fmt.Errorf("compile %s: initializer %q: dtype %s cannot be stored as raw data", in, t.GetName(), w.DType)
		}
		// The loader widens float16 to float32: store what it holds.
		t.DataType = proto.Int32(int32(w.DType))
		return put(t, raw)
	}
	inits := g.GetInitializer()
	for _, t := range inits {
		if !packed[t.GetName()] {
			if err := putInit(t); err != nil {
				return rep, err
			}
		}
	}
	for _, p := range list {
		w := src.Weights[p.name]
		k, n := w.Shape[0], w.Shape[1]
		if p.int8 {
			buf := make([]byte, kernels.PackedQBSize(k, n))
			kernels.PackQBInto(buf, k, n, w.Bytes(), n, w.DType == tensor.Uint8)
			t := &onnxpb.TensorProto{Name: proto.String(p.name + engine.PackedQSuffix), DataType: proto.Int32(int32(tensor.Uint8)), Dims: []int64{int64(len(buf))}}
			if err := put(t, buf); err != nil {
				return rep, err
			}
			g.Initializer = append(g.Initializer, t)
			rep.Packed++
			rep.PackedBytes += int64(len(buf))
			continue
		}
		suffix := engine.PackedSuffix
		if p.trans {
			k, n, suffix = n, k, engine.PackedTransSuffix
		}
		pb := kernels.PackB(p.trans, k, n, w.F32, w.Shape[1])
		data := tensor.FromF32(pb.Data(), len(pb.Data()))
		t := &onnxpb.TensorProto{Name: proto.String(p.name + suffix), DataType: proto.Int32(int32(tensor.Float32)), Dims: []int64{int64(len(pb.Data()))}}
		if err := put(t, data.Bytes()); err != nil {
			return rep, err
		}
		g.Initializer = append(g.Initializer, t)
		rep.Packed++
		rep.PackedBytes += int64(len(data.Bytes()))
	}
	for _, t := range inits {
		if packed[t.GetName()] {
			if err := putInit(t); err != nil {
				return rep, err
			}
		}
	}
	if err := data.Close(); err != nil {
		return rep, err
	}
	rep.DataBytes = data.Size()
	m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String("spindle.artifact"), Value: proto.String("packed-b " + strconv.Itoa(Version))})
	buf, err := proto.Marshal(m)
	if err != nil {
		return rep, fmt.Errorf("compile %s: %w", in, err)
	}
	if err := os.WriteFile(out, buf, 0o644); err != nil {
		return rep, err
	}
	return rep, nil
}
