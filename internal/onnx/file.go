package onnx

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// file is a model or external-data file's bytes: a heap buffer, or a read-only
// shared mapping that close unmaps.
type file struct {
	data   []byte
	mapped bool
}

func openFile(path string, mode LoadMode) (*file, error) {
	if mode != Mmap {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return &file{data: b}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() == 0 {
		return &file{data: []byte{}}, nil
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return &file{data: b, mapped: true}, nil
}

func (f *file) close() error {
	if !f.mapped {
		f.data = nil
		return nil
	}
	err := unix.Munmap(f.data)
	f.data, f.mapped = nil, false
	return err
}
