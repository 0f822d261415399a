package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/spindleml/spindle/internal/api"
)

// recorder is a gateway stand-in that answers every request with one canned
// response and keeps what it was sent.
type recorder struct {
	code           int
	body           string
	method, path   string
	auth, gotBody  string
	gotContentType string
}

func (rec *recorder) serve(t *testing.T) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.method, rec.path, rec.auth, rec.gotBody = r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), string(b)
		rec.gotContentType = r.Header.Get("Content-Type")
		w.WriteHeader(rec.code)
		io.WriteString(w, rec.body)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/", WithKey("spk_t_secret"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		name        string
		code        int
		body        string
		wantMsg     string
		clientFault bool
	}{
		{"JSON error", 404, `{"error":"function \"f\" is not deployed"}`, `function "f" is not deployed (HTTP 404)`, true},
		{"plain text", 502, "bad gateway upstream\n", "bad gateway upstream (HTTP 502)", false},
		{"empty body", 503, "", "Service Unavailable (HTTP 503)", false},
		{"JSON without error", 429, `{}`, "{} (HTTP 429)", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := (&recorder{code: tc.code, body: tc.body}).serve(t)
			err := c.Remove(context.Background(), "f")
			var ce *Error
			if !errors.As(err, &ce) || ce.Status != tc.code || err.Error() != tc.wantMsg {
				t.Fatalf("Remove: %v, want *Error %q", err, tc.wantMsg)
			}
			if IsClientError(err) != tc.clientFault {
				t.Errorf("IsClientError = %v, want %v", !tc.clientFault, tc.clientFault)
			}
		})
	}
}

func TestScaleRequest(t *testing.T) {
	mem := int64(512 << 20)
	tests := []struct {
		name   string
		memory *int64
		want   string
	}{
		{"cpu only", nil, `{"vcpu":1.5}`},
		{"with memory", &mem, `{"vcpu":1.5,"memory":536870912}`},
	}
	vcpu := 1.5
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{code: 200, body: `{"vcpu":1.5}`}
			c := rec.serve(t)
			out, err := c.Scale(context.Background(), "my fn", api.ScaleRequest{VCPU: &vcpu, Memory: tc.memory})
			if err != nil || out.VCPU != 1.5 {
				t.Fatalf("Scale: %+v, %v", out, err)
			}
			if rec.method != http.MethodPost || rec.path != "/admin/v1/functions/my%20fn/scale" || rec.gotBody != tc.want ||
				rec.auth != "Bearer spk_t_secret" || rec.gotContentType != "application/json" {
				t.Fatalf("sent %s %s %q (Authorization %q, Content-Type %q); want POST .../my%%20fn/scale %q with the key",
					rec.method, rec.path, rec.gotBody, rec.auth, rec.gotContentType, tc.want)
			}
		})
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://host/", "http://", "://x"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) succeeded, want an error", bad)
		}
	}
}
