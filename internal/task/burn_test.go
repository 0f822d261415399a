package task

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// xorshiftRef is the reference loop Burn must match: n rounds of xorshift64
// (13, 7, 17) from the seed.
func xorshiftRef(n int) uint64 {
	x := uint64(burnSeed)
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

func TestCPUBurn(t *testing.T) {
	tk := newTask(t, CPUBurn, Config{BurnMS: 3, MaxBurnMS: 50, ItersPerMS: 1000}, t.TempDir(), nil)
	tests := []struct {
		name, body string
		units      int
	}{
		{"empty body takes the default", "", 3},
		{"empty object takes the default", "{}", 3},
		{"ms", `{"ms": 7}`, 7},
		{"zero", `{"ms": 0}`, 0},
		{"the cap", `{"ms": 50}`, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := handle(t, tk, nil, "text/plain", tc.body)
			if err != nil {
				t.Fatal(err)
			}
			r := got.(BurnResult)
			want := fmt.Sprintf("%016x", xorshiftRef(tc.units*1000))
			if r.BurnedMS != tc.units || r.Iterations != int64(tc.units*1000) || r.Result != want {
				t.Fatalf("got %+v, want %d ms, %d iterations, result %s", r, tc.units, tc.units*1000, want)
			}
		})
	}
}

func TestCPUBurnBadRequests(t *testing.T) {
	tk := newTask(t, CPUBurn, Config{MaxBurnMS: 50, ItersPerMS: 1}, t.TempDir(), nil)
	tests := []struct{ name, body, want string }{
		{"over the cap", `{"ms": 51}`, "ms: 51 must be between 0 and 50 (max_burn_ms)"},
		{"negative", `{"ms": -1}`, "ms: -1 must be between 0 and 50"},
		{"not JSON", `burn please`, `body: invalid JSON at byte 1`},
		{"wrong type", `{"ms": "10"}`, "body: ms: want int, got JSON string"},
		{"fraction", `{"ms": 1.5}`, "body: ms: want int, got JSON number 1.5"},
		{"unknown field", `{"seconds": 1}`, `body: unknown field "seconds"`},
		{"two objects", `{} {}`, "body: want one JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := handle(t, tk, nil, "", tc.body)
			if !IsInputError(err) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant an InputError starting %q", err, tc.want)
			}
		})
	}
}

func TestBurnStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Burn(ctx, 1_000_000, DefaultItersPerMS); err != context.Canceled {
		t.Fatalf("Burn with a cancelled context: %v, want context.Canceled", err)
	}
}
