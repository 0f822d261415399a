package router

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spindleml/spindle/internal/autoscale"
)

// TestGatewaysMerge: two gateways' reports of one function add up where
// they count and take the worse where they measure; a function only one
// gateway knows is that gateway's; one nobody knows reads as idle for its
// window. One fetch serves every function until MaxAge or Expire.
func TestGatewaysMerge(t *testing.T) {
	reports := []Report{
		{Functions: map[string]autoscale.Stats{
			"default/a": {Window: 2 * time.Second, Arrivals: 10, Rate: 5, ShortRate: 4, Completions: 9, P50: 3 * time.Millisecond, P95: 8 * time.Millisecond, P99: 10 * time.Millisecond, ServiceTime: 2 * time.Millisecond, InFlight: 1, Queued: 0, Idle: 0},
			"default/b": {Window: 2 * time.Second, Arrivals: 1, Idle: 500 * time.Millisecond},
		}},
		{Functions: map[string]autoscale.Stats{
			"default/a": {Window: 2 * time.Second, Arrivals: 6, Rate: 3, ShortRate: 2, Completions: 6, P50: 4 * time.Millisecond, P95: 6 * time.Millisecond, P99: 30 * time.Millisecond, ServiceTime: time.Millisecond, InFlight: 2, Queued: 3, QueueAge: 40 * time.Millisecond, Idle: 0},
		}},
	}
	var fetches atomic.Int64
	var urls []string
	for _, rep := range reports {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != StatsPath {
				http.NotFound(w, r)
				return
			}
			fetches.Add(1)
			json.NewEncoder(w).Encode(rep)
		}))
		defer srv.Close()
		urls = append(urls, srv.URL)
	}
	g := &Gateways{URLs: urls, MaxAge: time.Hour}
	q := autoscale.Query{Window: 2 * time.Second}
	a, err := g.Stats("default/a", q)
	if err != nil {
		t.Fatal(err)
	}
	want := autoscale.Stats{Window: 2 * time.Second, Arrivals: 16, Rate: 8, ShortRate: 6, Completions: 15,
		P50: 4 * time.Millisecond, P95: 8 * time.Millisecond, P99: 30 * time.Millisecond, ServiceTime: 2 * time.Millisecond,
		InFlight: 3, Queued: 3, QueueAge: 40 * time.Millisecond}
	if a != want {
		t.Errorf("merged a:\n got %+v\nwant %+v", a, want)
	}
	if b, _ := g.Stats("default/b", q); b.Arrivals != 1 || b.Idle != 500*time.Millisecond {
		t.Errorf("b, known to one gateway: %+v", b)
	}
	if c, _ := g.Stats("default/c", q); c.Idle != q.Window || c.Arrivals != 0 {
		t.Errorf("c, known to none: %+v", c)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches for three functions, want one per gateway", n)
	}
	g.Expire()
	g.Stats("default/a", q)
	if n := fetches.Load(); n != 4 {
		t.Errorf("%d fetches after Expire, want 4", n)
	}
}

// TestGatewaysUnreadable: with one gateway down the other's report serves;
// with all down, Stats fails (the loop then decides nothing, rather than
// reading silence as idle).
func TestGatewaysUnreadable(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(Report{Functions: map[string]autoscale.Stats{"default/a": {Arrivals: 7}}})
	}))
	defer up.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	g := &Gateways{URLs: []string{up.URL, down.URL}}
	if a, err := g.Stats("default/a", autoscale.Query{}); err != nil || a.Arrivals != 7 {
		t.Errorf("one gateway down: %+v, %v", a, err)
	}
	g = &Gateways{URLs: []string{down.URL}}
	if _, err := g.Stats("default/a", autoscale.Query{}); err == nil || !strings.Contains(err.Error(), "gateway statistics") {
		t.Errorf("all gateways down: err %v", err)
	}
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		p := filepath.Join(dir, "keys.json")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keys, err := LoadKeys(write(`{"acme": "acme-0123456789abcdef", "default": ["old-0123456789abcdef", "new-0123456789abcdef"]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"acme-0123456789abcdef": "acme", "old-0123456789abcdef": "default", "new-0123456789abcdef": "default"}
	if len(keys) != len(want) {
		t.Fatalf("got %v", keys)
	}
	for k, tenant := range want {
		if keys[k] != tenant {
			t.Errorf("key %s: tenant %q, want %q", k, keys[k], tenant)
		}
	}
	for text, msg := range map[string]string{
		`[1, 2]`:                            "want a JSON object of tenant -> key",
		`{}`:                                "no tenant",
		`{"Acme": "acme-0123456789abcdef"}`: `tenant "Acme": must be lowercase`,
		`{"acme": "short"}`:                 `tenant "acme": key 1: 5 characters, want at least 16`,
		`{"acme": []}`:                      `tenant "acme": no key`,
		`{"acme": 7}`:                       `tenant "acme": want a key or a list of keys`,
		`{"a": "same-0123456789abcdef", "b": "same-0123456789abcdef"}`: `tenant "b": key 1 is also "a"'s`,
	} {
		if _, err := LoadKeys(write(text)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: err %v, want %q", text, err, msg)
		}
	}
}
