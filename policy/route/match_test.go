package route

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
	corerego "github.com/ccauthz/ccauthz/policy/rego"
	"github.com/ccauthz/ccauthz/policy/regogen"
)

// The real legacy catalog and the manifests cut down to it (test input that
// lives beside the repository; tests skip without it).
const legacyCatalog = "../../../shared/reference-catalog/ee/config/cloud_connector/access_data.yml"

var legacyManifests = []string{
	"../testdata/manifests/ai_gateway_legacy.yaml",
	"../testdata/manifests/duo_workflow_legacy.yaml",
}

// regoRouting evaluates the generated Rego routing (core.rego matched and
// param_replacements) for a method and path.
type regoRouting struct {
	matched, params rego.PreparedEvalQuery
}

// regoAnswer is what the Rego routing said: the route id, the wildcard rest,
// the {param} replacements, or a conflict (several routes match equally).
type regoAnswer struct {
	id, rest string
	found    bool
	conflict bool
	params   map[string]string
}

func newRegoRouting(t testing.TB, cat *catalog.Catalog, m *manifest.Manifest) *regoRouting {
	t.Helper()
	out, err := regogen.Generate(cat, m)
	if err != nil {
		t.Fatal(err)
	}
	modules := map[string]*ast.Module{}
	for name, src := range map[string]string{corerego.CoreFile: corerego.Core(), regogen.ModuleFile: out.Module} {
		mod, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		modules[name] = mod
	}
	c := ast.NewCompiler()
	c.Compile(modules)
	if c.Failed() {
		t.Fatal(c.Errors)
	}
	prep := func(q string) rego.PreparedEvalQuery {
		pq, err := rego.New(rego.Query(q), rego.Compiler(c)).PrepareForEval(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return pq
	}
	return &regoRouting{matched: prep("data.ccauthz.main.matched"), params: prep("data.ccauthz.main.param_replacements")}
}

func (r *regoRouting) route(t testing.TB, method, path string) regoAnswer {
	t.Helper()
	input := map[string]any{"request": map[string]any{"method": method, "path": path, "headers": map[string]any{}}}
	ctx := context.Background()
	rs, err := r.matched.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		if strings.Contains(err.Error(), "conflict") {
			return regoAnswer{conflict: true}
		}
		t.Fatalf("%s %q: %v", method, path, err)
	}
	var a regoAnswer
	if len(rs) == 1 {
		m := rs[0].Expressions[0].Value.([]any)
		a.id, a.rest, a.found = m[0].(string), m[1].(string), true
	}
	rs, err = r.params.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		t.Fatalf("%s %q: params: %v", method, path, err)
	}
	a.params = map[string]string{}
	if len(rs) == 1 {
		for k, v := range rs[0].Expressions[0].Value.(map[string]any) {
			a.params[k] = v.(string)
		}
	}
	return a
}

// goAnswer puts the Matcher's answer in the Rego routing's terms.
func goAnswer(m *manifest.Manifest, mt *Matcher, method, path string) regoAnswer {
	got := mt.Match(method, path)
	a := regoAnswer{params: map[string]string{}, conflict: got.Ambiguous}
	if got.Route < 0 {
		return a
	}
	r := m.Routes[got.Route]
	a.id, a.rest, a.found = r.ID, got.Rest, true
	for i, s := range r.Segments {
		if s.Kind == manifest.SegParam {
			a.params["{"+s.Value+"}"] = got.Parts[i]
		}
	}
	return a
}

func compare(t *testing.T, m *manifest.Manifest, mt *Matcher, rr *regoRouting, method, path string) {
	t.Helper()
	want := rr.route(t, method, path)
	got := goAnswer(m, mt, method, path)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s %q: Go matcher %+v, Rego routing %+v", method, path, got, want)
	}
}

// pathsFor gives request paths for a route: its pattern filled in, and
// hostile variants of it.
func pathsFor(rng *mrand.Rand, r manifest.Route) []string {
	word := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyz0123456789-_.%{}"
		b := make([]byte, 1+rng.IntN(8))
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	var parts []string
	for _, s := range r.Segments {
		switch s.Kind {
		case manifest.SegLiteral:
			parts = append(parts, s.Value)
		case manifest.SegParam:
			parts = append(parts, word())
		case manifest.SegWildcard:
			for range 1 + rng.IntN(3) {
				parts = append(parts, word())
			}
		}
	}
	p := "/" + strings.Join(parts, "/")
	out := []string{p, r.Path, p + "/", p + "//", strings.TrimPrefix(p, "/"), "/" + p, strings.ToUpper(p),
		p + "/" + word(), strings.Replace(p, "/", "//", 1), p + "?x=1", p + "%2F", p + "/..", "/./" + p[1:],
		p + "\x00", p + "\xff", strings.TrimSuffix(p, "/"+parts[len(parts)-1]), strings.TrimSuffix(p, parts[len(parts)-1])}
	if len(parts) > 1 {
		// an empty segment in place of each part
		for i := range parts {
			q := append([]string(nil), parts...)
			q[i] = ""
			out = append(out, "/"+strings.Join(q, "/"))
		}
	}
	return out
}

var methods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "post", ""}

func checkManifest(t *testing.T, cat *catalog.Catalog, m *manifest.Manifest) {
	mt := New(m)
	rr := newRegoRouting(t, cat, m)
	rng := mrand.New(mrand.NewPCG(1, 2))
	n := 0
	for _, r := range m.Routes {
		for range 1 {
			for _, p := range pathsFor(rng, r) {
				for _, meth := range append(append([]string(nil), r.Methods...), methods[rng.IntN(len(methods))]) {
					compare(t, m, mt, rr, meth, p)
					n++
				}
			}
		}
	}
	for range 150 {
		compare(t, m, mt, rr, methods[rng.IntN(len(methods))], randomPath(rng))
		n++
	}
	t.Logf("%d requests agree", n)
}

func randomPath(rng *mrand.Rand) string {
	const letters = "abv12/xyz{}*-_."
	b := make([]byte, rng.IntN(24))
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}

// TestMatcherAgreesWithRego is the differential test: on every route of the
// bundled example manifests (and of the legacy manifests with the real
// catalog, when it is present), with filled-in, hostile and random paths, the
// Go matcher gives the Rego routing's answer: route, wildcard rest and param
// values, or the conflict.
func TestMatcherAgreesWithRego(t *testing.T) {
	for _, name := range manifest.ExampleNames() {
		t.Run(name, func(t *testing.T) {
			m, err := manifest.Example(name)
			if err != nil {
				t.Fatal(err)
			}
			m, err = m.Bind(catalog.Example())
			if err != nil {
				t.Fatal(err)
			}
			checkManifest(t, catalog.Example(), m)
		})
	}
	t.Run("small", func(t *testing.T) {
		cat, m := smallManifest(t)
		checkManifest(t, cat, m)
	})
	if _, err := os.Stat(legacyCatalog); err != nil {
		t.Logf("SKIP legacy manifests: %s not found (it lives beside the repository in ../shared)", legacyCatalog)
		return
	}
	cat, err := catalog.Load(legacyCatalog)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range legacyManifests {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Parse(file, data, cat)
			if err != nil {
				t.Fatal(err)
			}
			checkManifest(t, cat, m)
		})
	}
}

// smallSrc has exact and pattern routes that overlap at every rank, methods
// shared and not, params and wildcards.
const smallSrc = `backend: ai_gateway
routes:
  - {id: exact, methods: [GET, POST], path: /a/b, unit_primitives: [duo_chat]}
  - {id: lit_param, methods: [POST], path: '/a/{x}', unit_primitives: [duo_chat], detail: 'no {x}'}
  - {id: param_lit, methods: [DELETE], path: '/{y}/b/c', unit_primitives: [duo_chat]}
  - {id: lit_wild, methods: [POST, GET], path: '/a/*', unit_primitives: [duo_chat]}
  - {id: param_wild, methods: [POST], path: '/p/{id}/*', unit_primitives: [duo_chat]}
  - {id: deep, methods: [POST], path: '/a/b/c/d', unit_primitives: [duo_chat]}
  - {id: two, methods: [PUT], path: '/{p}/{q}', unit_primitives: [duo_chat]}
`

func smallManifest(t testing.TB) (*catalog.Catalog, *manifest.Manifest) {
	t.Helper()
	cat := catalog.Example()
	m, err := manifest.Parse("small.yaml", []byte(smallSrc), cat)
	if err != nil {
		t.Fatal(err)
	}
	return cat, m
}

// FuzzMatchAgreesWithRego compares the Go matcher with the Rego routing of a
// small manifest on any method and path.
func FuzzMatchAgreesWithRego(f *testing.F) {
	for _, s := range []string{"/a/b", "/a/x", "/a/b/c", "/p/1/x/y", "/p//x", "a/b", "/a/b/", "//a/b", "/x/y", "/", ""} {
		f.Add("POST", s)
	}
	f.Add("PUT", "/a/b")
	f.Add("GET", "/a/\xff")
	cat, m := smallManifest(f)
	mt := New(m)
	rr := newRegoRouting(f, cat, m)
	f.Fuzz(func(t *testing.T, method, path string) {
		compare(t, m, mt, rr, method, path)
	})
}
