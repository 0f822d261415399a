package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/tensor"
)

// file assembles a .npy file by hand from the parts NEP 1 names: magic, version,
// little-endian header length (2 bytes for 1.0, 4 for 2.0 and 3.0), header, data.
// The header is used as given, so tests control padding exactly.
func file(major byte, hdr string, data []byte) []byte {
	b := []byte("\x93NUMPY")
	b = append(b, major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(hdr)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(hdr)))
	}
	b = append(b, hdr...)
	return append(b, data...)
}

func f32le(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func mustRead(t *testing.T, b []byte) *tensor.Tensor {
	t.Helper()
	got, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got
}

func equal(t *testing.T, got, want *tensor.Tensor) {
	t.Helper()
	if got.DType != want.DType || !reflect.DeepEqual(norm(got.Shape), norm(want.Shape)) ||
		!bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("tensor mismatch (-want +got):\n- %v %v\n+ %v %v", want, want.Bytes(), got, got.Bytes())
	}
}

func norm(s []int) []int {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestWriteGolden checks Write against bytes built by hand following NEP 1 and
// numpy/lib/format.py: the dict repr with sorted keys and a trailing ", ", then
// (NumPy >= 1.23) 21-len(str(shape[0])) spaces of growth room, then space
// padding and '\n' so that magic+version+length+header is a multiple of 64.
func TestWriteGolden(t *testing.T) {
	tests := []struct {
		name string
		in   *tensor.Tensor
		want string
	}{{
		// np.save(f, np.array([[1, 2, 3], [4, 5, -0.5]], dtype='<f4'))
		// dict is 59 bytes; 10 + 59 + 20 growth + 1 newline = 90, padded to 128:
		// header length 118 = 0x76.
		name: "float32 2x3",
		in:   tensor.FromF32([]float32{1, 2, 3, 4, 5, -0.5}, 2, 3),
		want: "\x93NUMPY\x01\x00\x76\x00" +
			"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" +
			strings.Repeat(" ", 20+38) + "\n" +
			"\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40\x00\x00\xa0\x40\x00\x00\x00\xbf",
	}, {
		// np.save(f, np.array([7, -1, 256])): 1-D shapes keep the trailing comma.
		name: "int64 vector",
		in:   tensor.FromI64([]int64{7, -1, 256}, 3),
		want: "\x93NUMPY\x01\x00\x76\x00" +
			"{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }" +
			strings.Repeat(" ", 20+40) + "\n" +
			"\x07\x00\x00\x00\x00\x00\x00\x00" + "\xff\xff\xff\xff\xff\xff\xff\xff" + "\x00\x01\x00\x00\x00\x00\x00\x00",
	}, {
		// np.save(f, np.float64(2.0)): no growth room for a scalar; 10+55+1 = 66,
		// padded with 62 spaces to 128.
		name: "float64 scalar",
		in:   &tensor.Tensor{DType: tensor.Float64, F64: []float64{2}},
		want: "\x93NUMPY\x01\x00\x76\x00" +
			"{'descr': '<f8', 'fortran_order': False, 'shape': (), }" +
			strings.Repeat(" ", 62) + "\n" +
			"\x00\x00\x00\x00\x00\x00\x00\x40",
	}, {
		name: "bool empty",
		in:   &tensor.Tensor{DType: tensor.Bool, Shape: []int{0, 2}, B: []bool{}},
		want: "\x93NUMPY\x01\x00\x76\x00" +
			"{'descr': '|b1', 'fortran_order': False, 'shape': (0, 2), }" +
			strings.Repeat(" ", 20+38) + "\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Write(&b, tt.in); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("Write bytes (-want +got):\n- %q\n+ %q", tt.want, got)
			}
			equal(t, mustRead(t, b.Bytes()), tt.in)
		})
	}
}

// TestWriteHeaderAlignment checks the padding rule for shapes of every rank up
// to one that needs a second 64-byte block, including numpy's quirk that an
// already aligned header still gets 64 bytes of padding.
func TestWriteHeaderAlignment(t *testing.T) {
	shape := []int{}
	for rank := 0; rank <= 40; rank++ {
		h := encodeHeader(tensor.Uint8, shape)
		if len(h)%align != 0 || h[len(h)-1] != '\n' {
			t.Fatalf("rank %d: header of %d bytes is not 64-aligned or lacks '\\n'", rank, len(h))
		}
		dictLen := len(bytes.TrimRight(h[10:len(h)-1], " "))
		if rank > 0 {
			dictLen += growthDigits - len("7")
		}
		if pad := len(h) - 10 - dictLen - 1; pad < 1 || pad > align {
			t.Errorf("rank %d: %d bytes of padding, want 1..64", rank, pad)
		}
		if got := int(binary.LittleEndian.Uint16(h[8:])); got != len(h)-10 {
			t.Errorf("rank %d: header length field %d, want %d", rank, got, len(h)-10)
		}
		shape = append(shape, 7)
	}
}

func TestRoundTrip(t *testing.T) {
	shapes := [][]int{{}, {0}, {2, 0, 3}, {5}, {2, 3, 4}}
	fill := func(dt tensor.DType, shape []int) *tensor.Tensor {
		x := tensor.New(dt, shape...)
		for i := range x.Len() {
			switch dt {
			case tensor.Float32:
				x.F32[i] = float32(i)*1.5 - 3
			case tensor.Float64:
				x.F64[i] = float64(i)*-0.25 + 1e300
			case tensor.Int64:
				x.I64[i] = int64(i) - 1<<40
			case tensor.Int32:
				x.I32[i] = int32(i) - 1<<30
			case tensor.Int8:
				x.I8[i] = int8(i - 100)
			case tensor.Uint8:
				x.U8[i] = uint8(i + 200)
			case tensor.Int16:
				x.I16[i] = int16(i - 30000)
			case tensor.Uint16:
				x.U16[i] = uint16(i + 65500)
			case tensor.Uint32:
				x.U32[i] = uint32(i + 1<<31)
			case tensor.Uint64:
				x.U64[i] = uint64(i) + 1<<63
			case tensor.Bool:
				x.B[i] = i%3 == 0
			}
		}
		return x
	}
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int64, tensor.Int32, tensor.Int8, tensor.Uint8,
		tensor.Int16, tensor.Uint16, tensor.Uint32, tensor.Uint64, tensor.Bool} {
		for _, shape := range shapes {
			t.Run(dt.String()+tensor.ShapeString(shape), func(t *testing.T) {
				want := fill(dt, shape)
				path := filepath.Join(t.TempDir(), "x.npy")
				if err := WriteFile(path, want); err != nil {
					t.Fatal(err)
				}
				got, err := ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				equal(t, got, want)
			})
		}
	}
}

// TestWriteVersion2 encodes a header too long for version 1.0's 16-bit
// length. No valid tensor needs one since tensor.CheckShape caps the rank at
// tensor.MaxRank (64 dimensions take under 1 kB), so Write cannot reach this
// path any more and the test drives encodeHeader itself.
func TestWriteVersion2(t *testing.T) {
	shape := make([]int, 30000) // "1, " per dimension: about 90 kB of header
	for i := range shape {
		shape[i] = 1
	}
	h := encodeHeader(tensor.Float32, shape)
	if got := h[6]; got != 2 {
		t.Fatalf("version %d, want 2", got)
	}
	hlen := binary.LittleEndian.Uint32(h[8:])
	if (12+int(hlen))%align != 0 {
		t.Errorf("header length %d: data does not start 64-aligned", hlen)
	}
	if len(h) != 12+int(hlen) || h[len(h)-1] != '\n' {
		t.Errorf("header of %d bytes, length field %d: want 12+length bytes ending in a newline", len(h), hlen)
	}
	// Read parses it, then refuses the rank by the rule Validate applies.
	if _, err := Read(bytes.NewReader(append(h, f32le(42)...))); err == nil || !strings.Contains(err.Error(), "shape has 30000 dimensions, more than 64") {
		t.Errorf("Read: error %v, want the rank limit", err)
	}
}

func TestReadHeaders(t *testing.T) {
	data := f32le(1, 2, 3)
	want := tensor.FromF32([]float32{1, 2, 3}, 3)
	tests := []struct {
		name  string
		major byte
		hdr   string
	}{
		{"keys in any order", 1, "{'shape': (3,), 'fortran_order': False, 'descr': '<f4'}\n"},
		{"double quotes and no spaces", 1, `{"descr":"<f4","fortran_order":False,"shape":(3,)}`},
		{"trailing commas and tabs", 1, "{\t'descr' : '<f4' ,\n 'fortran_order': False,\n 'shape': ( 3 , ) , }   \n"},
		{"python 2 long", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3L,), }\n"},
		{"unicode prefix", 1, "{u'descr': u'<f4', 'fortran_order': False, 'shape': (3,)}\n"},
		{"native order", 1, "{'descr': '=f4', 'fortran_order': False, 'shape': (3,)}\n"},
		{"no order", 1, "{'descr': 'f4', 'fortran_order': False, 'shape': (3,)}\n"},
		{"version 2", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }" + strings.Repeat(" ", 200) + "\n"},
		{"version 3", 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n"},
		{"fortran 1-D", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3,)}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equal(t, mustRead(t, file(tt.major, tt.hdr, data)), want)
		})
	}
}

func TestReadSmallTypes(t *testing.T) {
	tests := []struct {
		descr string
		want  *tensor.Tensor
	}{
		{"<u1", &tensor.Tensor{DType: tensor.Uint8, Shape: []int{2}, U8: []uint8{1, 255}}},
		{">u1", &tensor.Tensor{DType: tensor.Uint8, Shape: []int{2}, U8: []uint8{1, 255}}},
		{"i1", &tensor.Tensor{DType: tensor.Int8, Shape: []int{2}, I8: []int8{1, -1}}},
		{"|b1", &tensor.Tensor{DType: tensor.Bool, Shape: []int{2}, B: []bool{true, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.descr, func(t *testing.T) {
			hdr := "{'descr': '" + tt.descr + "', 'fortran_order': False, 'shape': (2,)}\n"
			equal(t, mustRead(t, file(1, hdr, []byte{1, 255})), tt.want)
		})
	}
}

func TestReadBigEndian(t *testing.T) {
	be := func(words ...uint64) []byte { // each value's bytes, most significant first
		var b []byte
		for _, w := range words {
			b = binary.BigEndian.AppendUint64(b, w)
		}
		return b
	}
	tests := []struct {
		descr string
		data  []byte
		want  *tensor.Tensor
	}{
		{">f4", binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, math.Float32bits(1.5)), math.Float32bits(-2)),
			tensor.FromF32([]float32{1.5, -2}, 2)},
		{">f8", be(math.Float64bits(3.25), math.Float64bits(-1e-300)),
			&tensor.Tensor{DType: tensor.Float64, Shape: []int{2}, F64: []float64{3.25, -1e-300}}},
		{">i8", be(1<<40+5, math.MaxUint64), tensor.FromI64([]int64{1<<40 + 5, -1}, 2)},
		{">i4", binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0x01020304), 0xfffffffe),
			&tensor.Tensor{DType: tensor.Int32, Shape: []int{2}, I32: []int32{0x01020304, -2}}},
		// float16 is read as float32: 1.5 and -65504.
		{">f2", []byte{0x3e, 0x00, 0xfb, 0xff}, tensor.FromF32([]float32{1.5, -65504}, 2)},
		{"<f2", []byte{0x00, 0x3e, 0xff, 0xfb}, tensor.FromF32([]float32{1.5, -65504}, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.descr, func(t *testing.T) {
			hdr := "{'descr': '" + tt.descr + "', 'fortran_order': False, 'shape': (2,), }\n"
			equal(t, mustRead(t, file(1, hdr, tt.data)), tt.want)
		})
	}
}

func TestReadFortran(t *testing.T) {
	// want[i,j,k] = 100i + 10j + k; Fortran order stores i fastest.
	tests := []struct {
		name  string
		shape []int
	}{{"2x3", []int{2, 3}}, {"2x3x4", []int{2, 3, 4}}, {"unit dims", []int{1, 2, 1, 3, 1}}, {"4x1", []int{4, 1}}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tensor.NumElements(tt.shape)
			want := tensor.New(tensor.Int32, tt.shape...)
			fort := make([]int32, n)
			idx := make([]int, len(tt.shape))
			for c := range n {
				// idx is the C-order multi-index of element c.
				v, f, stride := int32(0), 0, 1
				for k := range idx {
					v = v*10 + int32(idx[k])
					f += idx[k] * stride
					stride *= tt.shape[k]
				}
				want.I32[c] = v
				fort[f] = v
				for k := len(idx) - 1; k >= 0; k-- {
					if idx[k]++; idx[k] < tt.shape[k] {
						break
					}
					idx[k] = 0
				}
			}
			src := &tensor.Tensor{DType: tensor.Int32, Shape: tt.shape, I32: fort}
			hdr := "{'descr': '<i4', 'fortran_order': True, 'shape': " + pyShape(tt.shape) + ", }\n"
			equal(t, mustRead(t, file(1, hdr, src.Bytes())), want)
		})
	}
}

func pyShape(s []int) string {
	var b strings.Builder
	b.WriteByte('(')
	for _, d := range s {
		b.WriteString(strconv.Itoa(d) + ",")
	}
	b.WriteByte(')')
	return b.String()
}

// TestReadStream reads two arrays written back to back, as two numpy.save
// calls on one open file produce.
func TestReadStream(t *testing.T) {
	a := tensor.FromF32([]float32{1, 2}, 2)
	b := tensor.FromI64([]int64{3}, 1, 1)
	var buf bytes.Buffer
	for _, x := range []*tensor.Tensor{a, b} {
		if err := Write(&buf, x); err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(buf.Bytes())
	for _, want := range []*tensor.Tensor{a, b} {
		got, err := Read(r)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, got, want)
	}
	if r.Len() != 0 {
		t.Errorf("%d bytes left unread", r.Len())
	}
}

func TestReadErrors(t *testing.T) {
	hdr := func(descr, fortran, shape string) string {
		return "{'descr': " + descr + ", 'fortran_order': " + fortran + ", 'shape': " + shape + ", }\n"
	}
	ok := hdr("'<f4'", "False", "(2, 3)")
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "not a .npy file (empty input)"},
		{"bad magic", []byte("PK\x03\x04 this is a zip"), "not a .npy file (bad magic)"},
		{"short bad magic", []byte("\x93NUM!"), "not a .npy file (bad magic)"},
		{"truncated magic", []byte("\x93NUM"), "header: truncated after 4 bytes"},
		{"truncated length", []byte("\x93NUMPY\x01\x00\x10"), "header: truncated after 9 bytes"},
		{"version 4.0", file(4, ok, nil), "header: format version 4.0 is not supported (supported: 1.0, 2.0, 3.0)"},
		{"version 1.1", append([]byte("\x93NUMPY\x01\x01"), file(1, ok, nil)[8:]...), "format version 1.1 is not supported"},
		{"huge header length", []byte("\x93NUMPY\x02\x00\xff\xff\xff\x7f{"), "header: length 2147483647 exceeds the limit of 1048576 bytes"},
		{"truncated header", file(1, ok, nil)[:30], "header: length 60 needs 70 bytes, file has 30"},
		{"not a dict", file(1, "('<f4', False, (2,))\n", nil), "header: is a tuple, not a dict"},
		{"syntax", file(1, "{'descr' '<f4'}", nil), "header: invalid literal at byte 9: expected ':' after key 'descr', found '\\''"},
		{"unterminated", file(1, "{'descr': '<f4", nil), "unterminated string"},
		{"junk after dict", file(1, ok[:len(ok)-1]+"x\n", nil), "unexpected 'x' after the dict"},
		{"bare word", file(1, hdr("'<f4'", "false", "(2,)"), nil), "expected a value, found 'f'"},
		{"True prefix", file(1, hdr("'<f4'", "Truest", "(2,)"), nil), "expected a value, found 'T'"},
		{"hex int", file(1, hdr("'<f4'", "False", "(0x10,)"), nil), "only decimal ints are supported"},
		{"float dim", file(1, hdr("'<f4'", "False", "(2.5,)"), nil), "only decimal ints are supported"},
		{"leading zero", file(1, hdr("'<f4'", "False", "(02,)"), nil), "int 02 has a leading zero"},
		{"huge int", file(1, hdr("'<f4'", "False", "(99999999999999999999,)"), nil), "int 99999999999999999999 is out of range"},
		{"deep nesting", file(1, "{'descr': "+strings.Repeat("[", 40)+"}", nil), "nested more than 32 levels deep"},
		{"missing key", file(1, "{'descr': '<f4', 'shape': (2,)}", nil), "header: missing key 'fortran_order'"},
		{"extra key", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", nil), "header: unexpected key 'x'"},
		{"duplicate key", file(1, "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", nil), "duplicate key 'descr'"},
		{"non-string key", file(1, "{1: '<f4'}", nil), "dict key is an int, not a string"},
		{"complex", file(1, hdr("'<c8'", "False", "(2,)"), nil), "header: descr '<c8' is not supported (supported: <f4, <f2, <f8, <i8, <i4, <i2, |i1, <u8, <u4, <u2, |u1, |b1"},
		{"float16 short", file(1, hdr("'<f2'", "False", "(2,)"), nil), "shape [2] of float16 needs 4 bytes, file has 0"},
		{"unicode", file(1, hdr("'<U3'", "False", "(2,)"), nil), "descr '<U3' is not supported"},
		{"pipe on wide type", file(1, hdr("'|f4'", "False", "(2,)"), nil), "descr '|f4' is not supported"},
		{"structured", file(1, hdr("[('a', '<f4'), ('b', '<i4')]", "False", "(2,)"), nil), "header: descr is a list (a structured dtype), which is not supported"},
		{"descr int", file(1, hdr("4", "False", "(2,)"), nil), "header: descr is an int, not a string"},
		{"fortran not bool", file(1, hdr("'<f4'", "1", "(2,)"), nil), "header: fortran_order is an int, not True or False"},
		{"shape list", file(1, hdr("'<f4'", "False", "[2, 3]"), nil), "header: shape is a list, not a tuple"},
		{"shape paren int", file(1, hdr("'<f4'", "False", "(3)"), nil), "header: shape is an int, not a tuple"},
		{"shape str", file(1, hdr("'<f4'", "False", "('2',)"), nil), "header: shape[0] is a str, not an int"},
		{"negative dim", file(1, hdr("'<f4'", "False", "(2, -3)"), nil), "header: shape[1] is -3, must be between 0 and"},
		{"overflow", file(1, hdr("'<f8'", "False", "(4294967296, 4294967296)"), nil), "header: shape [4294967296 4294967296]: dimension 0 is 4294967296, more than 2147483648"},
		// An empty array whose other dimensions multiply past tensor.MaxElements:
		// Read once took it (0 elements) and Tensor.Validate refused the result
		// (found by FuzzRead, testdata/fuzz/FuzzRead/297a2990ec31a5bf).
		{"empty, huge other dims", file(1, hdr("'|b1'", "False", "(0,10,10,10,10,10,10,10,10,10,10,10,10,10,10,10)"), nil),
			"header: shape [0 10 10 10 10 10 10 10 10 10 10 10 10 10 10 10]: the product of its non-zero dimensions is more than 2147483648"},
		{"empty, huge dim", file(1, hdr("'<f4'", "False", "(0, 4294967296)"), nil), "header: shape [0 4294967296]: dimension 1 is 4294967296, more than 2147483648"},
		{"short data", file(1, ok, f32le(1, 2, 3, 4, 5)), "data: shape [2 3] of float32 needs 24 bytes, file has 20"},
		{"no data", file(1, ok, nil), "data: shape [2 3] of float32 needs 24 bytes, file has 0"},
		{"v3 bad utf8", file(3, "{'descr': '<f4\xff', 'fortran_order': False, 'shape': (2,)}", nil), "header: version 3.0 header is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(bytes.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Read = %v, want error containing %q", got, tt.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %q does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestReadFileErrors covers the checks ReadFile makes from the file size before
// reading, and that its errors name the file.
func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	ok := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n"
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"short data", file(1, ok, f32le(1, 2, 3, 4, 5)), "short data: npy: data: shape [2 3] of float32 needs 24 bytes, file has 20"},
		{"short header", file(1, ok, nil)[:40], "short header: npy: header: length 60 needs 70 bytes, file has 40"},
		{"huge claim", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,)}", nil), "needs 4000000000 bytes, file has 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := os.WriteFile(path, tt.in, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadFile(path)
			if !errors.Is(err, ErrFormat) || !strings.HasSuffix(err.Error(), tt.want) {
				t.Errorf("ReadFile error %v, want ErrFormat ending in %q", err, tt.want)
			}
		})
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: error %v, want os.ErrNotExist", err)
	}
}

// TestReadHostileSize checks that a header claiming a huge array costs memory
// in proportion to the bytes present, not the claim.
func TestReadHostileSize(t *testing.T) {
	in := file(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2147483648,)}", f32le(1, 2, 3))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Read(bytes.NewReader(in))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "needs 17179869184 bytes, file has 12") {
		t.Fatalf("Read error %v, want a data size error", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2*chunk {
		t.Errorf("allocated %d bytes for a 12-byte payload, want at most %d", alloc, 2*chunk)
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		in   *tensor.Tensor
	}{
		{"nil", nil},
		{"length mismatch", tensor.FromF32([]float32{1, 2}, 3)},
		{"float16", &tensor.Tensor{DType: tensor.Float16, Shape: []int{1}}},
		{"string", &tensor.Tensor{DType: tensor.String}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Write(&b, tt.in); err == nil {
				t.Errorf("Write succeeded, want error")
			}
			if b.Len() != 0 {
				t.Errorf("Write wrote %d bytes before failing", b.Len())
			}
		})
	}
}
