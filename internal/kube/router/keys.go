package router

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
)

// DefaultTenant owns the functions whose spec names no tenant.
const DefaultTenant = "default"

// tenantName is the CRD's rule for spec.tenant.
var tenantName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// minKeyLen is the shortest API key accepted: a key a person could guess is
// no key.
const minKeyLen = 16

// LoadKeys reads a tenants' key file (a Secret mounted into the gateway's
// pod, say): a JSON object of tenant -> key, or tenant -> [keys] (more than
// one while a key is rotated), e.g. {"acme": "k3y...", "default": ["a...",
// "b..."]}. It returns key -> tenant. The error names the file and the entry.
func LoadKeys(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object of tenant -> key or [keys]: %v", path, err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%s: no tenant", path)
	}
	tenants := make([]string, 0, len(raw))
	for t := range raw {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	out := map[string]string{}
	for _, t := range tenants {
		if !tenantName.MatchString(t) {
			return nil, fmt.Errorf("%s: tenant %q: must be lowercase letters, digits and '-', at most 63, as spec.tenant", path, t)
		}
		var keys []string
		if err := json.Unmarshal(raw[t], &keys); err != nil {
			var one string
			if err := json.Unmarshal(raw[t], &one); err != nil {
				return nil, fmt.Errorf("%s: tenant %q: want a key or a list of keys", path, t)
			}
			keys = []string{one}
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("%s: tenant %q: no key", path, t)
		}
		for i, k := range keys {
			if len(k) < minKeyLen {
				return nil, fmt.Errorf("%s: tenant %q: key %d: %d characters, want at least %d", path, t, i+1, len(k), minKeyLen)
			}
			if other, dup := out[k]; dup {
				return nil, fmt.Errorf("%s: tenant %q: key %d is also %q's", path, t, i+1, other)
			}
			out[k] = t
		}
	}
	return out, nil
}
