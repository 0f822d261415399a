package experiment

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// evict pushes files out of the page cache and returns how: posix_fadvise
// DONTNEED on just these files (it leaves other programs' cache alone), or,
// when that leaves more than 5% of their pages resident, a system-wide
// drop_caches. resident is the fraction still cached afterwards (mincore).
func evict(files []string) (method string, resident float64, err error) {
	for _, f := range files {
		if err := fadviseDontNeed(f); err != nil {
			return "", 1, err
		}
	}
	method = "posix_fadvise(DONTNEED)"
	if resident, err = residentFraction(files); err != nil {
		return "", 1, err
	}
	if resident <= 0.05 {
		return method, resident, nil
	}
	unix.Sync()
	if werr := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); werr != nil {
		return method, resident, nil // the caller reports the residency
	}
	method = "drop_caches"
	resident, err = residentFraction(files)
	return method, resident, err
}

func fadviseDontNeed(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// Dirty pages cannot be dropped; a freshly generated model has some.
	if err := unix.Fdatasync(int(f.Fd())); err != nil && err != unix.EINVAL {
		return fmt.Errorf("evict %s: fdatasync: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("evict %s: fadvise: %w", path, err)
	}
	return nil
}

// residentFraction is the fraction of the files' pages in the page cache.
func residentFraction(files []string) (float64, error) {
	var in, total int
	for _, path := range files {
		i, t, err := residentPages(path)
		if err != nil {
			return 0, err
		}
		in += i
		total += t
	}
	if total == 0 {
		return 0, nil
	}
	return float64(in) / float64(total), nil
}

// residentPages counts path's pages in the page cache with mincore(2) on a
// mapping that itself touches nothing.
func residentPages(path string) (in, total int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, 0, err
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, 0, fmt.Errorf("mincore %s: mmap: %w", path, err)
	}
	defer unix.Munmap(data)
	page := os.Getpagesize()
	total = (len(data) + page - 1) / page
	vec := make([]byte, total)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return 0, 0, fmt.Errorf("mincore %s: %w", path, errno)
	}
	for _, v := range vec {
		in += int(v & 1)
	}
	return in, total, nil
}
