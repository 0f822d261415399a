package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/spindleml/spindle/internal/oip"
)

// ErrNotFound is returned for a function that does not exist.
var ErrNotFound = errors.New("not found")

// Function is one deployed function. Functions are namespaced by owner: two
// tenants may each deploy a function with the same name.
type Function struct {
	Name string `json:"name"`
	// Owner is the tenant the function belongs to ("default" when the platform
	// runs without API keys).
	Owner string `json:"owner"`
	// Task is what the function does with its model; "infer" is raw OIP v2
	// inference, any other kind (package task) adds POST /v1/tasks/{name}.
	Task string `json:"task"`
	// TaskConfig is the task's JSON config (task.Config); nil means defaults.
	TaskConfig json.RawMessage `json:"task_config,omitempty"`
	// ModelDigest names the model's folder in the content-addressed model store.
	ModelDigest string `json:"model_digest"`
	// ModelFile is the model file's name inside that folder.
	ModelFile string `json:"model_file"`
	// ModelBytes is the total size of the model and its external data,
	// and of its artifact.
	ModelBytes int64 `json:"model_bytes"`
	// Artifact is the model compiled at deploy (prepacked weights), a file
	// in the model's folder; "" for none. Instances that map their model
	// load it; those that copy it (the hpa baseline) load ModelFile.
	Artifact string            `json:"artifact,omitempty"`
	Metadata oip.ModelMetadata `json:"metadata"`
	Created  time.Time         `json:"created"`
	// VCPU is each instance's CPU allotment in vCPUs; 0 means the platform's
	// default. `spindle scale` and the autoscaler change it.
	VCPU float64 `json:"vcpu,omitempty"`
	// MemoryLimit is each instance's memory limit in bytes; 0 means none.
	MemoryLimit int64 `json:"memory_limit,omitempty"`
	// Batch is the dynamic batching policy ("max=N[,delay=D]"); "" is off.
	Batch string `json:"batch,omitempty"`
}

var nameRule = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateName checks a function name: 1-63 lowercase letters, digits and '-',
// starting and ending with a letter or digit (a DNS label, so names work in URLs
// and, later, as Kubernetes object names).
func ValidateName(name string) error {
	if !nameRule.MatchString(name) {
		return fmt.Errorf("name %q: must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// ErrLimit is returned by PutWithin when the owner already has the most
// functions it may have.
var ErrLimit = errors.New("function limit reached")

// DefaultOwner owns the functions deployed while the platform runs without API
// keys, and the functions of databases written before functions had owners.
const DefaultOwner = "default"

var bucketFunctions = []byte("functions")

// key is a function's database key, "owner/name"; neither part contains '/'.
func key(owner, name string) []byte { return []byte(owner + "/" + name) }

// Registry is the function database. It is safe for concurrent use.
type Registry struct {
	db *bolt.DB

	// cache holds the functions Get has read, by key: the gateway looks a
	// function up on every request, and a database read with a JSON decode
	// costs ~20 µs. Writes and cache fills hold mu for writing, so a fill
	// never stores a value a concurrent write replaced; this process is the
	// database's only writer (bbolt locks the file).
	mu    sync.RWMutex
	cache map[string]Function
}

// Open opens (creating if needed) the database at path.
func Open(path string) (*Registry, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketFunctions)
		if err != nil {
			return err
		}
		return migrateOwners(b)
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Registry{db: db, cache: map[string]Function{}}, nil
}

// migrateOwners moves functions stored before they had owners (keyed by bare
// name) to DefaultOwner.
func migrateOwners(b *bolt.Bucket) error {
	var old [][]byte
	b.ForEach(func(k, _ []byte) error {
		if !bytes.ContainsRune(k, '/') {
			old = append(old, bytes.Clone(k))
		}
		return nil
	})
	for _, k := range old {
		var f Function
		if err := json.Unmarshal(b.Get(k), &f); err != nil {
			return fmt.Errorf("function %q: %w", k, err)
		}
		f.Owner = DefaultOwner
		v, err := json.Marshal(f)
		if err != nil {
			return err
		}
		if err := b.Put(key(f.Owner, f.Name), v); err != nil {
			return err
		}
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// DB returns the underlying database, so other platform state (tenants) lives
// in the same file under its own buckets. Callers must not touch the
// "functions" bucket.
func (r *Registry) DB() *bolt.DB { return r.db }

// Close closes the database.
func (r *Registry) Close() error { return r.db.Close() }

// Put creates or replaces a function.
func (r *Registry) Put(f Function) error { return r.PutWithin(f, 0) }

// PutWithin creates or replaces a function; creating one fails with an error
// wrapping ErrLimit when f.Owner already has maxFunctions functions (0 means no
// limit). Replacing an existing function always succeeds. The count and the
// write are one transaction, so concurrent deploys cannot overshoot.
func (r *Registry) PutWithin(f Function, maxFunctions int) error {
	if err := ValidateName(f.Name); err != nil {
		return err
	}
	if err := ValidateName(f.Owner); err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cache, string(key(f.Owner, f.Name)))
	return r.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketFunctions)
		k := key(f.Owner, f.Name)
		if maxFunctions > 0 && bk.Get(k) == nil {
			if n := countPrefix(bk, f.Owner); n >= maxFunctions {
				return fmt.Errorf("tenant %q: %w (%d of %d)", f.Owner, ErrLimit, n, maxFunctions)
			}
		}
		return bk.Put(k, b)
	})
}

// Update changes owner's function called name in one transaction: change
// edits it (its name and owner stay), or returns an error that leaves it as
// it was. A missing function is an error wrapping ErrNotFound.
func (r *Registry) Update(owner, name string, change func(*Function) error) (Function, error) {
	var f Function
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cache, string(key(owner, name)))
	err := r.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketFunctions)
		k := key(owner, name)
		v := bk.Get(k)
		if v == nil {
			return fmt.Errorf("function %s/%s: %w", owner, name, ErrNotFound)
		}
		if err := json.Unmarshal(v, &f); err != nil {
			return err
		}
		if err := change(&f); err != nil {
			return err
		}
		f.Owner, f.Name = owner, name
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		return bk.Put(k, b)
	})
	return f, err
}

func countPrefix(b *bolt.Bucket, owner string) int {
	n := 0
	prefix := key(owner, "")
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	return n
}

// Get returns owner's function called name, or an error wrapping ErrNotFound.
// The Function shares its slices with the cache: callers must not change
// their elements.
func (r *Registry) Get(owner, name string) (Function, error) {
	k := string(key(owner, name))
	r.mu.RLock()
	f, ok := r.cache[k]
	r.mu.RUnlock()
	if ok {
		return f, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.cache[k]; ok {
		return f, nil
	}
	err := r.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFunctions).Get([]byte(k))
		if b == nil {
			return fmt.Errorf("function %q: %w", name, ErrNotFound)
		}
		return json.Unmarshal(b, &f)
	})
	if err == nil {
		r.cache[k] = f
	}
	return f, err
}

// List returns owner's functions sorted by name; an empty owner lists every
// tenant's functions, sorted by owner then name.
func (r *Registry) List(owner string) ([]Function, error) {
	var out []Function
	var prefix []byte
	if owner != "" {
		prefix = key(owner, "")
	}
	err := r.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFunctions).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var f Function
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("function %q: %w", k, err)
			}
			out = append(out, f)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Owner != out[j].Owner {
			return out[i].Owner < out[j].Owner
		}
		return out[i].Name < out[j].Name
	})
	return out, err
}

// Delete removes owner's function name; deleting a missing one wraps
// ErrNotFound.
func (r *Registry) Delete(owner, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cache, string(key(owner, name)))
	return r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFunctions)
		if b.Get(key(owner, name)) == nil {
			return fmt.Errorf("function %q: %w", name, ErrNotFound)
		}
		return b.Delete(key(owner, name))
	})
}
