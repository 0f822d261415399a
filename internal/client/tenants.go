package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/spindleml/spindle/internal/tenant"
)

// CreateTenant creates a tenant and returns it with its key, shown only now.
// It needs the admin key (or an open gateway).
func (c *Client) CreateTenant(ctx context.Context, name string, limits tenant.Limits) (tenant.Issued, error) {
	var out tenant.Issued
	body, err := json.Marshal(map[string]any{"name": name, "limits": limits})
	if err != nil {
		return out, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/admin/v1/tenants"), bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	return out, c.do(req, &out)
}

// ListTenants returns every tenant with its function count.
func (c *Client) ListTenants(ctx context.Context) ([]tenant.Summary, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/admin/v1/tenants"), nil)
	if err != nil {
		return nil, err
	}
	var out []tenant.Summary
	return out, c.do(req, &out)
}

// DeleteTenant removes a tenant, its key and its functions, and returns how
// many functions it removed.
func (c *Client) DeleteTenant(ctx context.Context, name string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.url("/admin/v1/tenants/"+url.PathEscape(name)), nil)
	if err != nil {
		return 0, err
	}
	var out struct {
		Removed int `json:"functions_removed"`
	}
	err = c.do(req, &out)
	return out.Removed, err
}

// RotateKey issues a tenant a new key; the old one stops working.
func (c *Client) RotateKey(ctx context.Context, name string) (tenant.Issued, error) {
	var out tenant.Issued
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/admin/v1/tenants/"+url.PathEscape(name)+"/keys"), nil)
	if err != nil {
		return out, err
	}
	return out, c.do(req, &out)
}
