package site

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"
)

// contentSecurityPolicy allows only the directory's own stylesheet and
// scripts: no inline script, no third-party origin, no framing.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Handler serves the directory live. Mount it with the prefix stripped
// (http.StripPrefix("/catalog", h) for /catalog/). current is called on every
// request, so the pages follow the server's reloads; an error from it (no
// snapshot) is a 503. now decides statuses and the calculator's default
// date. Only GET and HEAD are served.
func (s *Site) Handler(current func() (Source, error), now func() time.Time, logger *slog.Logger) http.Handler {
	assets := http.FileServerFS(Assets())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := r.URL.Path
		rel := strings.TrimPrefix(path.Clean(p), "/")
		if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") && rel != "" {
			http.NotFound(w, r)
			return
		}
		if name, ok := strings.CutPrefix(rel, "assets/"); ok {
			if _, err := fs.Stat(Assets(), name); err != nil {
				http.NotFound(w, r)
				return
			}
			h.Set("Cache-Control", "no-cache")
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + name
			assets.ServeHTTP(w, r2)
			return
		}
		src, err := current()
		if err != nil {
			http.Error(w, "the directory is not available: no catalog loaded", http.StatusServiceUnavailable)
			return
		}
		d, err := NewDirectory(src, now())
		if err != nil {
			logger.Warn("catalog directory", "error", err.Error())
			http.Error(w, "the directory is not available", http.StatusServiceUnavailable)
			return
		}
		var buf bytes.Buffer
		if err := s.Render(&buf, d, Live, rel, r.URL.Query()); err != nil {
			if errors.Is(err, ErrNotFound) {
				http.NotFound(w, r)
				return
			}
			logger.Error("catalog directory", "page", rel, "error", err.Error())
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(buf.Bytes())
	})
}
