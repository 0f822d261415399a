package window

import (
	"testing"
	"time"
)

// BenchmarkRecord moves time on by 10 µs a call, so buckets are recycled as in
// a server taking 100k requests a second.
func BenchmarkRecord(b *testing.B) {
	w := mustNew(b, time.Minute, time.Second)
	now := t0
	i := 0
	for b.Loop() {
		w.Record(now, time.Duration(1000+i%50000)*time.Microsecond, true)
		now = now.Add(10 * time.Microsecond)
		i++
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	w := mustNew(b, time.Minute, time.Second)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			w.Record(t0.Add(time.Duration(i)*10*time.Microsecond), time.Duration(1000+i%50000)*time.Microsecond, true)
			i++
		}
	})
}

func BenchmarkSnapshot(b *testing.B) {
	w := mustNew(b, time.Minute, time.Second)
	for i := range 600_000 {
		w.Record(t0.Add(time.Duration(i)*100*time.Microsecond), time.Duration(1000+i%50000)*time.Microsecond, true)
	}
	now := t0.Add(time.Minute)
	for b.Loop() {
		w.Snapshot(now)
	}
}
