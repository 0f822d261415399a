package dashboard

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Assets returns the page's files: index.html, app.js, style.css and
// vendor/ (uPlot and its licence).
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic("dashboard: embedded assets: " + err.Error())
	}
	return sub
}

// Handler serves the page at / and its files under /ui/. Every answer
// forbids framing and scripts from elsewhere: the page runs only its own
// code, and nothing can be loaded from a CDN.
func Handler() http.Handler {
	files := http.FileServerFS(Assets())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" {
			serveIndex(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/ui")
		if strings.HasSuffix(r2.URL.Path, "/") {
			http.NotFound(w, r) // no folder listings
			return
		}
		files.ServeHTTP(w, r2)
	})
}

// serveIndex answers the page itself (a file server would redirect
// /index.html to the folder).
func serveIndex(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(Assets(), "index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(b))
}
