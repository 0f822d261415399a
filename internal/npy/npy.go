package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spindleml/spindle/internal/tensor"
)

// ErrFormat is wrapped by every error caused by the content of a .npy file (as
// opposed to an I/O failure), so callers can report it as bad user input.
var ErrFormat = errors.New("npy")

const (
	magic = "\x93NUMPY"
	// prefixLen is the magic plus the two version bytes.
	prefixLen = len(magic) + 2
	// align is the multiple numpy pads magic+version+length+header to
	// (numpy/lib/format.py ARRAY_ALIGN), so the data starts aligned for any dtype.
	align = 64
	// growthDigits is numpy's GROWTH_AXIS_MAX_DIGITS: since NumPy 1.23 the header
	// reserves room for the first dimension to grow to this many digits.
	growthDigits = 21
	// maxHeaderLen bounds the header a reader accepts. NumPy itself refuses
	// headers over 10000 bytes by default (max_header_size); this limit is larger
	// so that any header Write produces reads back, and small enough that a
	// hostile length cannot make Read allocate much.
	maxHeaderLen = 1 << 20
	// chunk is how much Read allocates at a time when the input's size is not
	// known, so memory grows with the bytes actually present, not with what the
	// header claims.
	chunk = 1 << 22
)

// supported lists the descr strings Write produces, for error messages.
const supported = "<f4, <f2, <f8, <i8, <i4, <i2, |i1, <u8, <u4, <u2, |u1, |b1, or their big-endian forms"

// descrs maps a descr without its byte-order character to its dtype.
var descrs = map[string]tensor.DType{
	"f4": tensor.Float32, "f2": tensor.Float16, "f8": tensor.Float64, "i8": tensor.Int64, "i4": tensor.Int32,
	"i2": tensor.Int16, "i1": tensor.Int8, "u8": tensor.Uint64, "u4": tensor.Uint32, "u2": tensor.Uint16,
	"u1": tensor.Uint8, "b1": tensor.Bool,
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

// ReadFile reads the one array stored in the .npy file at path.
func ReadFile(path string) (*tensor.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	t, err := read(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Read reads one array from r and consumes exactly its bytes, so arrays written
// one after another to a stream (as repeated numpy.save calls on one file do) can
// be read one after another. Data in Fortran order is returned in C order;
// big-endian data is converted to little-endian.
func Read(r io.Reader) (*tensor.Tensor, error) {
	return read(r, -1)
}

// read reads one array; size is the number of bytes r holds, or -1 if unknown.
func read(r io.Reader, size int64) (*tensor.Tensor, error) {
	var pre [prefixLen]byte
	n, err := io.ReadFull(r, pre[:])
	if err != nil && !isEOF(err) {
		return nil, fmt.Errorf("read magic: %w", err)
	}
	if n == 0 {
		return nil, formatErr("not a .npy file (empty input)")
	}
	if n < len(magic) && !strings.HasPrefix(magic, string(pre[:n])) || n >= len(magic) && string(pre[:len(magic)]) != magic {
		return nil, formatErr("not a .npy file (bad magic)")
	}
	if n < prefixLen {
		return nil, formatErr("header: truncated after %d bytes", n)
	}
	major, minor := pre[6], pre[7]
	var lenSize int
	switch {
	case major == 1 && minor == 0:
		lenSize = 2
	case (major == 2 || major == 3) && minor == 0:
		lenSize = 4
	default:
		return nil, formatErr("header: format version %d.%d is not supported (supported: 1.0, 2.0, 3.0)", major, minor)
	}
	var lb [4]byte
	if n, err := io.ReadFull(r, lb[:lenSize]); err != nil {
		if isEOF(err) {
			return nil, formatErr("header: truncated after %d bytes", prefixLen+n)
		}
		return nil, fmt.Errorf("read header length: %w", err)
	}
	hlen := int64(binary.LittleEndian.Uint32(lb[:]))
	if hlen > maxHeaderLen {
		return nil, formatErr("header: length %d exceeds the limit of %d bytes", hlen, maxHeaderLen)
	}
	dataStart := int64(prefixLen+lenSize) + hlen
	if size >= 0 && size < dataStart {
		return nil, formatErr("header: length %d needs %d bytes, file has %d", hlen, dataStart, size)
	}
	hdr, got, err := readN(r, int(hlen), size >= 0)
	if err != nil {
		if isEOF(err) {
			return nil, formatErr("header: length %d needs %d bytes, file has %d", hlen, dataStart, int64(prefixLen+lenSize+got))
		}
		return nil, fmt.Errorf("read header: %w", err)
	}
	if major == 3 && !utf8.Valid(hdr) {
		return nil, formatErr("header: version 3.0 header is not valid UTF-8")
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	dt, bigEndian, err := parseDescr(h.descr)
	if err != nil {
		return nil, err
	}
	// The shape rule is tensor.CheckShape, the one Tensor.Validate applies,
	// so that every array Read returns is a valid tensor: an empty array's
	// other dimensions are bounded too ((0, 10, ..., 10) passed an
	// element-count check here once and failed Validate).
	if err := tensor.CheckShape(h.shape); err != nil {
		return nil, formatErr("header: %v", err)
	}
	count, err := tensor.Count(h.shape) // fails only where an int has 32 bits
	if err != nil || count > maxInt/dt.Size() {
		return nil, formatErr("header: shape %s of %s is too large", tensor.ShapeString(h.shape), dt)
	}
	need := count * dt.Size()
	if size >= 0 && size-dataStart < int64(need) {
		return nil, formatErr("data: shape %s of %s needs %d bytes, file has %d",
			tensor.ShapeString(h.shape), dt, need, size-dataStart)
	}
	raw, got, err := readN(r, need, size >= 0)
	if err != nil {
		if isEOF(err) {
			return nil, formatErr("data: shape %s of %s needs %d bytes, file has %d",
				tensor.ShapeString(h.shape), dt, need, got)
		}
		return nil, fmt.Errorf("read data: %w", err)
	}
	if bigEndian {
		swap(raw, dt.Size())
	}
	var t *tensor.Tensor
	ok := false
	if dt != tensor.Float16 { // float16 is widened to float32 by Decode
		t, ok, err = tensor.View(dt, h.shape, raw)
	}
	if err == nil && !ok {
		t, err = tensor.Decode(dt, h.shape, raw)
	}
	if err != nil {
		return nil, formatErr("data: %v", err) // unreachable: sizes were checked above
	}
	if h.fortran {
		t = fortranToC(t)
	}
	return t, nil
}

const maxInt = int(^uint(0) >> 1)

func isEOF(err error) bool {
	return err == io.EOF || err == io.ErrUnexpectedEOF
}

// readN reads exactly n bytes from r. Unless trusted (the caller has checked that
// r holds n bytes), it allocates in chunks as data arrives, so a header that
// claims gigabytes costs nothing when the bytes are not there. On a short read it
// returns the number of bytes read and io.ErrUnexpectedEOF or io.EOF.
func readN(r io.Reader, n int, trusted bool) ([]byte, int, error) {
	size := n
	if !trusted {
		size = min(n, chunk)
	}
	buf := make([]byte, size)
	got := 0
	for {
		m, err := io.ReadFull(r, buf[got:])
		got += m
		if err != nil {
			return nil, got, err
		}
		if got == n {
			return buf, got, nil
		}
		bigger := make([]byte, min(n, 2*len(buf)))
		copy(bigger, buf)
		buf = bigger
	}
}

// swap reverses the bytes of each size-byte element of b in place.
func swap(b []byte, size int) {
	switch size {
	case 2:
		for i := 0; i+2 <= len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	case 4:
		for i := 0; i+4 <= len(b); i += 4 {
			binary.LittleEndian.PutUint32(b[i:], binary.BigEndian.Uint32(b[i:]))
		}
	case 8:
		for i := 0; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.BigEndian.Uint64(b[i:]))
		}
	}
}

// parseDescr maps a descr string to a dtype and whether its data is big-endian.
// One-byte types accept any byte-order character; wider ones accept '<', '>',
// '=' (native, which NumPy never writes to a file; Spindle's hosts are
// little-endian) and none, but not '|' ("not applicable"), which would be
// ambiguous.
func parseDescr(descr string) (dt tensor.DType, bigEndian bool, err error) {
	s := descr
	var order byte
	if s != "" && strings.IndexByte("<>=|", s[0]) >= 0 {
		order, s = s[0], s[1:]
	}
	dt, ok := descrs[s]
	if !ok || dt.Size() > 1 && order == '|' {
		return 0, false, formatErr("header: descr %s is not supported (supported: %s)", pyRepr(descr), supported)
	}
	return dt, order == '>' && dt.Size() > 1, nil
}

// fortranToC returns t's data, stored in Fortran (column-major) order, as a
// C-order tensor of the same shape.
func fortranToC(t *tensor.Tensor) *tensor.Tensor {
	// Dimensions of size 1 do not change the layout; dropping them keeps the
	// index-carry loop amortised O(1) per element even for a hostile header
	// with thousands of unit dimensions.
	var dims []int
	for _, d := range t.Shape {
		if d != 1 {
			dims = append(dims, d)
		}
	}
	if len(dims) < 2 || t.Len() == 0 {
		return t
	}
	out := &tensor.Tensor{DType: t.DType, Shape: t.Shape}
	switch t.DType {
	case tensor.Float32:
		out.F32 = transpose(t.F32, dims)
	case tensor.Float64:
		out.F64 = transpose(t.F64, dims)
	case tensor.Int64:
		out.I64 = transpose(t.I64, dims)
	case tensor.Int32:
		out.I32 = transpose(t.I32, dims)
	case tensor.Int16:
		out.I16 = transpose(t.I16, dims)
	case tensor.Int8:
		out.I8 = transpose(t.I8, dims)
	case tensor.Uint64:
		out.U64 = transpose(t.U64, dims)
	case tensor.Uint32:
		out.U32 = transpose(t.U32, dims)
	case tensor.Uint16:
		out.U16 = transpose(t.U16, dims)
	case tensor.Uint8:
		out.U8 = transpose(t.U8, dims)
	case tensor.Bool:
		out.B = transpose(t.B, dims)
	}
	return out
}

// transpose reorders src, a column-major array of the given dims, into row-major
// order: element (i0, ..., ik) moves from offset i0 + d0*(i1 + d1*(...)) to its
// C-order position.
func transpose[T any](src []T, dims []int) []T {
	dst := make([]T, len(src))
	rank := len(dims)
	stride := make([]int, rank) // column-major strides
	s := 1
	for k, d := range dims {
		stride[k] = s
		s *= d
	}
	idx := make([]int, rank)
	off := 0
	for i := range dst {
		dst[i] = src[off]
		for k := rank - 1; k >= 0; k-- { // advance the C-order index
			idx[k]++
			off += stride[k]
			if idx[k] < dims[k] {
				break
			}
			idx[k] = 0
			off -= stride[k] * dims[k]
		}
	}
	return dst
}

// WriteFile writes t to path as a .npy file, replacing any existing file.
func WriteFile(path string, t *tensor.Tensor) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, t); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// Write writes t to w in .npy format, in C order and little-endian, with a
// version 1.0 header when the header fits in 65535 bytes and 2.0 otherwise.
func Write(w io.Writer, t *tensor.Tensor) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("write npy: %w", err)
	}
	if _, err := w.Write(encodeHeader(t.DType, t.Shape)); err != nil {
		return err
	}
	if data := t.Bytes(); len(data) > 0 {
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// encodeHeader returns magic, version, header length and header as numpy's
// format._write_array_header and _wrap_header produce them.
func encodeHeader(dt tensor.DType, shape []int) []byte {
	var d bytes.Buffer
	d.WriteString("{'descr': '")
	d.WriteString(descrOf(dt))
	d.WriteString("', 'fortran_order': False, 'shape': (")
	for i, n := range shape {
		if i > 0 {
			d.WriteString(", ")
		}
		d.WriteString(strconv.Itoa(n))
	}
	if len(shape) == 1 {
		d.WriteByte(',')
	}
	d.WriteString("), }")
	if len(shape) > 0 {
		d.WriteString(strings.Repeat(" ", growthDigits-len(strconv.Itoa(shape[0]))))
	}
	hlen := d.Len() + 1 // + '\n'
	version, lenSize := byte(1), 2
	pad := align - (prefixLen+lenSize+hlen)%align
	if hlen+pad > 0xffff {
		version, lenSize = 2, 4
		pad = align - (prefixLen+lenSize+hlen)%align
	}
	out := make([]byte, 0, prefixLen+lenSize+hlen+pad)
	out = append(out, magic...)
	out = append(out, version, 0)
	if lenSize == 2 {
		out = binary.LittleEndian.AppendUint16(out, uint16(hlen+pad))
	} else {
		out = binary.LittleEndian.AppendUint32(out, uint32(hlen+pad))
	}
	out = append(out, d.Bytes()...)
	out = append(out, bytes.Repeat([]byte{' '}, pad)...)
	return append(out, '\n')
}

// descrOf returns the little-endian descr numpy writes for dt.
func descrOf(dt tensor.DType) string {
	switch dt {
	case tensor.Float32:
		return "<f4"
	case tensor.Float64:
		return "<f8"
	case tensor.Int64:
		return "<i8"
	case tensor.Int32:
		return "<i4"
	case tensor.Int16:
		return "<i2"
	case tensor.Int8:
		return "|i1"
	case tensor.Uint64:
		return "<u8"
	case tensor.Uint32:
		return "<u4"
	case tensor.Uint16:
		return "<u2"
	case tensor.Uint8:
		return "|u1"
	case tensor.Bool:
		return "|b1"
	}
	panic("npy: descrOf: unsupported dtype " + dt.String()) // Validate rejected it
}
