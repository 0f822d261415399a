package loadgen

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := time.Millisecond
	thousand := make([]time.Duration, 1000)
	for i := range thousand {
		thousand[i] = time.Duration(i+1) * ms
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{7}, 99.9, 7},
		{"p50 of 1..1000", thousand, 50, 500 * ms},
		{"p90 of 1..1000", thousand, 90, 900 * ms},
		{"p99 of 1..1000", thousand, 99, 990 * ms},
		{"p99.9 of 1..1000", thousand, 99.9, 999 * ms},
		{"p100 of 1..1000", thousand, 100, 1000 * ms},
		{"p50 of four is the second", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p51 of four is the third", []time.Duration{1, 2, 3, 4}, 51, 3},
		{"tiny p is the first", []time.Duration{1, 2, 3, 4}, 0.001, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(p%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	var recs []Record
	// 100 successes with latencies 1..100 ms (in reverse, to check sorting),
	// one 500 and one request without an answer; errors are left out of the
	// latency figures.
	for i := 100; i >= 1; i-- {
		recs = append(recs, Record{Start: time.Duration(100-i) * 10 * ms, Latency: time.Duration(i) * ms, Status: 200})
	}
	recs = append(recs, Record{Start: 0, Latency: 5 * time.Second, Status: 500})
	recs = append(recs, Record{Start: 0, Latency: time.Hour, Err: "connection refused"})
	s := Summarize(recs)
	if s.Requests != 102 || s.OK != 100 || s.Errors != 2 {
		t.Errorf("requests %d ok %d errors %d, want 102 100 2", s.Requests, s.OK, s.Errors)
	}
	if s.ByStatus[200] != 100 || s.ByStatus[500] != 1 || s.ByStatus[0] != 1 {
		t.Errorf("by status %v", s.ByStatus)
	}
	want := map[string][2]time.Duration{
		"p50": {s.P50, 50 * ms}, "p90": {s.P90, 90 * ms}, "p99": {s.P99, 99 * ms},
		"p99.9": {s.P999, 100 * ms}, "max": {s.Max, 100 * ms}, "mean": {s.Mean, 50500 * time.Microsecond},
	}
	for name, gw := range want {
		if gw[0] != gw[1] {
			t.Errorf("%s = %v, want %v", name, gw[0], gw[1])
		}
	}
	if s.Elapsed != time.Hour {
		t.Errorf("elapsed %v, want the last answer's end, 1h", s.Elapsed)
	}
	text := s.String()
	for _, w := range []string{"ok 100", "errors 2", "500: 1", "no answer: 1", "p99.9 100ms"} {
		if !strings.Contains(text, w) {
			t.Errorf("summary text lacks %q:\n%s", w, text)
		}
	}
	if empty := Summarize(nil); empty.Requests != 0 || empty.P99 != 0 || empty.Throughput() != 0 {
		t.Errorf("empty summary %+v", empty)
	}
}

// TestSummaryAllFailed checks the verdict the CLI exits 1 on, and that the
// summary text says it.
func TestSummaryAllFailed(t *testing.T) {
	ok := Record{Status: 200}
	notFound := Record{Status: 404}
	refused := Record{Err: "connection refused"}
	tests := []struct {
		name   string
		recs   []Record
		want   bool
		counts string
	}{
		{"no requests", nil, false, ""},
		{"all 404", []Record{notFound, notFound}, true, "404: 2"},
		{"no answers and a 404", []Record{refused, notFound}, true, "no answer: 1, 404: 1"},
		{"one ok", []Record{notFound, ok}, false, "200: 1, 404: 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Summarize(tc.recs)
			if got := s.AllFailed(); got != tc.want {
				t.Errorf("AllFailed() = %v, want %v", got, tc.want)
			}
			if got := s.StatusCounts(); got != tc.counts {
				t.Errorf("StatusCounts() = %q, want %q", got, tc.counts)
			}
			if said := strings.Contains(s.String(), "every request failed"); said != tc.want {
				t.Errorf("summary says every request failed: %v, want %v:\n%s", said, tc.want, s)
			}
		})
	}
}
