package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/catalog/site"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// The directory's browser tests drive a real headless Chromium (the Debian
// package `chromium`, installed by .ci/run) through the DevTools protocol.
// They skip when no Chromium is found. CCAUTHZ_CHROMIUM names another
// binary; CCAUTHZ_SCREENSHOTS keeps the screenshots (one per page type) in
// that directory instead of a temporary one.

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CCAUTHZ_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium not found (apt-get install chromium, or set CCAUTHZ_CHROMIUM); .ci/run installs it")
	return ""
}

// newBrowser starts a headless Chromium that reaches only loopback: any
// other host goes to a proxy address where nothing listens. It is stopped
// when the test ends, and every action after the start shares one time
// budget.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1200, 800),
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first Run starts the browser for the life of ctx: no timeout on it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(cancel)
	return tctx
}

// browse runs steps in order and fails the test at the first error.
func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("CCAUTHZ_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", p, len(png))
}

// visibleUPs lists the unit primitives of the index rows a reader sees.
const visibleUPs = `Array.from(document.querySelectorAll("tr[data-up]")).filter(r => !r.hidden && r.offsetParent !== null).map(r => r.dataset.up)`

// TestDirectoryChromium serves the embedded default with the real binary
// and walks its directory in Chromium: the index lists every unit primitive
// of the example catalog, the filters narrow it as the server would, a
// detail page shows its routes, and the keyboard reaches the skip link.
func TestDirectoryChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary and a browser")
	}
	ctx := newBrowser(t)
	bin := filepath.Join(t.TempDir(), "ccauthz")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := e2eStart(t, bin, "--state-dir", t.TempDir())
	base := "http://" + p.admin + "/catalog/"
	if !strings.Contains(p.stdout.String(), base) {
		t.Errorf("serve does not print the directory URL %s:\n%s", base, p.stdout.String())
	}
	shots := screenshotDir(t)
	cat := catalog.Example()
	m, err := manifest.Example("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := site.NewDirectory(site.Source{Catalog: cat, Manifests: []*manifest.Manifest{m}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	expect := func(f site.Filter) []string {
		var out []string
		for _, n := range cat.UnitPrimitiveNames() {
			if dir.Matches(f, cat.UnitPrimitives[n]) {
				out = append(out, n)
			}
		}
		return out
	}

	browse(t, ctx, "index", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("table[data-ups]")))
	rows := eval[[]string](t, ctx, visibleUPs)
	if want := cat.UnitPrimitiveNames(); !slices.Equal(rows, want) {
		t.Errorf("index shows %d unit primitives %v, want all %d", len(rows), rows, len(want))
	}
	screenshot(t, ctx, shots, "index")

	// Instant filtering: an add-on, then a search typed into the box.
	browse(t, ctx, "filter by add-on",
		chromedp.SetValue(chromedp.CSS("#f-add-on"), "duo_pro"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`document.querySelector("#f-add-on").dispatchEvent(new Event("change", {bubbles: true}))`)(ctx, tg)
			return err
		}),
	)
	rows = eval[[]string](t, ctx, visibleUPs)
	count := eval[string](t, ctx, `document.querySelector("[data-count]").textContent`)
	want := expect(site.Filter{AddOn: "duo_pro"})
	if !slices.Equal(rows, want) || len(want) == 0 || len(want) == len(cat.UnitPrimitives) || count != strconv.Itoa(len(want)) {
		t.Errorf("add-on duo_pro: rows %v (count %s), want %v", rows, count, want)
	}
	browse(t, ctx, "search", chromedp.SendKeys(chromedp.CSS("#f-q"), "code"))
	rows = eval[[]string](t, ctx, visibleUPs)
	want = expect(site.Filter{AddOn: "duo_pro", Query: "code"})
	if !slices.Equal(rows, want) || len(want) == 0 {
		t.Errorf("add-on duo_pro, search code: rows %v, want %v", rows, want)
	}
	screenshot(t, ctx, shots, "index-filtered")

	// The same filter without JavaScript: the GET form's URL, filtered by
	// the server.
	browse(t, ctx, "filter by URL", chromedp.Navigate(base+"index.html?add_on=duo_pro&q=code"), chromedp.WaitVisible(chromedp.CSS("table[data-ups]")))
	if noJS := eval[[]string](t, ctx, visibleUPs); !slices.Equal(noJS, want) {
		t.Errorf("filter by URL: rows %v, want %v", noJS, want)
	}

	// A detail page shows the routes that require the unit primitive.
	browse(t, ctx, "detail page", chromedp.Navigate(base+"up/complete_code.html"), chromedp.WaitVisible(chromedp.CSS("#routes")))
	routes := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("tr[data-route]")).map(r => r.dataset.route)`)
	var wantRoutes []string
	for _, u := range dir.Uses("complete_code") {
		wantRoutes = append(wantRoutes, u.Backend+"/"+u.RouteID)
	}
	if !slices.Equal(routes, wantRoutes) || !slices.Contains(routes, "ai_gateway/code_completions_v2") {
		t.Errorf("complete_code routes %v, want %v", routes, wantRoutes)
	}
	screenshot(t, ctx, shots, "unit-primitive")

	// Keyboard: the first Tab reaches the skip link, Enter moves to main.
	browse(t, ctx, "tab", chromedp.KeyEvent(kb.Tab))
	active := eval[string](t, ctx, `document.activeElement.className`)
	if active != "skip" {
		t.Errorf("first Tab focuses %q, want the skip link", active)
	}

	for _, pg := range []struct{ path, name, wait string }{
		{"add-on/duo_pro.html", "add-on", "main h1"},
		{"backend/ai_gateway.html", "backend", "#route-code_completions_v2"},
		{"grant.html?add_on=duo_pro&at=2025-06-01", "grant", "[data-scope-count]"},
	} {
		browse(t, ctx, pg.path, chromedp.Navigate(base+pg.path), chromedp.WaitVisible(chromedp.CSS(pg.wait)))
		screenshot(t, ctx, shots, pg.name)
	}
}

// TestDirectoryGrantChromium fills in the grant calculator in Chromium, on
// GitLab's real legacy catalog, for three add-on sets, both live (the server
// computes) and in a static export (the page's script computes), and checks
// both against `ccauthz catalog scopes`.
func TestDirectoryGrantChromium(t *testing.T) {
	needReal(t, realLegacyFile)
	ctx := newBrowser(t)
	shots := screenshotDir(t)
	cat, err := catalog.Load(realLegacyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := site.New()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/catalog/", http.StripPrefix("/catalog", s.Handler(func() (site.Source, error) {
		return site.Source{Catalog: cat}, nil
	}, time.Now, slog.New(slog.DiscardHandler))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	out := t.TempDir()
	if code, _, stderr := runCLI(t, "catalog", "site", "--catalog", realLegacyFile, "--old", realHistory, "--out", out); code != 0 {
		t.Fatalf("catalog site: exit %d: %s", code, stderr)
	}

	cases := []struct {
		addOns []string
		at     string
	}{
		{nil, "2024-09-01"},
		{[]string{"duo_pro"}, "2025-03-01"},
		{[]string{"duo_enterprise", "duo_pro"}, "2026-01-15"},
	}
	for _, tc := range cases {
		code, stdout, stderr := runCLI(t, "catalog", "scopes", "--catalog", realLegacyFile,
			"--add-ons", strings.Join(tc.addOns, ","), "--at", tc.at, "--format", "json")
		if code != 0 {
			t.Fatalf("catalog scopes: exit %d: %s", code, stderr)
		}
		var want struct {
			Scopes []struct {
				Name string `json:"name"`
			} `json:"scopes"`
			Audiences []string `json:"audiences"`
		}
		if err := json.Unmarshal([]byte(stdout), &want); err != nil {
			t.Fatal(err)
		}
		var wantScopes []string
		for _, sc := range want.Scopes {
			wantScopes = append(wantScopes, sc.Name)
		}
		for _, where := range []struct{ name, url string }{
			{"live", srv.URL + "/catalog/grant.html"},
			{"static", "file://" + filepath.ToSlash(filepath.Join(out, "grant.html"))},
		} {
			steps := []chromedp.Action[chromedp.Void]{
				chromedp.Navigate(where.url),
				chromedp.WaitVisible(chromedp.CSS("form.grant")),
			}
			browse(t, ctx, where.name, steps...)
			eval[bool](t, ctx, `Array.from(document.querySelectorAll("input[name=add_on]")).every(i => { i.checked = false; return true })`)
			steps = nil
			for _, a := range tc.addOns {
				steps = append(steps, chromedp.Click(chromedp.CSS(`input[name=add_on][value="`+a+`"]`)))
			}
			steps = append(steps,
				chromedp.SetValue(chromedp.CSS("#g-at"), tc.at),
				chromedp.Click(chromedp.CSS("form.grant button[type=submit]")),
				chromedp.WaitVisible(chromedp.CSS("[data-scope-count]")),
			)
			browse(t, ctx, where.name+" grant", steps...)
			scopes := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("tr[data-scope]")).map(r => r.dataset.scope)`)
			auds := eval[string](t, ctx, `document.querySelector("[data-audiences]").textContent`)
			if !slices.Equal(scopes, wantScopes) {
				t.Errorf("%s grant for %v at %s: %v, catalog scopes says %v", where.name, tc.addOns, tc.at, scopes, wantScopes)
			}
			if auds != strings.Join(want.Audiences, " ") {
				t.Errorf("%s audiences for %v at %s: %q, catalog scopes says %v", where.name, tc.addOns, tc.at, auds, want.Audiences)
			}
		}
	}
	// The diff page of the static export: history → final legacy catalog.
	browse(t, ctx, "diff page", chromedp.Navigate("file://"+filepath.ToSlash(filepath.Join(out, "diff.html"))), chromedp.WaitVisible(chromedp.CSS("#added")))
	added := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('[data-diff="added"] a')).map(a => a.textContent)`)
	if d := catalog.Compare(mustLoad(t, realHistory), cat); !slices.Equal(added, d.Added) {
		t.Errorf("diff page added %v, Compare says %v", added, d.Added)
	}
	screenshot(t, ctx, shots, "diff")
}

func mustLoad(t *testing.T, path string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
