package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mapChildEnv makes the test binary, re-executed, map the file it names and
// hold it (see mapChild).
const mapChildEnv = "SPINDLE_METRICS_TEST_MAP"

func TestMain(m *testing.M) {
	if path := os.Getenv(mapChildEnv); path != "" {
		if err := mapChild(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// mapChild maps path read-only and shared, the way an instance maps model
// weights, reads every page, says "ready" on stdout and holds the mapping
// until stdin closes.
func mapChild(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap %s: %w", path, err)
	}
	var sum byte
	for i := 0; i < len(data); i += os.Getpagesize() {
		sum += data[i]
	}
	fmt.Printf("ready %d\n", sum)
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// child returns a command that re-executes the test binary running no tests.
// Under the race detector it skips the detector's one-second wait at exit.
func child() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	return cmd
}

func TestReadMemorySelf(t *testing.T) {
	rss, pss, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatalf("ReadMemory(self): %v", err)
	}
	if rss == 0 || pss == 0 || pss > rss {
		t.Errorf("ReadMemory(self) = rss %d, pss %d; want 0 < pss <= rss", rss, pss)
	}
	// The rollup and the per-mapping file describe the same memory. The two
	// reads are moments apart, so allow the heap some movement.
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	srss, spss, err := parseSmaps(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse /proc/self/smaps: %v", err)
	}
	if !within(srss, rss, 0.2) || !within(spss, pss, 0.2) {
		t.Errorf("smaps sums rss %d pss %d; rollup rss %d pss %d: want within 20%%", srss, spss, rss, pss)
	}
}

func within(a, b uint64, frac float64) bool {
	d := float64(a) - float64(b)
	return d <= frac*float64(b) && -d <= frac*float64(b)
}

// TestReadMemoryFallback reads a /proc/PID-like directory without
// smaps_rollup, as on kernels before 4.14.
func TestReadMemoryFallback(t *testing.T) {
	dir := t.TempDir()
	smaps := "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n" +
		"Size:                328 kB\nRss:                 300 kB\nPss:                 100 kB\nPss_File:            100 kB\n" +
		"7f2e4c000000-7f2e4c021000 rw-p 00000000 00:00 0\n" +
		"Size:                132 kB\nRss:                   8 kB\nPss:                   8 kB\nSwapPss:               0 kB\n"
	if err := os.WriteFile(filepath.Join(dir, "smaps"), []byte(smaps), 0o600); err != nil {
		t.Fatal(err)
	}
	rss, pss, err := readMemory(dir)
	if err != nil || rss != 308<<10 || pss != 108<<10 {
		t.Errorf("readMemory without rollup = %d, %d, %v; want %d, %d", rss, pss, err, 308<<10, 108<<10)
	}
	// With a rollup present, the rollup wins.
	rollup := "00400000-7ffc3a7fe000 ---p 00000000 00:00 0 [rollup]\nRss:                1000 kB\nPss:                 500 kB\nPss_Anon:            400 kB\n"
	if err := os.WriteFile(filepath.Join(dir, "smaps_rollup"), []byte(rollup), 0o600); err != nil {
		t.Fatal(err)
	}
	rss, pss, err = readMemory(dir)
	if err != nil || rss != 1000<<10 || pss != 500<<10 {
		t.Errorf("readMemory with rollup = %d, %d, %v; want %d, %d", rss, pss, err, 1000<<10, 500<<10)
	}
}

// TestReadUsagePrivate checks that Private sums the clean and dirty
// private pages of every mapping, and that this process, which has a heap
// of its own, reads some.
func TestReadUsagePrivate(t *testing.T) {
	smaps := "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n" +
		"Rss:                 300 kB\nPss:                 100 kB\nShared_Clean:        280 kB\nPrivate_Clean:        20 kB\nPrivate_Dirty:         0 kB\n" +
		"7f2e4c000000-7f2e4c021000 rw-p 00000000 00:00 0\n" +
		"Rss:                   8 kB\nPss:                   8 kB\nPrivate_Clean:         0 kB\nPrivate_Dirty:         8 kB\n"
	u, err := parseUsage(strings.NewReader(smaps))
	if want := (Usage{RSS: 308 << 10, PSS: 108 << 10, Private: 28 << 10}); err != nil || u != want {
		t.Errorf("parseUsage = %+v, %v; want %+v", u, err, want)
	}
	if _, err := parseUsage(strings.NewReader("Private_Dirty: many kB\n")); !errors.Is(err, ErrSmaps) {
		t.Errorf("parseUsage of a bad Private_Dirty line: %v, want ErrSmaps", err)
	}
	self, err := ReadUsage(os.Getpid())
	if err != nil || self.Private == 0 || self.Private > self.RSS {
		t.Errorf("ReadUsage(self) = %+v, %v; want 0 < private <= rss", self, err)
	}
}

func TestReadMemoryExited(t *testing.T) {
	cmd := child()
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadMemory(cmd.Process.Pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadMemory(exited pid) error = %v; want os.ErrNotExist", err)
	}
}

func TestParseSmaps(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		rss, pss uint64
		bad      bool
	}{
		{name: "empty (kernel thread)", in: ""},
		{name: "rollup", in: "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss: 2048 kB\nPss: 1024 kB\nPss_Dirty: 12 kB\nPss_Anon: 4 kB\n", rss: 2 << 20, pss: 1 << 20},
		{name: "no trailing newline", in: "Rss: 1 kB\nPss: 1 kB", rss: 1024, pss: 1024},
		{name: "unit missing", in: "Rss: 2048\n", bad: true},
		{name: "not a number", in: "Pss: lots kB\n", bad: true},
		{name: "negative", in: "Rss: -4 kB\n", bad: true},
		{name: "wrong unit", in: "Rss: 4 MB\n", bad: true},
		{name: "overflow", in: "Rss: 18014398509481983 kB\nRss: 18014398509481983 kB\n", bad: true},
		{name: "prefix of another key is not it", in: "RssFile: 9 kB\nPss_Shmem: 7 kB\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rss, pss, err := parseSmaps(strings.NewReader(tt.in))
			if tt.bad {
				if !errors.Is(err, ErrSmaps) {
					t.Errorf("parseSmaps = %d, %d, %v; want ErrSmaps", rss, pss, err)
				}
				return
			}
			if err != nil || rss != tt.rss || pss != tt.pss {
				t.Errorf("parseSmaps = %d, %d, %v; want %d, %d", rss, pss, err, tt.rss, tt.pss)
			}
		})
	}
}

func FuzzParseSmaps(f *testing.F) {
	f.Add([]byte("Rss: 2048 kB\nPss: 1024 kB\n"))
	f.Add([]byte("7f2e4c000000-7f2e4c021000 rw-p 00000000 00:00 0\nSize: 132 kB\nRss: 8 kB\nPss: 8 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rss, pss, err := parseSmaps(bytes.NewReader(b))
		if err != nil && (rss != 0 || pss != 0) {
			t.Errorf("parseSmaps returned %d, %d with error %v", rss, pss, err)
		}
	})
}

// mapping returns the RSS and PSS of the mappings of path in process pid,
// from /proc/PID/smaps.
func mapping(t *testing.T, pid int, path string) (rss, pss uint64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sel bytes.Buffer
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			// A mapping's header: address range, perms, offset, device, inode, path.
			in = len(fields) >= 6 && strings.Join(fields[5:], " ") == path
			continue
		}
		if in {
			sel.WriteString(sc.Text() + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	rss, pss, err = parseSmaps(&sel)
	if err != nil {
		t.Fatal(err)
	}
	return rss, pss
}

// startMapper starts a child that maps path and returns once it holds every
// page; the child ends when the test does.
func startMapper(t *testing.T, path string) int {
	t.Helper()
	cmd := child()
	cmd.Env = append(cmd.Env, mapChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("mapper %d: %v", cmd.Process.Pid, err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("mapper: read %q, %v; want ready", line, err)
	}
	return cmd.Process.Pid
}

// TestSharedMappingPSS measures the zero-copy claim: two instances that map
// the same weights read-only share the pages, so each one's PSS for the file
// is half its RSS for it, and together they use about one copy, not two.
func TestSharedMappingPSS(t *testing.T) {
	const size = 64 << 20
	path := filepath.Join(t.TempDir(), "weights.bin")
	chunk := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 1<<17) // 1 MiB
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for range size / len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// /proc/PID/smaps names the file by its resolved path.
	if path, err = filepath.EvalSymlinks(path); err != nil {
		t.Fatal(err)
	}

	a := startMapper(t, path)
	aRSS, aPSS := mapping(t, a, path)
	t.Logf("one mapper: file rss %d MiB, pss %d MiB", aRSS>>20, aPSS>>20)
	if aRSS < size*95/100 || aPSS < aRSS*95/100 {
		t.Fatalf("one mapper: file rss %d, pss %d; want rss about %d and pss = rss (sole mapper)", aRSS, aPSS, size)
	}

	b := startMapper(t, path)
	for _, pid := range []int{a, b} {
		rss, pss := mapping(t, pid, path)
		t.Logf("pid %d of two: file rss %d MiB, pss %d MiB", pid, rss>>20, pss>>20)
		if rss < size*95/100 || pss < rss*45/100 || pss > rss*55/100 {
			t.Errorf("pid %d of two: file rss %d, pss %d; want rss about %d and pss about rss/2", pid, rss, pss, size)
		}
	}

	// Whole processes, as the gateway reads them: the two together use far
	// less than twice one of them.
	rssA, pssA, err := ReadMemory(a)
	if err != nil {
		t.Fatal(err)
	}
	_, pssB, err := ReadMemory(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("processes: rss(a) %d MiB, pss(a)+pss(b) %d MiB", rssA>>20, (pssA+pssB)>>20)
	if pssA+pssB >= rssA*3/2 {
		t.Errorf("pss(a)+pss(b) = %d; want < 1.5 x rss(a) = %d (pages shared, not copied)", pssA+pssB, rssA*3/2)
	}
}
