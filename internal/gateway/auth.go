package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/tenant"
)

// Auth modes (Config.Auth).
const (
	// AuthOpen needs no key: requests without one act as tenant "default" with
	// admin rights. A request that does carry a key must carry a valid one, and
	// acts as its owner. Allowed only on a loopback address.
	AuthOpen = "open"
	// AuthKeys needs a valid Bearer key on every request but the health checks.
	AuthKeys = "keys"
)

// ErrOpenNotLoopback is returned by Serve when open access would be reachable
// from other machines.
var ErrOpenNotLoopback = errors.New("open access (no API keys) is allowed only on a loopback address")

type principalKey struct{}

// principal returns who made r; the auth middleware always sets it before a
// handler runs.
func principal(r *http.Request) tenant.Principal {
	p, _ := r.Context().Value(principalKey{}).(tenant.Principal)
	return p
}

// owner returns the tenant whose functions r sees.
func owner(r *http.Request) string { return principal(r).Tenant }

// fnKey names a function in the gateway's live state: names are per tenant.
func fnKey(owner, name string) string { return owner + "/" + name }

// authenticate wraps the API: it resolves the Bearer key to a principal and
// enforces who may call what. Tenant routes need a tenant, /admin/v1/tenants
// needs the admin; the health checks and the server metadata need nothing.
func (g *Gateway) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The dashboard's page and assets hold no data: it asks for a key
		// and sends it with its API calls.
		if strings.HasPrefix(r.URL.Path, "/v2/health/") || r.URL.Path == "/v2" || r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/") {
			next.ServeHTTP(w, r)
			return
		}
		var p tenant.Principal
		key, hasKey, err := bearer(r)
		switch {
		case err != nil:
			unauthorized(w, err.Error())
			return
		case !hasKey && g.cfg.Auth == AuthOpen:
			p = tenant.Principal{Tenant: registry.DefaultOwner, Admin: true}
		case !hasKey:
			unauthorized(w, "authorization: missing bearer key")
			return
		default:
			p, err = g.tenants.Authenticate(key)
			if errors.Is(err, tenant.ErrInvalidKey) {
				unauthorized(w, "authorization: invalid key")
				return
			}
			if err != nil {
				writeError(w, http.StatusInternalServerError, err.Error())
				return
			}
		}
		adminRoute := r.URL.Path == "/admin/v1/tenants" || strings.HasPrefix(r.URL.Path, "/admin/v1/tenants/")
		// /metrics spans every tenant's functions: the operator's, with the
		// admin key (Prometheus sends it as a bearer token).
		metricsRoute := r.URL.Path == "/metrics"
		// The dashboard's stream shows the admin every tenant's functions.
		boardRoute := r.URL.Path == "/admin/v1/dashboard/stream"
		switch {
		case boardRoute:
		case metricsRoute && !p.Admin:
			writeError(w, http.StatusForbidden, "authorization: /metrics needs the admin key")
			return
		case metricsRoute:
		case adminRoute && !p.Admin:
			writeError(w, http.StatusForbidden, "authorization: managing tenants needs the admin key")
			return
		case !adminRoute && p.Tenant == "":
			writeError(w, http.StatusForbidden, "authorization: the admin key manages tenants; functions need a tenant key (spindle tenant create NAME)")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// bearer returns the key in r's Authorization header.
func bearer(r *http.Request) (key string, ok bool, err error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false, nil
	}
	scheme, key, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return "", false, errors.New("authorization: want 'Authorization: Bearer KEY'")
	}
	return strings.TrimSpace(key), true, nil
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="spindle"`)
	writeError(w, http.StatusUnauthorized, msg)
}

// CheckListen refuses open access on an address other machines can reach (an
// error wrapping ErrOpenNotLoopback); Serve calls it too.
func (g *Gateway) CheckListen(addr net.Addr) error {
	if g.cfg.Auth != AuthOpen {
		return nil
	}
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		return nil
	}
	return fmt.Errorf("listen %s: %w; listen on 127.0.0.1 or use --auth keys", addr, ErrOpenNotLoopback)
}
