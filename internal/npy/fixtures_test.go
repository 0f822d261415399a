package npy

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spindleml/spindle/internal/tensor"
)

// TestNumPyFixtures reads files written by real NumPy (testdata/gen.py) and
// compares them with the values NumPy listed in testdata/want.txt. For files
// in the layout Write produces (version 1.0, C order, little-endian), Write must
// reproduce NumPy's bytes exactly.
func TestNumPyFixtures(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "want.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		// "name descr [shape] [values]"
		name, rest, _ := strings.Cut(sc.Text(), " ")
		descr, rest, _ := strings.Cut(rest, " ")
		shapeStr, valStr, _ := strings.Cut(rest, "] [")
		n++
		t.Run(name, func(t *testing.T) {
			want := fixtureTensor(t, descr, pyList(shapeStr), pyList(valStr))
			path := filepath.Join("testdata", name)
			got, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, got, want)
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if file[6] != 1 || bytes.Contains(file[:128], []byte("True")) || descr[0] == '>' {
				return // not a layout Write produces
			}
			var b bytes.Buffer
			if err := Write(&b, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), file) {
				t.Errorf("Write differs from NumPy (-want +got):\n- %q\n+ %q", file, b.Bytes())
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d fixtures in want.txt", n)
	}
}

// pyList splits a Python list repr, with or without its brackets, into items.
func pyList(s string) []string {
	s = strings.Trim(s, "[]")
	if s == "" {
		return nil
	}
	return strings.Split(s, ", ")
}

func fixtureTensor(t *testing.T, descr string, shapeStr, vals []string) *tensor.Tensor {
	t.Helper()
	shape := make([]int, len(shapeStr))
	for i, s := range shapeStr {
		d, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		shape[i] = d
	}
	dt, _, err := parseDescr(descr)
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(dt, shape...)
	if x.Len() != len(vals) {
		t.Fatalf("want.txt: %d values for shape %v", len(vals), shape)
	}
	for i, s := range vals {
		fv, ferr := strconv.ParseFloat(s, 64)
		iv, ierr := strconv.ParseInt(s, 10, 64)
		switch dt {
		case tensor.Float32:
			x.F32[i], err = float32(fv), ferr
		case tensor.Float64:
			x.F64[i], err = fv, ferr
		case tensor.Int64:
			x.I64[i], err = iv, ierr
		case tensor.Int32:
			x.I32[i], err = int32(iv), ierr
		case tensor.Int8:
			x.I8[i], err = int8(iv), ierr
		case tensor.Uint8:
			x.U8[i], err = uint8(iv), ierr
		case tensor.Bool:
			x.B[i] = s == "True"
		}
		if err != nil {
			t.Fatalf("want.txt value %q: %v", s, err)
		}
	}
	return x
}
