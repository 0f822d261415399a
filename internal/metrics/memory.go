package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// ErrSmaps is wrapped by ReadMemory's errors for a smaps file it cannot parse.
var ErrSmaps = errors.New("malformed smaps")

// ReadMemory returns the resident set size and proportional set size of
// process pid, in bytes. RSS counts every page the process has in memory; PSS
// divides each page by the number of processes mapping it, so instances that
// map the same model file share its pages and the sum of their PSS is the
// memory they really use together.
//
// It reads /proc/PID/smaps_rollup (Linux 4.14) and falls back to summing
// /proc/PID/smaps. A process that has exited gives an error wrapping
// os.ErrNotExist.
func ReadMemory(pid int) (rss, pss uint64, err error) {
	return readMemory(filepath.Join("/proc", strconv.Itoa(pid)))
}

// readMemory reads the smaps files of the /proc/PID directory dir.
func readMemory(dir string) (rss, pss uint64, err error) {
	f, err := os.Open(filepath.Join(dir, "smaps_rollup"))
	if errors.Is(err, os.ErrNotExist) {
		// Older kernels have no rollup; a process that is gone has neither,
		// and the error below says so.
		f, err = os.Open(filepath.Join(dir, "smaps"))
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read memory: %w", err)
	}
	defer f.Close()
	rss, pss, err = parseSmaps(f)
	if err != nil {
		return 0, 0, fmt.Errorf("read memory: %s: %w", f.Name(), err)
	}
	return rss, pss, nil
}

// parseSmaps sums the "Rss:" and "Pss:" lines of an smaps or smaps_rollup file
// (proc(5)): one pair in a rollup, one per mapping in smaps. Values are in kB.
func parseSmaps(r io.Reader) (rss, pss uint64, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20) // header lines name files; paths are short
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		var sum *uint64
		switch {
		case bytes.HasPrefix(b, []byte("Rss:")):
			sum = &rss
		case bytes.HasPrefix(b, []byte("Pss:")):
			sum = &pss
		default:
			continue
		}
		fields := bytes.Fields(b[4:])
		if len(fields) != 2 || string(fields[1]) != "kB" {
			return 0, 0, fmt.Errorf("line %d: %q: want \"<key>: <n> kB\": %w", line, b, ErrSmaps)
		}
		kb, err := strconv.ParseUint(string(fields[0]), 10, 64)
		if err != nil || kb > (math.MaxUint64-*sum)/1024 {
			return 0, 0, fmt.Errorf("line %d: %q: size must be a kB count and the total fit in 64 bits: %w", line, b, ErrSmaps)
		}
		*sum += kb * 1024
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	return rss, pss, nil
}
