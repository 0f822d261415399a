package npy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead checks that Read never panics, that every error it returns for
// in-memory input wraps ErrFormat, and that every tensor it returns is valid and
// survives a Write/Read round trip unchanged.
func FuzzRead(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.npy"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(file(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1, 2), }\n", f32le(1, 2, 3, 4)))
	f.Add(file(3, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (), }\n", nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Read(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %q does not wrap ErrFormat", err)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("Read returned an invalid tensor: %v", err)
		}
		var b bytes.Buffer
		if err := Write(&b, got); err != nil {
			t.Fatalf("Write after Read: %v", err)
		}
		again, err := Read(&b)
		if err != nil {
			t.Fatalf("Read after Write: %v", err)
		}
		equal(t, again, got)
	})
}
