package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// OwnCPULimit returns the CPU limit, in vCPUs, that this process's cgroups
// put on it: the smallest quota over its cgroup and the cgroups above it
// (cgroup v1's cpu.cfs_quota_us / cpu.cfs_period_us, or v2's cpu.max). 0
// means no limit. A process whose limit others change (a Kubernetes pod
// resized in place) reads it to follow.
func OwnCPULimit() (float64, error) { return ownCPULimit(procFiles{}) }

func ownCPULimit(p procFiles) (float64, error) {
	mountinfo, cgroup, err := p.read()
	if err != nil {
		return 0, err
	}
	l := parseLayout(mountinfo, cgroup)
	limit := 0.0
	take := func(v float64) {
		if v > 0 && (limit == 0 || v < limit) {
			limit = v
		}
	}
	switch {
	case l.v1For("cpu") != nil:
		h := l.v1For("cpu")
		for dir := range ancestors(h.own, h.mount) {
			q, err1 := readInt(filepath.Join(dir, "cpu.cfs_quota_us"))
			per, err2 := readInt(filepath.Join(dir, "cpu.cfs_period_us"))
			if err := errors.Join(err1, err2); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return 0, err
			}
			if q > 0 && per > 0 {
				take(float64(q) / float64(per))
			}
		}
	case l.v2 != nil:
		for dir := range ancestors(l.v2.own, l.v2.mount) {
			b, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
			if errors.Is(err, fs.ErrNotExist) {
				continue // the root has none
			}
			if err != nil {
				return 0, err
			}
			f := strings.Fields(string(b))
			if len(f) != 2 || f[0] == "max" {
				continue
			}
			q, err1 := strconv.ParseInt(f[0], 10, 64)
			per, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 == nil && err2 == nil && q > 0 && per > 0 {
				take(float64(q) / float64(per))
			}
		}
	}
	return limit, nil
}

// ancestors yields dir and its parents up to and including top.
func ancestors(dir, top string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for {
			if !yield(dir) {
				return
			}
			if dir == top || len(dir) <= len(top) {
				return
			}
			dir = filepath.Dir(dir)
		}
	}
}
