package modelstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"golang.org/x/sys/unix"
)

// Store is a folder of model folders named by digest. Its zero value is unusable;
// call Open.
type Store struct {
	dir string
}

// Open returns the store rooted at dir, creating it.
func Open(dir string) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "staging")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	return &Store{dir: dir}, nil
}

// Stage creates an empty folder to upload a model's files into before Commit.
func (s *Store) Stage() (string, error) {
	return os.MkdirTemp(filepath.Join(s.dir, "staging"), "upload-")
}

// Path returns the path of file inside the model folder digest.
func (s *Store) Path(digest, file string) string {
	return filepath.Join(s.dir, digest, file)
}

// Commit moves a staged folder into the store under its digest: the sha256 over
// the sorted relative paths and contents of its files. If the same model is
// already stored the staged copy is discarded. It returns the digest and the total
// size of the files.
func (s *Store) Commit(staged string) (digest string, size int64, err error) {
	digest, size, err = Digest(staged)
	if err != nil {
		return "", 0, err
	}
	dst := filepath.Join(s.dir, digest)
	if _, err := os.Stat(dst); err == nil {
		return digest, size, os.RemoveAll(staged)
	}
	if err := settle(staged); err != nil {
		return "", 0, err
	}
	if err := os.Rename(staged, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil { // lost a race with an identical upload
			return digest, size, os.RemoveAll(staged)
		}
		return "", 0, err
	}
	return digest, size, nil
}

// validDigest matches the names Commit gives model folders: a sha256 in hex.
func validDigest(d string) bool {
	if len(d) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(d)
	return err == nil
}

// Remove deletes the model folder digest. Instances that map its files keep
// them until they exit (the kernel frees an unlinked file when its last
// mapping goes); new ones cannot start from it. Removing a model that is not
// stored is not an error.
func (s *Store) Remove(digest string) error {
	if !validDigest(digest) {
		return fmt.Errorf("model store: %q is not a model digest", digest)
	}
	return os.RemoveAll(filepath.Join(s.dir, digest))
}

// Reconcile removes what no one will read: every staging folder (a deploy
// that was still uploading when the platform stopped) and every model folder
// whose digest keep does not report as in use. Call it before any deploy
// runs. It returns what it removed, as paths relative to the store.
func (s *Store) Reconcile(keep func(digest string) bool) ([]string, error) {
	var removed []string
	var errs []error
	staging, err := os.ReadDir(filepath.Join(s.dir, "staging"))
	if err != nil {
		return nil, err
	}
	for _, e := range staging {
		rel := filepath.Join("staging", e.Name())
		if err := os.RemoveAll(filepath.Join(s.dir, rel)); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, rel)
	}
	models, err := os.ReadDir(s.dir)
	if err != nil {
		return removed, err
	}
	for _, e := range models {
		if !e.IsDir() || !validDigest(e.Name()) || keep(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// Digest hashes a folder's regular files (paths and contents) in sorted order.
func Digest(dir string) (string, int64, error) {
	type entry struct {
		rel string
		sum [32]byte
	}
	var entries []entry
	var size int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", path)
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		size += n
		var e entry
		e.rel = filepath.ToSlash(rel)
		copy(e.sum[:], h.Sum(nil))
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	if len(entries) == 0 {
		return "", 0, errors.New("no files")
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%s\x00%x\n", e.rel, e.sum)
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// settle makes a staged model durable (fsync), drops its pages from the
// page cache and reads them back through a mapping that asks for 2 MiB pages.
// The upload wrote them in 4 KiB pages; read back so, the page cache holds
// the model in 2 MiB folios, which every instance then maps with one
// page-table entry per 2 MiB: a BERT-size model's first inference in a new
// process pays ~0.5 ms of page-table work instead of ~35-45 ms (see
// BENCHMARKS.md), and no cold start has to read the model from disk.
// Dropping and the page size are advice: where the kernel ignores them the
// model is simply cached as it was written.
func settle(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", path, err)
		}
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		recache(f)
		return nil
	})
}

// hugePage is the size of the page-cache folios recache asks for.
const hugePage = 2 << 20

// recache reads f back into the page cache through a read-only mapping
// advised MADV_HUGEPAGE, touching each 4 KiB page once, so that the kernel
// caches it in PMD-sized folios where it can. Files under 2 MiB are read
// back in small pages as they come.
func recache(f *os.File) {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 || st.Size() > math.MaxInt {
		return
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return
	}
	defer unix.Munmap(m)
	if st.Size() >= hugePage {
		_ = unix.Madvise(m, unix.MADV_HUGEPAGE)
	}
	// MADV_POPULATE_READ (Linux 5.14) faults the whole mapping in one call;
	// older kernels get each page touched.
	if unix.Madvise(m, unix.MADV_POPULATE_READ) != nil {
		touch(m)
	}
}

// touch reads one byte of every 4 KiB page of m.
func touch(m []byte) {
	var sum byte
	for i := 0; i < len(m); i += 4096 {
		sum += m[i]
	}
	runtime.KeepAlive(sum)
}
