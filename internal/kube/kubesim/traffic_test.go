package kubesim

import (
	"strings"
	"testing"
	"time"
)

func TestParseLoad(t *testing.T) {
	for _, tc := range []struct {
		in      string
		rate    float64
		service time.Duration
	}{
		{"30/s", 30, 100 * time.Millisecond},
		{"2.5/s,40ms", 2.5, 40 * time.Millisecond},
		{" 0 ", 0, 100 * time.Millisecond},
	} {
		r, s, err := ParseLoad(tc.in)
		if err != nil || r != tc.rate || s != tc.service {
			t.Errorf("ParseLoad(%q) = %v, %v, %v; want %v, %v", tc.in, r, s, err, tc.rate, tc.service)
		}
	}
	for _, bad := range []string{"", "fast", "-1/s", "NaN/s", "3/s,soon", "3/s,0s"} {
		if _, _, err := ParseLoad(bad); err == nil || !strings.Contains(err.Error(), LoadAnnotation) {
			t.Errorf("ParseLoad(%q) = %v, want an error naming the annotation", bad, err)
		}
	}
}
