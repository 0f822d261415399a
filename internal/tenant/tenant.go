package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/spindleml/spindle/internal/registry"
)

var (
	// ErrNotFound is returned for a tenant that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when creating a tenant whose name is taken.
	ErrExists = errors.New("already exists")
	// ErrInvalid is wrapped by errors in a tenant name or limits given by a user.
	ErrInvalid = errors.New("invalid tenant")
	// ErrInvalidKey is returned by Authenticate for a key that is malformed,
	// unknown, or revoked.
	ErrInvalidKey = errors.New("invalid key")
)

// AdminName is the name the admin key carries; no tenant may take it.
const AdminName = "admin"

// keyPrefix starts every key, so a leaked key is recognisable (secret scanners)
// and a pasted value of the wrong kind is rejected early.
const keyPrefix = "spk_"

// Limits caps what a tenant may use. A zero field means no limit.
type Limits struct {
	// MaxFunctions is how many functions the tenant may have deployed.
	MaxFunctions int `json:"max_functions,omitempty"`
	// MaxVCPU is the CPU the tenant's instances may use together, in cores.
	MaxVCPU float64 `json:"max_vcpu,omitempty"`
	// MaxMemoryBytes is the memory the tenant's instances may use together;
	// a single model larger than this is refused at deploy.
	MaxMemoryBytes int64 `json:"max_memory_bytes,omitempty"`
	// MaxConcurrency is how many requests of the tenant the gateway serves
	// at once; more get 429.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// MaxRequestsPerSecond is the tenant's sustained request rate (a token
	// bucket with a burst of one second's worth); faster requests get 429.
	MaxRequestsPerSecond float64 `json:"max_requests_per_second,omitempty"`
}

// invalid marks err as bad user input (ErrInvalid) without changing its message.
type invalid struct{ err error }

func (e invalid) Error() string   { return e.err.Error() }
func (e invalid) Unwrap() []error { return []error{e.err, ErrInvalid} }

// Validate rejects negative or non-finite limits with an error wrapping
// ErrInvalid.
func (l Limits) Validate() error {
	if err := l.validate(); err != nil {
		return invalid{err}
	}
	return nil
}

func (l Limits) validate() error {
	switch {
	case l.MaxFunctions < 0:
		return fmt.Errorf("max_functions %d: must be 0 (no limit) or positive", l.MaxFunctions)
	case !(l.MaxVCPU >= 0) || l.MaxVCPU > 1e6:
		return fmt.Errorf("max_vcpu %v: must be 0 (no limit) or a positive number of cores", l.MaxVCPU)
	case l.MaxMemoryBytes < 0:
		return fmt.Errorf("max_memory_bytes %d: must be 0 (no limit) or positive", l.MaxMemoryBytes)
	case l.MaxConcurrency < 0:
		return fmt.Errorf("max_concurrency %d: must be 0 (no limit) or positive", l.MaxConcurrency)
	case !(l.MaxRequestsPerSecond >= 0) || l.MaxRequestsPerSecond > 1e9:
		return fmt.Errorf("max_requests_per_second %v: must be 0 (no limit) or a positive rate", l.MaxRequestsPerSecond)
	}
	return nil
}

// Tenant is one tenant as the API shows it (never with its key).
type Tenant struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// KeyCreated is when the current key was issued (at creation or last rotation).
	KeyCreated time.Time `json:"key_created"`
	Limits     Limits    `json:"limits"`
}

// Issued is a tenant with a key just issued (created or rotated): the only
// time a key is shown.
type Issued struct {
	Tenant
	Key string `json:"key"`
}

// Summary is a tenant as the admin API lists it, with its function count.
type Summary struct {
	Tenant
	Functions int `json:"functions"`
}

// record is a tenant as stored.
type record struct {
	Tenant
	KeyHash []byte `json:"key_hash"`
}

// Principal is who a key belongs to: a tenant, or the platform admin.
type Principal struct {
	// Tenant owns the functions the principal sees; empty for the admin key.
	Tenant string
	// Admin may manage tenants.
	Admin bool
}

var bucketTenants = []byte("tenants")

// Store keeps tenants in a bbolt database shared with the function registry.
// It is safe for concurrent use.
type Store struct {
	db        *bolt.DB
	adminHash []byte // nil: no admin key, admin operations need open access
}

// Open returns a store over db, creating its bucket. adminKey is the admin key
// ("" for none); it must have the form NewAdminKey returns.
func Open(db *bolt.DB, adminKey string) (*Store, error) {
	s := &Store{db: db}
	if adminKey != "" {
		name, secret, err := parseKey(adminKey)
		if err != nil || name != AdminName {
			return nil, fmt.Errorf("admin key: must look like %s%s_<secret> with a secret of at least %d characters", keyPrefix, AdminName, minSecret)
		}
		s.adminHash = hash(secret)
	}
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketTenants)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open tenants: %w", err)
	}
	return s, nil
}

// ValidateName checks a tenant name: the function-name rules (a DNS label),
// and not the reserved name "admin". Its errors wrap ErrInvalid.
func ValidateName(name string) error {
	if err := registry.ValidateName(name); err != nil {
		return invalid{err}
	}
	if name == AdminName {
		return invalid{fmt.Errorf("name %q: reserved for the admin key", name)}
	}
	return nil
}

// Create adds a tenant and returns its key, which is not stored and cannot be
// shown again.
func (s *Store) Create(name string, limits Limits, now time.Time) (Tenant, string, error) {
	if err := ValidateName(name); err != nil {
		return Tenant{}, "", err
	}
	if err := limits.Validate(); err != nil {
		return Tenant{}, "", err
	}
	key, secret, err := newKey(name)
	if err != nil {
		return Tenant{}, "", err
	}
	rec := record{Tenant: Tenant{Name: name, Created: now.UTC(), KeyCreated: now.UTC(), Limits: limits}, KeyHash: hash(secret)}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTenants)
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("tenant %q: %w", name, ErrExists)
		}
		return put(b, rec)
	})
	if err != nil {
		return Tenant{}, "", err
	}
	return rec.Tenant, key, nil
}

// RotateKey issues name a new key; the old one stops working at once.
func (s *Store) RotateKey(name string, now time.Time) (string, error) {
	key, secret, err := newKey(name)
	if err != nil {
		return "", err
	}
	err = s.update(name, func(r *record) {
		r.KeyHash = hash(secret)
		r.KeyCreated = now.UTC()
	})
	if err != nil {
		return "", err
	}
	return key, nil
}

func (s *Store) update(name string, change func(*record)) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTenants)
		rec, err := get(b, name)
		if err != nil {
			return err
		}
		change(&rec)
		return put(b, rec)
	})
}

// Get returns the tenant called name, or an error wrapping ErrNotFound.
func (s *Store) Get(name string) (Tenant, error) {
	var rec record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = get(tx.Bucket(bucketTenants), name)
		return err
	})
	return rec.Tenant, err
}

// Limits returns name's limits; a tenant without a record (such as "default"
// when the platform runs without keys) has none.
func (s *Store) Limits(name string) (Limits, error) {
	t, err := s.Get(name)
	if errors.Is(err, ErrNotFound) {
		return Limits{}, nil
	}
	return t.Limits, err
}

// List returns every tenant, sorted by name.
func (s *Store) List() ([]Tenant, error) {
	var out []Tenant
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTenants).ForEach(func(k, v []byte) error {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("tenant %q: %w", k, err)
			}
			out = append(out, rec.Tenant)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Delete removes the tenant called name (its key stops working); deleting a
// missing one wraps ErrNotFound. The tenant's functions are the caller's to
// remove.
func (s *Store) Delete(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTenants)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("tenant %q: %w", name, ErrNotFound)
		}
		return b.Delete([]byte(name))
	})
}

// dummyHash is compared against when a key names no tenant, so an unknown
// tenant costs the same as a wrong secret.
var dummyHash = hash("spindle: no such tenant")

// Authenticate returns the principal key belongs to, or an error wrapping
// ErrInvalidKey. Its timing does not depend on how much of the secret matched.
func (s *Store) Authenticate(key string) (Principal, error) {
	name, secret, err := parseKey(key)
	if err != nil {
		return Principal{}, err
	}
	got := hash(secret)
	if name == AdminName {
		if s.adminHash != nil && subtle.ConstantTimeCompare(got, s.adminHash) == 1 {
			return Principal{Admin: true}, nil
		}
		return Principal{}, ErrInvalidKey
	}
	want := dummyHash
	var found bool
	err = s.db.View(func(tx *bolt.Tx) error {
		rec, err := get(tx.Bucket(bucketTenants), name)
		if err == nil {
			want, found = rec.KeyHash, true
		}
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return Principal{}, err
	}
	if subtle.ConstantTimeCompare(got, want) != 1 || !found {
		return Principal{}, ErrInvalidKey
	}
	return Principal{Tenant: name}, nil
}

// NewAdminKey returns a fresh admin key.
func NewAdminKey() (string, error) {
	key, _, err := newKey(AdminName)
	return key, err
}

// LoadAdminKey returns the admin key kept in the file at path, or "" when there
// is no such file.
func LoadAdminKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("admin key file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if name, _, err := parseKey(key); err != nil || name != AdminName {
		return "", fmt.Errorf("admin key file %s: not an admin key (%s%s_<secret>)", path, keyPrefix, AdminName)
	}
	return key, nil
}

// LoadOrCreateAdminKey returns the admin key kept in the file at path, creating
// the file (mode 0600) with a fresh key when it does not exist; created says
// which happened.
func LoadOrCreateAdminKey(path string) (key string, created bool, err error) {
	if key, err = LoadAdminKey(path); key != "" || err != nil {
		return key, false, err
	}
	if key, err = NewAdminKey(); err != nil {
		return "", false, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("admin key file: %w", err)
	}
	_, err = f.WriteString(key + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", false, fmt.Errorf("admin key file: %w", err)
	}
	return key, true, nil
}

// minSecret is the shortest secret accepted: 24 base64 characters carry 144
// bits, past any online guessing. Generated secrets have 43.
const minSecret = 24

// newKey returns a key for name and its secret part.
func newKey(name string) (key, secret string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(b[:])
	return keyPrefix + name + "_" + secret, secret, nil
}

// parseKey splits "spk_<name>_<secret>". Names never contain '_', secrets may.
func parseKey(key string) (name, secret string, err error) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: must start with %q", ErrInvalidKey, keyPrefix)
	}
	name, secret, ok = strings.Cut(rest, "_")
	if !ok || name == "" || len(secret) < minSecret {
		return "", "", fmt.Errorf("%w: must look like %s<tenant>_<secret>", ErrInvalidKey, keyPrefix)
	}
	return name, secret, nil
}

func hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func get(b *bolt.Bucket, name string) (record, error) {
	var rec record
	v := b.Get([]byte(name))
	if v == nil {
		return rec, fmt.Errorf("tenant %q: %w", name, ErrNotFound)
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, fmt.Errorf("tenant %q: %w", name, err)
	}
	return rec, nil
}

func put(b *bolt.Bucket, rec record) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return b.Put([]byte(rec.Name), v)
}
