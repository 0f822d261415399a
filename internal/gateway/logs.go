package gateway

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spindleml/spindle/internal/registry"
)

// logPath is where f's instances log: one folder per tenant.
func (g *Gateway) logPath(f registry.Function) string {
	return filepath.Join(g.cfg.Home, "logs", f.Owner, f.Name+".log")
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
