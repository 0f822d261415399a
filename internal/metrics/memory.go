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

// Usage is a process's memory, in bytes, from its smaps (proc(5)).
type Usage struct {
	// RSS counts every page the process has in memory; PSS divides each by
	// the number of processes mapping it.
	RSS, PSS uint64
	// Private counts the pages only this process maps (Private_Clean plus
	// Private_Dirty): what it costs beyond what it shares.
	Private uint64
}

// ReadUsage returns process pid's memory; see ReadMemory for the files it
// reads and its errors.
func ReadUsage(pid int) (Usage, error) {
	return readUsage(filepath.Join("/proc", strconv.Itoa(pid)))
}

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
	u, err := ReadUsage(pid)
	return u.RSS, u.PSS, err
}

// readMemory reads the smaps files of the /proc/PID directory dir.
func readMemory(dir string) (rss, pss uint64, err error) {
	u, err := readUsage(dir)
	return u.RSS, u.PSS, err
}

// readUsage reads the smaps files of the /proc/PID directory dir.
func readUsage(dir string) (Usage, error) {
	f, err := os.Open(filepath.Join(dir, "smaps_rollup"))
	if errors.Is(err, os.ErrNotExist) {
		// Older kernels have no rollup; a process that is gone has neither,
		// and the error below says so.
		f, err = os.Open(filepath.Join(dir, "smaps"))
	}
	if err != nil {
		return Usage{}, fmt.Errorf("read memory: %w", err)
	}
	defer f.Close()
	u, err := parseUsage(f)
	if err != nil {
		return Usage{}, fmt.Errorf("read memory: %s: %w", f.Name(), err)
	}
	return u, nil
}

// parseSmaps sums the "Rss:" and "Pss:" lines of an smaps or smaps_rollup file
// (proc(5)): one pair in a rollup, one per mapping in smaps. Values are in kB.
func parseSmaps(r io.Reader) (rss, pss uint64, err error) {
	u, err := parseUsage(r)
	if err != nil {
		return 0, 0, err
	}
	return u.RSS, u.PSS, nil
}

// parseUsage sums the Rss, Pss, Private_Clean and Private_Dirty lines of an
// smaps or smaps_rollup file. Values are in kB.
func parseUsage(r io.Reader) (Usage, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20) // header lines name files; paths are short
	var u Usage
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		var sum *uint64
		var n int
		switch {
		case bytes.HasPrefix(b, []byte("Rss:")):
			sum, n = &u.RSS, 4
		case bytes.HasPrefix(b, []byte("Pss:")):
			sum, n = &u.PSS, 4
		case bytes.HasPrefix(b, []byte("Private_Clean:")), bytes.HasPrefix(b, []byte("Private_Dirty:")):
			sum, n = &u.Private, 14
		default:
			continue
		}
		fields := bytes.Fields(b[n:])
		if len(fields) != 2 || string(fields[1]) != "kB" {
			return Usage{}, fmt.Errorf("line %d: %q: want \"<key>: <n> kB\": %w", line, b, ErrSmaps)
		}
		kb, err := strconv.ParseUint(string(fields[0]), 10, 64)
		if err != nil || kb > (math.MaxUint64-*sum)/1024 {
			return Usage{}, fmt.Errorf("line %d: %q: size must be a kB count and the total fit in 64 bits: %w", line, b, ErrSmaps)
		}
		*sum += kb * 1024
	}
	if err := sc.Err(); err != nil {
		return Usage{}, err
	}
	return u, nil
}
