package bench

import (
	"sync"
	"time"
)

// Peak is what the machine's cores can do at most, measured in the
// benchmark's own process so a profile's rates can be set against it: the
// roofline of spindle bench engine --ops.
type Peak struct {
	// GFLOPS is the best prepacked SGEMM rate of one core (a 128x768x768
	// multiply, as BERT's), times the threads.
	GFLOPS float64 `json:"gflops"`
	// GBps is the best rate of copying 64 MiB with the threads, each copying
	// its share, counting what is read and what is written.
	GBps float64 `json:"gbps"`
}

// MeasurePeak measures Peak for threads cores in about budget.
func MeasurePeak(threads int, budget time.Duration) Peak {
	threads = max(threads, 1)
	g := Sgemm(GemmShape{M: 128, K: 768, N: 768}, budget/2)
	const size = 64 << 20
	src, dst := make([]byte, size), make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	copyAll := func() {
		var wg sync.WaitGroup
		part := size / threads
		for t := range threads {
			wg.Go(func() { copy(dst[t*part:(t+1)*part], src[t*part:(t+1)*part]) })
		}
		wg.Wait()
	}
	copyAll() // fault the pages in
	best := 0.0
	for deadline := time.Now().Add(budget / 2); ; {
		t0 := time.Now()
		copyAll()
		best = max(best, 2*size/time.Since(t0).Seconds()/1e9)
		if time.Now().After(deadline) {
			break
		}
	}
	return Peak{GFLOPS: g.Packed * float64(threads), GBps: best}
}
