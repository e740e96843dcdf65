package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPprofOptIn: /debug/pprof/ is on the admin handler only when
// Options.Admin.Pprof is set, and never on the HTTP check handler.
func TestPprofOptIn(t *testing.T) {
	get := func(h http.Handler, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	off := newHarness(t, Options{}, aiGateway())
	if rec := get(off.srv.AdminHandler(), "/debug/pprof/"); rec.Code != http.StatusNotFound {
		t.Errorf("pprof off: /debug/pprof/ answered %d, want 404", rec.Code)
	}
	on := newHarness(t, Options{Admin: AdminOptions{Pprof: true}}, aiGateway())
	rec := get(on.srv.AdminHandler(), "/debug/pprof/")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("pprof on: /debug/pprof/ answered %d: %.200s", rec.Code, rec.Body.String())
	}
	if rec := get(on.srv.AdminHandler(), "/debug/pprof/heap?debug=1"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "heap profile") {
		t.Errorf("pprof on: heap answered %d: %.200s", rec.Code, rec.Body.String())
	}
	if rec := get(on.srv.HTTPHandler(), "/debug/pprof/"); rec.Code == http.StatusOK && strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("the HTTP check handler serves pprof")
	}
}
