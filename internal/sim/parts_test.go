package sim

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseDist(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "times.txt")
	os.WriteFile(good, []byte("# BERT, 1 thread\n212ms\n0.188\n\n200ms # warm\n"), 0o644)
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("200ms\nfast\n"), 0o644)
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte("# nothing\n"), 0o644)
	negative := filepath.Join(dir, "neg.txt")
	os.WriteFile(negative, []byte("-1\n"), 0o644)

	tests := []struct {
		in   string
		mean float64
		err  string
	}{
		{"const:200ms", 0.2, ""},
		{"exp:100ms", 0.1, ""},
		{"lognormal:200ms:0.3", 0.2, ""},
		{"uniform:100ms:300ms", 0.2, ""},
		{"file:" + good, 0.2, ""},
		{"const", 0, "missing argument 1"},
		{"const:1s:2s", 0, "const takes 1 argument(s)"},
		{"exp:-1s", 0, "want a duration > 0"},
		{"lognormal:200ms:x", 0, `cv "x"`},
		{"lognormal:200ms:0", 0, "want a number in (0, 100]"},
		{"uniform:300ms:100ms", 0, "high 100ms below low 300ms"},
		{"gamma:1s", 0, "want const:D, exp:MEAN"},
		{"file:", 0, "missing path"},
		{"file:" + filepath.Join(dir, "none"), 0, "no such file"},
		{"file:" + bad, 0, `bad.txt:2: "fast"`},
		{"file:" + empty, 0, "no samples"},
		{"file:" + negative, 0, "must be a finite time > 0"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			d, err := ParseDist(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadDist) {
					t.Fatalf("err %v, want ErrBadDist containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(d.Mean()-tc.mean) > 1e-9 {
				t.Errorf("Mean() = %v, want %v", d.Mean(), tc.mean)
			}
			// The samples' mean matches the distribution's.
			r := rand.New(rand.NewPCG(1, 2))
			var sum float64
			const n = 200000
			for range n {
				x := d.Sample(r)
				if !(x > 0) {
					t.Fatalf("sample %v", x)
				}
				sum += x
			}
			if got := sum / n; math.Abs(got-tc.mean) > 0.01*tc.mean {
				t.Errorf("sample mean %v, want %v", got, tc.mean)
			}
			if again, err := ParseDist(d.String()); err == nil && again.Mean() != d.Mean() {
				t.Errorf("String() %q parses to mean %v", d.String(), again.Mean())
			}
		})
	}
}

func TestHistQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	d := NewLogNormal(0.2, 1.5)
	var h hist
	xs := make([]float64, 100001)
	for i := range xs {
		xs[i] = d.Sample(r)
		h.add(xs[i])
	}
	slices.Sort(xs)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := xs[int(math.Ceil(q*float64(len(xs))))-1]
		if got := h.quantile(q); math.Abs(got-want) > 0.004*want {
			t.Errorf("q%g: %v, exact %v", q, got, want)
		}
	}
	var empty hist
	if empty.quantile(0.5) != 0 || empty.mean() != 0 {
		t.Error("empty histogram is not zero")
	}
	// Out of range values land in the end buckets without trouble.
	h.reset()
	for _, x := range []float64{0, 1e-9, 1e9, math.Inf(1)} {
		h.add(x)
	}
	if h.n != 4 || h.quantile(0.25) > 1e-5 {
		t.Errorf("extremes: n %d, q25 %v", h.n, h.quantile(0.25))
	}
}

func TestQuantileOf(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 3, 10, 101, 1000} {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(r.IntN(20)) // many ties
		}
		sorted := slices.Sorted(slices.Values(xs))
		k := 0
		for _, q := range []float64{0.5, 0.95, 0.99} {
			var got float64
			got, k = quantileOf(xs, q, k)
			want := sorted[max(0, int(math.Ceil(q*float64(n)))-1)]
			if got != want {
				t.Errorf("n=%d q=%g: %v, want %v", n, q, got, want)
			}
		}
	}
}

// TestEventHeap checks the heap against sorting, with completion events
// moved and removed in place as instances change.
func TestEventHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var h eventHeap
	done := map[int32]event{} // the live completion event per instance
	var others []event
	var seq uint64
	for range 5000 {
		seq++
		switch op := r.IntN(4); op {
		case 0:
			e := event{t: r.Float64() * 100, seq: seq, kind: evArrival, a: int32(r.IntN(50))}
			h.push(e)
			others = append(others, e)
		case 1, 2:
			i := int32(r.IntN(40))
			tm := r.Float64() * 100
			h.setDone(i, tm, seq)
			done[i] = event{t: tm, seq: seq, kind: evDone, a: i}
		case 3:
			i := int32(r.IntN(40))
			h.clearDone(i)
			delete(done, i)
		}
	}
	want := append([]event(nil), others...)
	for _, e := range done {
		want = append(want, e)
	}
	slices.SortFunc(want, func(a, b event) int {
		if a.before(&b) {
			return -1
		}
		return 1
	})
	for k, w := range want {
		if h.len() == 0 {
			t.Fatalf("heap empty after %d of %d events", k, len(want))
		}
		if got := h.pop(); got != w {
			t.Fatalf("event %d: %+v, want %+v", k, got, w)
		}
	}
	if h.len() != 0 {
		t.Errorf("%d events left", h.len())
	}
	for i, p := range h.pos {
		if p != -1 {
			t.Errorf("instance %d still has position %d", i, p)
		}
	}
}

func FuzzParseDist(f *testing.F) {
	for _, s := range []string{"const:200ms", "exp:1s", "lognormal:200ms:0.2", "uniform:1ms:2ms", "lognormal:1ns:100", "file:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.HasPrefix(s, "file:") {
			return // reads files: covered by TestParseDist
		}
		d, err := ParseDist(s)
		if err != nil {
			if !errors.Is(err, ErrBadDist) {
				t.Fatalf("%q: error %v does not wrap ErrBadDist", s, err)
			}
			return
		}
		r := rand.New(rand.NewPCG(1, 1))
		for range 10 {
			if x := d.Sample(r); !(x >= 0) || math.IsInf(x, 0) {
				t.Fatalf("%q: sample %v", s, x)
			}
		}
		if !(d.Mean() > 0) {
			t.Fatalf("%q: mean %v", s, d.Mean())
		}
	})
}
