package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// recentWindow is how many recent successful latencies the progress line's
// percentiles cover.
const recentWindow = 1000

// Progress tallies records for a live display. The zero value is ready; it is
// safe for concurrent use.
type Progress struct {
	mu             sync.Mutex
	sent, ok, errs int
	users          int
	recent         []time.Duration // ring of the last recentWindow ok latencies
	next           int
}

// Add counts r.
func (p *Progress) Add(r Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent++
	p.users = max(p.users, r.Users)
	if !r.OK() {
		p.errs++
		return
	}
	p.ok++
	if len(p.recent) < recentWindow {
		p.recent = append(p.recent, r.Latency)
	} else {
		p.recent[p.next] = r.Latency
		p.next = (p.next + 1) % recentWindow
	}
}

// Line formats the tally at elapsed time as one line without a newline.
func (p *Progress) Line(elapsed time.Duration) string {
	p.mu.Lock()
	lat := slices.Clone(p.recent)
	sent, ok, errs, users := p.sent, p.ok, p.errs, p.users
	p.mu.Unlock()
	slices.Sort(lat)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(sent) / elapsed.Seconds()
	}
	line := fmt.Sprintf("%6.1fs  done %d  ok %d  errors %d  %.1f req/s", elapsed.Seconds(), sent, ok, errs, rate)
	if users > 0 {
		line = fmt.Sprintf("%6.1fs  users %d  done %d  ok %d  errors %d  %.1f req/s", elapsed.Seconds(), users, sent, ok, errs, rate)
	}
	if len(lat) > 0 {
		line += fmt.Sprintf("  p50 %v  p99 %v (last %d)", round(Percentile(lat, 50)), round(Percentile(lat, 99)), len(lat))
	}
	return line
}

// Show writes the progress line to w every interval until ctx ends: on a
// terminal it rewrites one line in place (and ends it with a newline when
// done), elsewhere it writes a plain line each time.
func (p *Progress) Show(ctx context.Context, w io.Writer, tty bool, every time.Duration) {
	start := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintf(w, "\r\033[K%s\n", p.Line(time.Since(start)))
			}
			return
		case <-t.C:
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", p.Line(time.Since(start)))
			} else {
				fmt.Fprintln(w, p.Line(time.Since(start)))
			}
		}
	}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
