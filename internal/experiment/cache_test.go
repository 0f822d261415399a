package experiment

import (
	"os"
	"path/filepath"
	"testing"
)

func TestEvictEmptiesThePageCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weights.bin")
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(path); err != nil { // cache it
		t.Fatal(err)
	}
	before, err := residentFraction([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	if before < 0.9 {
		t.Skipf("a file just read is %.0f%% cached: this filesystem does not use the page cache as expected", before*100)
	}
	method, after, err := evict([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	if after > 0.05 {
		// tmpfs and some overlay filesystems keep their pages; evict says so
		// instead of pretending.
		t.Skipf("%s left %.0f%% of the file cached on this filesystem", method, after*100)
	}
	if method == "" {
		t.Errorf("evict reported no method")
	}
	if again, err := residentFraction([]string{path}); err != nil || again > 0.05 {
		t.Errorf("after evict: %.2f resident (%v), want about 0", again, err)
	}
}
