package assembly

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/devissuer"
	"github.com/ccauthz/ccauthz/catalog"
)

// TestDirectoryFollowsReloads: the admin listener's /catalog/ shows the
// serving snapshot: a reload that succeeds changes the pages, one that fails
// leaves the last good catalog on them.
func TestDirectoryFollowsReloads(t *testing.T) {
	dir := t.TempDir()
	catDir := filepath.Join(dir, "catalog")
	if err := os.CopyFS(catDir, catalog.ExampleFS()); err != nil {
		t.Fatal(err)
	}
	dev, err := devissuer.Ensure(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Catalog = catDir
	cfg.Backends = []config.Backend{{Name: "ai_gateway", Manifest: "embedded:ai_gateway"}}
	cfg.Issuers = append(cfg.Issuers, dev.IssuerConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, &cfg, Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	admin := a.Server.AdminHandler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}

	code, body := get("/catalog/up/complete_code.html")
	if code != 200 || !strings.Contains(body, "complete the code being typed") || !strings.Contains(body, `data-route="ai_gateway/code_completions_v2"`) {
		t.Fatalf("complete_code page: %d\n%s", code, body)
	}
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/catalog", nil))
	if rec.Code/100 != 3 || rec.Header().Get("Location") != "/catalog/" {
		t.Errorf("GET /catalog = %d to %q, want a redirect to /catalog/", rec.Code, rec.Header().Get("Location"))
	}

	upFile := filepath.Join(catDir, "unit_primitives", "complete_code.yml")
	b, err := os.ReadFile(upFile)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "complete the code being typed", "finish the line being typed", 1)
	if err := os.WriteFile(upFile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Server.Reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if _, body := get("/catalog/up/complete_code.html"); !strings.Contains(body, "finish the line being typed") {
		t.Error("the directory does not show the reloaded catalog")
	}

	// A broken catalog does not reload; the directory keeps the last good.
	if err := os.WriteFile(upFile, []byte("name: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Server.Reload(ctx, "test"); err == nil {
		t.Fatal("reload of a broken catalog succeeded")
	}
	if code, body := get("/catalog/up/complete_code.html"); code != 200 || !strings.Contains(body, "finish the line being typed") {
		t.Errorf("after a failed reload: %d, want the last good page", code)
	}
}
