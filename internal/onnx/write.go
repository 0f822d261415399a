package onnx

import (
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/onnx/onnxpb"
)

// DataAlign is the offset alignment of every tensor DataWriter writes: a
// page, so that each can be mapped and used in place.
const DataAlign = 4096

// DataWriter writes initializers' bytes to an external data file, each at
// a page-aligned offset, and points their TensorProtos at it: the layout
// Load maps without copying (`spindle model compile`, `spindle model
// quantize`).
type DataWriter struct {
	f    *os.File
	name string // the file's base name, as the TensorProtos give it
	off  int64
}

// CreateData creates the data file name in dir (made if missing).
func CreateData(dir, name string) (*DataWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	return &DataWriter{f: f, name: name}, nil
}

// Put appends raw at the next aligned offset and makes t external data at
// it, clearing t's inline data fields.
func (w *DataWriter) Put(t *onnxpb.TensorProto, raw []byte) error {
	if pad := (DataAlign - w.off%DataAlign) % DataAlign; pad > 0 {
		if _, err := w.f.Write(make([]byte, pad)); err != nil {
			return err
		}
		w.off += pad
	}
	if _, err := w.f.Write(raw); err != nil {
		return err
	}
	loc := onnxpb.TensorProto_EXTERNAL
	t.DataLocation = &loc
	t.RawData, t.FloatData, t.Int32Data, t.Int64Data, t.DoubleData, t.Uint64Data = nil, nil, nil, nil, nil, nil
	t.ExternalData = []*onnxpb.StringStringEntryProto{
		{Key: proto.String("location"), Value: proto.String(w.name)},
		{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(w.off, 10))},
		{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))},
	}
	w.off += int64(len(raw))
	return nil
}

// Size returns the bytes written so far.
func (w *DataWriter) Size() int64 { return w.off }

// Close closes the file; a write error it reports means the data is lost.
func (w *DataWriter) Close() error { return w.f.Close() }
