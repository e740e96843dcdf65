package site

import (
	"bytes"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/net/html"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// Paths of GitLab's real legacy catalog, beside the repository (skipped when
// absent).
const (
	realLegacy  = "../../../shared/reference-catalog/ee/config/cloud_connector/access_data.yml"
	realHistory = "../../../shared/reference-catalog/history/access_data.037b30a2b4caeeaa65b1655b623df432b07bae32.yml"
)

// testNow is the instant the tests render at: some example unit primitives
// are past their cut-off, some not.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func exampleManifests(t testing.TB) []*manifest.Manifest {
	t.Helper()
	var out []*manifest.Manifest
	for _, name := range manifest.ExampleNames() {
		m, err := manifest.Example(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// exampleSource is the example catalog with both example manifests, diffed
// against a copy of itself in which one unit primitive is gone.
func exampleSource(t testing.TB) Source {
	t.Helper()
	return Source{Catalog: catalog.Example(), Manifests: exampleManifests(t), Old: olderExample(t)}
}

// olderExample is the example catalog without explain_code.
func olderExample(t testing.TB) *catalog.Catalog {
	t.Helper()
	fsys := fstest.MapFS{}
	ex := catalog.ExampleFS()
	err := fs.WalkDir(ex, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || p == "unit_primitives/explain_code.yml" {
			return err
		}
		data, err := fs.ReadFile(ex, p)
		if p == "unit_primitives/complete_code.yml" {
			// A year later in the older catalog: a cut-off move.
			data = []byte(strings.Replace(string(data), "cut_off_date: 2024-", "cut_off_date: 2025-", 1))
		}
		if strings.HasPrefix(p, "services/") {
			data = []byte(strings.ReplaceAll(string(data), "  - explain_code\n", ""))
		}
		fsys[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.LoadFS(fsys, ".", "older")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newDirectory(t testing.TB, src Source) *Directory {
	t.Helper()
	d, err := NewDirectory(src, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newSite(t testing.TB) *Site {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExportLinksResolve exports the example directory and checks every
// page: it parses as HTML, every relative link and fragment resolves to an
// exported file and an element id, ids are unique, and every entity page is
// reachable from the index by following links.
func TestExportLinksResolve(t *testing.T) {
	d := newDirectory(t, exampleSource(t))
	dir := t.TempDir()
	n, err := newSite(t).Export(d, dir)
	if err != nil {
		t.Fatal(err)
	}
	pages := Pages(d)
	if n != len(pages)+3 { // + site.css, filter.js, grant.js
		t.Errorf("Export wrote %d files, want %d pages + 3 assets", n, len(pages))
	}
	type doc struct {
		ids      map[string]bool
		labelFor map[string]bool
		controls []string // ids of inputs and selects not inside a label
		links    []string // resolved relative to dir, with fragment
	}
	docs := map[string]*doc{}
	for _, rel := range pages {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		root, err := html.Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		dc := &doc{ids: map[string]bool{}, labelFor: map[string]bool{}}
		var walk func(*html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode {
				switch n.Data {
				case "label":
					dc.labelFor[attr(n, "for")] = true
				case "input", "select":
					if n.Parent == nil || n.Parent.Data != "label" {
						dc.controls = append(dc.controls, attr(n, "id"))
					}
				}
				for _, a := range n.Attr {
					switch {
					case a.Key == "id":
						if dc.ids[a.Val] {
							t.Errorf("%s: duplicate id %q", rel, a.Val)
						}
						dc.ids[a.Val] = true
					case (a.Key == "href" || a.Key == "src" || a.Key == "action") && !strings.Contains(a.Val, "://"):
						u, err := url.Parse(a.Val)
						if err != nil {
							t.Errorf("%s: bad link %q: %v", rel, a.Val, err)
							continue
						}
						target := rel
						if u.Path != "" {
							target = path.Join(path.Dir(rel), u.Path)
						}
						if u.Fragment != "" {
							target += "#" + u.Fragment
						}
						dc.links = append(dc.links, target)
					}
				}
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(root)
		docs[rel] = dc
		if !bytes.Contains(b, []byte("<main id=\"main\"")) || !bytes.Contains(b, []byte("<nav aria-label=")) {
			t.Errorf("%s: no main or nav landmark", rel)
		}
	}
	for rel, dc := range docs {
		for _, id := range dc.controls {
			if id == "" || !dc.labelFor[id] {
				t.Errorf("%s: form control %q has no label", rel, id)
			}
		}
		for _, l := range dc.links {
			file, frag, _ := strings.Cut(l, "#")
			if strings.HasPrefix(file, "assets/") {
				if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
					t.Errorf("%s: link to missing asset %s", rel, file)
				}
				continue
			}
			target, ok := docs[file]
			if !ok {
				t.Errorf("%s: link to missing page %s", rel, l)
				continue
			}
			if frag != "" && frag != "main" && !target.ids[frag] {
				t.Errorf("%s: link %s: no element with id %q", rel, l, frag)
			}
		}
	}
	// Every page is reachable from the index.
	seen := map[string]bool{"index.html": true}
	queue := []string{"index.html"}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, l := range docs[p].links {
			file, _, _ := strings.Cut(l, "#")
			if _, ok := docs[file]; ok && !seen[file] {
				seen[file] = true
				queue = append(queue, file)
			}
		}
	}
	for _, p := range pages {
		if !seen[p] {
			t.Errorf("%s is not reachable from the index", p)
		}
	}
}

// TestPagesCoverEveryEntity: one page per unit primitive, add-on and backend.
func TestPagesCoverEveryEntity(t *testing.T) {
	src := exampleSource(t)
	d := newDirectory(t, src)
	pages := Pages(d)
	c := src.Catalog
	want := 2 + len(c.UnitPrimitives) + len(c.AddOns) + len(c.BackendServices) + 1
	if len(pages) != want {
		t.Fatalf("%d pages, want %d", len(pages), want)
	}
	for _, n := range c.UnitPrimitiveNames() {
		if !slices.Contains(pages, "up/"+n+".html") {
			t.Errorf("no page for %s", n)
		}
	}
	if slices.Contains(Pages(newDirectory(t, Source{Catalog: c})), "diff.html") {
		t.Error("diff.html without an old catalog")
	}
}

func serve(t *testing.T, s *Site, current func() (Source, error)) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/catalog/", http.StripPrefix("/catalog", s.Handler(current, func() time.Time { return testNow }, slog.New(slog.DiscardHandler))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/catalog/"
}

func get(t *testing.T, u string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// visibleRows returns the unit primitives of the index rows not hidden.
func visibleRows(t *testing.T, page string) []string {
	t.Helper()
	root, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" {
			up, hidden := "", false
			for _, a := range n.Attr {
				switch a.Key {
				case "data-up":
					up = a.Val
				case "hidden":
					hidden = true
				}
			}
			if up != "" && !hidden {
				out = append(out, up)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(root)
	return out
}

func TestHandlerIndexAndFilters(t *testing.T) {
	src := exampleSource(t)
	base := serve(t, newSite(t), func() (Source, error) { return src, nil })

	code, h, body := get(t, base)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", code, h.Get("Content-Type"))
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if got, want := visibleRows(t, body), src.Catalog.UnitPrimitiveNames(); !slices.Equal(got, want) {
		t.Errorf("index rows = %v, want every unit primitive %v", got, want)
	}

	// Each filter narrows to exactly what Matches (and the catalog's own
	// queries) say.
	c := src.Catalog
	var proUPs []string
	for _, u := range c.UnitPrimitivesOfAddOn("duo_pro") {
		proUPs = append(proUPs, u.Name)
	}
	_, _, body = get(t, base+"index.html?add_on=duo_pro")
	if got := visibleRows(t, body); !slices.Equal(got, proUPs) || len(got) == 0 || len(got) == len(c.UnitPrimitives) {
		t.Errorf("add_on=duo_pro rows = %v, want %v", got, proUPs)
	}
	_, _, body = get(t, base+"index.html?status=deprecated")
	var dep []string
	for _, u := range c.Deprecated() {
		dep = append(dep, u.Name)
	}
	if got := visibleRows(t, body); !slices.Equal(got, dep) || len(dep) == 0 {
		t.Errorf("status=deprecated rows = %v, want %v", got, dep)
	}
	_, _, body = get(t, base+"index.html?q=COMMIT+MESSAGE")
	if got := visibleRows(t, body); !slices.Contains(got, "generate_commit_message") || len(got) > 3 {
		t.Errorf("q=commit message rows = %v", got)
	}
	_, _, body = get(t, base+"index.html?backend=no_such_backend")
	if got := visibleRows(t, body); len(got) != 0 || !strings.Contains(body, "0</span> of") {
		t.Errorf("unknown backend rows = %v", got)
	}
}

func TestHandlerStatusSoon(t *testing.T) {
	c := catalog.Example()
	d := newDirectory(t, Source{Catalog: c})
	for _, n := range c.UnitPrimitiveNames() {
		u := c.UnitPrimitives[n]
		soon := u.CutOffDate != nil && u.CutOffDate.After(testNow) && u.CutOffDate.Sub(testNow) <= 90*24*time.Hour
		if got := slices.Contains(d.Statuses(u), StatusSoon); got != soon {
			t.Errorf("%s (cut-off %v): cut-off-soon = %v, want %v", n, u.CutOffDate, got, soon)
		}
		if free := slices.Contains(d.Statuses(u), StatusFree); free != u.FreeAt(testNow) || free == slices.Contains(d.Statuses(u), StatusPaid) {
			t.Errorf("%s: statuses %v disagree with FreeAt", n, d.Statuses(u))
		}
	}
}

func TestHandlerDetailPages(t *testing.T) {
	src := exampleSource(t)
	base := serve(t, newSite(t), func() (Source, error) { return src, nil })

	code, _, body := get(t, base+"up/complete_code.html")
	if code != 200 {
		t.Fatalf("up/complete_code.html = %d", code)
	}
	for _, want := range []string{`data-route="ai_gateway/code_completions_v2"`, "/v2/code/completions", "gitlab-ai-gateway", "duo_pro", `href="../backend/ai_gateway.html#route-code_completions_v2"`} {
		if !strings.Contains(body, want) {
			t.Errorf("complete_code page lacks %q", want)
		}
	}
	// A unit primitive allowed only through the proxy header lists those
	// routes as header routes.
	_, _, body = get(t, base+"up/ask_build.html")
	if !strings.Contains(body, `data-route="ai_gateway/proxy_anthropic"`) || !strings.Contains(body, "X-Gitlab-Unit-Primitive") {
		t.Errorf("ask_build page does not show its proxy routes")
	}
	for _, p := range []string{"add-on/duo_pro.html", "backend/ai_gateway.html", "backend/duo_workflow_service.html", "diff.html"} {
		if code, _, _ := get(t, base+p); code != 200 {
			t.Errorf("GET %s = %d", p, code)
		}
	}
	_, _, body = get(t, base+"diff.html")
	if !strings.Contains(body, `data-diff="added"><li><a href="up/explain_code.html">explain_code</a>`) {
		t.Errorf("diff page does not list explain_code as added")
	}
	for _, p := range []string{"up/nope.html", "up/../index.html/x", "add-on/", "nope.html", "assets/nope.css", "up/complete_code.html/"} {
		if code, _, _ := get(t, base+p); code != 404 {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
	if code, h, _ := get(t, base+"assets/site.css"); code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/css") {
		t.Errorf("assets/site.css = %d %s", code, h.Get("Content-Type"))
	}
	resp, err := http.Post(base, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", resp.StatusCode)
	}
}

// TestHandlerGrant: the server-side calculator answers what catalog.Grant
// answers, and bad form values are shown, not crashed on.
func TestHandlerGrant(t *testing.T) {
	src := exampleSource(t)
	base := serve(t, newSite(t), func() (Source, error) { return src, nil })
	for _, addOns := range [][]string{nil, {"duo_pro"}, {"duo_enterprise", "duo_amazon_q"}} {
		q := url.Values{"at": {"2025-03-01"}}
		for _, a := range addOns {
			q.Add("add_on", a)
		}
		_, _, body := get(t, base+"grant.html?"+q.Encode())
		at, _ := catalog.ParseDate("2025-03-01")
		g := src.Catalog.Grant(addOns, at)
		var got []string
		for _, line := range strings.Split(body, "\n") {
			if _, rest, ok := strings.Cut(line, `<tr data-scope="`); ok {
				name, _, _ := strings.Cut(rest, `"`)
				got = append(got, name)
			}
		}
		if !slices.Equal(got, g.Scopes) {
			t.Errorf("%v: scopes %v, want %v", addOns, got, g.Scopes)
		}
		if !strings.Contains(body, `<span data-audiences>`+strings.Join(g.Audiences, " ")+`</span>`) {
			t.Errorf("%v: audiences %v not on the page", addOns, g.Audiences)
		}
	}
	for q, want := range map[string]string{
		"at=2025-13-45":           "date:",
		"at=2025-01-01&add_on=xx": "unknown add-on &#34;xx&#34;",
	} {
		code, _, body := get(t, base+"grant.html?"+q)
		if code != 200 || !strings.Contains(body, want) || strings.Contains(body, "data-scope=") {
			t.Errorf("grant.html?%s: %d, want message %q and no scopes", q, code, want)
		}
	}
}

// TestHandlerFollowsReloads: each request reads the current source.
func TestHandlerFollowsReloads(t *testing.T) {
	first := Source{Catalog: catalog.Example()}
	second := Source{Catalog: olderExample(t)}
	var cur atomic.Pointer[Source]
	cur.Store(&first)
	base := serve(t, newSite(t), func() (Source, error) { return *cur.Load(), nil })
	if code, _, _ := get(t, base+"up/explain_code.html"); code != 200 {
		t.Fatalf("before reload: %d", code)
	}
	cur.Store(&second)
	if code, _, _ := get(t, base+"up/explain_code.html"); code != 404 {
		t.Errorf("after a reload without explain_code: %d, want 404", code)
	}
}

// TestPagesEscapeCatalogText: catalog text is data, never markup or script.
func TestPagesEscapeCatalogText(t *testing.T) {
	fsys := fstest.MapFS{
		"backend_services/b.yml": {Data: []byte("name: b\nproject_url: 'javascript:alert(2)'\ngroup: g\njwt_aud: aud\n")},
		"unit_primitives/x.yml": {Data: []byte("name: x\ndescription: '<script>alert(1)</script>'\ngroup: '\"><img src=x onerror=alert(3)>'\n" +
			"feature_category: f\ndocumentation_url: 'javascript:alert(4)'\nbackend_services: [b]\n")},
	}
	c, err := catalog.LoadFS(fsys, ".", "evil")
	if err != nil {
		t.Fatal(err)
	}
	d := newDirectory(t, Source{Catalog: c})
	s := newSite(t)
	for _, rel := range Pages(d) {
		var buf bytes.Buffer
		if err := s.Render(&buf, d, Live, rel, nil); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, bad := range []string{"<script>alert", "<img src=x", `href="javascript:`} {
			if strings.Contains(out, bad) {
				t.Errorf("%s contains %q", rel, bad)
			}
		}
	}
}

// TestNewDirectoryBindsManifests: an unbound manifest is bound; one that
// does not fit the catalog is an error, not a page.
func TestNewDirectoryBindsManifests(t *testing.T) {
	m, err := manifest.Parse("m.yaml", []byte("backend: no_such_backend\nroutes:\n  - {id: r, methods: [GET], path: /x, unit_primitives: [duo_chat]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewDirectory(Source{Catalog: catalog.Example(), Manifests: []*manifest.Manifest{m}}, testNow); err == nil ||
		!strings.Contains(err.Error(), "no_such_backend") {
		t.Errorf("NewDirectory with a foreign manifest: %v", err)
	}
	// Two configured backends may share one manifest: its routes are
	// listed once.
	ms := exampleManifests(t)
	once := newDirectory(t, Source{Catalog: catalog.Example(), Manifests: ms})
	twice := newDirectory(t, Source{Catalog: catalog.Example(), Manifests: append(ms, ms[0])})
	if a, b := len(once.Uses("complete_code")), len(twice.Uses("complete_code")); a != b || a == 0 {
		t.Errorf("complete_code routes: %d with each manifest once, %d with one twice", a, b)
	}
}

// TestRouteUses pins the rows of RouteUses for the example manifests.
func TestRouteUses(t *testing.T) {
	d := newDirectory(t, Source{Catalog: catalog.Example(), Manifests: exampleManifests(t)})
	uses := d.Uses("complete_code")
	if !slices.ContainsFunc(uses, func(u RouteUse) bool {
		return u.Backend == "ai_gateway" && u.RouteID == "code_completions_v2" && u.How == HowAllOf
	}) {
		t.Fatalf("complete_code uses = %+v", uses)
	}
	for up, rows := range d.uses {
		if _, ok := d.cat.UnitPrimitives[up]; !ok {
			t.Errorf("RouteUses names %q, not a canonical unit primitive", up)
		}
		for _, r := range rows {
			if !slices.Contains([]string{HowAllOf, HowHeader, HowHeaderAny, HowAnyOf, HowBody, HowPrompt}, r.How) {
				t.Errorf("%s: how %q", up, r.How)
			}
		}
	}
}

// TestRouteUsesOfTheNewRouteKinds: any-of alternatives, body rules and
// prompt routes of the example AI gateway and Duo Workflow manifests each
// list the unit primitives they may require.
func TestRouteUsesOfTheNewRouteKinds(t *testing.T) {
	d := newDirectory(t, Source{Catalog: catalog.Example(), Manifests: exampleManifests(t)})
	has := func(up, route, how string) bool {
		for _, r := range d.Uses(up) {
			if r.RouteID == route && r.How == how {
				return true
			}
		}
		return false
	}
	for _, c := range []struct{ up, route, how string }{
		{"ai_gateway_model_provider_proxy", "code_user_access_token", HowAnyOf},
		{"complete_code", "code_user_access_token", HowAnyOf},
		{"duo_workflow_execute_workflow", "execute_workflow", HowAnyOf},
		{"generate_code", "code_suggestions_v4", HowBody},
		{"include_issue_context", "chat_agent_v2", HowBody},
	} {
		if !has(c.up, c.route, c.how) {
			t.Errorf("%s: no %s row for route %s; rows: %+v", c.up, c.how, c.route, d.Uses(c.up))
		}
	}
	var prompt bool
	for up := range d.uses {
		for _, r := range d.uses[up] {
			prompt = prompt || r.How == HowPrompt
		}
	}
	if !prompt {
		t.Error("no unit primitive lists a prompt route")
	}
}

// TestPagesShowNoMachinePaths: catalog and manifest sources appear by file
// name only.
func TestPagesShowNoMachinePaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "secret-home", "cat"), catalog.ExampleFS()); err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(filepath.Join(dir, "secret-home", "cat"))
	if err != nil {
		t.Fatal(err)
	}
	m := exampleManifests(t)[0]
	m.File = filepath.Join(dir, "secret-home", "ai_gateway.yaml")
	d := newDirectory(t, Source{Catalog: c, Old: catalog.Example(), Manifests: []*manifest.Manifest{m}})
	s := newSite(t)
	for _, rel := range Pages(d) {
		var buf bytes.Buffer
		if err := s.Render(&buf, d, Live, rel, nil); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "secret-home") {
			t.Errorf("%s shows a machine path", rel)
		}
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}
