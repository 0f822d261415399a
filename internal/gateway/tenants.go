package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/tenant"
)

// Tenant admin API (admin key, or open access):
//
//	POST   /admin/v1/tenants             {"name":..., "limits":{...}} -> 201 tenant + "key"
//	GET    /admin/v1/tenants             -> tenants, each with its function count
//	DELETE /admin/v1/tenants/{name}      removes the tenant, its key and its functions
//	POST   /admin/v1/tenants/{name}/keys -> a new key; the old one stops working

// Tenants returns the gateway's tenant store (limits for the platform's
// autoscaler and sandbox).
func (g *Gateway) Tenants() *tenant.Store { return g.tenants }

func (g *Gateway) createTenant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string        `json:"name"`
		Limits tenant.Limits `json:"limits"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body: want JSON {\"name\": ..., \"limits\": {...}}: %v", err))
		return
	}
	t, key, err := g.tenants.Create(req.Name, req.Limits, g.clock.Now())
	switch {
	case errors.Is(err, tenant.ErrExists):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, tenant.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusCreated, tenant.Issued{Tenant: t, Key: key})
	}
}

func (g *Gateway) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := g.tenants.List()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	fs, err := g.reg.List("")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	count := map[string]int{}
	for _, f := range fs {
		count[f.Owner]++
	}
	out := make([]tenant.Summary, 0, len(ts))
	for _, t := range ts {
		out = append(out, tenant.Summary{Tenant: t, Functions: count[t.Name]})
	}
	writeJSON(w, http.StatusOK, out)
}

// deleteTenant revokes the key first, so no request can deploy while the
// functions are being removed.
func (g *Gateway) deleteTenant(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := g.tenants.Delete(name); err != nil {
		g.tenantError(w, err)
		return
	}
	fs, err := g.reg.List(name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for _, f := range fs {
		if err := g.unregister(f.Owner, f.Name); err != nil && !errors.Is(err, registry.ErrNotFound) {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": name, "functions_removed": len(fs)})
}

func (g *Gateway) rotateKey(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	key, err := g.tenants.RotateKey(name, g.clock.Now())
	if err != nil {
		g.tenantError(w, err)
		return
	}
	t, err := g.tenants.Get(name)
	if err != nil {
		g.tenantError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, tenant.Issued{Tenant: t, Key: key})
}

func (g *Gateway) tenantError(w http.ResponseWriter, err error) {
	if errors.Is(err, tenant.ErrNotFound) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

// putWithinLimits registers f unless that would break its owner's limits
// (403, naming the limit), or writes the error.
func (g *Gateway) putWithinLimits(w http.ResponseWriter, f registry.Function) bool {
	lim, err := g.tenants.Limits(f.Owner)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return false
	}
	err = g.reg.PutWithin(f, lim.MaxFunctions)
	if errors.Is(err, registry.ErrLimit) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("tenant %q: function limit %d reached", f.Owner, lim.MaxFunctions))
		return false
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return false
	}
	return true
}
