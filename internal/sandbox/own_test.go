package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOwnCPULimit reads quotas from cgroup trees laid out in files as the
// kernel shows them: the smallest quota on the path counts, "max" and -1 are
// no limit.
func TestOwnCPULimit(t *testing.T) {
	write := func(path, v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v1 := t.TempDir()
	write(filepath.Join(v1, "kubepods", "cpu.cfs_quota_us"), "-1")
	write(filepath.Join(v1, "kubepods", "cpu.cfs_period_us"), "100000")
	write(filepath.Join(v1, "kubepods", "pod1", "cpu.cfs_quota_us"), "400000")
	write(filepath.Join(v1, "kubepods", "pod1", "cpu.cfs_period_us"), "100000")
	write(filepath.Join(v1, "kubepods", "pod1", "c1", "cpu.cfs_quota_us"), "250000")
	write(filepath.Join(v1, "kubepods", "pod1", "c1", "cpu.cfs_period_us"), "100000")
	got, err := ownCPULimit(procFiles{
		mountinfo: "30 25 0:26 / " + v1 + " rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n",
		cgroup:    "4:cpu,cpuacct:/kubepods/pod1/c1\n",
	})
	if err != nil || got != 2.5 {
		t.Errorf("v1: %v, %v; want 2.5", got, err)
	}

	v2 := t.TempDir()
	write(filepath.Join(v2, "kubepods", "cpu.max"), "max 100000")
	write(filepath.Join(v2, "kubepods", "pod1", "cpu.max"), "150000 100000")
	write(filepath.Join(v2, "kubepods", "pod1", "c1", "cpu.max"), "max 100000")
	mi := "40 25 0:30 / " + v2 + " rw - cgroup2 cgroup2 rw\n"
	got, err = ownCPULimit(procFiles{mountinfo: mi, cgroup: "0::/kubepods/pod1/c1\n"})
	if err != nil || got != 1.5 {
		t.Errorf("v2: %v, %v; want 1.5 (the pod's)", got, err)
	}
	got, err = ownCPULimit(procFiles{mountinfo: mi, cgroup: "0::/kubepods\n"})
	if err != nil || got != 0 {
		t.Errorf("v2 without a quota: %v, %v; want 0", got, err)
	}
}
