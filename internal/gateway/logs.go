package gateway

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/spindleml/spindle/internal/registry"
)

// logPath is where f's instances log: one folder per tenant.
func (g *Gateway) logPath(f registry.Function) string {
	return filepath.Join(g.cfg.Home, "logs", f.Owner, f.Name+".log")
}

// A function's log holds what its instances write on stderr and what the
// gateway saw of it: instance starts and exits, and failed requests. It is
// rotated at Config.LogMaxBytes, keeping one older file, so that a chatty
// or failing function cannot fill the disk.

// funcLog returns the log of function spec, shared by all its instances;
// after Close, a writer that drops what it gets (a request or an instance
// that ends during Close must not leave a file behind).
func (g *Gateway) funcLog(spec registry.Function) io.Writer {
	key := fnKey(spec.Owner, spec.Name)
	g.logsMu.Lock()
	defer g.logsMu.Unlock()
	if g.logsClosed {
		return io.Discard
	}
	l := g.logFiles[key]
	if l == nil {
		l = &lumberjack.Logger{Filename: g.logPath(spec), MaxSize: g.cfg.LogMaxMB, MaxBackups: 1}
		g.logFiles[key] = l
	}
	return l
}

// logEvent appends a line from the gateway to function spec's log.
func (g *Gateway) logEvent(spec registry.Function, format string, args ...any) {
	fmt.Fprintf(g.funcLog(spec), "%s spindle: %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

// dropLogs closes function spec's log and deletes its files (the function
// was removed).
func (g *Gateway) dropLogs(spec registry.Function) {
	key := fnKey(spec.Owner, spec.Name)
	g.logsMu.Lock()
	l := g.logFiles[key]
	delete(g.logFiles, key)
	g.logsMu.Unlock()
	if l != nil {
		l.Close()
	}
	path := g.logPath(spec)
	old, _ := filepath.Glob(strings.TrimSuffix(path, ".log") + "-*.log")
	for _, p := range append(old, path) {
		os.Remove(p)
	}
}

// logs serves the tail of a function's instance log (stderr of every instance it
// ran, appended): GET /admin/v1/functions/{name}/logs?bytes=N (default 64 KiB).
func (g *Gateway) logs(w http.ResponseWriter, r *http.Request) {
	f, ok := g.lookup(w, r)
	if !ok {
		return
	}
	limit := int64(64 << 10)
	if s := r.URL.Query().Get("bytes"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("bytes %q: must be a positive integer", s))
			return
		}
		limit = n
	}
	file, err := os.Open(g.logPath(f))
	if os.IsNotExist(err) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		return // never started: no logs yet
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if st.Size() > limit {
		file.Seek(st.Size()-limit, io.SeekStart)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.Copy(w, file)
}
