package metrics

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches url and parses the text exposition format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: status %d, Content-Type %q; want 200 text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// series finds the metric of family name whose labels are exactly labels.
func series(fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value, or a histogram's sample count.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

func fn(name string, more ...string) map[string]string {
	l := map[string]string{"function": name}
	for i := 0; i+1 < len(more); i += 2 {
		l[more[i]] = more[i+1]
	}
	return l
}

// record drives m the way the gateway and autoscaler do for two functions.
func record(m *Metrics) {
	var r Recorder = m
	r.Arrive("resnet")
	r.Arrive("resnet")
	r.Arrive("resnet")
	r.Observe("resnet", 200, 12*time.Millisecond)
	r.Observe("resnet", 200, 30*time.Millisecond)
	r.Arrive("bert")
	r.Observe("bert", 429, time.Millisecond/2)
	m.SetQueueDepth("resnet", 4)
	m.SetInstances("resnet", 2)
	m.SetVCPUs("resnet", 1.5)
	m.SetMemory("resnet", 300<<20, 180<<20)
	m.InstanceStarted("resnet", "cold", 1500*time.Millisecond)
	m.InstanceStarted("resnet", "scale_up", 500*time.Millisecond)
	m.ScalingDecision("resnet", "concurrency", "scale_up")
	m.ScalingDecision("resnet", "concurrency", "scale_up")
	m.SetInstances("bert", 1)
}

func TestExposition(t *testing.T) {
	m := New()
	record(m)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	fams := scrape(t, srv.URL)

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"spindle_requests_total", fn("resnet", "code", "200"), 2},
		{"spindle_requests_total", fn("bert", "code", "429"), 1},
		{"spindle_request_duration_seconds", fn("resnet"), 2},
		{"spindle_request_duration_seconds", fn("bert"), 1},
		{"spindle_in_flight", fn("resnet"), 1},
		{"spindle_in_flight", fn("bert"), 0},
		{"spindle_queue_depth", fn("resnet"), 4},
		{"spindle_instances", fn("resnet"), 2},
		{"spindle_instances", fn("bert"), 1},
		{"spindle_vcpus", fn("resnet"), 1.5},
		{"spindle_memory_rss_bytes", fn("resnet"), 300 << 20},
		{"spindle_memory_pss_bytes", fn("resnet"), 180 << 20},
		{"spindle_instance_starts_total", fn("resnet", "reason", "cold"), 1},
		{"spindle_instance_starts_total", fn("resnet", "reason", "scale_up"), 1},
		{"spindle_cold_start_seconds", fn("resnet"), 2},
		{"spindle_scaling_decisions_total", fn("resnet", "policy", "concurrency", "action", "scale_up"), 2},
	}
	for _, tt := range tests {
		m := series(fams, tt.name, tt.labels)
		if m == nil {
			t.Errorf("%s%v: missing", tt.name, tt.labels)
			continue
		}
		if got := value(m); got != tt.want {
			t.Errorf("%s%v = %v; want %v", tt.name, tt.labels, got, tt.want)
		}
	}

	// The latency histogram has seconds, and the buckets place 12 ms and 30 ms.
	h := series(fams, "spindle_request_duration_seconds", fn("resnet")).GetHistogram()
	if got, want := h.GetSampleSum(), 0.042; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("request_duration_seconds sum = %v; want %v", got, want)
	}
	cum := map[float64]uint64{}
	for _, b := range h.Bucket {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	for le, want := range map[float64]uint64{0.001: 0, 0.01: 0, 0.025: 1, 0.05: 2, 60: 2} {
		if got, ok := cum[le]; !ok || got != want {
			t.Errorf("request_duration_seconds bucket le=%v = %d (present %v); want %d", le, got, ok, want)
		}
	}
	// The process serving /metrics describes itself too.
	if fams["go_goroutines"] == nil {
		t.Error("go_goroutines missing: Go collector not registered")
	}
}

func TestForget(t *testing.T) {
	m := New()
	record(m)
	m.Forget("resnet")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	fams := scrape(t, srv.URL)
	bertSeries := 0
	for name, f := range fams {
		for _, s := range f.Metric {
			for _, l := range s.Label {
				if l.GetName() != "function" {
					continue
				}
				switch l.GetValue() {
				case "resnet":
					t.Errorf("%s still has a series for the forgotten function: %v", name, s.Label)
				case "bert":
					bertSeries++
				}
			}
		}
	}
	// bert: requests_total, request_duration_seconds, in_flight, instances.
	if bertSeries != 4 {
		t.Errorf("bert has %d series after forgetting resnet; want 4", bertSeries)
	}
}

func TestBuckets(t *testing.T) {
	for _, b := range []struct {
		name    string
		bounds  []float64
		lo, hi  float64
		minStep float64
	}{
		{"DurationBuckets", DurationBuckets, 0.001, 60, 1.5},
		{"ColdStartBuckets", ColdStartBuckets, 0.01, 120, 1.5},
	} {
		if !slices.IsSorted(b.bounds) || b.bounds[0] != b.lo || b.bounds[len(b.bounds)-1] != b.hi {
			t.Errorf("%s = %v; want sorted from %v to %v", b.name, b.bounds, b.lo, b.hi)
		}
		for i := 1; i < len(b.bounds); i++ {
			if r := b.bounds[i] / b.bounds[i-1]; r < b.minStep || r > 3.01 {
				t.Errorf("%s: %v to %v is a step of %.2fx; want 1.5x to 3x", b.name, b.bounds[i-1], b.bounds[i], r)
			}
		}
	}
}

// TestRegistriesIndependent checks that two Metrics share no state (no global
// default registry).
func TestRegistriesIndependent(t *testing.T) {
	a, b := New(), New()
	a.Observe("f", 200, time.Millisecond)
	fams, err := b.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), Namespace+"_") && len(f.Metric) > 0 {
			t.Errorf("second Metrics has %s series after observing on the first", f.GetName())
		}
	}
}
