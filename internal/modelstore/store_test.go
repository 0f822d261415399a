package modelstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func stage(t *testing.T, s *Store, files map[string]string) string {
	t.Helper()
	dir, err := s.Stage()
	if err != nil {
		t.Fatal(err)
	}
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestIdenticalModelsAreStoredOnce commits the same files twice (as two
// functions or two tenants would deploy them): one folder, one digest, so
// every instance maps the same files.
func TestIdenticalModelsAreStoredOnce(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"model.onnx": "graph", "weights/w.bin": "0123456789"}
	d1, n1, err := s.Commit(stage(t, s, files))
	if err != nil {
		t.Fatal(err)
	}
	second := stage(t, s, files)
	d2, n2, err := s.Commit(second)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || n1 != 15 || n2 != 15 {
		t.Fatalf("digests %s %s, sizes %d %d", d1, d2, n1, n2)
	}
	if _, err := os.Stat(second); !os.IsNotExist(err) {
		t.Fatalf("the duplicate upload was kept: %v", err)
	}
	b, err := os.ReadFile(s.Path(d1, "weights/w.bin"))
	if err != nil || string(b) != "0123456789" {
		t.Fatalf("stored file: %q %v", b, err)
	}
}

func TestDigestDependsOnPathsAndContents(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base, _, _ := Digest(stage(t, s, map[string]string{"model.onnx": "a", "x.bin": "b"}))
	for name, files := range map[string]map[string]string{
		"content changed": {"model.onnx": "a", "x.bin": "c"},
		"file renamed":    {"model.onnx": "a", "y.bin": "b"},
		"file added":      {"model.onnx": "a", "x.bin": "b", "z": ""},
	} {
		d, _, err := Digest(stage(t, s, files))
		if err != nil {
			t.Fatal(err)
		}
		if d == base {
			t.Errorf("%s: same digest", name)
		}
	}
	if _, _, err := Digest(stage(t, s, nil)); err == nil {
		t.Error("an empty upload must be refused")
	}
}

// TestCommitRecachesModel checks that a committed model is resident in the
// page cache (read back after the upload's pages were dropped), so that no
// cold start reads it from disk.
func TestCommitRecachesModel(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := strings.Repeat("w", 4<<20)
	d, _, err := s.Commit(stage(t, s, map[string]string{"model.onnx": content}))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(s.Path(d, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(content), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	if n, all := resident(t, m); n != all {
		t.Fatalf("%d of %d pages cached after Commit, want all", n, all)
	}
	unix.Munmap(m)
	// The touch fallback, for kernels without MADV_POPULATE_READ, caches
	// every page too: dropped first (nothing maps them now), then touched.
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	m2, err := unix.Mmap(int(f.Fd()), 0, len(content), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m2)
	if n, all := resident(t, m2); n == all {
		t.Fatalf("all %d pages still cached after FADV_DONTNEED: the check below would prove nothing", all)
	}
	touch(m2)
	if n, all := resident(t, m2); n != all {
		t.Fatalf("%d of %d pages cached after touch, want all", n, all)
	}
}

// resident counts the pages of mapping m in the page cache (mincore(2)).
func resident(t *testing.T, m []byte) (n, all int) {
	t.Helper()
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		n += int(v & 1)
	}
	return n, len(vec)
}

// TestRemoveAndReconcile checks that Remove deletes one model folder and
// refuses names that are not digests, and that Reconcile removes every
// staging folder and the models not in use, keeping the rest.
func TestRemoveAndReconcile(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	used, _, err := s.Commit(stage(t, s, map[string]string{"model.onnx": "used"}))
	if err != nil {
		t.Fatal(err)
	}
	unused, _, err := s.Commit(stage(t, s, map[string]string{"model.onnx": "unused"}))
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := s.Commit(stage(t, s, map[string]string{"model.onnx": "gone"}))
	if err != nil {
		t.Fatal(err)
	}
	killed := stage(t, s, map[string]string{"model.onnx": "half an upload"}) // a deploy killed mid-way
	for _, bad := range []string{"", "..", "staging", "../x", strings.Repeat("g", 64)} {
		if err := s.Remove(bad); err == nil {
			t.Errorf("Remove(%q) succeeded", bad)
		}
	}
	if err := s.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path(gone, "")); !os.IsNotExist(err) {
		t.Errorf("removed model still there: %v", err)
	}
	removed, err := s.Reconcile(func(d string) bool { return d == used })
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("Reconcile removed %q, want the staging folder and the unused model", removed)
	}
	for path, want := range map[string]bool{s.Path(used, "model.onnx"): true, s.Path(unused, ""): false, killed: false} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", path, err == nil, want)
		}
	}
}
