package window

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// ErrConfig is wrapped by New's errors for a window or bucket size it cannot use.
var ErrConfig = errors.New("invalid window configuration")

// MaxBuckets bounds the ring so a window's memory stays small: a minute of
// 100 ms buckets is 600.
const MaxBuckets = 1 << 14

// Window holds the requests of the last Window duration, in buckets of Bucket
// duration. Its methods are safe for concurrent use. The zero value is not
// usable; call New.
type Window struct {
	bucket int64 // ns
	n      int64 // buckets in the ring

	mu     sync.Mutex
	slots  []slot
	first  int64 // bucket number of the first Record or Arrive
	seen   bool  // whether first is set
	merged [numRows][subCount]uint64
}

// slot is one bucket of the ring: the requests seen during bucket number id,
// that is during [id*bucket, (id+1)*bucket) ns since the Unix epoch.
type slot struct {
	id       int64
	arrivals uint64
	count    uint64 // completions, including errors
	errors   uint64
	sum      uint64 // ns, successful completions
	min, max uint64 // ns, successful completions; valid when count > errors
	h        hist
}

func (s *slot) reset(id int64) {
	h := s.h
	h.reset()
	*s = slot{id: id, h: h}
}

// Snapshot summarises a window at one instant. Latencies are nanoseconds in JSON.
// Latency fields describe successful requests only (Record with ok true): a
// request rejected in microseconds or cut at its deadline says nothing about how
// long the function takes. All fields are zero for an empty window.
type Snapshot struct {
	// Count is the number of completions (successful or not) in the window.
	Count int64 `json:"count"`
	// Errors is how many of them were not ok.
	Errors int64 `json:"errors"`
	// Arrivals is the number of requests that arrived in the window.
	Arrivals int64 `json:"arrivals"`
	// Rate is completions per second and ArrivalRate arrivals per second over
	// the time the window covers (see Window.Snapshot).
	Rate        float64 `json:"rate"`
	ArrivalRate float64 `json:"arrival_rate"`
	// P50, P95 and P99 are nearest-rank percentiles of successful latencies,
	// within RelativeError of the exact order statistic.
	P50 time.Duration `json:"p50"`
	P95 time.Duration `json:"p95"`
	P99 time.Duration `json:"p99"`
	// Max is the exact largest and Mean the exact mean successful latency.
	Max  time.Duration `json:"max"`
	Mean time.Duration `json:"mean"`
}

// New returns a window covering the last window duration in buckets of bucket
// duration. window must be a positive multiple of bucket and hold at most
// MaxBuckets buckets. Smaller buckets make old requests leave the window more
// smoothly and cost memory per bucket.
func New(window, bucket time.Duration) (*Window, error) {
	if bucket <= 0 {
		return nil, fmt.Errorf("window: bucket %v: must be positive: %w", bucket, ErrConfig)
	}
	if window < bucket || window%bucket != 0 {
		return nil, fmt.Errorf("window: window %v: must be a positive multiple of bucket %v: %w", window, bucket, ErrConfig)
	}
	n := int64(window / bucket)
	if n > MaxBuckets {
		return nil, fmt.Errorf("window: window %v / bucket %v = %d buckets: must be at most %d: %w", window, bucket, n, MaxBuckets, ErrConfig)
	}
	w := &Window{bucket: int64(bucket), n: n, slots: make([]slot, n)}
	for i := range w.slots {
		w.slots[i].id = math.MinInt64 // no bucket number maps here: every slot starts stale
	}
	return w, nil
}

// Window returns the duration the window covers.
func (w *Window) Window() time.Duration { return time.Duration(w.bucket * w.n) }

// Bucket returns the bucket duration.
func (w *Window) Bucket() time.Duration { return time.Duration(w.bucket) }

// bucketOf returns the bucket number of now, rounding towards minus infinity.
func (w *Window) bucketOf(now time.Time) int64 {
	ns := now.UnixNano()
	id := ns / w.bucket
	if ns%w.bucket < 0 {
		id--
	}
	return id
}

// slotLocked returns the slot for bucket id, recycling it if it held an older
// bucket, or nil if id is older than the bucket now in its place (a late call
// whose bucket has already left the window).
func (w *Window) slotLocked(id int64) *slot {
	if !w.seen || id < w.first {
		w.first, w.seen = id, true
	}
	s := &w.slots[mod(id, w.n)]
	switch {
	case s.id == id:
		return s
	case s.id > id:
		return nil
	}
	s.reset(id)
	return s
}

func mod(a, n int64) int64 {
	m := a % n
	if m < 0 {
		m += n
	}
	return m
}

// Arrive counts a request that arrived at now.
func (w *Window) Arrive(now time.Time) {
	id := w.bucketOf(now)
	w.mu.Lock()
	if s := w.slotLocked(id); s != nil {
		s.arrivals++
	}
	w.mu.Unlock()
}

// Record counts a request that completed at now after latency; ok says whether
// it succeeded. Only successful latencies enter the percentiles, Max and Mean.
// A negative latency counts as zero.
func (w *Window) Record(now time.Time, latency time.Duration, ok bool) {
	id := w.bucketOf(now)
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.slotLocked(id)
	if s == nil {
		return
	}
	s.count++
	if !ok {
		s.errors++
		return
	}
	v := uint64(max(latency, 0))
	if s.count-s.errors == 1 {
		s.min, s.max = v, v
	}
	s.sum += v
	s.min = min(s.min, v)
	s.max = max(s.max, v)
	s.h.add(v)
}

// Snapshot returns the statistics of the window ending at now: the bucket that
// contains now and the ones before it, Window in all. Rates divide by the time
// from the start of the oldest of those buckets to now, or from the start of
// the bucket of the window's first request if that is later (a window that has
// only just started seeing traffic is not diluted by time it did not watch),
// and by at least one bucket, so that one request just now is not a huge rate.
func (w *Window) Snapshot(now time.Time) Snapshot {
	cur := w.bucketOf(now)
	oldest := cur - w.n + 1

	w.mu.Lock()
	defer w.mu.Unlock()
	w.merged = [numRows][subCount]uint64{}
	var arrivals, count, errs, sum, hi uint64
	lo := uint64(math.MaxUint64)
	for i := range w.slots {
		s := &w.slots[i]
		if s.id < oldest || s.id > cur {
			continue
		}
		arrivals += s.arrivals
		count += s.count
		errs += s.errors
		sum += s.sum
		if s.count > s.errors {
			lo, hi = min(lo, s.min), max(hi, s.max)
		}
		s.h.addTo(&w.merged)
	}
	var snap Snapshot
	if !w.seen {
		return snap
	}
	start := max(oldest, w.first) * w.bucket
	covered := max(now.UnixNano()-start, w.bucket)
	secs := float64(covered) / float64(time.Second)
	snap.Count, snap.Errors, snap.Arrivals = int64(count), int64(errs), int64(arrivals)
	snap.Rate, snap.ArrivalRate = float64(count)/secs, float64(arrivals)/secs
	if ok := count - errs; ok > 0 {
		var out [3]uint64
		ranks := [3]uint64{rank(500, ok), rank(950, ok), rank(990, ok)}
		quantiles(&w.merged, ranks[:], lo, hi, out[:])
		snap.P50, snap.P95, snap.P99 = time.Duration(out[0]), time.Duration(out[1]), time.Duration(out[2])
		snap.Max = time.Duration(hi)
		snap.Mean = time.Duration(sum / ok)
	}
	return snap
}

// rank is the 1-based nearest rank of the permille-th quantile among n values:
// the smallest r with r >= n*permille/1000. Integer arithmetic, because
// 0.95*n in floating point can land just above an integer and skip a rank.
func rank(permille, n uint64) uint64 {
	r := (n*permille + 999) / 1000
	return min(max(r, 1), n)
}
