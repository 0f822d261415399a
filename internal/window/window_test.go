package window

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// t0 is a bucket-aligned instant for every bucket size used here.
var t0 = time.Unix(1_700_000_000, 0)

func mustNew(t testing.TB, window, bucket time.Duration) *Window {
	t.Helper()
	w, err := New(window, bucket)
	if err != nil {
		t.Fatalf("New(%v, %v): %v", window, bucket, err)
	}
	return w
}

func TestNew(t *testing.T) {
	tests := []struct {
		name           string
		window, bucket time.Duration
		ok             bool
	}{
		{"minute of seconds", time.Minute, time.Second, true},
		{"one bucket", time.Second, time.Second, true},
		{"max buckets", MaxBuckets * time.Millisecond, time.Millisecond, true},
		{"zero bucket", time.Minute, 0, false},
		{"negative bucket", time.Minute, -time.Second, false},
		{"window smaller than bucket", time.Second, time.Minute, false},
		{"zero window", 0, time.Second, false},
		{"not a multiple", 10 * time.Second, 3 * time.Second, false},
		{"too many buckets", (MaxBuckets + 1) * time.Millisecond, time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(tt.window, tt.bucket)
			if tt.ok {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if w.Window() != tt.window || w.Bucket() != tt.bucket {
					t.Errorf("Window(), Bucket() = %v, %v; want %v, %v", w.Window(), w.Bucket(), tt.window, tt.bucket)
				}
				return
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New error = %v; want ErrConfig", err)
			}
		})
	}
}

// TestLocate checks the histogram's bucket arithmetic: every value lies in the
// bucket it is counted in, buckets are ordered like the values, and a bucket's
// midpoint is within RelativeError of every value in it.
func TestLocate(t *testing.T) {
	values := []uint64{0, 1, 63, 64, 65, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<20 + 1, 1<<30 - 1, MaxTracked - 1, MaxTracked}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		values = append(values, r.Uint64N(MaxTracked+1)>>r.UintN(42))
	}
	for _, v := range values {
		row, sub := locate(v)
		if row < 0 || row >= numRows || sub < 0 || sub >= subCount {
			t.Fatalf("locate(%d) = (%d, %d): out of range", v, row, sub)
		}
		low, width := bounds(row, sub)
		if v < low || v >= low+width {
			t.Fatalf("locate(%d) = (%d, %d) = [%d, %d): does not hold it", v, row, sub, low, low+width)
		}
		if err := relErr(midpoint(row, sub), v); err > RelativeError {
			t.Fatalf("midpoint of %d's bucket = %d: relative error %.4f > %.4f", v, midpoint(row, sub), err, RelativeError)
		}
		if v > 0 {
			pr, ps := locate(v - 1)
			if pr*subCount+ps > row*subCount+sub {
				t.Fatalf("locate(%d) = (%d, %d) sorts after locate(%d) = (%d, %d)", v-1, pr, ps, v, row, sub)
			}
		}
	}
	// Beyond the tracked range everything lands in the top bucket.
	for _, v := range []uint64{MaxTracked + 1, math.MaxUint64} {
		if r, s := locate(v); r != numRows-1 || s != subCount-1 {
			t.Errorf("locate(%d) = (%d, %d); want the top bucket (%d, %d)", v, r, s, numRows-1, subCount-1)
		}
	}
}

func relErr(got, want uint64) float64 {
	if want == 0 {
		return math.Abs(float64(got))
	}
	return math.Abs(float64(got)-float64(want)) / float64(want)
}

type event struct {
	at      time.Duration // since t0
	latency time.Duration
	ok      bool
	arrive  bool // an Arrive instead of a Record
}

func TestSnapshotExact(t *testing.T) {
	var oneTo100 []event
	for i := 1; i <= 100; i++ {
		oneTo100 = append(oneTo100, event{at: time.Duration(i) * time.Millisecond, latency: time.Duration(i), ok: true})
	}
	tests := []struct {
		name   string
		events []event
		at     time.Duration
		want   Snapshot
	}{
		{name: "empty", at: time.Second, want: Snapshot{}},
		{
			// One request reports its exact latency at every percentile,
			// and the rate divides by one bucket, not by the 0.5 s seen.
			name:   "one request",
			events: []event{{at: 0, latency: 5 * time.Millisecond, ok: true}},
			at:     500 * time.Millisecond,
			want:   Snapshot{Count: 1, Rate: 1, P50: 5 * time.Millisecond, P95: 5 * time.Millisecond, P99: 5 * time.Millisecond, Max: 5 * time.Millisecond, Mean: 5 * time.Millisecond},
		},
		{
			// Latencies below 128 ns are counted exactly.
			name:   "1 to 100 ns",
			events: oneTo100,
			at:     2 * time.Second,
			want:   Snapshot{Count: 100, Rate: 50, P50: 50, P95: 95, P99: 99, Max: 100, Mean: 50},
		},
		{
			name: "errors count but have no latency",
			events: []event{
				{at: 0, latency: 10, ok: true},
				{at: 0, latency: 20, ok: true},
				{at: 0, latency: 30, ok: true},
				{at: 0, latency: time.Hour, ok: false},
				{at: 0, latency: time.Nanosecond, ok: false},
			},
			at:   4 * time.Second,
			want: Snapshot{Count: 5, Errors: 2, Rate: 1.25, P50: 20, P95: 30, P99: 30, Max: 30, Mean: 20},
		},
		{
			name:   "only errors",
			events: []event{{at: 0, latency: time.Second}, {at: time.Second, latency: time.Second}},
			at:     2 * time.Second,
			want:   Snapshot{Count: 2, Errors: 2, Rate: 1},
		},
		{
			name: "arrivals",
			events: []event{
				{at: 0, arrive: true}, {at: 0, arrive: true}, {at: time.Second, arrive: true}, {at: 3 * time.Second, arrive: true},
				{at: 3 * time.Second, latency: 7, ok: true},
			},
			at:   4 * time.Second,
			want: Snapshot{Count: 1, Arrivals: 4, Rate: 0.25, ArrivalRate: 1, P50: 7, P95: 7, P99: 7, Max: 7, Mean: 7},
		},
		{
			name:   "negative latency counts as zero",
			events: []event{{at: 0, latency: -time.Second, ok: true}, {at: 0, latency: 4, ok: true}},
			at:     time.Second,
			want:   Snapshot{Count: 2, Rate: 2, P50: 0, P95: 4, P99: 4, Max: 4, Mean: 2},
		},
		{
			// Past the tracked range the percentiles saturate, Max and Mean stay exact.
			name:   "beyond MaxTracked",
			events: []event{{at: 0, latency: 3 * time.Hour, ok: true}},
			at:     time.Second,
			want:   Snapshot{Count: 1, Rate: 1, P50: 3 * time.Hour, P95: 3 * time.Hour, P99: 3 * time.Hour, Max: 3 * time.Hour, Mean: 3 * time.Hour},
		},
		{
			name:   "beyond MaxTracked among smaller",
			events: []event{{at: 0, latency: 3 * time.Hour, ok: true}, {at: 0, latency: 3 * time.Hour, ok: true}, {at: 0, latency: 1, ok: true}},
			at:     time.Second,
			want:   Snapshot{Count: 3, Rate: 3, P50: topMid, P95: topMid, P99: topMid, Max: 3 * time.Hour, Mean: 2 * time.Hour},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustNew(t, 10*time.Second, time.Second)
			replay(w, tt.events)
			if got := w.Snapshot(t0.Add(tt.at)); got != tt.want {
				t.Errorf("Snapshot:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// topMid is what a percentile among latencies beyond MaxTracked reports.
var topMid = time.Duration(midpoint(numRows-1, subCount-1))

func replay(w *Window, events []event) {
	for _, e := range events {
		if e.arrive {
			w.Arrive(t0.Add(e.at))
		} else {
			w.Record(t0.Add(e.at), e.latency, e.ok)
		}
	}
}

// TestPercentilesRandom compares the window's percentiles with the nearest-rank
// order statistics of the same samples, sorted.
func TestPercentilesRandom(t *testing.T) {
	tests := []struct {
		name string
		n    int
		draw func(r *rand.Rand) time.Duration
	}{
		{"lognormal around 20ms", 20000, func(r *rand.Rand) time.Duration {
			return time.Duration(float64(20*time.Millisecond) * math.Exp(r.NormFloat64()))
		}},
		{"uniform 1us to 60s", 20000, func(r *rand.Rand) time.Duration {
			return time.Microsecond + time.Duration(r.Int64N(int64(60*time.Second)))
		}},
		{"bimodal cold starts", 5000, func(r *rand.Rand) time.Duration {
			if r.IntN(50) == 0 {
				return 2*time.Second + time.Duration(r.Int64N(int64(time.Second)))
			}
			return 3*time.Millisecond + time.Duration(r.Int64N(int64(time.Millisecond)))
		}},
		{"few samples", 7, func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(time.Second))) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(i), 42))
			w := mustNew(t, time.Minute, time.Second)
			samples := make([]time.Duration, tt.n)
			var sum time.Duration
			for j := range samples {
				samples[j] = tt.draw(r)
				sum += samples[j]
				// Spread over the window so the merge across buckets is exercised.
				w.Record(t0.Add(time.Duration(r.Int64N(int64(time.Minute)))), samples[j], true)
			}
			slices.Sort(samples)
			got := w.Snapshot(t0.Add(time.Minute - 1))
			for _, c := range []struct {
				name string
				q    float64
				got  time.Duration
			}{{"p50", 0.50, got.P50}, {"p95", 0.95, got.P95}, {"p99", 0.99, got.P99}} {
				want := samples[nearestRank(c.q, len(samples))-1]
				if e := relErr(uint64(c.got), uint64(want)); e > RelativeError {
					t.Errorf("%s = %v; sorted reference %v: relative error %.5f > %.5f", c.name, c.got, want, e, RelativeError)
				}
			}
			if got.Count != int64(tt.n) || got.Max != samples[len(samples)-1] || got.Mean != sum/time.Duration(tt.n) {
				t.Errorf("Count, Max, Mean = %d, %v, %v; want %d, %v, %v", got.Count, got.Max, got.Mean, tt.n, samples[len(samples)-1], sum/time.Duration(tt.n))
			}
		})
	}
}

// nearestRank is the reference definition: the smallest rank r with r >= q*n,
// computed apart from the package's integer version.
func nearestRank(q float64, n int) int {
	r := 1
	for float64(r) < q*float64(n)-1e-9 {
		r++
	}
	return r
}

// TestExpiry steps time by hand: buckets leave the window as now passes them,
// and a recycled bucket forgets what it held.
func TestExpiry(t *testing.T) {
	w := mustNew(t, 10*time.Second, time.Second)
	w.Record(t0, time.Millisecond, true)
	w.Record(t0.Add(5*time.Second), 2*time.Millisecond, false)
	w.Record(t0.Add(5*time.Second), 3*time.Millisecond, true)

	steps := []struct {
		at           time.Duration
		count, errs  int64
		p50, max     time.Duration
		wantRatePerS float64
	}{
		{at: 0, count: 1, p50: time.Millisecond, max: time.Millisecond, wantRatePerS: 1},
		{at: 10*time.Second - 1, count: 3, errs: 1, p50: time.Millisecond, max: 3 * time.Millisecond, wantRatePerS: 3 / (10 - 1e-9)},
		{at: 10 * time.Second, count: 2, errs: 1, p50: 3 * time.Millisecond, max: 3 * time.Millisecond, wantRatePerS: 2.0 / 9},
		{at: 14*time.Second + 500*time.Millisecond, count: 2, errs: 1, p50: 3 * time.Millisecond, max: 3 * time.Millisecond, wantRatePerS: 2 / 9.5},
		{at: 15 * time.Second, count: 0},
		{at: time.Hour, count: 0},
	}
	for _, s := range steps {
		got := w.Snapshot(t0.Add(s.at))
		if got.Count != s.count || got.Errors != s.errs || !near(got.P50, s.p50) || got.Max != s.max || math.Abs(got.Rate-s.wantRatePerS) > 1e-9 {
			t.Errorf("at t0+%v: got %+v; want Count %d Errors %d P50 %v Max %v Rate %.6f", s.at, got, s.count, s.errs, s.p50, s.max, s.wantRatePerS)
		}
	}

	// t0+20s falls in the ring slot that held t0's bucket: the old 1 ms must be gone.
	for _, d := range []time.Duration{40, 50, 60} {
		w.Record(t0.Add(20*time.Second), d*time.Millisecond, true)
	}
	got := w.Snapshot(t0.Add(20 * time.Second))
	if got.Count != 3 || !near(got.P50, 50*time.Millisecond) || got.Max != 60*time.Millisecond || got.Mean != 50*time.Millisecond {
		t.Errorf("after reuse of a slot: got %+v; want 40, 50 and 60 ms", got)
	}

	// A late Record whose bucket has been recycled is dropped; one whose bucket
	// is merely outside the window does not show.
	w.Record(t0, time.Second, true)
	w.Record(t0.Add(5*time.Second), time.Second, true)
	if again := w.Snapshot(t0.Add(20 * time.Second)); again != got {
		t.Errorf("late Records changed the window: got %+v; want %+v", again, got)
	}
}

// near reports whether a percentile is within RelativeError of want.
func near(got, want time.Duration) bool {
	return relErr(uint64(got), uint64(want)) <= RelativeError
}

// TestBeforeEpoch checks that bucket numbers round down for negative Unix times.
func TestBeforeEpoch(t *testing.T) {
	w := mustNew(t, 2*time.Second, time.Second)
	base := time.Unix(0, 0)
	w.Record(base.Add(-1500*time.Millisecond), 1, true) // bucket -2
	w.Record(base.Add(-500*time.Millisecond), 2, true)  // bucket -1
	if got := w.Snapshot(base.Add(-1)).Count; got != 2 {
		t.Errorf("Count just before the epoch = %d; want 2", got)
	}
	if got := w.Snapshot(base).Count; got != 1 {
		t.Errorf("Count at the epoch = %d; want 1 (bucket -2 left)", got)
	}
}

func TestConcurrent(t *testing.T) {
	w := mustNew(t, 10*time.Second, 100*time.Millisecond)
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				w.Arrive(now)
				w.Record(now, time.Duration(g+1)*time.Millisecond, i%10 != 0)
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			w.Snapshot(t0.Add(time.Duration(i) * 10 * time.Millisecond))
		}
	})
	wg.Wait()
	got := w.Snapshot(t0.Add(each * time.Millisecond))
	if got.Count != workers*each || got.Arrivals != workers*each || got.Errors != workers*each/10 {
		t.Errorf("Count, Arrivals, Errors = %d, %d, %d; want %d, %d, %d", got.Count, got.Arrivals, got.Errors, workers*each, workers*each, workers*each/10)
	}
	if got.Max != workers*time.Millisecond {
		t.Errorf("Max = %v; want %v", got.Max, workers*time.Millisecond)
	}
}

func TestSnapshotJSON(t *testing.T) {
	w := mustNew(t, time.Second, time.Second)
	w.Record(t0, 3*time.Millisecond, true)
	w.Record(t0, 3*time.Millisecond, true)
	w.Record(t0, 2*time.Millisecond, true)
	b, err := json.Marshal(w.Snapshot(t0))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"count", "errors", "arrivals", "rate", "arrival_rate", "p50", "p95", "p99", "max", "mean"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON %s lacks %q", b, k)
		}
	}
	if !near(time.Duration(m["p99"]), 3*time.Millisecond) || m["max"] != float64(3*time.Millisecond) {
		t.Errorf("p99, max = %v, %v; want %d (nanoseconds)", m["p99"], m["max"], 3*time.Millisecond)
	}
}
