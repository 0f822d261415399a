package metrics

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkObserve measures the per-request cost of the gateway's hook: one
// Arrive and one Observe through Multi to Metrics and Stats.
func BenchmarkObserve(b *testing.B) {
	s, err := NewStats(time.Minute, time.Second, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := Multi{New(), s}
	names := make([]string, 16)
	for i := range names {
		names[i] = "function-" + strconv.Itoa(i)
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			name := names[i%len(names)]
			r.Arrive(name)
			r.Observe(name, 200, time.Duration(1000+i%50000)*time.Microsecond)
			i++
		}
	})
}

func BenchmarkReadMemorySelf(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		if _, _, err := ReadMemory(pid); err != nil {
			b.Fatal(err)
		}
	}
}
