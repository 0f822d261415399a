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
	// Before opening: opening a FIFO blocks until a writer comes, so a model
	// or external-data path that names one would hang the load for ever.
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
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
	st, err = f.Stat() // the file itself, should the path have changed
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
	adviseHuge(b)
	return &file{data: b, mapped: true}, nil
}

// adviseHuge asks for the mapping to be backed by 2 MiB pages where the
// kernel can (MADV_HUGEPAGE). On a file mapping this changes nothing about
// sharing or copying: it makes the page cache read the file in PMD-sized
// folios when a fault misses the cache, and every process that maps such a
// folio (with or without the advice) maps it with one page-table entry. A
// 400 MiB model then takes ~200 faults instead of ~6,500 fault-arounds of
// 64 KiB, and ~0.5 ms of page-table work instead of ~30 ms, and the GEMM
// kernels streaming the weights miss the TLB far less. Pages already cached
// in 4 KiB folios (a file just written, or read with read(2)) stay so until
// the kernel evicts them; kernels without file THP ignore or refuse the
// advice, which is harmless, so its error is dropped.
func adviseHuge(b []byte) {
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
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
