package gateway

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/spindleml/spindle/internal/sandbox"
)

// TestStemCellColdStart checks cold starts from stem cells: the gateway
// keeps cells ready, a function's first request takes one (the instance is
// the cell's process, with the function's CPU quota set in its cgroup by
// the kernel, its load time reported and its output in the function's log),
// the pool refills, and a cell that died before its assignment costs the
// request nothing (the gateway takes another or starts a new process).
func TestStemCellColdStart(t *testing.T) {
	caps := detect(t, sandbox.Options{})
	if !caps.CPU {
		t.Fatalf("this test needs a writable cgroup CPU controller (run as root); sandbox says: %s", caps)
	}
	tg := servedGateway(t, Config{Sandbox: caps, StemCells: 2, DefaultVCPU: 0.5})
	waitUntil(t, "a stem cell is ready", func() bool { r, _ := tg.stems.size(); return r >= 1 })
	tg.stems.mu.Lock()
	cells := map[int]bool{}
	for _, c := range tg.stems.ready {
		cells[c.proc.Pid] = true
	}
	tg.stems.mu.Unlock()

	tg.deploy(t, "add", addModel())
	if code, body := infer(t, tg.url, "add", addBody); code != 200 || !strings.Contains(body, `"data":[2,3,4,5]`) {
		t.Fatalf("first request: %d %s", code, body)
	}
	pids := tg.pids("add")
	if len(pids) != 1 || !cells[pids[0]] {
		t.Fatalf("the instance is process %v; want one of the ready stem cells %v", pids, cells)
	}
	if q := cgroupCPU(t, pids[0]); q != 0.5 {
		t.Fatalf("the assigned cell's cgroup quota is %v vCPU, want the function's 0.5", q)
	}
	_, b, _ := readBoard(t, tg.url, "", "default/add")
	if cs := b.Detail.ColdStarts; len(cs) != 1 || cs[0].Pid != pids[0] || cs[0].Load <= 0 || cs[0].FirstInference <= 0 {
		t.Fatalf("cold starts %+v: want the cell's, with its load and first inference", cs)
	}
	log, err := os.ReadFile(tg.logPath(tg.fn("add").spec))
	if err != nil || !strings.Contains(string(log), "model loaded") || !strings.Contains(string(log), "(stem cell,") {
		t.Fatalf("function log %q (%v): want the cell's load line and the start from a stem cell", log, err)
	}
	// One cell taken in the last minute: the pool keeps two ready.
	waitUntil(t, "the pool refills to 2", func() bool { r, _ := tg.stems.size(); return r == 2 })

	// Cells killed before their assignment: the next cold start still
	// serves its request.
	tg.stems.mu.Lock()
	for _, c := range tg.stems.ready {
		syscall.Kill(c.proc.Pid, syscall.SIGKILL)
	}
	tg.stems.mu.Unlock()
	tg.deploy(t, "add2", addModel())
	if code, body := infer(t, tg.url, "add2", addBody); code != 200 {
		t.Fatalf("request after the cells died: %d %s", code, body)
	}
	if pids := tg.pids("add2"); len(pids) != 1 {
		t.Fatalf("add2 runs %d instances, want 1", len(pids))
	}
}
