// Package nodeagent keeps a node's model cache for Spindle on Kubernetes:
// every model a function names by URL is fetched once per node into a
// content-addressed folder (CACHE/sha256/HEX/model), verified against its
// sha256 before it becomes visible, and mapped read-only by every pod of the
// node (a hostPath volume), so the page cache holds one copy per node however
// many pods and functions use it. `spindle node-agent` runs it as a
// DaemonSet.
package nodeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
)

// ErrDigest is returned when fetched bytes do not hash to the expected sha256.
var ErrDigest = errors.New("sha256 mismatch")

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Cache is a content-addressed folder of model files.
type Cache struct {
	// Root is the cache folder (the hostPath the pods mount).
	Root string
	// HTTP fetches; nil means http.DefaultClient.
	HTTP *http.Client
	// MaxBytes bounds one model; 0 means 16 GiB.
	MaxBytes int64

	mu       sync.Mutex
	inflight map[string]*fetch // by digest: one fetch per model at a time
}

type fetch struct {
	done chan struct{}
	err  error
}

// Path is where the model with the digest lives once cached.
func (c *Cache) Path(digest string) string {
	return filepath.Join(c.Root, "sha256", digest, "model")
}

// Has reports whether the model is cached.
func (c *Cache) Has(digest string) bool {
	_, err := os.Stat(c.Path(digest))
	return err == nil
}

// Ensure makes the model with the digest available in the cache, fetching it
// from url if it is not there yet, and returns its path. Concurrent calls for
// one digest share one fetch. Bytes that do not hash to the digest are
// discarded (ErrDigest) and never become visible.
func (c *Cache) Ensure(ctx context.Context, url, digest string) (string, error) {
	return c.EnsureFrom(ctx, digest, url, func(ctx context.Context) (io.ReadCloser, error) { return c.openURL(ctx, url) })
}

// EnsureFrom is Ensure with the bytes from open; source names it in errors.
func (c *Cache) EnsureFrom(ctx context.Context, digest, source string, open func(context.Context) (io.ReadCloser, error)) (string, error) {
	if !hexDigest.MatchString(digest) {
		return "", fmt.Errorf("sha256: %q: want 64 lowercase hex digits", digest)
	}
	path := c.Path(digest)
	if c.Has(digest) {
		return path, nil
	}
	c.mu.Lock()
	if c.inflight == nil {
		c.inflight = map[string]*fetch{}
	}
	f, running := c.inflight[digest]
	if !running {
		f = &fetch{done: make(chan struct{})}
		c.inflight[digest] = f
	}
	c.mu.Unlock()
	if running {
		select {
		case <-f.done:
			return path, f.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	f.err = c.download(ctx, digest, source, open)
	c.mu.Lock()
	delete(c.inflight, digest)
	c.mu.Unlock()
	close(f.done)
	return path, f.err
}

func (c *Cache) download(ctx context.Context, digest, source string, open func(context.Context) (io.ReadCloser, error)) error {
	dir := filepath.Dir(c.Path(digest))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	defer tmp.Close()
	body, err := open(ctx)
	if err != nil {
		return err
	}
	defer body.Close()
	limit := c.MaxBytes
	if limit <= 0 {
		limit = 16 << 30
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(body, limit+1))
	if err != nil {
		return fmt.Errorf("fetch %s: %w", source, err)
	}
	if n > limit {
		return fmt.Errorf("fetch %s: larger than the cache's limit of %d bytes", source, limit)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("fetch %s: %w: got %s, want %s", source, ErrDigest, got, digest)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o444); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// The rename makes the whole, verified file visible at once.
	return os.Rename(tmp.Name(), c.Path(digest))
}

// openURL starts an HTTP GET of the model.
func (c *Cache) openURL(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

// Prune removes cached models whose digest keep does not hold and returns
// their digests.
func (c *Cache) Prune(keep map[string]bool) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(c.Root, "sha256"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		d := e.Name()
		if !hexDigest.MatchString(d) || keep[d] {
			continue
		}
		c.mu.Lock()
		_, busy := c.inflight[d]
		c.mu.Unlock()
		if busy {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.Root, "sha256", d)); err != nil {
			return removed, err
		}
		removed = append(removed, d)
	}
	return removed, nil
}
