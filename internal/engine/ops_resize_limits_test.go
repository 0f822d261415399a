package engine

import (
	"strings"
	"testing"
)

// TestResizePlanBoundsOutput checks that Resize's plan refuses outputs of
// more than maxElements elements and scales whose products do not fit in an
// int, whatever the memory budget (a Run with RunOptions.MaxBytes < 0 has
// none), instead of sizing an allocation from them.
func TestResizePlanBoundsOutput(t *testing.T) {
	r := &resizeAttrs{mode: "nearest", coord: "asymmetric", nearest: "floor", keepAspect: "stretch"}
	x := []int{1, 1, 2, 2}
	tests := []struct {
		name string
		p    resizeParams
		want string // "" for accepted
	}{
		{"sizes", resizeParams{sizes: []int64{1, 1, 4, 4}}, ""},
		{"sizes of 4 TiB", resizeParams{sizes: []int64{1, 1, 1 << 20, 1 << 20}}, "output: shape [1 1 1048576 1048576] has more than 1073741824 elements"},
		{"a size past any int", resizeParams{sizes: []int64{1, 1, 1 << 62, 1}}, "input sizes: entry 2 is 4611686018427387904, must be in [0, 1073741824]"},
		{"scales", resizeParams{scales: []float64{1, 1, 2, 2}}, ""},
		{"scales of 4 TiB", resizeParams{scales: []float64{1, 1, 1 << 19, 1 << 19}}, "has more than 1073741824 elements"},
		{"scale past any int", resizeParams{scales: []float64{1, 1, 1e30, 1}}, "input scales: entry 2 (1e+30) makes axis 2 2e+30 long"},
	}
	for _, tt := range tests {
		out, _, _, _, err := r.plan(x, tt.p)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: plan gave %v, %v; want an error saying %q", tt.name, out, err, tt.want)
		}
	}
}
