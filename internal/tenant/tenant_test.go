package tenant

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// newStore opens a store in a fresh database, with admin key adminKey.
func newStore(t *testing.T, adminKey string) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spindle.db")
	db := openDB(t, path)
	t.Cleanup(func() { db.Close() })
	s, err := Open(db, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func mustCreate(t *testing.T, s *Store, name string, l Limits) string {
	t.Helper()
	_, key, err := s.Create(name, l, now)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return key
}

func TestKeyFormatAndAuthenticate(t *testing.T) {
	s, _ := newStore(t, "")
	alice := mustCreate(t, s, "alice", Limits{})
	bob := mustCreate(t, s, "bob-2", Limits{})
	if !strings.HasPrefix(alice, "spk_alice_") || len(alice) != len("spk_alice_")+43 {
		t.Fatalf("alice's key %q: want spk_alice_ and 43 base64url characters", alice)
	}
	secretA := strings.TrimPrefix(alice, "spk_alice_")
	secretB := strings.TrimPrefix(bob, "spk_bob-2_")
	flipped := []byte(alice)
	flipped[len(flipped)-1] ^= 1

	tests := []struct {
		name, key string
		want      Principal
		wantErr   bool
	}{
		{"alice", alice, Principal{Tenant: "alice"}, false},
		{"bob", bob, Principal{Tenant: "bob-2"}, false},
		{"empty", "", Principal{}, true},
		{"no prefix", strings.TrimPrefix(alice, "spk_"), Principal{}, true},
		{"no secret", "spk_alice", Principal{}, true},
		{"short secret", "spk_alice_" + secretA[:10], Principal{}, true},
		{"last character changed", string(flipped), Principal{}, true},
		{"bob's secret under alice's name", "spk_alice_" + secretB, Principal{}, true},
		{"alice's secret under bob's name", "spk_bob-2_" + secretA, Principal{}, true},
		{"unknown tenant", "spk_carol_" + secretA, Principal{}, true},
		{"admin name without an admin key", "spk_admin_" + secretA, Principal{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Authenticate(tc.key)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("Authenticate(%q) = %+v, %v; want ErrInvalidKey", tc.key, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Authenticate(%q) = %+v, %v; want %+v", tc.key, got, err, tc.want)
			}
		})
	}
}

// The database holds the SHA-256 of each secret, never the key or the secret.
func TestOnlyHashesAreStored(t *testing.T) {
	s, _ := newStore(t, "")
	key := mustCreate(t, s, "alice", Limits{})
	secret := strings.TrimPrefix(key, "spk_alice_")
	var raw []byte
	s.db.View(func(tx *bolt.Tx) error {
		raw = bytes.Clone(tx.Bucket(bucketTenants).Get([]byte("alice")))
		return nil
	})
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatalf("stored record contains the secret: %s", raw)
	}
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(secret))
	if !bytes.Equal(rec.KeyHash, want[:]) {
		t.Fatalf("stored hash %x, want sha256(secret) %x", rec.KeyHash, want)
	}
}

func TestRotateInvalidatesOldKey(t *testing.T) {
	s, _ := newStore(t, "")
	old := mustCreate(t, s, "alice", Limits{})
	later := now.Add(time.Hour)
	fresh, err := s.RotateKey("alice", later)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == old {
		t.Fatal("rotation returned the same key")
	}
	if _, err := s.Authenticate(old); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("old key after rotation: %v, want ErrInvalidKey", err)
	}
	if p, err := s.Authenticate(fresh); err != nil || p.Tenant != "alice" {
		t.Fatalf("new key: %+v %v", p, err)
	}
	if tn, _ := s.Get("alice"); !tn.KeyCreated.Equal(later) || !tn.Created.Equal(now) {
		t.Fatalf("after rotation: created %v, key created %v", tn.Created, tn.KeyCreated)
	}
	if _, err := s.RotateKey("nobody", now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rotate a missing tenant: %v, want ErrNotFound", err)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	s, path := newStore(t, "")
	lim := Limits{MaxFunctions: 3, MaxVCPU: 1.5, MaxMemoryBytes: 2 << 30}
	key := mustCreate(t, s, "alice", lim)
	s.db.Close()

	db := openDB(t, path)
	defer db.Close()
	s2, err := Open(db, "")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s2.Authenticate(key); err != nil || p.Tenant != "alice" {
		t.Fatalf("key after reopen: %+v %v", p, err)
	}
	got, err := s2.Limits("alice")
	if err != nil || got != lim {
		t.Fatalf("limits after reopen: %+v %v, want %+v", got, err, lim)
	}
	ts, err := s2.List()
	if err != nil || len(ts) != 1 || ts[0].Name != "alice" || !ts[0].Created.Equal(now) {
		t.Fatalf("list after reopen: %+v %v", ts, err)
	}
}

func TestCreateRejects(t *testing.T) {
	s, _ := newStore(t, "")
	mustCreate(t, s, "alice", Limits{})
	tests := []struct {
		name   string
		tenant string
		limits Limits
		want   error
		msg    string
	}{
		{"duplicate", "alice", Limits{}, ErrExists, `tenant "alice": already exists`},
		{"reserved", "admin", Limits{}, ErrInvalid, "reserved"},
		{"upper case", "Alice", Limits{}, ErrInvalid, `name "Alice"`},
		{"underscore", "a_b", Limits{}, ErrInvalid, `name "a_b"`},
		{"empty", "", Limits{}, ErrInvalid, `name ""`},
		{"negative functions", "carol", Limits{MaxFunctions: -1}, ErrInvalid, "max_functions -1"},
		{"negative vcpu", "carol", Limits{MaxVCPU: -0.5}, ErrInvalid, "max_vcpu -0.5"},
		{"negative memory", "carol", Limits{MaxMemoryBytes: -1}, ErrInvalid, "max_memory_bytes -1"},
		{"negative concurrency", "carol", Limits{MaxConcurrency: -2}, ErrInvalid, "max_concurrency -2"},
		{"NaN rate", "carol", Limits{MaxRequestsPerSecond: math.NaN()}, ErrInvalid, "max_requests_per_second NaN"},
		{"negative rate", "carol", Limits{MaxRequestsPerSecond: -1}, ErrInvalid, "max_requests_per_second -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, key, err := s.Create(tc.tenant, tc.limits, now)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || key != "" {
				t.Fatalf("Create(%q, %+v) = %q, %v; want %v with %q", tc.tenant, tc.limits, key, err, tc.want, tc.msg)
			}
		})
	}
	if ts, _ := s.List(); len(ts) != 1 {
		t.Fatalf("rejected creates left tenants behind: %+v", ts)
	}
}

func TestDeleteRevokesKey(t *testing.T) {
	s, _ := newStore(t, "")
	key := mustCreate(t, s, "alice", Limits{MaxFunctions: 2})
	if err := s.Delete("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(key); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("key of a deleted tenant: %v", err)
	}
	if err := s.Delete("alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	// A tenant without a record (the open mode's "default") has no limits.
	if l, err := s.Limits("alice"); err != nil || l != (Limits{}) {
		t.Fatalf("limits of a deleted tenant: %+v %v", l, err)
	}
	// The name is free again, with a new key.
	again := mustCreate(t, s, "alice", Limits{})
	if _, err := s.Authenticate(key); !errors.Is(err, ErrInvalidKey) || again == key {
		t.Fatalf("old key works for the re-created tenant: %v", err)
	}
}

func TestAdminKey(t *testing.T) {
	admin, err := NewAdminKey()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newStore(t, admin)
	other, _ := NewAdminKey()
	tenantKey := mustCreate(t, s, "alice", Limits{})
	tests := []struct {
		name    string
		key     string
		want    Principal
		wantErr bool
	}{
		{"admin", admin, Principal{Admin: true}, false},
		{"another admin key", other, Principal{}, true},
		{"tenant", tenantKey, Principal{Tenant: "alice"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Authenticate(tc.key)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("Authenticate = %+v, %v; want %+v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
	db := openDB(t, filepath.Join(t.TempDir(), "db"))
	defer db.Close()
	for _, bad := range []string{"hunter2", tenantKey, "spk_admin_short", "spk_admin_" + strings.Repeat("x", minSecret-1)} {
		if _, err := Open(db, bad); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("admin key: must look like spk_admin_<secret> with a secret of at least %d characters", minSecret)) {
			t.Errorf("Open with admin key %q: %v, want an error naming the admin key and the rule", bad, err)
		}
	}
	// The rule the message states is the rule applied.
	if _, err := Open(db, "spk_admin_"+strings.Repeat("x", minSecret)); err != nil {
		t.Errorf("Open with a %d-character admin secret: %v", minSecret, err)
	}
}

func TestAdminKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.key")
	if k, err := LoadAdminKey(path); k != "" || err != nil {
		t.Fatalf("LoadAdminKey of a missing file = %q, %v; want \"\", nil", k, err)
	}
	key, created, err := LoadOrCreateAdminKey(path)
	if err != nil || !created || !strings.HasPrefix(key, "spk_admin_") {
		t.Fatalf("first LoadOrCreateAdminKey = %q, %v, %v", key, created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin key file mode %v, %v; want 0600", st.Mode(), err)
	}
	again, created, err := LoadOrCreateAdminKey(path)
	if err != nil || created || again != key {
		t.Fatalf("second LoadOrCreateAdminKey = %q, %v, %v; want the same key, not created", again, created, err)
	}
	os.WriteFile(path, []byte("spk_alice_0123456789012345678901234567890123456789\n"), 0o600)
	if _, _, err := LoadOrCreateAdminKey(path); err == nil || !strings.Contains(err.Error(), "not an admin key") {
		t.Fatalf("tenant key in the admin key file: %v", err)
	}
}
