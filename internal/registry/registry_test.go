package registry

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openReg(t *testing.T, path string) *Registry {
	t.Helper()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func names(fs []Function) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Owner+"/"+f.Name)
	}
	return out
}

func TestFunctionsAreNamespacedByOwner(t *testing.T) {
	r := openReg(t, filepath.Join(t.TempDir(), "db"))
	for _, f := range []Function{
		{Owner: "alice", Name: "m", ModelDigest: "a"},
		{Owner: "bob", Name: "m", ModelDigest: "b"},
		{Owner: "alice", Name: "z"},
		{Owner: "alice-2", Name: "x"}, // shares a prefix with alice
	} {
		if err := r.Put(f); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		owner string
		want  []string
	}{
		{"alice", []string{"alice/m", "alice/z"}},
		{"bob", []string{"bob/m"}},
		{"carol", nil},
		{"", []string{"alice/m", "alice/z", "alice-2/x", "bob/m"}},
	}
	for _, tc := range tests {
		fs, err := r.List(tc.owner)
		if got := names(fs); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %v, %v; want %v", tc.owner, got, err, tc.want)
		}
	}
	if f, err := r.Get("bob", "m"); err != nil || f.ModelDigest != "b" {
		t.Fatalf("Get(bob, m) = %+v, %v", f, err)
	}
	if _, err := r.Get("carol", "m"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(carol, m): %v, want ErrNotFound", err)
	}
	if err := r.Delete("carol", "m"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete(carol, m): %v, want ErrNotFound", err)
	}
	if err := r.Delete("alice", "m"); err != nil {
		t.Fatal(err)
	}
	if f, err := r.Get("bob", "m"); err != nil || f.ModelDigest != "b" {
		t.Fatalf("bob's m after alice deleted hers: %+v, %v", f, err)
	}
	if err := r.Put(Function{Owner: "a/b", Name: "m"}); err == nil {
		t.Fatal("owner with '/' accepted")
	}
}

func TestPutWithinLimit(t *testing.T) {
	r := openReg(t, filepath.Join(t.TempDir(), "db"))
	if err := r.PutWithin(Function{Owner: "alice", Name: "a"}, 2); err != nil {
		t.Fatal(err)
	}
	if err := r.PutWithin(Function{Owner: "alice", Name: "b"}, 2); err != nil {
		t.Fatal(err)
	}
	if err := r.PutWithin(Function{Owner: "alice", Name: "c"}, 2); !errors.Is(err, ErrLimit) {
		t.Fatalf("third function with limit 2: %v, want ErrLimit", err)
	}
	// Replacing one at the limit is fine, and other owners are not counted.
	if err := r.PutWithin(Function{Owner: "alice", Name: "b", ModelDigest: "new"}, 2); err != nil {
		t.Fatalf("redeploy at the limit: %v", err)
	}
	if err := r.PutWithin(Function{Owner: "bob", Name: "c"}, 1); err != nil {
		t.Fatalf("bob's first function: %v", err)
	}
}

// A database written before functions had owners keeps its functions, now
// owned by DefaultOwner.
func TestMigratesUnownedFunctions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := json.Marshal(map[string]any{"name": "mnist", "task": "infer", "model_digest": "abc"})
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketFunctions)
		if err != nil {
			return err
		}
		return b.Put([]byte("mnist"), old)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := openReg(t, path)
	f, err := r.Get(DefaultOwner, "mnist")
	if err != nil || f.Owner != DefaultOwner || f.ModelDigest != "abc" {
		t.Fatalf("migrated function: %+v, %v", f, err)
	}
	if fs, _ := r.List(""); len(fs) != 1 {
		t.Fatalf("after migration: %v, want only default/mnist", names(fs))
	}
}

// TestGetSeesEveryWrite checks the lookup cache: a Get after Put, Update or
// Delete returns what the database holds, also while Gets and Updates run
// concurrently (go test -race), and the last value read is the last written.
func TestGetSeesEveryWrite(t *testing.T) {
	r := openReg(t, filepath.Join(t.TempDir(), "reg.db"))
	f := Function{Name: "fn", Owner: "acme", Task: "infer", VCPU: 1}
	if err := r.Put(f); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get("acme", "fn"); err != nil || got.VCPU != 1 {
		t.Fatalf("Get after Put: %+v %v", got, err)
	}
	if _, err := r.Update("acme", "fn", func(f *Function) error { f.VCPU = 2; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Get("acme", "fn"); got.VCPU != 2 {
		t.Fatalf("Get after Update: VCPU %v, want 2", got.VCPU)
	}
	f.VCPU = 3
	if err := r.Put(f); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Get("acme", "fn"); got.VCPU != 3 {
		t.Fatalf("Get after a second Put: VCPU %v, want 3", got.VCPU)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				r.Get("acme", "fn")
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				r.Update("acme", "fn", func(f *Function) error { f.VCPU++; return nil })
			}
		}()
	}
	wg.Wait()
	if got, _ := r.Get("acme", "fn"); got.VCPU != 3+4*50 {
		t.Fatalf("after 200 concurrent increments: VCPU %v, want %d", got.VCPU, 3+4*50)
	}
	if err := r.Delete("acme", "fn"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("acme", "fn"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
}
