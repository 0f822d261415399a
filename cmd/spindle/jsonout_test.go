package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFormatJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"embedding on one line", `{"embedding":[0.1,-2.5e-07,3,0.25]}`, "{\n  \"embedding\": [0.1, -2.5e-07, 3, 0.25]\n}\n"},
		{"rows of a matrix", `{"embeddings":[[1,2],[3,4]]}`, "{\n  \"embeddings\": [\n    [1, 2],\n    [3, 4]\n  ]\n}\n"},
		{"objects in a list", `{"results":[{"label":"cat","score":0.9},{"label":"dog","score":0.1}]}`,
			"{\n  \"results\": [\n    {\n      \"label\": \"cat\",\n      \"score\": 0.9\n    },\n    {\n      \"label\": \"dog\",\n      \"score\": 0.1\n    }\n  ]\n}\n"},
		{"key order kept", `{"z":1,"a":[true,null,"x"]}`, "{\n  \"z\": 1,\n  \"a\": [true, null, \"x\"]\n}\n"},
		{"empties", `{"o":{},"a":[]}`, "{\n  \"o\": {},\n  \"a\": []\n}\n"},
		{"no HTML escaping", `{"label":"<unk> & \"q\""}`, "{\n  \"label\": \"<unk> & \\\"q\\\"\"\n}\n"},
		{"scalar", `42`, "42\n"},
		{"top-level numbers", ` [1, 2,3] `, "[1, 2, 3]\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := formatJSON([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("formatJSON(%s) (-want +got):\n-%q\n+%q", tc.in, tc.want, got)
			}
			if !json.Valid(got) {
				t.Errorf("output is not valid JSON: %s", got)
			}
		})
	}
	for _, bad := range []string{``, `{"a":`, `{"a":1}{"b":2}`, `[1,]`} {
		if got, err := formatJSON([]byte(bad)); err == nil {
			t.Errorf("formatJSON(%q) = %q, want an error", bad, got)
		}
	}
}

// TestInvokeJSONArraysOnOneLine runs `spindle invoke --json` against a task
// endpoint that answers a 1x10 vector: the vector prints on one line, where
// it used to print one number per line.
func TestInvokeJSONArraysOnOneLine(t *testing.T) {
	const vec = `[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/tasks/f" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"embedding":` + vec + `}`))
	}))
	defer srv.Close()
	out := mustRun(t, "invoke", "f", "--json", `{"text": "hi"}`, "--gateway", srv.URL)
	want := "{\n  \"embedding\": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]\n}\n"
	if out != want {
		t.Fatalf("spindle invoke --json printed\n%s\nwant\n%s", out, want)
	}
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("%d lines, want 3", n)
	}
}
