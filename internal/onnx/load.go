package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

// LoadMode says how weights get from disk into memory. The zero value is invalid;
// ParseLoadMode validates user input.
type LoadMode string

// Load modes, after the thesis's Table 4.2.
const (
	// Copy reads the file and copies every tensor into its own heap allocation
	// (the thesis's "no optimisation").
	Copy LoadMode = "copy"
	// Single reads each file once into one buffer; tensors are views into it.
	Single LoadMode = "single"
	// Mmap maps each file read-only and shared; tensors are views into the mapping.
	Mmap LoadMode = "mmap"
)

// ParseLoadMode validates s as a LoadMode.
func ParseLoadMode(s string) (LoadMode, error) {
	switch m := LoadMode(s); m {
	case Copy, Single, Mmap:
		return m, nil
	}
	return "", fmt.Errorf("load mode %q: must be one of copy, single, mmap", s)
}

// ErrBadModel is wrapped by every error caused by the content of a model file (as
// opposed to I/O failures), so callers can map it to a user-input error.
var ErrBadModel = errors.New("bad model")

// Report says what a load did.
type Report struct {
	Mode    LoadMode
	Elapsed time.Duration
	// Tensors is the number of initializers.
	Tensors int
	// WeightBytes is the in-memory size of all initializers.
	WeightBytes int64
	// FileBytes is the size of the model file plus its external data files.
	FileBytes int64
	// CopiedBytes is how much weight data was copied onto the Go heap rather than
	// viewed in place: everything in Copy mode; in Single and Mmap mode only
	// tensors whose bytes were misaligned, stored in typed fields, bool, or bfloat16.
	CopiedBytes int64
	// CopiedTensors counts the tensors behind CopiedBytes.
	CopiedTensors int
	// Float16Tensors counts float16 initializers, held as float16 (the
	// engine widens those its kernels do not read as float16: see
	// engine.Stats.WidenedBytes).
	Float16Tensors int
	// WidenedTensors counts bfloat16 initializers widened to float32 (their
	// float32 bytes are part of CopiedBytes); WidenedBytes is what that
	// added: 2 bytes per element.
	WidenedTensors int
	WidenedBytes   int64
}

// String formats r as a one-line summary.
func (r Report) String() string {
	return fmt.Sprintf("load %s: %d tensors (%d float16), %s weights, %s copied (%d tensors, %d bfloat16 widened adding %s) in %s",
		r.Mode, r.Tensors, r.Float16Tensors, humanBytes(r.WeightBytes), humanBytes(r.CopiedBytes), r.CopiedTensors, r.WidenedTensors, humanBytes(r.WidenedBytes), r.Elapsed.Round(time.Microsecond))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// Model is a loaded ONNX model. Its tensors may alias mapped files: they are
// read-only, and valid until Close.
type Model struct {
	// Proto is the model without initializer data: Graph.Initializer holds each
	// initializer's metadata (name, type, dims) with its data fields cleared.
	Proto *onnxpb.ModelProto
	// Weights maps initializer names to their tensors.
	Weights map[string]*tensor.Tensor
	// Dir is the folder the model file was loaded from.
	Dir string
	// ExternalFiles lists the external-data files the model uses, relative to Dir.
	ExternalFiles []string
	Report        Report

	// resolved caches resolve's answers by location: every initializer
	// of a model usually names the same data file, and resolving walks
	// the path's symbolic links.
	resolved map[string]string
	files    []*file
}

// Close releases the model's buffers and mappings. Its tensors must not be used
// afterwards.
func (m *Model) Close() error {
	var errs []error
	for _, f := range m.files {
		errs = append(errs, f.close())
	}
	m.files = nil
	return errors.Join(errs...)
}

// Opset returns the model's opset version for the default ONNX domain, or 0 when it
// declares none.
func (m *Model) Opset() int64 {
	for _, o := range m.Proto.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 0
}

// Load reads the ONNX model at path in the given mode.
func Load(path string, mode LoadMode) (*Model, error) {
	if _, err := ParseLoadMode(string(mode)); err != nil {
		return nil, err
	}
	start := time.Now()
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	m := &Model{Dir: dir, Weights: map[string]*tensor.Tensor{}}
	m.Report.Mode = mode
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()
	main, err := openFile(path, mode)
	if err != nil {
		return nil, err
	}
	m.files = append(m.files, main)
	m.Report.FileBytes += int64(len(main.data))

	model, inits, err := splitModel(main.data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrBadModel, err)
	}
	m.Proto = model
	ext := map[string]*file{}
	for _, in := range inits {
		t, copied, err := m.tensorOf(in, main, mode, ext)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: initializer %q: %w", path, ErrBadModel, in.meta.GetName(), err)
		}
		name := in.meta.GetName()
		if _, dup := m.Weights[name]; dup {
			return nil, fmt.Errorf("%s: %w: initializer %q defined twice", path, ErrBadModel, name)
		}
		m.Weights[name] = t
		m.Report.Tensors++
		nb := int64(t.Len() * t.DType.Size())
		m.Report.WeightBytes += nb
		if copied {
			m.Report.CopiedBytes += nb
			m.Report.CopiedTensors++
		}
		switch tensor.DType(in.meta.GetDataType()) {
		case tensor.Float16:
			m.Report.Float16Tensors++
		case tensor.BFloat16:
			m.Report.WidenedTensors++
			m.Report.WidenedBytes += int64(t.Len()) * 2
		}
	}
	if mode == Copy {
		// Every tensor is now a private copy: drop the file buffers, as a
		// deserialising loader would.
		m.Close()
	}
	m.Report.Elapsed = time.Since(start)
	ok = true
	return m, nil
}

// initializer is one TensorProto split into its metadata and its raw_data bytes.
type initializer struct {
	meta   *onnxpb.TensorProto
	raw    []byte // raw_data, aliasing the model file's buffer; nil if absent
	hasRaw bool
}

// tensorOf builds the tensor for one initializer, viewing its bytes in place where
// the mode and alignment allow. copied reports whether its data was copied.
func (m *Model) tensorOf(in initializer, main *file, mode LoadMode, ext map[string]*file) (t *tensor.Tensor, copied bool, err error) {
	meta := in.meta
	dt := tensor.DType(meta.GetDataType())
	if dt.Size() == 0 && dt != tensor.String {
		return nil, false, fmt.Errorf("data_type %d is not supported", meta.GetDataType())
	}
	shape := make([]int, len(meta.GetDims()))
	for i, d := range meta.GetDims() {
		if d < 0 {
			return nil, false, fmt.Errorf("dims %v: dimension %d is negative", meta.GetDims(), i)
		}
		shape[i] = int(d)
	}
	if n, err := tensor.Count(shape); err != nil || n > 1<<40 {
		return nil, false, fmt.Errorf("dims %v: too many elements", meta.GetDims())
	}
	raw := in.raw
	switch {
	case meta.GetDataLocation() == onnxpb.TensorProto_EXTERNAL:
		raw, err = m.externalBytes(meta, mode, ext)
		if err != nil {
			return nil, false, err
		}
	case !in.hasRaw:
		t, err := typedFields(meta, dt, shape)
		return t, true, err
	}
	if dt == tensor.String {
		return nil, false, errors.New("string tensors are stored in string_data, not raw_data")
	}
	if mode != Copy && dt != tensor.BFloat16 {
		v, ok, err := tensor.View(dt, shape, raw)
		if err != nil {
			return nil, false, err
		}
		if ok {
			return v, false, nil
		}
	}
	if dt == tensor.Float16 {
		t, err = halfCopy(shape, raw)
		return t, true, err
	}
	t, err = tensor.Decode(dt, shape, raw)
	return t, true, err
}

// externalBytes returns the bytes of an initializer stored in an external file,
// opening (in the model's mode) and caching each file once.
func (m *Model) externalBytes(meta *onnxpb.TensorProto, mode LoadMode, ext map[string]*file) ([]byte, error) {
	var loc string
	offset, length := int64(0), int64(-1)
	for _, kv := range meta.GetExternalData() {
		var err error
		switch kv.GetKey() {
		case "location":
			loc = kv.GetValue()
		case "offset":
			offset, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		case "length":
			length, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("external_data %s=%q: not an integer", kv.GetKey(), kv.GetValue())
		}
	}
	if loc == "" {
		return nil, errors.New("external_data: location is missing")
	}
	path, err := m.resolve(loc)
	if err != nil {
		return nil, err
	}
	f, ok := ext[path]
	if !ok {
		f, err = openFile(path, mode)
		if err != nil {
			return nil, fmt.Errorf("external_data location %q: %w", loc, err)
		}
		ext[path] = f
		m.files = append(m.files, f)
		m.ExternalFiles = append(m.ExternalFiles, filepath.Clean(loc))
		m.Report.FileBytes += int64(len(f.data))
	}
	size := int64(len(f.data))
	if length < 0 {
		length = size - offset
	}
	if offset < 0 || length < 0 || offset > size || length > size-offset {
		return nil, fmt.Errorf("external_data location %q: offset %d + length %d exceeds the file's %d bytes (truncated?)", loc, offset, length, size)
	}
	return f.data[offset : offset+length : offset+length], nil
}

// resolve turns an external-data location into a path inside the model's folder,
// rejecting locations that escape it (ONNX IR spec: locations are relative to the
// model file's directory), including through symbolic links.
func (m *Model) resolve(loc string) (string, error) {
	if path, ok := m.resolved[loc]; ok {
		return path, nil
	}
	path, err := m.resolveUncached(loc)
	if err != nil {
		return "", err
	}
	if m.resolved == nil {
		m.resolved = map[string]string{}
	}
	m.resolved[loc] = path
	return path, nil
}

func (m *Model) resolveUncached(loc string) (string, error) {
	if !filepath.IsLocal(loc) {
		return "", fmt.Errorf("external_data location %q: must be a relative path inside the model's folder", loc)
	}
	path := filepath.Join(m.Dir, loc)
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("external_data location %q: %w", loc, err)
	}
	realDir, err := filepath.EvalSymlinks(m.Dir)
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("external_data location %q: resolves outside the model's folder", loc)
	}
	return real, nil
}

// halfCopy copies float16 data into a Float16 tensor (held as float16, not
// widened: see tensor.Float16).
func halfCopy(shape []int, raw []byte) (*tensor.Tensor, error) {
	t := tensor.New(tensor.Float16, shape...)
	if len(raw) != 2*len(t.U16) {
		return nil, fmt.Errorf("shape %s of float16 needs %d bytes, have %d", tensor.ShapeString(shape), 2*len(t.U16), len(raw))
	}
	for i := range t.U16 {
		t.U16[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	return t, nil
}

// typedFields decodes an initializer stored in TensorProto's typed repeated fields.
func typedFields(meta *onnxpb.TensorProto, dt tensor.DType, shape []int) (*tensor.Tensor, error) {
	n := tensor.NumElements(shape)
	var have int
	t := &tensor.Tensor{DType: dt, Shape: shape}
	switch dt {
	case tensor.Float32:
		t.F32 = append([]float32(nil), meta.GetFloatData()...)
		have = len(t.F32)
	case tensor.Float64:
		t.F64 = append([]float64(nil), meta.GetDoubleData()...)
		have = len(t.F64)
	case tensor.Int64:
		t.I64 = append([]int64(nil), meta.GetInt64Data()...)
		have = len(t.I64)
	case tensor.Uint32, tensor.Uint64:
		src := meta.GetUint64Data()
		have = len(src)
		if have != n {
			break
		}
		t = tensor.New(dt, shape...)
		for i, v := range src {
			if dt == tensor.Uint32 {
				t.U32[i] = uint32(v)
			} else {
				t.U64[i] = v
			}
		}
	case tensor.String:
		src := meta.GetStringData()
		have = len(src)
		t.S = make([]string, len(src))
		for i, v := range src {
			t.S[i] = string(v)
		}
	case tensor.Int32, tensor.Int16, tensor.Int8, tensor.Uint16, tensor.Uint8, tensor.Bool, tensor.Float16, tensor.BFloat16:
		// ONNX packs every element type of 32 bits or less that is not
		// float32 into int32_data, one element per value.
		src := meta.GetInt32Data()
		have = len(src)
		if have != n {
			break
		}
		out := dt
		if dt == tensor.BFloat16 {
			out = tensor.Float32
		}
		t = tensor.New(out, shape...)
		for i, v := range src {
			switch dt {
			case tensor.Int32:
				t.I32[i] = v
			case tensor.Int16:
				t.I16[i] = int16(v)
			case tensor.Int8:
				t.I8[i] = int8(v)
			case tensor.Uint16:
				t.U16[i] = uint16(v)
			case tensor.Uint8:
				t.U8[i] = uint8(v)
			case tensor.Bool:
				t.B[i] = v != 0
			case tensor.Float16:
				t.U16[i] = uint16(v)
			case tensor.BFloat16:
				t.F32[i] = tensor.BFloatToFloat(uint16(v))
			}
		}
	default:
		return nil, fmt.Errorf("data_type %s in typed fields is not supported", dt)
	}
	if have != n {
		return nil, fmt.Errorf("dims %v need %d values, the tensor holds %d", meta.GetDims(), n, have)
	}
	return t, nil
}

// TensorFromProto decodes a self-contained TensorProto (a Constant node's value, a
// conformance-suite .pb file) into a new tensor, float16 widened to float32 as
// values are held. External data is not allowed here.
func TensorFromProto(p *onnxpb.TensorProto) (*tensor.Tensor, error) {
	dt := tensor.DType(p.GetDataType())
	if dt.Size() == 0 && dt != tensor.String {
		return nil, fmt.Errorf("data_type %d is not supported", p.GetDataType())
	}
	if p.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, errors.New("external data is not allowed here")
	}
	shape := make([]int, len(p.GetDims()))
	for i, d := range p.GetDims() {
		if d < 0 {
			return nil, fmt.Errorf("dims %v: dimension %d is negative", p.GetDims(), i)
		}
		shape[i] = int(d)
	}
	if p.RawData != nil && dt != tensor.String {
		return tensor.Decode(dt, shape, p.GetRawData())
	}
	t, err := typedFields(p, dt, shape)
	if err != nil {
		return nil, err
	}
	return tensor.Widen(t), nil
}

// Field numbers from onnx.proto, for the wire-level split below.
const (
	modelGraph       = 7
	graphInitializer = 5
	tensorRawData    = 9
)

// splitModel decodes a ModelProto without copying initializer raw_data: each
// initializer's raw_data is returned as a sub-slice of buf, and everything else is
// unmarshalled normally. The generated proto.Unmarshal would copy every weight onto
// the heap, defeating Single and Mmap modes.
func splitModel(buf []byte) (*onnxpb.ModelProto, []initializer, error) {
	var modelRest, graphRest []byte
	var inits []initializer
	graphs := 0
	err := eachField(buf, func(num protowire.Number, field, value []byte) error {
		if num != modelGraph {
			modelRest = append(modelRest, field...)
			return nil
		}
		if value == nil {
			return errors.New("graph: wrong wire type")
		}
		graphs++
		return eachField(value, func(num protowire.Number, field, value []byte) error {
			if num != graphInitializer {
				graphRest = append(graphRest, field...)
				return nil
			}
			if value == nil {
				return errors.New("graph.initializer: wrong wire type")
			}
			in, err := splitTensor(value)
			if err != nil {
				return fmt.Errorf("graph.initializer %d: %w", len(inits), err)
			}
			inits = append(inits, in)
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	if graphs != 1 {
		return nil, nil, fmt.Errorf("model has %d graphs, want 1", graphs)
	}
	model := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(modelRest, model); err != nil {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	graph := &onnxpb.GraphProto{}
	if err := proto.Unmarshal(graphRest, graph); err != nil {
		return nil, nil, fmt.Errorf("graph: %w", err)
	}
	for _, in := range inits {
		graph.Initializer = append(graph.Initializer, in.meta)
	}
	model.Graph = graph
	return model, inits, nil
}

func splitTensor(buf []byte) (initializer, error) {
	var rest []byte
	var in initializer
	err := eachField(buf, func(num protowire.Number, field, value []byte) error {
		if num == tensorRawData && value != nil {
			in.raw, in.hasRaw = value, true
			return nil
		}
		rest = append(rest, field...)
		return nil
	})
	if err != nil {
		return in, err
	}
	in.meta = &onnxpb.TensorProto{}
	if err := proto.Unmarshal(rest, in.meta); err != nil {
		return in, err
	}
	return in, nil
}

// eachField calls fn for every top-level field of the protobuf message in buf with
// the field's full encoding and, for length-delimited fields, its payload (nil for
// other wire types).
func eachField(buf []byte, fn func(num protowire.Number, field, value []byte) error) error {
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return fmt.Errorf("protobuf: %w", protowire.ParseError(n))
		}
		var value []byte
		var m int
		if typ == protowire.BytesType {
			value, m = protowire.ConsumeBytes(buf[n:])
			if value == nil && m >= 0 {
				value = []byte{}
			}
		} else {
			m = protowire.ConsumeFieldValue(num, typ, buf[n:])
		}
		if m < 0 {
			return fmt.Errorf("protobuf field %d: %w", num, protowire.ParseError(m))
		}
		if err := fn(num, buf[:n+m], value); err != nil {
			return err
		}
		buf = buf[n+m:]
	}
	return nil
}
