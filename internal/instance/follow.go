package instance

import (
	"context"
	"math"
	"runtime"
	"time"

	"github.com/spindleml/spindle/internal/api"
)

// FollowCPU reads the instance's CPU limit every period (read returns it in
// vCPUs, 0 for none) and, whenever it changes, sizes the worker pool and
// GOMAXPROCS to it as the gateway's resize would: what an instance in a
// Kubernetes pod does, whose CPU the kubelet changes in place without telling
// it. It returns when ctx ends.
func (s *Server) FollowCPU(ctx context.Context, period time.Duration, read func() (float64, error)) {
	t := time.NewTicker(period)
	defer t.Stop()
	last := -1.0
	for {
		if v, err := read(); err == nil && v != last {
			last = v
			if v > 0 {
				n := api.WorkersFor(v)
				s.SetWorkers(n)
				runtime.GOMAXPROCS(int(math.Ceil(v)))
				s.setRunBudget()
				if s.cfg.Logger != nil {
					s.cfg.Logger.Info("cpu limit changed", "vcpus", v, "workers", n)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
