package benchmarks

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/catalog/site"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// directoryHandler is the live unit-primitive directory over the example
// catalog and both example manifests, as `ccauthz serve` mounts it.
func directoryHandler(b *testing.B) http.Handler {
	b.Helper()
	src := site.Source{Catalog: catalog.Example()}
	for _, name := range manifest.ExampleNames() {
		m, err := manifest.Example(name)
		if err != nil {
			b.Fatal(err)
		}
		bound, err := m.Bind(src.Catalog)
		if err != nil {
			b.Fatal(err)
		}
		src.Manifests = append(src.Manifests, bound)
	}
	s, err := site.New()
	if err != nil {
		b.Fatal(err)
	}
	return http.StripPrefix("/catalog", s.Handler(func() (site.Source, error) { return src, nil }, time.Now,
		slog.New(slog.NewTextHandler(io.Discard, nil))))
}

func benchmarkDirectoryPage(b *testing.B, path string) {
	h := directoryHandler(b)
	req := httptest.NewRequest(http.MethodGet, path, nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d", path, rec.Code)
		}
	}
}

// BenchmarkDirectoryIndex serves the index (52 unit primitives), from the
// snapshot to the written page, as every live request does.
func BenchmarkDirectoryIndex(b *testing.B) { benchmarkDirectoryPage(b, "/catalog/") }

// BenchmarkDirectoryUnitPrimitive serves one unit primitive's page.
func BenchmarkDirectoryUnitPrimitive(b *testing.B) {
	benchmarkDirectoryPage(b, "/catalog/up/complete_code.html")
}

// BenchmarkDirectoryGrant serves the grant calculator with a result.
func BenchmarkDirectoryGrant(b *testing.B) {
	benchmarkDirectoryPage(b, "/catalog/grant.html?add_on=duo_pro&at=2025-06-01")
}
