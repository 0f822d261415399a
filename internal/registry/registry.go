package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/spindleml/spindle/internal/oip"
)

// ErrNotFound is returned for a function that does not exist.
var ErrNotFound = errors.New("not found")

// Function is one deployed function.
type Function struct {
	Name string `json:"name"`
	// Task is what the function does with its model; "infer" is raw OIP v2 inference.
	Task string `json:"task"`
	// ModelDigest names the model's folder in the content-addressed model store.
	ModelDigest string `json:"model_digest"`
	// ModelFile is the model file's name inside that folder.
	ModelFile string `json:"model_file"`
	// ModelBytes is the total size of the model and its external data.
	ModelBytes int64             `json:"model_bytes"`
	Metadata   oip.ModelMetadata `json:"metadata"`
	Created    time.Time         `json:"created"`
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

var bucketFunctions = []byte("functions")

// Registry is the function database. It is safe for concurrent use.
type Registry struct {
	db *bolt.DB
}

// Open opens (creating if needed) the database at path.
func Open(path string) (*Registry, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketFunctions)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Registry{db: db}, nil
}

// Close closes the database.
func (r *Registry) Close() error { return r.db.Close() }

// Put creates or replaces a function.
func (r *Registry) Put(f Function) error {
	if err := ValidateName(f.Name); err != nil {
		return err
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return r.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFunctions).Put([]byte(f.Name), b)
	})
}

// Get returns the function called name, or an error wrapping ErrNotFound.
func (r *Registry) Get(name string) (Function, error) {
	var f Function
	err := r.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFunctions).Get([]byte(name))
		if b == nil {
			return fmt.Errorf("function %q: %w", name, ErrNotFound)
		}
		return json.Unmarshal(b, &f)
	})
	return f, err
}

// List returns every function, sorted by name.
func (r *Registry) List() ([]Function, error) {
	var out []Function
	err := r.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFunctions).ForEach(func(k, v []byte) error {
			var f Function
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("function %q: %w", k, err)
			}
			out = append(out, f)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Delete removes a function; deleting a missing one wraps ErrNotFound.
func (r *Registry) Delete(name string) error {
	return r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFunctions)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("function %q: %w", name, ErrNotFound)
		}
		return b.Delete([]byte(name))
	})
}
